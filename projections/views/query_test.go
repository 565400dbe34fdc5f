package views

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// script appends hand-written events.
type script struct {
	t    *testing.T
	ts   *testStream
	last map[string]uint64
	recs []eventstore.Record
	n    int
}

var day1 = time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)

func (s *script) add(sid eventstore.StreamID, when time.Time, typ string, data []byte, cause event.Causation) {
	s.t.Helper()
	s.n++
	subj, _ := s.ts.store.Subject(sid)
	env := event.Envelope{ID: "q" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+s.n%26)) + jsonInt(s.n),
		Type: typ, Version: 1, AggregateKind: sid.Kind, AggregateID: sid.Keys[len(sid.Keys)-1],
		OccurredAt: when, Causation: cause, Data: data}
	seq, err := s.ts.store.Append(context.Background(), sid, s.last[subj], env)
	if err != nil {
		s.t.Fatalf("append %s: %v", typ, err)
	}
	s.last[subj] = seq
	s.recs = append(s.recs, eventstore.Record{Seq: seq, Subject: subj, Event: env})
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func (s *script) inst(id string, when time.Time, e instance.Event) {
	typ, _, data, err := instance.Encode(e)
	if err != nil {
		s.t.Fatal(err)
	}
	s.add(eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, when, typ, data, event.Causation{Route: "/r/" + id[:1]})
}

func (s *script) effect(eff, id, typ string, v any, when time.Time) {
	data, _ := json.Marshal(v)
	s.add(eventstore.StreamID{Kind: effect.Kind, Keys: []string{eff, id}}, when, typ, data, event.Causation{Actor: "effects"})
}

func (s *script) create(id string, when time.Time) {
	s.inst(id, when, instance.Created{InstanceID: id, OrderID: "o-" + id, OrderLineID: "l-" + id, BusinessID: "b-" + id})
}

func (s *script) queried(id string, when time.Time, typ, product, customer, charging string, expire time.Time) {
	s.inst(id, when, instance.OrderQueried{Info: instance.OrderInfo{OrderID: "o-" + id, OrderType: typ, ProductID: product,
		CustomerID: customer, ChargingMode: charging, SKUCode: "sku-" + product, ExpireTime: expire}})
}

func ids(rs []Instance) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.InstanceID)
	}
	return out
}

