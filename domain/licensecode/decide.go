package licensecode

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
	case Register:
		return decideRegister(s, c)
	case Refresh:
		return decideRefresh(s, c)
	case SetStatus:
		return decideSetStatus(s, c)
	case Release:
		return decideRelease(s, c)
	case RecordActivation:
		return decideActivation(s, c)
	case RecordQuery:
		return decideQuery(s, c)
	case RecordUsage:
		return decideUsage(s, c)
	case nil:
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, c)
}

// decideRegister: license.md §3.1, the buyer hands the code to the vendor's
// software. A code seen before, in any status, is a repeat.
func decideRegister(s State, c Register) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if s.Status.Exists() {
		return nil, nil
	}
	return []Event{Registered(c)}, nil
}

// decideRefresh: refreshLicenseCode, license.md §3.2. The expiry is absolute;
// a refresh is de-duplicated on scene + orderId + orderLineId. It does not
// unfreeze (License B unfreezes with updateLicenseCodeStatus,
// codes-and-rules.md §6).
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
	if s.HasOrder(c.Scene, c.OrderID, c.OrderLineID) {
		return nil, nil
	}
	return []Event{Refreshed{Scene: c.Scene, OrderID: c.OrderID, OrderLineID: c.OrderLineID,
		ProductID: c.ProductID, ExpireTime: c.ExpireTime}}, nil
}

// decideSetStatus: updateLicenseCodeStatus, license.md §3.3. Setting the
// current status again is success.
func decideSetStatus(s State, c SetStatus) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Debug {
		return nil, nil
	}
	if !s.Status.Live() {
		return nil, ErrNotFound
	}
	switch {
	case c.Target == TargetFreeze && s.Status != StatusFrozen:
		return []Event{Frozen{}}, nil
	case c.Target == TargetUnfreeze && s.Status == StatusFrozen:
		return []Event{Unfrozen{}}, nil
	}
	return nil, nil
}

// decideRelease: releaseLicenseCode, license.md §3.4. Releasing a released
// code is success; a code never seen is ErrNotFound.
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
	return []Event{Released{OrderID: c.OrderID, OrderLineID: c.OrderLineID}}, nil
}

// decideActivation: the activate API's answer (outgoing.md §6). The code is
// activated once; after that, and after a release, answers change nothing.
// An answer not newer than the last one recorded is a redelivery.
func decideActivation(s State, c RecordActivation) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case !s.Status.Exists():
		return nil, ErrNotFound
	case s.Status == StatusReleased, s.Activation == ActivationConfirmed:
		return nil, nil
	case !c.Answer.At.After(s.LastActivationAt):
		return nil, nil
	case c.Answer.OK():
		e := Activated{Answer: c.Answer, EffectTime: c.EffectTime}
		if c.Info != nil {
			info := *c.Info
			e.Info = &info
		}
		return []Event{e}, nil
	}
	return []Event{ActivationFailed{Answer: c.Answer}}, nil
}

// decideQuery: the query (heartbeat) API's answer (outgoing.md §7). Every
// newer answer is recorded, also on a released code (a heartbeat after the
// release is worth seeing); a redelivered or older one changes nothing.
func decideQuery(s State, c RecordQuery) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !s.Status.Exists() {
		return nil, ErrNotFound
	}
	if s.Query != nil && !c.Answer.At.After(s.Query.Answer.At) {
		return nil, nil
	}
	e := Queried{Answer: c.Answer}
	if c.Info != nil {
		info := *c.Info
		e.Info = &info
	}
	return []Event{e}, nil
}

// decideUsage: the usage-statistics API's answer (outgoing.md §8), recorded
// like a query answer.
func decideUsage(s State, c RecordUsage) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !s.Status.Exists() {
		return nil, ErrNotFound
	}
	if s.Usage != nil && !c.Answer.At.After(s.Usage.At) {
		return nil, nil
	}
	return []Event{UsageReported{Answer: c.Answer, Entries: cloneEntries(c.Entries)}}, nil
}

// cloneEntries deep-copies usage entries so that an event never shares
// memory with the command that produced it.
func cloneEntries(in []UsageEntry) []UsageEntry {
	out := make([]UsageEntry, len(in))
	for i, e := range in {
		out[i].ID = e.ID
		if e.ActiveNum != nil {
			n := *e.ActiveNum
			out[i].ActiveNum = &n
		}
	}
	return out
}
