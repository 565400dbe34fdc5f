package license

import "fmt"

// Decide is the aggregate's rule book: given the current state and a
// command, it returns the events to append (none for an idempotent repeat or
// a debug call) or a domain error. It never mutates s.
//
// Every command is validated first, debug or not (codes-and-rules.md §7:
// field validation applies as for a real request). A valid debug command
// then changes nothing and never answers ErrNotFound.
func Decide(s State, c Command) ([]Event, error) {
	switch c := c.(type) {
	case Issue:
		return decideIssue(s, c)
	case Refresh:
		return decideRefresh(s, c)
	case Expire:
		return decideExpire(s, c)
	case Release:
		return decideRelease(s, c)
	case nil:
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, c)
}

// decideIssue: getLicense, license.md §2.1. Idempotent on orderId: a repeat
// gets the same instance and the same license, in any status (a repeated
// call with the same key returns the first answer, design.md §4).
func decideIssue(s State, c Issue) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Debug {
		return nil, nil
	}
	if !s.Status.Exists() {
		p := c.Purchase
		p.Extra = cloneExtra(p.Extra)
		return []Event{Issued{
			InstanceID: c.InstanceID, OrderID: c.OrderID, BusinessID: c.BusinessID,
			Customer: c.Customer, Purchase: p, Text: c.Text,
		}}, nil
	}
	if s.OrderID != c.OrderID {
		return nil, ErrIDInUse
	}
	return nil, nil // a repeat: answered from the current state (s.ID, s.Text)
}

// decideRefresh: refreshLicense, license.md §2.2. De-duplicated on the
// renewal orderId; a new renewal order is always recorded (even with an
// unchanged expireTime, which then changes nothing else) so that a late
// re-send of it is recognised as a repeat.
func decideRefresh(s State, c Refresh) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Debug {
		return nil, nil
	}
	if !s.Status.Live() {
		return nil, ErrNotFound
	}
	if s.HasRenewal(c.OrderID) {
		return nil, nil
	}
	return []Event{c.event()}, nil
}

func (c Refresh) event() Refreshed {
	return Refreshed{OrderID: c.OrderID, ProductID: c.ProductID, ExpireTime: c.ExpireTime,
		PeriodType: c.PeriodType, PeriodNumber: c.PeriodNumber}
}

// decideExpire: expireLicense, license.md §2.3. Idempotent on the target
// status: expiring a frozen license again is success.
func decideExpire(s State, c Expire) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Debug {
		return nil, nil
	}
	switch s.Status {
	case StatusIssued:
		return []Event{c.event()}, nil
	case StatusFrozen:
		return nil, nil
	}
	return nil, ErrNotFound
}

func (c Expire) event() Expired { return Expired{OrderID: c.OrderID} }

// decideRelease: releaseLicense, license.md §2.4. Releasing a released
// license again is success; one never issued is ErrNotFound.
func decideRelease(s State, c Release) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Debug {
		return nil, nil
	}
	switch s.Status {
	case StatusNone:
		return nil, ErrNotFound
	case StatusReleased:
		return nil, nil
	}
	return []Event{Released{OrderID: c.OrderID}}, nil
}
