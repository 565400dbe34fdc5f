package instance

import (
	"encoding/json"
	"time"
)

// TypeOrderQueried names the event that records what KooGallery's Query
// Order said about the instance's order (outgoing.md §2).
const TypeOrderQueried = "InstanceOrderQueried"

// OrderInfo is the decoded part of a Query Order answer that the views and
// the vendor need; Raw keeps the whole answer, since only part of its
// schema is published.
type OrderInfo struct {
	OrderID      string    `json:"orderId"`
	OrderLineID  string    `json:"orderLineId,omitempty"`
	OrderType    string    `json:"orderType,omitempty"`    // NEW, TRIAL, TRIAL_TO_FORMAL, UNSUBSCRIBE, RENEW, CHANGE
	ChargingMode string    `json:"chargingMode,omitempty"` // ON_DEMAND, ONE_TIME, PERIOD, ON_DEMAND_PKG
	ProductID    string    `json:"productId,omitempty"`
	SKUCode      string    `json:"skuCode,omitempty"`
	PeriodType   string    `json:"periodType,omitempty"`
	PeriodNumber int       `json:"periodNumber,omitempty"`
	ExpireTime   time.Time `json:"expireTime,omitempty"`
	CreateTime   time.Time `json:"createTime,omitempty"`
	CustomerID   string    `json:"customerId,omitempty"`
	Trial        bool      `json:"trial,omitempty"`
	// Raw is the answer's orderInfo as received.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// OrderQueried: Query Order answered for one of the instance's orders.
type OrderQueried struct {
	Info OrderInfo `json:"info"`
}

// EventType implements Event.
func (OrderQueried) EventType() string { return TypeOrderQueried }

// RecordOrderInfo records a Query Order answer (an effect's outcome).
type RecordOrderInfo struct{ Info OrderInfo }

func (RecordOrderInfo) commandName() string { return "recordOrderInfo" }
