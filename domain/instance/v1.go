package instance

import (
	"maps"
	"time"
)

// ChargingMode is the SaaS V1 `chargingMode` (codes-and-rules.md §9).
type ChargingMode int

// The V1 charging modes.
const (
	ChargingPayPerUse ChargingMode = 0 // 按需
	ChargingPeriod    ChargingMode = 1 // 包周期 (yearly/monthly)
	ChargingOneTime   ChargingMode = 3 // 按次
	ChargingPackage   ChargingMode = 5 // 按需套餐包 (on-demand package)
)

// Valid reports whether m is one of the documented charging modes.
func (m ChargingMode) Valid() bool {
	switch m {
	case ChargingPayPerUse, ChargingPeriod, ChargingOneTime, ChargingPackage:
		return true
	}
	return false
}

// FrozenExpired is the reason of a freeze caused by SaaS V1 expireInstance
// (the product expired; the data is kept and a renewal reactivates it).
const FrozenExpired = "expired"

// V1Order is what a SaaS V1 newInstance says about the order and the buyer
// (saas-v1.md §3). Every field is optional except ProductID. MobilePhone and
// Email are decrypted (the log holds them in plain text, like the initial
// password: decisions.md). OrderAmount is the exact decimal text received,
// never a float.
type V1Order struct {
	CustomerID   string `json:"customerId,omitempty"`
	CustomerName string `json:"customerName,omitempty"`
	UserID       string `json:"userId,omitempty"`
	UserName     string `json:"userName,omitempty"`
	MobilePhone  string `json:"mobilePhone,omitempty"`
	Email        string `json:"email,omitempty"`
	ProductID    string `json:"productId"`
	SKUCode      string `json:"skuCode,omitempty"`
	// ChargingMode is nil when the request did not carry it (period-like
	// idempotency, keyed on orderId).
	ChargingMode *ChargingMode `json:"chargingMode,omitempty"`
	Trial        bool          `json:"trial,omitempty"`
	ExpireTime   time.Time     `json:"expireTime,omitzero"`
	PeriodType   string        `json:"periodType,omitempty"`
	PeriodNumber int           `json:"periodNumber,omitempty"`
	OrderAmount  string        `json:"orderAmount,omitempty"`
	Amount       *int64        `json:"amount,omitempty"`
	DiskSize     *int64        `json:"diskSize,omitempty"`
	BandWidth    *int64        `json:"bandWidth,omitempty"`
	// ExtendParams is the decoded saasExtendParams (first value per name);
	// ExtendParamsRaw keeps a value that did not decode.
	ExtendParams    map[string]string `json:"extendParams,omitempty"`
	ExtendParamsRaw string            `json:"extendParamsRaw,omitempty"`
}

// PayPerUse reports whether the order is pay-per-use (chargingMode 0): its
// idempotency key is orderId + productId, one order may yield several
// instances.
func (o *V1Order) PayPerUse() bool {
	return o != nil && o.ChargingMode != nil && *o.ChargingMode == ChargingPayPerUse
}

// Metered reports whether the instance reports usage in queryInstance:
// pay-per-use and on-demand packages.
func (o *V1Order) Metered() bool {
	return o != nil && o.ChargingMode != nil && (*o.ChargingMode == ChargingPayPerUse || *o.ChargingMode == ChargingPackage)
}

// clone returns a deep copy, so that states never share it.
func (o *V1Order) clone() *V1Order {
	if o == nil {
		return nil
	}
	c := *o
	c.ExtendParams = maps.Clone(o.ExtendParams)
	return &c
}

// V1Upgrade is what a SaaS V1 upgrade changes (saas-v1.md §7): the
// specification after the upgrade and the linear attributes sent.
type V1Upgrade struct {
	SKUCode         string            `json:"skuCode,omitempty"`
	ProductID       string            `json:"productId,omitempty"`
	Amount          *int64            `json:"amount,omitempty"`
	DiskSize        *int64            `json:"diskSize,omitempty"`
	BandWidth       *int64            `json:"bandWidth,omitempty"`
	ExtendParams    map[string]string `json:"extendParams,omitempty"`
	ExtendParamsRaw string            `json:"extendParamsRaw,omitempty"`
}

// sameOrder reports whether a create is a repeat of the one that made s:
// the same order line (V2), or the same V1 order (and, for pay-per-use, the
// same product).
func (c Create) sameOrder(s State) bool {
	if s.OrderID != c.OrderID || s.OrderLineID != c.OrderLineID || (s.V1 == nil) != (c.V1 == nil) {
		return false
	}
	if c.V1 == nil {
		return true
	}
	if s.V1.PayPerUse() != c.V1.PayPerUse() {
		return false
	}
	return !c.V1.PayPerUse() || s.V1.ProductID == c.V1.ProductID
}

// clone returns a deep copy.
func (u *V1Upgrade) clone() *V1Upgrade {
	if u == nil {
		return nil
	}
	c := *u
	c.ExtendParams = maps.Clone(u.ExtendParams)
	return &c
}
