package licensecode

// Evolve folds one event into the state. It trusts the event (events are
// facts already decided) and never fails; an unknown event leaves the state
// as it is apart from the count.
func Evolve(s State, e Event) State {
	s.Events++
	switch e := e.(type) {
	case Registered:
		s.Code, s.Reference = e.Code, e.Reference
		s.Status = StatusActive
		s.Activation = ActivationPending
	case Refreshed:
		s.ExpireTime = e.ExpireTime
		if e.ProductID != "" {
			s.ProductID = e.ProductID
		}
		s.Renewals++
		s.Orders = withOrder(s.Orders, orderKey(refreshKind(e.Scene), e.OrderID, e.OrderLineID))
	case Frozen:
		s.Status = StatusFrozen
	case Unfrozen:
		s.Status = StatusActive
	case Released:
		s.Status = StatusReleased
	case Activated:
		s.Activation, s.ActivatedAt, s.ActivationError = ActivationConfirmed, e.Answer.At, nil
		s.LastActivationAt = e.Answer.At
		if i := e.Info; i != nil {
			// The activation's expiry is only an estimate (outgoing.md §6):
			// it fills a gap, never overrides a refresh or a query.
			if s.ExpireTime.IsZero() {
				s.ExpireTime = i.ExpireTime
			}
			if s.ProductID == "" {
				s.ProductID = i.ProductID
			}
			if i.OrderID != "" {
				s.OrderID = i.OrderID
			}
			if i.Amount != 0 {
				s.Amount = i.Amount
			}
		}
	case ActivationFailed:
		s.LastActivationAt = e.Answer.At
		if s.Activation != ActivationConfirmed {
			a := e.Answer
			s.Activation, s.ActivationError = ActivationRefused, &a
		}
	case Queried:
		q := LastQuery{Answer: e.Answer}
		if i := e.Info; i != nil {
			q.Info = *i
			// The query is authoritative (outgoing.md §6, §7).
			if !i.ActivateTime.IsZero() {
				s.Activation, s.ActivatedAt, s.ActivationError = ActivationConfirmed, i.ActivateTime, nil
			}
			if !i.ExpireTime.IsZero() {
				s.ExpireTime = i.ExpireTime
			}
		}
		s.Query = &q
	case UsageReported:
		a := e.Answer
		s.Usage = &a
		s.UsageReports++
	}
	return s
}

// withOrder returns a copy of m with k set, so that a State handed out
// earlier (e.g. from a cache) is never changed behind its holder's back.
func withOrder(m map[string]bool, k string) map[string]bool {
	out := make(map[string]bool, len(m)+1)
	for key, v := range m {
		out[key] = v
	}
	out[k] = true
	return out
}

// Fold replays events from the zero state.
func Fold(events ...Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}
