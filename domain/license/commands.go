package license

import (
	"errors"
	"fmt"
	"time"
)

// Domain errors; the ingress maps them to KooGallery result codes
// (codes-and-rules.md §2.4: License A uses the SaaS V1 table).
var (
	// ErrNotFound: the license does not exist, or no longer accepts the
	// command (released): 000003.
	ErrNotFound = errors.New("license does not exist")
	// ErrInvalid: the command itself is malformed: 000002.
	ErrInvalid = errors.New("invalid command")
	// ErrIDInUse: an Issue names an instance id that already belongs to
	// another order: 000002 (the ids of different orders never collide,
	// license.md §2.1).
	ErrIDInUse = errors.New("instance id already used by another order")
)

// DebugText is the placeholder license a debug getLicense (testFlag=1) is
// answered with; nothing is issued or stored (codes-and-rules.md §7).
const DebugText = "DEBUG-LICENSE testFlag=1: not a license"

// Command is something asked of a license.
type Command interface{ commandName() string }

// Issue records the license produced for a paid order (getLicense,
// license.md §2.1). The issuer produced Text outside the domain; a repeat
// for the same order keeps the first text, whatever this one carries.
type Issue struct {
	// InstanceID is the businessId of the first request for the order.
	InstanceID string
	OrderID    string
	// BusinessID is this request's businessId.
	BusinessID string
	Customer   Customer
	Purchase   Purchase
	// Text is the license; required unless Debug.
	Text string
	// Debug: testFlag=1; validated, then nothing changes.
	Debug bool
}

// Refresh moves the expiry after a renewal or a trial turned paid
// (refreshLicense, license.md §2.2). It also unfreezes.
type Refresh struct {
	// OrderID is the renewal order: the idempotency key.
	OrderID string
	// ProductID is the new product when the period type changed.
	ProductID    string
	ExpireTime   time.Time
	PeriodType   string
	PeriodNumber int
	Debug        bool
}

// Expire freezes the license when the purchase expired (expireLicense,
// license.md §2.3). OrderID is kept when sent, never required.
type Expire struct {
	OrderID string
	Debug   bool
}

// Release deletes the license (releaseLicense, license.md §2.4). OrderID is
// the original purchase order as sent; it is recorded, not checked.
type Release struct {
	OrderID string
	Debug   bool
}

func (Issue) commandName() string   { return "issue" }
func (Refresh) commandName() string { return "refresh" }
func (Expire) commandName() string  { return "expire" }
func (Release) commandName() string { return "release" }

// Name names a command for logs.
func Name(c Command) string { return c.commandName() }

// Validate checks an Issue on its own, as Decide does before looking at the
// state: the ids it needs and, unless Debug, the license text.
func (c Issue) Validate() error {
	if c.InstanceID == "" || c.OrderID == "" || c.Customer.ID == "" {
		return fmt.Errorf("%w: issue needs instanceId, orderId and customerId", ErrInvalid)
	}
	if c.Purchase.PeriodNumber < 0 {
		return fmt.Errorf("%w: periodNumber %d is negative", ErrInvalid, c.Purchase.PeriodNumber)
	}
	if !c.Debug && c.Text == "" {
		return fmt.Errorf("%w: issue needs the license text", ErrInvalid)
	}
	return nil
}

// Validate checks a Refresh on its own: the renewal order (the idempotency
// key) and the new expiry are required.
func (c Refresh) Validate() error {
	if c.OrderID == "" {
		return fmt.Errorf("%w: refresh needs orderId", ErrInvalid)
	}
	if c.ExpireTime.IsZero() {
		return fmt.Errorf("%w: refresh needs expireTime", ErrInvalid)
	}
	if c.PeriodNumber < 0 {
		return fmt.Errorf("%w: periodNumber %d is negative", ErrInvalid, c.PeriodNumber)
	}
	return nil
}

// Validate checks an Expire on its own; every Expire is valid.
func (c Expire) Validate() error { return nil }

// Validate checks a Release on its own; every Release is valid.
func (c Release) Validate() error { return nil }
