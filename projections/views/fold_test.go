package views

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/instance"
)

// expectedViews is the test's own fold of a log into every view table,
// written from the documented rules without the package's apply code. It
// returns the rows normalised like dumpTables.
func expectedViews(prefix string, recs []eventstore.Record) map[string][]string {
	type inst struct {
		row       Instance
		firstProd string
		trialFact bool
		createdOK bool
	}
	insts := map[string]*inst{}
	var order []string
	type factKey struct{ day, product, metric string }
	facts := map[factKey]int64{}
	type lat struct {
		created, provisioned time.Time
	}
	lats := map[string]lat{}
	type pk struct {
		effect, inst string
		seq          uint64
	}
	parked := map[pk][]any{}
	// facts_instance_state: every instance with an applied event.
	type fstate struct {
		orderID, product, first, day string
		trial                        bool
	}
	fstates := map[string]*fstate{}

	us := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	for _, rec := range recs {
		sid, err := eventstore.ParseSubject(prefix, rec.Subject)
		if err != nil {
			panic(err)
		}
		env := rec.Event
		if env.Causation.TestFlag {
			continue
		}
		t := us(env.OccurredAt)
		day := t.Format(dayLayout)
		switch sid.Kind {
		case effect.Kind:
			switch env.Type {
			case effect.TypeParked:
				var e effect.Parked
				_ = json.Unmarshal(env.Data, &e)
				parked[pk{e.Effect, e.InstanceID, e.EventSeq}] = []any{e.Effect, e.InstanceID, e.EventSeq, e.EventID, e.EventType, e.Attempts, e.Reason, t}
			case effect.TypeDone:
				var e effect.Done
				_ = json.Unmarshal(env.Data, &e)
				delete(parked, pk{e.Effect, e.InstanceID, e.EventSeq})
			case effect.TypeRedriven:
				var e effect.Redriven
				_ = json.Unmarshal(env.Data, &e)
				for k := range parked {
					if k.effect == e.Effect && k.inst == e.InstanceID {
						delete(parked, k)
					}
				}
			}
			continue
		case instance.Kind:
		default:
			continue
		}
		ev, err := instance.Decode(env.Type, env.Version, env.Data)
		if err != nil {
			continue // unknown type
		}
		id := env.AggregateID
		in := insts[id]
		fs := fstates[id]
		if fs == nil {
			fs = &fstate{}
			fstates[id] = fs
		}
		if c, ok := ev.(instance.Created); ok {
			if in == nil {
				in = &inst{createdOK: true, row: Instance{
					InstanceID: id, Status: "provisioning", OrderID: c.OrderID, OrderLineID: c.OrderLineID,
					BusinessID: c.BusinessID, Route: env.Causation.Route, CreatedAt: &t,
					LastEventSeq: rec.Seq, UpdatedAt: t,
				}}
				insts[id] = in
				order = append(order, id)
				fs.orderID, fs.day = c.OrderID, day
				if v := c.V1; v != nil {
					r := &in.row
					r.ProductID, r.SKUCode, r.CustomerID, r.PeriodType, r.PeriodNumber = v.ProductID, v.SKUCode, v.CustomerID, v.PeriodType, v.PeriodNumber
					r.ChargingMode = map[instance.ChargingMode]string{0: "ON_DEMAND", 1: "PERIOD", 3: "ONE_TIME", 5: "ON_DEMAND_PKG"}[*v.ChargingMode]
					if !v.ExpireTime.IsZero() {
						x := us(v.ExpireTime)
						r.ExpireTime = &x
					}
					if v.ProductID != "" {
						fs.product, in.firstProd, fs.first = v.ProductID, v.ProductID, v.ProductID
					}
					if v.Trial {
						r.Trial, in.trialFact, fs.trial = true, true, true
					}
				}
			}
			continue
		}
		if in == nil {
			continue
		}
		r := &in.row
		metric := ""
		learn := func(p string, replace bool) {
			if p == "" {
				return
			}
			if replace || fs.product == "" {
				fs.product = p
			}
			if in.firstProd == "" {
				in.firstProd = p
			}
		}
		switch e := ev.(type) {
		case instance.Provisioned:
			metric = "provisioned"
			if r.ProvisionedAt == nil {
				r.ProvisionedAt = &t
				lats[id] = lat{*r.CreatedAt, t}
			}
			if r.Status == "provisioning" || r.Status == "failed" {
				r.Status = "active"
			}
		case instance.ProvisioningFailed:
			metric = "provisioning_failed"
			r.Status, r.FailedAt, r.FailureCode, r.FailureMessage = "failed", &t, e.Failure.Code, e.Failure.Message
		case instance.Refreshed:
			x := us(e.ExpireTime)
			r.ExpireTime, r.RefreshedAt = &x, &t
			if e.ProductID != "" {
				r.ProductID = e.ProductID
			}
			learn(e.ProductID, true)
			metric = map[instance.Scene]string{
				instance.SceneTrialToFormal: "trial_to_formal", instance.SceneRenewal: "renewed",
				instance.SceneUnsubscribeRenewalPeriod: "renewal_cancelled", instance.SceneRenewalChange: "renewal_changed",
			}[e.Scene]
			if e.Scene == instance.SceneTrialToFormal {
				r.Formal = true
			}
			if e.Scene == instance.SceneRenewal || e.Scene == instance.SceneRenewalChange {
				r.Renewals++
			}
		case instance.Frozen:
			metric, r.Status, r.FrozenAt = "frozen", "frozen", &t
		case instance.Unfrozen:
			metric, r.FrozenAt = "unfrozen", nil
			r.Status = "provisioning"
			if r.ProvisionedAt != nil {
				r.Status = "active"
			}
		case instance.Released:
			metric, r.Status, r.ReleasedAt = "released", "released", &t
		case instance.Upgraded:
			metric = "upgraded"
			r.Upgrades++
		case instance.OrderQueried:
			i := e.Info
			if r.ProductID == "" {
				r.ProductID = i.ProductID
			}
			learn(i.ProductID, false)
			for _, f := range []struct {
				dst *string
				v   string
			}{{&r.SKUCode, i.SKUCode}, {&r.ChargingMode, i.ChargingMode}, {&r.PeriodType, i.PeriodType}, {&r.CustomerID, i.CustomerID}} {
				if f.v != "" {
					*f.dst = f.v
				}
			}
			if i.PeriodNumber != 0 {
				r.PeriodNumber = i.PeriodNumber
			}
			if i.OrderID == r.OrderID {
				if i.OrderType != "" {
					r.OrderType = i.OrderType
				}
				if i.OrderType == "TRIAL" {
					r.Trial, in.trialFact, fs.trial = true, true, true
				}
			}
			if r.RefreshedAt == nil && !i.ExpireTime.IsZero() {
				x := us(i.ExpireTime)
				r.ExpireTime = &x
			}
		}
		fs.first = in.firstProd
		if metric != "" {
			facts[factKey{day, fs.product, metric}]++
		}
		r.LastEventSeq, r.UpdatedAt = rec.Seq, t
	}
	// The creation of each instance, where it ends up counted.
	for _, id := range order {
		in := insts[id]
		m := "new"
		if in.trialFact {
			m = "trial"
		}
		facts[factKey{in.row.CreatedAt.Format(dayLayout), in.firstProd, m}]++
	}

	out := map[string][]string{}
	add := func(table string, vals ...any) { out[table] = append(out[table], normRow(table, vals)) }
	for _, id := range order {
		r := insts[id].row
		add("instances", r.InstanceID, r.Status, r.OrderID, r.OrderLineID,
			r.BusinessID, r.Route, r.ProductID, r.SKUCode,
			r.ChargingMode, r.PeriodType, r.PeriodNumber, r.CustomerID,
			r.OrderType, r.Trial, r.Formal, r.TestFlag,
			r.ExpireTime, r.CreatedAt, r.ProvisionedAt, r.FailedAt,
			r.FailureCode, r.FailureMessage, r.FrozenAt, r.ReleasedAt,
			r.RefreshedAt, r.Upgrades, r.Renewals, r.LastEventSeq,
			r.UpdatedAt)
	}
	for id, l := range lats {
		add("provisioning_latency", id, l.created, l.provisioned, l.provisioned.Sub(l.created).Milliseconds())
	}
	for k, n := range facts {
		add("daily_facts", k.day, k.product, k.metric, n)
	}
	for id, fs := range fstates {
		var day any
		if fs.day != "" {
			day = fs.day
		}
		add("facts_instance_state", id, fs.orderID, fs.product, fs.first, day, fs.trial)
	}
	for _, row := range parked {
		add("parked_effects", row...)
	}
	for table, rows := range expectedLicenseViews(prefix, recs) {
		out[table] = rows
	}
	for _, v := range ViewNames() {
		for _, table := range viewTables[v] {
			slices.Sort(out[table])
		}
	}
	return out
}

// expectedStatuses folds each instance's events with the domain's own
// instance.Fold: the view's status must agree with the aggregate's.
func expectedStatuses(prefix string, recs []eventstore.Record) map[string]string {
	events := map[string][]instance.Event{}
	for _, rec := range recs {
		sid, err := eventstore.ParseSubject(prefix, rec.Subject)
		if err != nil || sid.Kind != instance.Kind || rec.Event.Causation.TestFlag {
			continue
		}
		e, err := instance.Decode(rec.Event.Type, rec.Event.Version, rec.Event.Data)
		if err != nil {
			continue
		}
		events[rec.Event.AggregateID] = append(events[rec.Event.AggregateID], e)
	}
	out := map[string]string{}
	for id, evs := range events {
		out[id] = string(instance.Fold(evs...).Status)
	}
	return out
}
