package usagepush

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

var _ Client = (*openapi.Client)(nil)

var testKey = []byte("vendor-interconnection-key-0123456789")

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// rig is one test's world: an embedded nats-server with the event store,
// the usage service, the KooGallery stand-in over TLS (gateway and usage
// push), a real open-API client and the pusher.
type rig struct {
	store  *eventstore.JetStreamStore
	svc    *Service
	kg     *standin.Server
	usage  *standin.Usage
	client *openapi.Client
	pusher *Pusher
	log    *slog.Logger
	// base is the end of the records' hour.
	base time.Time
}

func newRig(t *testing.T, key []byte) *rig {
	t.Helper()
	log := testLogger()
	env := testenv.Instances(t, log)
	kg := standin.New(standin.Config{})
	u := standin.NewUsage(kg, standin.UsageConfig{Key: testKey})
	srv := httptest.NewTLSServer(u.Handler())
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client, err := openapi.NewForUsage(openapi.Config{
		Site: openapi.SiteMainland, Hosts: []string{srv.URL}, Timeout: 10 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(env.Store, ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPusher(svc, client, Config{Key: key}, log)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{store: env.Store, svc: svc, kg: kg, usage: u, client: client, pusher: p, log: log,
		base: time.Now().UTC().Truncate(time.Hour)}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// start runs the pusher's effects runner (in the usage namespace) until
// the test ends.
func (r *rig) start(t *testing.T) *effects.Runner {
	t.Helper()
	cfg := effects.RunnerConfig{RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxAttempts: 6, Concurrency: 4}
	run, err := effects.NewRunner(r.store.JetStream(), Namespace(r.store), r.store.Config().Stream, Prefix(r.store.Config().Prefix), r.pusher, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	return run
}

// records parses n records of inst with keys prefix-0…, value i+1.
func (r *rig) records(t *testing.T, inst, prefix string, n int) []usage.Record {
	t.Helper()
	out := make([]usage.Record, n)
	for i := range out {
		rec, ferr := r.svc.Parse(usage.Input{InstanceID: inst, RecordKey: fmt.Sprintf("%s-%d", prefix, i),
			RecordTime: usage.FormatTime(r.base), BeginTime: usage.FormatTime(r.base.Add(-time.Hour)), EndTime: usage.FormatTime(r.base),
			UsageValue: fmt.Sprintf("%d.25", i+1)})
		if ferr != nil {
			t.Fatal(ferr)
		}
		out[i] = rec
	}
	return out
}

func (r *rig) report(t *testing.T, recs []usage.Record) []usage.Result {
	t.Helper()
	res, err := r.svc.Report(testContext(t), recs, event.Causation{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// settle waits until inst has no pending record.
func (r *rig) settle(t *testing.T, inst string) usage.State {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, _, err := r.svc.Usage(testContext(t), inst)
		if err != nil {
			t.Fatal(err)
		}
		if st.Len() > 0 && st.PendingLen() == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d records still pending", inst, st.PendingLen(), st.Len())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// usageEvents counts the usage events of inst by type.
func (r *rig) usageEvents(t *testing.T, inst string) map[string]int {
	t.Helper()
	recs, err := Namespace(r.store).Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{inst}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, rec := range recs {
		n[rec.Event.Type]++
	}
	return n
}

func TestBatchesOf1000AndIdempotentReports(t *testing.T) {
	r := newRig(t, testKey)
	recs := r.records(t, "ppu-1", "m", 2500)
	for _, part := range [][]usage.Record{recs[:1000], recs[1000:2000], recs[2000:]} {
		for i, res := range r.report(t, part) {
			if res.Outcome != usage.OutcomeRecorded || res.Status != usage.StatusPending {
				t.Fatalf("record %d: %+v", i, res)
			}
		}
	}
	// Re-reporting is idempotent: the same metering_sn, nothing appended.
	for i, res := range r.report(t, recs[:1000]) {
		if res.Outcome != usage.OutcomeDuplicate || res.MeteringSN != recs[i].MeteringSN {
			t.Fatalf("re-report %d: %+v", i, res)
		}
	}
	changed := recs[5]
	changed.UsageValue = "7"
	if res := r.report(t, []usage.Record{changed}); res[0].Outcome != usage.OutcomeConflict {
		t.Fatalf("changed re-report: %+v", res[0])
	}
	if n := r.usageEvents(t, "ppu-1"); n[usage.TypeRecorded] != 3 {
		t.Fatalf("events %v, want 3 UsageRecorded", n)
	}

	r.start(t)
	st := r.settle(t, "ppu-1")
	pushes := r.usage.Pushes()
	if len(pushes) != 3 {
		t.Fatalf("%d pushes, want 3", len(pushes))
	}
	for i, want := range []int{1000, 1000, 500} {
		p := pushes[i]
		if !p.Verified || p.Code != standin.UsageSuccess || len(p.Records) != want || len(p.Failed) != 0 {
			t.Fatalf("push %d: verified %t code %s records %d failed %v", i, p.Verified, p.Code, len(p.Records), p.Failed)
		}
	}
	acc := r.usage.Accepted()
	if len(acc) != 2500 {
		t.Fatalf("stand-in accepted %d records", len(acc))
	}
	for _, rec := range recs {
		got, ok := acc[rec.MeteringSN]
		if !ok || got.UsageValue != rec.UsageValue || got.InstanceID != "ppu-1" {
			t.Fatalf("record %s: stand-in has %+v", rec.RecordKey, got)
		}
		if e, _ := st.Entry(rec.MeteringSN); e.Status != usage.StatusPushed || e.BatchID == "" {
			t.Fatalf("record %s: %+v", rec.RecordKey, e)
		}
	}
	if n := r.usageEvents(t, "ppu-1"); n[usage.TypePushed] != 3 || n[usage.TypeRejected] != 0 {
		t.Fatalf("events %v, want 3 UsagePushed", n)
	}
}

func TestRetryKeepsMeteringSN(t *testing.T) {
	r := newRig(t, testKey)
	recs := r.records(t, "ppu-2", "r", 3)
	r.usage.FailNextPush(1, http.StatusInternalServerError, "MKT.0999", "System internal error.")
	r.kg.FailNext(1, http.StatusServiceUnavailable)
	r.report(t, recs)
	r.start(t)
	st := r.settle(t, "ppu-2")
	pushes := r.usage.Pushes()
	if len(pushes) != 3 {
		t.Fatalf("%d pushes, want 3 (503, MKT.0999, success)", len(pushes))
	}
	if pushes[0].Status != http.StatusServiceUnavailable || pushes[1].Code != "MKT.0999" || pushes[2].Code != standin.UsageSuccess {
		t.Fatalf("pushes: %d %s / %s / %s", pushes[0].Status, pushes[0].Code, pushes[1].Code, pushes[2].Code)
	}
	// The retries sent the same records: same metering_sn, fresh nonce.
	for i, rec := range recs {
		if pushes[1].Records[i].MeteringSN != rec.MeteringSN || pushes[2].Records[i].MeteringSN != rec.MeteringSN {
			t.Fatalf("record %d: metering_sn %s then %s, want %s", i, pushes[1].Records[i].MeteringSN, pushes[2].Records[i].MeteringSN, rec.MeteringSN)
		}
		if e, _ := st.Entry(rec.MeteringSN); e.Status != usage.StatusPushed {
			t.Fatalf("record %d: %+v", i, e)
		}
	}
	if pushes[1].Nonce == pushes[2].Nonce {
		t.Fatal("a retry reused the nonce")
	}
	if n := r.usageEvents(t, "ppu-2"); n[usage.TypePushed] != 1 {
		t.Fatalf("events %v, want one UsagePushed", n)
	}
}

func TestRecordLevelOutcomes(t *testing.T) {
	r := newRig(t, testKey)
	recs := r.records(t, "ppu-3", "x", 4)
	// recs[0] reached KooGallery before (a push whose outcome was never
	// recorded): KooGallery answers 005, which counts as delivered.
	if _, err := r.client.PushUsage(testContext(t), testKey, recs[:1], openapi.UsageOptions{}); err != nil {
		t.Fatal(err)
	}
	r.usage.FailRecord(recs[1].MeteringSN, standin.RecordBadValue, "bad usage value")
	r.usage.FailRecord(recs[2].MeteringSN, standin.RecordNotPayPerUse, "instance is not a pay-per-use resource")
	r.report(t, recs)
	r.start(t)
	st := r.settle(t, "ppu-3")
	want := []struct {
		status usage.Status
		dup    bool
		code   string
	}{{usage.StatusPushed, true, ""}, {usage.StatusRejected, false, "003"}, {usage.StatusRejected, false, "012"}, {usage.StatusPushed, false, ""}}
	for i, w := range want {
		e, _ := st.Entry(recs[i].MeteringSN)
		if e.Status != w.status || e.Duplicate != w.dup || e.Code != w.code || e.Local {
			t.Fatalf("record %d: %+v, want %+v", i, e, w)
		}
	}
	if e, _ := st.Entry(recs[1].MeteringSN); e.Message != "bad usage value" || e.BatchID == "" {
		t.Fatalf("rejection: %+v", e)
	}
	if n := r.usageEvents(t, "ppu-3"); n[usage.TypePushed] != 1 || n[usage.TypeRejected] != 1 {
		t.Fatalf("events %v", n)
	}

	// An overall refusal of the records (MKT.9001, HTTP 500) rejects the
	// whole push with the overall code, without retrying.
	more := r.records(t, "ppu-4", "y", 2)
	r.usage.FailNextPush(1, http.StatusInternalServerError, "MKT.9001", "Instance ID not found.")
	r.report(t, more)
	st = r.settle(t, "ppu-4")
	for _, rec := range more {
		if e, _ := st.Entry(rec.MeteringSN); e.Status != usage.StatusRejected || e.Code != "MKT.9001" {
			t.Fatalf("record %s: %+v", rec.RecordKey, e)
		}
	}
}

func TestWrongKeyParksWithoutRejecting(t *testing.T) {
	r := newRig(t, []byte("not-the-key"))
	recs := r.records(t, "ppu-5", "k", 2)
	r.report(t, recs)
	run := r.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := run.Progress(testContext(t), "ppu-5")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Parked) == 1 {
			if p.Parked[0].Attempts != 1 {
				t.Fatalf("parked after %d attempts, want 1 (permanent)", p.Parked[0].Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not parked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, _, err := r.svc.Usage(testContext(t), "ppu-5")
	if err != nil || st.PendingLen() != 2 {
		t.Fatalf("records %d pending (err %v), want 2: a wrong key rejects nothing", st.PendingLen(), err)
	}
	p := r.usage.Pushes()
	if len(p) != 1 || p[0].Verified || p[0].Code != standin.UsageInvalidSign {
		t.Fatalf("pushes %+v", p)
	}
}
