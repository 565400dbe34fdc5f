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
	if events, handled, err := decideLicense(s, c); handled {
		return events, err
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, c)
}

func decideCreate(s State, c Create) ([]Event, error) {
	if c.InstanceID == "" || c.OrderID == "" || (c.OrderLineID == "" && c.V1 == nil) {
		return nil, fmt.Errorf("%w: create needs instanceId, orderId and orderLineId", ErrInvalid)
	}
	if c.V1 != nil && (c.OrderLineID != "" || c.V1.ProductID == "") {
		return nil, fmt.Errorf("%w: a SaaS V1 create needs productId and no orderLineId", ErrInvalid)
	}
	if c.V1 != nil && c.V1.ChargingMode != nil && !c.V1.ChargingMode.Valid() {
		return nil, fmt.Errorf("%w: unknown chargingMode %d", ErrInvalid, *c.V1.ChargingMode)
	}
	if !s.Status.Exists() {
		return []Event{Created{InstanceID: c.InstanceID, OrderID: c.OrderID, OrderLineID: c.OrderLineID,
			BusinessID: c.BusinessID, V1: c.V1.clone()}}, nil
	}
	if !c.sameOrder(s) {
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
		if c.Reactivate && s.Status == StatusFrozen {
			return []Event{Unfrozen{}}, nil // the renewal is in: reactivate
		}
		return nil, nil
	}
	return []Event{Refreshed{Scene: c.Scene, OrderID: c.OrderID, OrderLineID: c.OrderLineID, ProductID: c.ProductID,
		ExpireTime: c.ExpireTime, PeriodType: c.PeriodType, PeriodNumber: c.PeriodNumber, OrderAmount: c.OrderAmount}}, nil
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
		return []Event{Frozen{Reason: c.Reason}}, nil
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
	return []Event{Upgraded{OrderID: c.OrderID, OrderLineID: c.OrderLineID, V1: c.V1.clone()}}, nil
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

// Settle decides c on s again and again, folding each decision, until it
// decides nothing (at most MaxSettleSteps decisions). Most commands settle
// after one event; a SaaS V1 renewal of a frozen instance takes two
// (Refreshed, then Unfrozen). It returns the events in order and the state
// after them.
func Settle(s State, c Command) ([]Event, State, error) {
	var all []Event
	for range MaxSettleSteps {
		events, err := Decide(s, c)
		if err != nil {
			return all, s, err
		}
		if len(events) == 0 {
			return all, s, nil
		}
		for _, e := range events {
			s = Evolve(s, e)
		}
		all = append(all, events...)
	}
	return all, s, fmt.Errorf("%w: %s did not settle after %d decisions", ErrInvalid, Name(c), MaxSettleSteps)
}
