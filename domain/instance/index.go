package instance

import (
	"encoding/json"
	"fmt"
)

// The order index maps an order line to the instance created for it. It is
// its own tiny stream per order line (kind "order", keys orderId and
// orderLineId) whose first event wins: appending it with expected sequence
// 0 is what makes newInstance idempotent across replicas.
const (
	IndexKind = "order"
	TypeBound = "OrderLineBound"
)

// Bound: this order line's instance is InstanceID.
type Bound struct {
	InstanceID string `json:"instanceId"`
}

// EventType implements Event.
func (Bound) EventType() string { return TypeBound }

// DecodeBound reads a stored Bound event.
func DecodeBound(typ string, version int, data []byte) (Bound, error) {
	var b Bound
	if typ != TypeBound || version != SchemaVersion {
		return b, fmt.Errorf("decode order index: unexpected %s v%d", typ, version)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("decode order index: %w", err)
	}
	if b.InstanceID == "" {
		return b, fmt.Errorf("decode order index: empty instanceId")
	}
	return b, nil
}

// Order notifications (orderNotify) are recorded on their own stream per
// order: kind "ordernotify", key orderId.
const (
	NotifyKind        = "ordernotify"
	TypeOrderNotified = "OrderNotified"
)

// OrderNotified: KooGallery said an order was paid.
type OrderNotified struct {
	OrderID     string `json:"orderId"`
	OrderLineID string `json:"orderLineId,omitempty"`
}

// EventType implements Event.
func (OrderNotified) EventType() string { return TypeOrderNotified }
