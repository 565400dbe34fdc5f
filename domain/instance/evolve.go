package instance

// Evolve folds one event into the state. It trusts the event (events are
// facts already decided) and never fails; an unknown event leaves the state
// as it is apart from the count.
func Evolve(s State, e Event) State {
	s.Events++
	switch e := e.(type) {
	case Created:
		s.ID = e.InstanceID
		s.Status = StatusProvisioning
		s.OrderID, s.OrderLineID, s.BusinessID = e.OrderID, e.OrderLineID, e.BusinessID
		if e.V1 != nil {
			s.V1 = e.V1.clone()
			s.ProductID, s.SKUCode, s.Trial = e.V1.ProductID, e.V1.SKUCode, e.V1.Trial
			if !e.V1.ExpireTime.IsZero() {
				s.ExpireTime = e.V1.ExpireTime
			}
		}
	case Provisioned:
		app := e.AppInfo
		s.AppInfo, s.Provisioned, s.Failure = &app, true, nil
		if s.Status == StatusProvisioning || s.Status == StatusFailed {
			s.Status = StatusActive
		}
	case ProvisioningFailed:
		f := e.Failure
		s.Failure, s.Status = &f, StatusFailed
	case Refreshed:
		s.ExpireTime = e.ExpireTime
		if e.ProductID != "" {
			s.ProductID = e.ProductID
		}
		if e.Scene == SceneTrialToFormal {
			s.Formal = true
		}
		s.Orders = withOrder(s.Orders, orderKey(refreshKind(e.Scene), e.OrderID, e.OrderLineID))
	case Frozen:
		s.Status, s.FrozenReason = StatusFrozen, e.Reason
	case Unfrozen:
		s.FrozenReason = ""
		if s.Provisioned {
			s.Status = StatusActive
		} else {
			s.Status = StatusProvisioning
		}
	case Released:
		s.Status, s.FrozenReason = StatusReleased, ""
	case OrderQueried:
		info := e.Info
		s.Order = &info
		if info.ProductID != "" && s.ProductID == "" {
			s.ProductID = info.ProductID
		}
		if info.OrderType == "TRIAL" {
			s.Trial = true
		}
	case Upgraded:
		s.Upgrades++
		s.Orders = withOrder(s.Orders, orderKey("upgrade", e.OrderID, e.OrderLineID))
		if u := e.V1; u != nil {
			if u.ProductID != "" {
				s.ProductID = u.ProductID
			}
			if u.SKUCode != "" {
				s.SKUCode = u.SKUCode
			}
			if s.V1 != nil {
				v := s.V1.clone()
				v.ProductID, v.SKUCode = s.ProductID, s.SKUCode
				if u.Amount != nil {
					v.Amount = u.Amount
				}
				if u.DiskSize != nil {
					v.DiskSize = u.DiskSize
				}
				if u.BandWidth != nil {
					v.BandWidth = u.BandWidth
				}
				if u.ExtendParams != nil {
					v.ExtendParams = u.ExtendParams
				}
				s.V1 = v
			}
		}
	default:
		s, _ = evolveLicense(s, e)
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
