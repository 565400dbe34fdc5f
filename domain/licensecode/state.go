// Package licensecode is the LicenseCode aggregate of License family B, the
// License 2.0 authorization code (license.md §3; outgoing.md §6–§8): its
// states, commands, events and the two pure functions that drive it, Decide
// and Evolve. It does no I/O.
//
// KooGallery generates the code and never announces a purchase to the
// vendor (license.md §3.1): a code becomes known to Gallerist when the
// vendor's software hands it over (Register). From then on KooGallery's
// refreshLicenseCode, updateLicenseCodeStatus and releaseLicenseCode act on
// it, and the answers of the outgoing activate, query (heartbeat) and
// usage-statistics calls are recorded on it as facts.
package licensecode

import (
	"fmt"
	"time"
)

// Status is where a code is in its life at the vendor, as KooGallery's
// production calls drive it.
type Status string

// The statuses. The zero value, StatusNone, means "never seen".
const (
	StatusNone     Status = ""
	StatusActive   Status = "active"
	StatusFrozen   Status = "frozen"
	StatusReleased Status = "released"
)

// Statuses lists every status, StatusNone first; tests range over it.
var Statuses = []Status{StatusNone, StatusActive, StatusFrozen, StatusReleased}

// Exists reports whether the code was ever seen.
func (s Status) Exists() bool { return s != StatusNone }

// Live reports whether KooGallery may still act on the code: it exists and
// is not released.
func (s Status) Live() bool { return s == StatusActive || s == StatusFrozen }

// Activation is where the code stands with KooGallery's activate API
// (outgoing.md §6), independently of Status.
type Activation string

// The activation states.
const (
	// ActivationPending: registered, no activation answer yet.
	ActivationPending Activation = "pending"
	// ActivationConfirmed: KooGallery confirmed the activation (activate
	// answered success, or a query reported an activation time).
	ActivationConfirmed Activation = "confirmed"
	// ActivationRefused: the last activate answer was an error and no
	// activation is known.
	ActivationRefused Activation = "refused"
)

// RemoteStatus is the code's status as KooGallery's APIs report it
// (codes-and-rules.md §9: ALIVE, EXPIRED, RELEASED). Values outside the
// list are kept as received (outgoing.md §7: decoded tolerantly).
type RemoteStatus string

// The documented remote statuses.
const (
	RemoteAlive    RemoteStatus = "ALIVE"
	RemoteExpired  RemoteStatus = "EXPIRED"
	RemoteReleased RemoteStatus = "RELEASED"
)

// Known reports whether r is one of the documented statuses.
func (r RemoteStatus) Known() bool {
	return r == RemoteAlive || r == RemoteExpired || r == RemoteReleased
}

// APISuccess is the error_code of a successful License B open-API call
// (outgoing.md §9.2); every other code is a failure.
const APISuccess = "92020000"

// Answer is KooGallery's verdict on one outgoing call: when it was made and
// the error_code / error_msg it answered with. Transport failures (no
// answer) are not recorded here; the effect retries or parks them.
type Answer struct {
	At           time.Time `json:"at"`
	ErrorCode    string    `json:"errorCode"`
	ErrorMessage string    `json:"errorMessage,omitempty"`
}

// OK reports whether the call succeeded.
func (a Answer) OK() bool { return a.ErrorCode == APISuccess }

func (a Answer) validate(what string) error {
	if a.At.IsZero() {
		return fmt.Errorf("%w: %s outcome needs the time of the call", ErrInvalid, what)
	}
	if a.ErrorCode == "" {
		return fmt.Errorf("%w: %s outcome needs error_code", ErrInvalid, what)
	}
	return nil
}

// CodeInfo is the license_code_info of a successful activation
// (outgoing.md §6). ExpireTime there is only an estimate.
type CodeInfo struct {
	Status     RemoteStatus `json:"status,omitempty"`
	ExpireTime time.Time    `json:"expireTime,omitzero"`
	ProductID  string       `json:"productId,omitempty"`
	OrderID    string       `json:"orderId,omitempty"`
	Amount     int          `json:"amount,omitempty"`
}

// QueryInfo is the data of a successful query / heartbeat (outgoing.md §7);
// it is authoritative for the expiry.
type QueryInfo struct {
	Status       RemoteStatus `json:"status"`
	ActivateTime time.Time    `json:"activateTime,omitzero"`
	ExpireTime   time.Time    `json:"expireTime,omitzero"`
}

// UsageEntry is one software_usage_Info entry (outgoing.md §8): exactly one
// of ID and ActiveNum is set.
type UsageEntry struct {
	ID        string `json:"id,omitempty"`
	ActiveNum *int   `json:"activeNum,omitempty"`
}

// LastQuery is the last recorded query answer.
type LastQuery struct {
	Answer Answer    `json:"answer"`
	Info   QueryInfo `json:"info"`
}

// State is the folded state of one authorization code. Its aggregate id is
// the code itself (design.md §3: gallerist.licensecode.<code>).
type State struct {
	Code   string `json:"license"`
	Status Status `json:"status"`
	// Reference is the vendor's own note on who handed the code over.
	Reference string `json:"reference,omitempty"`
	// ExpireTime is the latest known expiry: refreshLicenseCode and the
	// query API set it; the activation's estimate only fills a gap.
	ExpireTime time.Time `json:"expireTime,omitzero"`
	ProductID  string    `json:"productId,omitempty"`
	// OrderID and Amount come from the activation's license_code_info.
	OrderID string `json:"orderId,omitempty"`
	Amount  int    `json:"amount,omitempty"`

	Activation  Activation `json:"activation,omitempty"`
	ActivatedAt time.Time  `json:"activatedAt,omitzero"`
	// ActivationError is the last failed activate answer, while not activated.
	ActivationError *Answer `json:"activationError,omitempty"`
	// LastActivationAt is the time of the last recorded activate answer.
	LastActivationAt time.Time `json:"lastActivationAt,omitzero"`
	// Query is the last recorded query / heartbeat answer.
	Query *LastQuery `json:"query,omitempty"`
	// Usage is the last recorded usage-statistics answer; UsageReports
	// counts them.
	Usage        *Answer `json:"usage,omitempty"`
	UsageReports int     `json:"usageReports,omitempty"`

	// Renewals counts applied refreshLicenseCode orders; Orders holds their
	// keys (idempotency, license.md §3.2).
	Renewals int             `json:"renewals,omitempty"`
	Orders   map[string]bool `json:"orders,omitempty"`
	// Events counts the events folded into this state.
	Events int `json:"events"`
}

func orderKey(kind, orderID, orderLineID string) string {
	return fmt.Sprintf("%s|%d|%s|%s", kind, len(orderID), orderID, orderLineID)
}

// refreshKind is the idempotency kind of a refreshLicenseCode. The scene is
// part of it, as for SaaS V2 (saas-v2.md §5), so that a cancellation that
// carries the orderId of the renewal it cancels is never taken for a repeat.
func refreshKind(scene Scene) string { return "refresh:" + string(scene) }

// HasOrder reports whether a refresh with this scene and order was already
// applied.
func (s State) HasOrder(scene Scene, orderID, orderLineID string) bool {
	return s.Orders[orderKey(refreshKind(scene), orderID, orderLineID)]
}
