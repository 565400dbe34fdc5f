package instance

import "fmt"

// Decide is the aggregate's rule book: given the current state and a
// command, it returns the events to append (none for an idempotent repeat)
// or a domain error. It never mutates s.
func Decide(s State, c Command) ([]Event, error) {
	switch c := c.(type) {
	case Create:
		return decideCreate(s, c)
	case Refresh:
		return decideRefresh(s, c)
	case SetStatus:
		return decideSetStatus(s, c)
	case Release:
		return decideRelease(s, c)
	case Upgrade:
		return decideUpgrade(s, c)
	case CheckChange:
		if !s.Status.Live() {
			return nil, ErrNotFound
		}
		return nil, nil
	case RecordProvisioning:
		return decideProvisioning(s, c)
	case RecordOrderInfo:
		if !s.Status.Exists() {
			return nil, ErrNotFound
		}
		if c.Info.OrderID == "" {
			return nil, fmt.Errorf("%w: order info needs orderId", ErrInvalid)
		}
		if s.Order != nil && s.Order.OrderID == c.Info.OrderID && s.Order.OrderLineID == c.Info.OrderLineID && s.Order.OrderType == c.Info.OrderType {
			return nil, nil // already recorded
		}
		return []Event{OrderQueried(c)}, nil
	case nil:
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, c)
}

func decideCreate(s State, c Create) ([]Event, error) {
	if c.InstanceID == "" || c.OrderID == "" || c.OrderLineID == "" {
		return nil, fmt.Errorf("%w: create needs instanceId, orderId and orderLineId", ErrInvalid)
	}
	if !s.Status.Exists() {
		return []Event{Created(c)}, nil
	}
	if s.OrderID != c.OrderID || s.OrderLineID != c.OrderLineID {
		return nil, ErrIDInUse
	}
	if s.Status == StatusFailed && s.Failure != nil {
		return nil, &RefusedError{Failure: *s.Failure}
	}
	return nil, nil // a repeat: answered from the current state
}

func decideRefresh(s State, c Refresh) ([]Event, error) {
	if _, err := ParseScene(string(c.Scene)); err != nil {
		return nil, err
	}
	if c.ExpireTime.IsZero() {
		return nil, fmt.Errorf("%w: refresh needs expireTime", ErrInvalid)
	}
	if !s.Status.Live() {
		return nil, ErrNotFound
	}
	if s.HasOrder(refreshKind(c.Scene), c.OrderID, c.OrderLineID) {
		return nil, nil
	}
	return []Event{Refreshed(c)}, nil
}

func decideSetStatus(s State, c SetStatus) ([]Event, error) {
	if _, err := ParseTarget(string(c.Target)); err != nil {
		return nil, err
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
	return nil, nil // already in the asked status
}

func decideRelease(s State, c Release) ([]Event, error) {
	switch s.Status {
	case StatusNone:
		return nil, ErrNotFound
	case StatusReleased:
		return nil, nil
	}
	return []Event{Released(c)}, nil
}

func decideUpgrade(s State, c Upgrade) ([]Event, error) {
	if !s.Status.Live() {
		return nil, ErrNotFound
	}
	if s.HasOrder("upgrade", c.OrderID, c.OrderLineID) {
		return nil, nil
	}
	return []Event{Upgraded(c)}, nil
}

func decideProvisioning(s State, c RecordProvisioning) ([]Event, error) {
	if (c.AppInfo == nil) == (c.Failure == nil) {
		return nil, fmt.Errorf("%w: provisioning outcome needs exactly one of appInfo and failure", ErrInvalid)
	}
	if !s.Status.Exists() {
		return nil, ErrNotFound
	}
	if s.Status == StatusReleased || s.Provisioned {
		return nil, nil // too late, or already known: nothing changes
	}
	if c.AppInfo != nil {
		return []Event{Provisioned{AppInfo: *c.AppInfo}}, nil
	}
	if s.Status == StatusFailed {
		return nil, nil
	}
	return []Event{ProvisioningFailed{Failure: *c.Failure}}, nil
}
