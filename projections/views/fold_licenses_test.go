package views

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
)

// expectedLicenseViews is the test's own fold of a log into the tables of
// migration 2 (licenses, license_codes, usage_records, family_daily_facts,
// family_facts_state), from the documented rules, without the package's
// apply code. Rows are normalised like dumpTables (unsorted).
func expectedLicenseViews(prefix string, recs []eventstore.Record) map[string][]string {
	us := func(t time.Time) *time.Time { x := t.UTC().Truncate(time.Microsecond); return &x }
	type lic struct {
		id, status, order, biz, product, sku, customer, charging, periodType, route string
		period, renewals                                                            int
		trial                                                                       bool
		expire, issued, refreshed, expired, released, updated                       *time.Time
		seq                                                                         uint64
	}
	lics := map[string]*lic{}
	type code struct {
		code, status, ref, product, order, activation, actCode, actMsg, hbCode, hbStatus, usageCode, route string
		amount, reports, renewals                                                                          int
		expire, activated, hb, usageAt, registered, refreshed, frozen, released, updated                   *time.Time
		seq                                                                                                uint64
	}
	codes := map[string]*code{}
	type rec struct {
		r                               usage.Record
		inst, status, batch, code, msg  string
		dup, local                      bool
		recorded, pushed, rejected, upd *time.Time
		seq                             uint64
	}
	records := map[string]*rec{}
	type fkey struct{ day, family, metric string }
	facts := map[fkey]int64{}
	type fstate struct {
		family, order, day string
		trial              bool
	}
	fstates := map[string]*fstate{}
	chargingNames := map[string]string{"0": "ON_DEMAND", "1": "PERIOD", "3": "ONE_TIME", "5": "ON_DEMAND_PKG"}

	for _, rc := range recs {
		if rc.Event.Causation.TestFlag {
			continue
		}
		rest, ok := strings.CutPrefix(rc.Subject, prefix+".")
		if !ok {
			continue
		}
		tokens := strings.Split(rest, ".")
		env := rc.Event
		t := us(env.OccurredAt)
		day := t.Format(dayLayout)
		id := env.AggregateID
		route := env.Causation.Route
		switch tokens[0] {
		case instance.Kind:
			e, err := instance.Decode(env.Type, env.Version, env.Data)
			if err != nil {
				continue
			}
			fs := fstates[id]
			if c, ok := e.(instance.Created); ok {
				if fs == nil {
					fam := "saas-v2"
					if c.V1 != nil {
						fam = "saas-v1"
					}
					fs = &fstate{family: fam, order: c.OrderID, day: day, trial: c.V1 != nil && c.V1.Trial}
					fstates[id] = fs
				}
				continue // counted at the end, where it ends up
			}
			if fs == nil {
				continue
			}
			if q, ok := e.(instance.OrderQueried); ok && q.Info.OrderID == fs.order && q.Info.OrderType == "TRIAL" {
				fs.trial = true
			}
			var m string
			switch e := e.(type) {
			case instance.Provisioned:
				m = "provisioned"
			case instance.ProvisioningFailed:
				m = "provisioning_failed"
			case instance.Refreshed:
				m = map[instance.Scene]string{
					instance.SceneTrialToFormal: "trial_to_formal", instance.SceneRenewal: "renewed",
					instance.SceneUnsubscribeRenewalPeriod: "renewal_cancelled", instance.SceneRenewalChange: "renewal_changed",
				}[e.Scene]
			case instance.Frozen:
				m = "frozen"
			case instance.Unfrozen:
				m = "unfrozen"
			case instance.Released:
				m = "released"
			case instance.Upgraded:
				m = "upgraded"
			}
			if m != "" {
				facts[fkey{day, fs.family, m}]++
			}

		case license.Kind:
			e, err := license.Decode(env.Type, env.Version, env.Data)
			if err != nil {
				continue
			}
			l := lics[id]
			switch e := e.(type) {
			case license.Issued:
				m := "new"
				if e.Purchase.Trial {
					m = "trial"
				}
				facts[fkey{day, "license-a", m}]++
				if l != nil {
					continue
				}
				p := e.Purchase
				l = &lic{id: id, status: "issued", order: e.OrderID, biz: e.BusinessID, product: p.ProductID, sku: p.SKUCode,
					customer: e.Customer.ID, charging: p.ChargingMode, periodType: p.PeriodType, period: p.PeriodNumber,
					trial: p.Trial, issued: t}
				if n, ok := chargingNames[p.ChargingMode]; ok {
					l.charging = n
				}
				if !p.ExpireTime.IsZero() {
					l.expire = us(p.ExpireTime)
				}
				lics[id] = l
			case license.Refreshed:
				facts[fkey{day, "license-a", "renewed"}]++
				if l == nil {
					continue
				}
				l.expire, l.refreshed = us(e.ExpireTime), t
				if e.ProductID != "" {
					l.product = e.ProductID
				}
				if e.PeriodType != "" {
					l.periodType = e.PeriodType
				}
				if e.PeriodNumber != 0 {
					l.period = e.PeriodNumber
				}
				if l.status == "frozen" {
					l.status = "issued"
				}
				l.renewals++
			case license.Expired:
				facts[fkey{day, "license-a", "expired"}]++
				if l == nil {
					continue
				}
				l.status, l.expired = "frozen", t
			case license.Released:
				facts[fkey{day, "license-a", "released"}]++
				if l == nil {
					continue
				}
				l.status, l.released = "released", t
			}
			if l.route == "" {
				l.route = route
			}
			l.seq, l.updated = rc.Seq, t

		case licensecode.Kind:
			e, err := licensecode.Decode(env.Type, env.Version, env.Data)
			if err != nil {
				continue
			}
			c := codes[id]
			metric := ""
			switch e := e.(type) {
			case licensecode.Registered:
				metric = "new"
				if c != nil {
					facts[fkey{day, "license-b", metric}]++
					continue // registered twice: the first stands
				}
				c = &code{code: id, status: "active", ref: e.Reference, activation: "pending", registered: t}
				codes[id] = c
			case licensecode.Refreshed:
				metric = "renewed"
				if e.Scene == licensecode.SceneUnsubscribeRenewalPeriod {
					metric = "renewal_cancelled"
				}
				if c != nil {
					c.expire, c.refreshed = us(e.ExpireTime), t
					if e.ProductID != "" {
						c.product = e.ProductID
					}
					c.renewals++
				}
			case licensecode.Frozen:
				metric = "frozen"
				if c != nil {
					c.status, c.frozen = "frozen", t
				}
			case licensecode.Unfrozen:
				metric = "unfrozen"
				if c != nil {
					c.status, c.frozen = "active", nil
				}
			case licensecode.Released:
				metric = "released"
				if c != nil {
					c.status, c.released = "released", t
				}
			case licensecode.Activated:
				metric = "activated"
				if c != nil {
					c.activation, c.activated, c.actCode, c.actMsg = "confirmed", us(e.Answer.At), "", ""
					if i := e.Info; i != nil {
						if c.expire == nil && !i.ExpireTime.IsZero() {
							c.expire = us(i.ExpireTime)
						}
						if c.product == "" {
							c.product = i.ProductID
						}
						if i.OrderID != "" {
							c.order = i.OrderID
						}
						if i.Amount != 0 {
							c.amount = i.Amount
						}
					}
				}
			case licensecode.ActivationFailed:
				metric = "activation_failed"
				if c != nil && c.activation != "confirmed" {
					c.activation, c.actCode, c.actMsg = "refused", e.Answer.ErrorCode, e.Answer.ErrorMessage
				}
			case licensecode.Queried:
				metric = "queried"
				if c != nil {
					c.hb, c.hbCode, c.hbStatus = us(e.Answer.At), e.Answer.ErrorCode, ""
					if i := e.Info; i != nil {
						c.hbStatus = string(i.Status)
						if !i.ActivateTime.IsZero() {
							c.activation, c.activated, c.actCode, c.actMsg = "confirmed", us(i.ActivateTime), "", ""
						}
						if !i.ExpireTime.IsZero() {
							c.expire = us(i.ExpireTime)
						}
					}
				}
			case licensecode.UsageReported:
				metric = "usage_reported"
				if c != nil {
					c.usageAt, c.usageCode = us(e.Answer.At), e.Answer.ErrorCode
					c.reports++
				}
			}
			facts[fkey{day, "license-b", metric}]++
			if c == nil {
				continue
			}
			if c.route == "" {
				c.route = route
			}
			c.seq, c.updated = rc.Seq, t

		case usage.Kind:
			if len(tokens) < 3 || tokens[1] != instance.Kind {
				continue
			}
			e, err := usage.Decode(env.Type, env.Version, env.Data)
			if err != nil {
				continue
			}
			pendingOf := func(sn string) *rec {
				r := records[sn]
				if r == nil || r.inst != id || r.status != "pending" {
					return nil
				}
				return r
			}
			switch e := e.(type) {
			case usage.Recorded:
				for _, r := range e.Records {
					if records[r.MeteringSN] == nil {
						records[r.MeteringSN] = &rec{r: r, inst: id, status: "pending", recorded: t, upd: t, seq: rc.Seq}
					}
				}
			case usage.Pushed:
				for _, sn := range e.Accepted {
					if r := pendingOf(sn); r != nil {
						dup := false
						for _, d := range e.Duplicates {
							dup = dup || d == sn
						}
						r.status, r.batch, r.dup, r.pushed, r.upd, r.seq = "pushed", e.BatchID, dup, t, t, rc.Seq
					}
				}
			case usage.Rejected:
				for _, rj := range e.Rejections {
					if r := pendingOf(rj.MeteringSN); r != nil {
						r.status, r.batch, r.code, r.msg, r.local, r.rejected, r.upd, r.seq = "rejected", e.BatchID, rj.Code, rj.Message, e.Local, t, t, rc.Seq
					}
				}
			}
		}
	}
	for _, fs := range fstates {
		m := "new"
		if fs.trial {
			m = "trial"
		}
		facts[fkey{fs.day, fs.family, m}]++
	}

	out := map[string][]string{}
	add := func(table string, vals ...any) { out[table] = append(out[table], normRow(table, vals)) }
	for _, l := range lics {
		add("licenses", l.id, l.status, l.order, l.biz, l.product, l.sku, l.customer, l.charging,
			l.periodType, l.period, l.trial, false, l.route, l.expire, l.issued, l.refreshed,
			l.expired, l.released, l.renewals, l.seq, l.updated)
	}
	for _, c := range codes {
		add("license_codes", c.code, c.status, c.ref, c.product, c.order, c.amount, c.expire, c.activation,
			c.activated, c.actCode, c.actMsg, c.hb, c.hbCode, c.hbStatus, c.usageAt, c.usageCode,
			c.reports, c.renewals, c.route, c.registered, c.refreshed, c.frozen, c.released, c.seq, c.updated)
	}
	for _, r := range records {
		add("usage_records", r.r.MeteringSN, r.inst, r.r.RecordKey, us(r.r.RecordTime), us(r.r.BeginTime), us(r.r.EndTime),
			r.r.UsageValue, r.r.RelatePkgInstance, string(r.r.Billing), r.status, r.batch, r.dup, r.code, r.msg, r.local,
			r.recorded, r.pushed, r.rejected, r.seq, r.upd)
	}
	for k, n := range facts {
		if n != 0 {
			add("family_daily_facts", k.day, k.family, k.metric, n)
		}
	}
	for id, fs := range fstates {
		add("family_facts_state", id, fs.family, fs.order, fs.day, fs.trial)
	}
	return out
}

