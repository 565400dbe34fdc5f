// Package instance is the Instance aggregate of SaaS V2, SaaS V1 and
// License C: its states, commands, events and the two pure functions that
// drive it, Decide and Evolve. It does no I/O.
package instance

import (
	"fmt"
	"time"
)

// Status is where an instance is in its life.
type Status string

// The statuses. The zero value, StatusNone, means "does not exist".
const (
	StatusNone         Status = ""
	StatusProvisioning Status = "provisioning"
	StatusActive       Status = "active"
	StatusFrozen       Status = "frozen"
	StatusReleased     Status = "released"
	StatusFailed       Status = "failed"
)

// Statuses lists every status, StatusNone first; tests range over it.
var Statuses = []Status{StatusNone, StatusProvisioning, StatusActive, StatusFrozen, StatusReleased, StatusFailed}

// Exists reports whether the instance was ever created.
func (s Status) Exists() bool { return s != StatusNone }

// Live reports whether KooGallery may still act on the instance: it exists
// and is neither released nor failed.
func (s Status) Live() bool {
	return s == StatusProvisioning || s == StatusActive || s == StatusFrozen
}

// AppInfo is what the buyer receives: URLs and the initial admin account, in
// plain text. The ingress encrypts userName and password on the way out.
type AppInfo struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Password    string `json:"password,omitempty"`
	Memo        string `json:"memo,omitempty"`
}

// Failure says why provisioning was refused: a KooGallery creation code
// (e.g. "000100") and a message for the buyer-facing resultMsg.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// State is the folded state of one instance.
type State struct {
	ID          string `json:"instanceId"`
	Status      Status `json:"status"`
	OrderID     string `json:"orderId,omitempty"`
	OrderLineID string `json:"orderLineId,omitempty"`
	BusinessID  string `json:"businessId,omitempty"`
	// Provisioned is true once the app info is known; a frozen instance may
	// still be unprovisioned.
	Provisioned bool      `json:"provisioned,omitempty"`
	AppInfo     *AppInfo  `json:"appInfo,omitempty"`
	Failure     *Failure  `json:"failure,omitempty"`
	ExpireTime  time.Time `json:"expireTime,omitempty"`
	ProductID   string    `json:"productId,omitempty"`
	// SKUCode is the specification (SaaS V1 newInstance and upgrade).
	SKUCode string `json:"skuCode,omitempty"`
	// V1 holds the SaaS V1 order details (nil for other families), with
	// the linear attributes as changed by upgrades.
	V1 *V1Order `json:"v1,omitempty"`
	// FrozenReason is the reason of the current freeze (FrozenExpired for a
	// SaaS V1 expiry); empty when not frozen.
	FrozenReason string `json:"frozenReason,omitempty"`
	// Order is the last Query Order answer recorded for the instance.
	Order *OrderInfo `json:"order,omitempty"`
	// Trial is set when Query Order called the creating order a trial.
	Trial bool `json:"trial,omitempty"`
	// Formal is set once a trial was converted to a paid order.
	Formal bool `json:"formal,omitempty"`
	// Upgrades counts applied upgrade orders.
	Upgrades int `json:"upgrades,omitempty"`
	// Orders holds the keys of refresh and upgrade orders already applied
	// (idempotency); see orderKey.
	Orders map[string]bool `json:"orders,omitempty"`
	// Licenses holds the License C applications (getLicenseAsync) by
	// eventId (licensec.go).
	Licenses map[string]LicenseApplication `json:"licenses,omitempty"`
	// Events counts the events folded into this state.
	Events int `json:"events"`
}

func orderKey(kind, orderID, orderLineID string) string {
	return fmt.Sprintf("%s|%d|%s|%s", kind, len(orderID), orderID, orderLineID)
}

// refreshKind is the idempotency kind of a refresh: the scene is part of it,
// because older pages send a cancelled renewal (UNSUBSCRIBE_RENEWAL_PERIOD)
// with the orderId of the renewal it cancels (saas-v2.md §5).
func refreshKind(scene Scene) string { return "refresh:" + string(scene) }

// HasOrder reports whether an order of the given kind ("refresh:<scene>",
// "upgrade") was already applied.
func (s State) HasOrder(kind, orderID, orderLineID string) bool {
	return s.Orders[orderKey(kind, orderID, orderLineID)]
}