func TestQueries(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		ts := newStream(t, nc)
		s := &script{t: t, ts: ts, last: map[string]uint64{}}
		h := func(d int, hh, mm int) time.Time {
			return day1.AddDate(0, 0, d).Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
		}
		prov := instance.Provisioned{AppInfo: instance.AppInfo{FrontEndURL: "https://x"}}

		s.create("A1", h(0, 10, 0))
		s.inst("A1", h(0, 10, 0).Add(1500*time.Millisecond), prov)
		s.queried("A1", h(0, 10, 1), "NEW", "P1", "C1", "PERIOD", day1.AddDate(1, 0, 0))
		s.inst("A1", h(2, 8, 0), instance.Refreshed{Scene: instance.SceneRenewal, OrderID: "o-r", ExpireTime: day1.AddDate(2, 0, 0)})

		s.create("B1", h(0, 11, 0))
		s.queried("B1", h(0, 11, 0).Add(time.Second), "TRIAL", "P2", "C2", "ON_DEMAND", day1.AddDate(0, 1, 0))
		s.inst("B1", h(0, 11, 0).Add(3*time.Second), prov)
		s.inst("B1", h(1, 7, 0), instance.Frozen{})

		s.create("C1", h(1, 9, 0))
		s.inst("C1", h(1, 9, 0).Add(2*time.Second), instance.ProvisioningFailed{Failure: instance.Failure{Code: "000100", Message: "no"}})

		s.create("D1", h(1, 12, 0))
		s.inst("D1", h(1, 12, 0).Add(500*time.Millisecond), prov)
		s.inst("D1", h(2, 13, 0), instance.Released{})

		s.create("E1", h(2, 9, 0))
		s.inst("E1", h(2, 9, 0).Add(200*time.Millisecond), prov)
		s.queried("E1", h(2, 9, 1), "TRIAL", "P1", "C1", "PERIOD", day1.AddDate(0, 2, 0))
		s.inst("E1", h(3, 9, 0), instance.Refreshed{Scene: instance.SceneTrialToFormal, OrderID: "o-f", ExpireTime: day1.AddDate(1, 6, 0)})

		s.effect("webhook", "A1", effect.TypeParked, effect.Parked{Effect: "webhook", InstanceID: "A1", EventSeq: 1, Attempts: 5, Reason: "HTTP 500"}, h(0, 10, 5))
		s.effect("queryorder", "B1", effect.TypeParked, effect.Parked{Effect: "queryorder", InstanceID: "B1", EventSeq: 5, EventID: "ev5",
			EventType: instance.TypeCreated, Attempts: 3, Reason: "timeout"}, h(0, 11, 5))
		s.effect("webhook", "A1", effect.TypeDone, effect.Done{Effect: "webhook", InstanceID: "A1", EventSeq: 1}, h(0, 12, 0))
		s.effect("webhook", "C1", effect.TypeParked, effect.Parked{Effect: "webhook", InstanceID: "C1", EventSeq: 9, Attempts: 1, Reason: "x"}, h(1, 10, 0))
		s.effect("webhook", "C1", effect.TypeRedriven, effect.Redriven{Effect: "webhook", InstanceID: "C1", Operator: "op"}, h(1, 11, 0))

		st := openStore(t, dsn)
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		seq := lastSeq(s.recs)
		runProjector(t, p, seq)
		checkViews(t, st, ts.prefix, s.recs)

		list := func(f InstanceFilter) []string {
			t.Helper()
			page, err := st.ListInstances(ctx, f, Page{})
			if err != nil {
				t.Fatal(err)
			}
			if page.Seq != seq || page.Next != "" {
				t.Fatalf("list %+v: seq %d next %q, want seq %d and no next page", f, page.Seq, page.Next, seq)
			}
			return ids(page.Instances)
		}
		yes, no := true, false
		for _, c := range []struct {
			f    InstanceFilter
			want []string
		}{
			{InstanceFilter{}, []string{"A1", "B1", "C1", "D1", "E1"}},
			{InstanceFilter{Status: []string{"active"}}, []string{"A1", "E1"}},
			{InstanceFilter{Status: []string{"frozen", "failed", "released"}}, []string{"B1", "C1", "D1"}},
			{InstanceFilter{ProductID: "P1"}, []string{"A1", "E1"}},
			{InstanceFilter{SKUCode: "sku-P2"}, []string{"B1"}},
			{InstanceFilter{ChargingMode: "PERIOD"}, []string{"A1", "E1"}},
			{InstanceFilter{CustomerID: "C2"}, []string{"B1"}},
			{InstanceFilter{OrderID: "o-D1"}, []string{"D1"}},
			{InstanceFilter{Route: "/r/C"}, []string{"C1"}},
			{InstanceFilter{Trial: &yes}, []string{"B1", "E1"}},
			{InstanceFilter{Trial: &no, Status: []string{"active"}}, []string{"A1"}},
			{InstanceFilter{Formal: &yes}, []string{"E1"}},
			{InstanceFilter{TestFlag: &yes}, nil},
			{InstanceFilter{ExpireFrom: day1.AddDate(1, 0, 0)}, []string{"A1", "E1"}},
			{InstanceFilter{ExpireTo: day1.AddDate(1, 0, 0)}, []string{"B1"}},
			{InstanceFilter{CreatedFrom: day1.AddDate(0, 0, 1), CreatedTo: day1.AddDate(0, 0, 2)}, []string{"C1", "D1"}},
			{InstanceFilter{ProvisionedFrom: h(0, 11, 0)}, []string{"B1", "D1", "E1"}},
			{InstanceFilter{ReleasedFrom: day1}, []string{"D1"}},
		} {
			if got := list(c.f); !slices.Equal(got, c.want) {
				t.Errorf("list %+v: %v, want %v", c.f, got, c.want)
			}
		}

		r, rseq, err := st.GetInstance(ctx, "E1")
		if err != nil || rseq != seq {
			t.Fatalf("get E1: seq %d, %v", rseq, err)
		}
		if r.Status != "active" || !r.Trial || !r.Formal || r.OrderType != "TRIAL" || r.ProductID != "P1" ||
			r.ExpireTime == nil || !r.ExpireTime.Equal(day1.AddDate(1, 6, 0)) || r.Route != "/r/E" || r.CreatedAt.Location() != time.UTC {
			t.Errorf("get E1: %+v", r)
		}
		if _, rseq, err := st.GetInstance(ctx, "nope"); !errors.Is(err, ErrNotFound) || rseq != seq {
			t.Errorf("get unknown: seq %d, %v", rseq, err)
		}

		// Facts: the creation counts moved to their product and to
		// "trial"; the other events count under the product known then.
		facts, err := st.DailyFacts(ctx, FactsQuery{})
		if err != nil || facts.Seq != seq {
			t.Fatalf("facts: seq %d, %v", facts.Seq, err)
		}
		got := map[DailyFact]bool{}
		for _, f := range facts.Facts {
			got[f] = true
		}
		for _, f := range []DailyFact{
			{"2025-05-01", "P1", MetricNew, 1}, {"2025-05-01", "P2", MetricTrial, 1},
			{"2025-05-01", "", MetricProvisioned, 1}, {"2025-05-01", "P2", MetricProvisioned, 1},
			{"2025-05-02", "", MetricNew, 2}, {"2025-05-02", "", MetricProvisioningFailed, 1},
			{"2025-05-02", "P2", MetricFrozen, 1}, {"2025-05-03", "P1", MetricRenewed, 1},
			{"2025-05-03", "P1", MetricTrial, 1}, {"2025-05-03", "", MetricReleased, 1},
			{"2025-05-04", "P1", MetricTrialToFormal, 1},
		} {
			if !got[f] {
				t.Errorf("facts: missing %+v in %+v", f, facts.Facts)
			}
		}
		only, err := st.DailyFacts(ctx, FactsQuery{From: day1.AddDate(0, 0, 1), To: day1.AddDate(0, 0, 1).Add(23 * time.Hour),
			Metrics: []string{MetricNew, MetricTrial}})
		if err != nil || len(only.Facts) != 1 || only.Facts[0] != (DailyFact{"2025-05-02", "", MetricNew, 2}) {
			t.Errorf("facts of day 2: %+v, %v", only.Facts, err)
		}
		byProduct, err := st.DailyFacts(ctx, FactsQuery{Products: []string{"P2"}})
		if err != nil || len(byProduct.Facts) != 3 {
			t.Errorf("facts of P2: %+v, %v", byProduct.Facts, err)
		}

		lat, err := st.ProvisioningLatency(ctx, LatencyQuery{})
		if err != nil || lat != (LatencyStats{Count: 4, MinMS: 200, MaxMS: 3000, AvgMS: 1300, P50MS: 500, P90MS: 3000, P99MS: 3000, Seq: seq}) {
			t.Errorf("latency: %+v, %v", lat, err)
		}
		lat, err = st.ProvisioningLatency(ctx, LatencyQuery{ProductID: "P1", From: day1, To: day1.AddDate(0, 0, 10)})
		if err != nil || lat.Count != 2 || lat.MinMS != 200 || lat.MaxMS != 1500 || lat.P50MS != 200 {
			t.Errorf("latency of P1: %+v, %v", lat, err)
		}
		if lat, err := st.ProvisioningLatency(ctx, LatencyQuery{ProductID: "none"}); err != nil || lat.Count != 0 || lat.Seq != seq {
			t.Errorf("latency of nothing: %+v, %v", lat, err)
		}

		parked, err := st.ParkedEffects(ctx, ParkedQuery{})
		if err != nil || parked.Seq != seq || len(parked.Effects) != 1 {
			t.Fatalf("parked: %+v, %v", parked, err)
		}
		if pe := parked.Effects[0]; pe.Effect != "queryorder" || pe.InstanceID != "B1" || pe.EventSeq != 5 || pe.Attempts != 3 ||
			pe.Reason != "timeout" || pe.EventID != "ev5" || !pe.ParkedAt.Equal(h(0, 11, 5)) {
			t.Errorf("parked: %+v", pe)
		}
		if parked, err := st.ParkedEffects(ctx, ParkedQuery{Effect: "webhook"}); err != nil || len(parked.Effects) != 0 {
			t.Errorf("parked webhook: %+v, %v", parked, err)
		}

		cps, err := st.Checkpoints(ctx)
		if err != nil || len(cps) != len(ViewNames()) || cps[ViewFacts] != seq {
			t.Errorf("checkpoints: %v, %v", cps, err)
		}
		if c, err := st.Checkpoint(ctx, "nope"); !errors.Is(err, ErrUnknownView) {
			t.Errorf("checkpoint of an unknown view: %d, %v", c, err)
		}
		if lag, err := p.Lag(ctx); err != nil || lag != 0 {
			t.Errorf("lag: %d, %v", lag, err)
		}

		// Pagination, both directions, while instances are added between
		// pages: every original row exactly once, in order.
		created := 0
		for _, desc := range []bool{false, true} {
			var seen []string
			var cursor string
			addedNow := map[string]bool{}
			for {
				page, err := st.ListInstances(ctx, InstanceFilter{Status: []string{"provisioning", "active", "frozen", "failed", "released"}},
					Page{Limit: 2, Cursor: cursor, Desc: desc})
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, ids(page.Instances)...)
				if page.Next == "" {
					break
				}
				cursor = page.Next
				// A new instance between pages (created "now", after all).
				id := "N" + jsonInt(len(s.recs))
				created++
				addedNow[id] = true
				s.create(id, h(5, created, 0))
				runProjector(t, p, lastSeq(s.recs))
			}
			var orig []string
			added := 0
			for _, id := range seen {
				switch {
				case addedNow[id]:
					added++
				case id[0] != 'N':
					orig = append(orig, id)
				}
			}
			want := []string{"A1", "B1", "C1", "D1", "E1"}
			if desc {
				want = []string{"E1", "D1", "C1", "B1", "A1"}
			}
			if !slices.Equal(orig, want) {
				t.Errorf("paginated (desc %v): %v, want %v in that order exactly once", desc, orig, want)
			}
			// New instances sort after every existing one: an ascending
			// listing reaches them, a descending one (already past) never
			// shows them.
			if desc != (added == 0) {
				t.Errorf("paginated (desc %v): %d instances added meanwhile shown: %v", desc, added, seen)
			}
		}
		page, err := st.ListInstances(ctx, InstanceFilter{}, Page{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ListInstances(ctx, InstanceFilter{}, Page{Cursor: page.Next, Desc: true}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor in the other direction: %v", err)
		}
		if _, err := st.ListInstances(ctx, InstanceFilter{}, Page{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("garbage cursor: %v", err)
		}
	})
}