// checkLicenseStatuses compares the statuses in the views with the
// domains' own folds (license.Fold, licensecode.Fold, usage.Fold), and
// checks that the SaaS families' facts add up to daily_facts.
func checkLicenseStatuses(t tb, st *Store, prefix string, recs []eventstore.Record) {
	t.Helper()
	ctx := context.Background()
	lics := map[string][]license.Event{}
	codes := map[string][]licensecode.Event{}
	uses := map[string][]usage.Event{}
	for _, rc := range recs {
		sid, err := eventstore.ParseSubject(prefix, rc.Subject)
		if err != nil || rc.Event.Causation.TestFlag {
			continue
		}
		id := rc.Event.AggregateID
		switch sid.Kind {
		case license.Kind:
			if e, err := license.Decode(rc.Event.Type, rc.Event.Version, rc.Event.Data); err == nil {
				lics[id] = append(lics[id], e)
			}
		case licensecode.Kind:
			if e, err := licensecode.Decode(rc.Event.Type, rc.Event.Version, rc.Event.Data); err == nil {
				codes[id] = append(codes[id], e)
			}
		case usage.Kind:
			if len(sid.Keys) == 2 && sid.Keys[0] == instance.Kind {
				if e, err := usage.Decode(rc.Event.Type, rc.Event.Version, rc.Event.Data); err == nil {
					uses[id] = append(uses[id], e)
				}
			}
		}
	}
	for id, evs := range lics {
		want := license.Fold(evs...)
		r, _, err := st.GetLicense(ctx, id)
		if err != nil || r.Status != string(want.Status) || r.Renewals != want.Renewals || r.ProductID != want.ProductID {
			t.Fatalf("license %s: view %+v (%v), license.Fold %+v", id, r, err, want)
		}
	}
	for id, evs := range codes {
		want := licensecode.Fold(evs...)
		r, _, err := st.GetLicenseCode(ctx, id)
		if err != nil || r.Status != string(want.Status) || r.Activation != string(want.Activation) ||
			r.UsageReports != want.UsageReports || r.ProductID != want.ProductID {
			t.Fatalf("code %s: view %+v (%v), licensecode.Fold %+v", id, r, err, want)
		}
		if (r.ExpireTime == nil) != want.ExpireTime.IsZero() || r.ExpireTime != nil && !r.ExpireTime.Equal(want.ExpireTime.Truncate(time.Microsecond)) {
			t.Fatalf("code %s: expiry %v, licensecode.Fold %v", id, r.ExpireTime, want.ExpireTime)
		}
	}
	for id, evs := range uses {
		want := usage.Fold(evs...)
		page, err := st.ListUsageRecords(ctx, UsageRecordFilter{InstanceID: id}, Page{Limit: MaxPageSize})
		if err != nil || len(page.Records) != want.Len() {
			t.Fatalf("usage of %s: %d records (%v), usage.Fold %d", id, len(page.Records), err, want.Len())
		}
		for _, r := range page.Records {
			e, ok := want.Entry(r.MeteringSN)
			if !ok || r.Status != string(e.Status) || r.BatchID != e.BatchID || r.RejectionCode != e.Code || r.UsageValue != e.Record.UsageValue {
				t.Fatalf("usage record %s: view %+v, usage.Fold %+v", r.MeteringSN, r, e)
			}
		}
	}
	// saas-v1 + saas-v2 per day and metric = daily_facts summed over
	// products.
	daily, err := st.DailyFacts(ctx, FactsQuery{})
	if err != nil {
		t.Fatalf("daily facts: %v", err)
	}
	fam, err := st.FamilyFacts(ctx, FamilyFactsQuery{Families: []string{FamilySaaSV1, FamilySaaSV2}})
	if err != nil {
		t.Fatalf("family facts: %v", err)
	}
	sums := map[string]int64{}
	for _, f := range daily.Facts {
		sums[f.Day+" "+f.Metric] += f.Count
	}
	for _, f := range fam.Facts {
		sums[f.Day+" "+f.Metric] -= f.Count
	}
	for k, n := range sums {
		if n != 0 {
			t.Fatalf("daily_facts and the SaaS families' facts differ on %s by %s", k, strconv.FormatInt(n, 10))
		}
	}
}
