// Package license is the License aggregate of the legacy joint-operation
// License family A (license.md §2: getLicense, refreshLicense, expireLicense,
// releaseLicense): its states, commands, events and the two pure functions
// that drive it, Decide and Evolve. It does no I/O. The license text itself
// is produced outside the domain (by an issuer) and carried by the Issue
// command; the aggregate keeps it so that a repeated getLicense returns the
// very same text.
package license

import (
	"fmt"
	"maps"
	"time"
)

// Status is where a license is in its life.
type Status string

// The statuses. The zero value, StatusNone, means "does not exist".
const (
	StatusNone Status = ""
	// StatusIssued: getLicense answered with the license; it is usable.
	StatusIssued Status = "issued"
	// StatusFrozen: expireLicense froze it; the data is kept and a
	// refreshLicense makes it usable again (license.md §2.2, §2.3).
	StatusFrozen Status = "frozen"
	// StatusReleased: releaseLicense deleted it (license.md §2.4).
	StatusReleased Status = "released"
)

// Statuses lists every status, StatusNone first; tests range over it.
var Statuses = []Status{StatusNone, StatusIssued, StatusFrozen, StatusReleased}

// Exists reports whether the license was ever issued.
func (s Status) Exists() bool { return s != StatusNone }

// Live reports whether KooGallery may still act on the license: it exists
// and is not released.
func (s Status) Live() bool { return s == StatusIssued || s == StatusFrozen }

// Customer is the buyer as getLicense names it (license.md §2.1; the IAM
// fields are read with their SaaS V1 newInstance meaning, saas-v1.md §3).
type Customer struct {
	ID   string `json:"customerId"`
	Name string `json:"customerName,omitempty"`
	// UserID and UserName are the IAM sub-user, when sent.
	UserID   string `json:"userId,omitempty"`
	UserName string `json:"userName,omitempty"`
}

// Purchase is what getLicense says was bought. Only customerId, businessId,
// orderId and skuCode are confirmed for getLicense; the other fields are
// read with their SaaS V1 newInstance meaning when sent (license.md §2.1,
// UNCERTAIN — the rest of the table).
type Purchase struct {
	ProductID string `json:"productId,omitempty"`
	SKUCode   string `json:"skuCode,omitempty"`
	Trial     bool   `json:"trial,omitempty"`
	// ChargingMode is the V1 integer as received ("0", "1", "3", "5").
	ChargingMode string `json:"chargingMode,omitempty"`
	PeriodType   string `json:"periodType,omitempty"`
	PeriodNumber int    `json:"periodNumber,omitempty"`
	// ExpireTime is the approximate expiry getLicense may carry (UTC).
	ExpireTime time.Time `json:"expireTime,omitzero"`
	// Extra holds every other received parameter, as received ("unknown
	// ones are stored with the order").
	Extra map[string]string `json:"extra,omitempty"`
}

// State is the folded state of one license. Its aggregate id is the
// instanceId getLicense answered with: the businessId of the first request
// for the order (license.md §2.1).
type State struct {
	ID         string   `json:"instanceId"`
	Status     Status   `json:"status"`
	OrderID    string   `json:"orderId,omitempty"`
	BusinessID string   `json:"businessId,omitempty"`
	Customer   Customer `json:"customer"`
	Purchase   Purchase `json:"purchase"`
	// Text is the license as handed to KooGallery; never changes once issued.
	Text string `json:"text,omitempty"`
	// ExpireTime is the current expiry: the purchase's, then each renewal's.
	ExpireTime time.Time `json:"expireTime,omitzero"`
	// ProductID is the current product (a renewal may change the period
	// type and with it the productId; skuCode stays).
	ProductID string `json:"productId,omitempty"`
	// Renewals counts applied refreshLicense orders.
	Renewals int `json:"renewals,omitempty"`
	// Orders holds the keys of renewal orders already applied (idempotency,
	// license.md §2.2: de-duplicated on orderId).
	Orders map[string]bool `json:"orders,omitempty"`
	// Events counts the events folded into this state.
	Events int `json:"events"`
}

func orderKey(kind, orderID string) string {
	return fmt.Sprintf("%s|%d|%s", kind, len(orderID), orderID)
}

// refreshKind is the idempotency kind of a refreshLicense.
const refreshKind = "refresh"

// HasRenewal reports whether the renewal order was already applied.
func (s State) HasRenewal(orderID string) bool {
	return s.Orders[orderKey(refreshKind, orderID)]
}

// cloneExtra copies a parameter map so that events and states never share it
// with the command that carried it.
func cloneExtra(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
