package license

// Evolve folds one event into the state. It trusts the event (events are
// facts already decided) and never fails; an unknown event leaves the state
// as it is apart from the count.
func Evolve(s State, e Event) State {
	s.Events++
	switch e := e.(type) {
	case Issued:
		s.ID = e.InstanceID
		s.Status = StatusIssued
		s.OrderID, s.BusinessID = e.OrderID, e.BusinessID
		s.Customer = e.Customer
		s.Purchase = e.Purchase
		s.Purchase.Extra = cloneExtra(e.Purchase.Extra)
		s.Text = e.Text
		s.ExpireTime = e.Purchase.ExpireTime
		s.ProductID = e.Purchase.ProductID
	case Refreshed:
		s.ExpireTime = e.ExpireTime
		if e.ProductID != "" {
			s.ProductID = e.ProductID
		}
		if s.Status == StatusFrozen {
			s.Status = StatusIssued // license.md §2.2: a renewal unfreezes
		}
		s.Renewals++
		s.Orders = withOrder(s.Orders, orderKey(refreshKind, e.OrderID))
	case Expired:
		s.Status = StatusFrozen
	case Released:
		s.Status = StatusReleased
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