// TestOpen covers the DSN forms and idempotent migrations.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, dsn := range []string{"sqlite://" + dir + "/a.db", dir + "/b/c.db"} {
		for range 2 {
			st, err := Open(ctx, dsn)
			if err != nil {
				t.Fatalf("open %s: %v", dsn, err)
			}
			if v, err := st.SchemaVersion(ctx); err != nil || v != schemaVersion() || st.Driver() != "sqlite" {
				t.Fatalf("%s: version %d, driver %s, %v", dsn, v, st.Driver(), err)
			}
			_ = st.Close()
		}
	}
	if _, err := Open(ctx, "sqlite://"); err == nil {
		t.Fatal("empty path accepted")
	}
	t.Run("postgres", func(t *testing.T) {
		postgresOK(t)
		dsn := postgresDSN(t)
		for range 2 {
			st := openStore(t, dsn)
			if v, err := st.SchemaVersion(ctx); err != nil || v != schemaVersion() || st.Driver() != "postgres" {
				t.Fatalf("version %d, driver %s, %v", v, st.Driver(), err)
			}
		}
		// A database migrated by a newer program is refused.
		st := openStore(t, dsn)
		if _, err := st.wdb.ExecContext(ctx, "INSERT INTO views_schema_migrations (version, applied_at) VALUES (999, now())"); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, dsn); !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("newer schema: %v", err)
		}
	})
}
