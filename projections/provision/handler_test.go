package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/effects"
)

// The instance service is the handler's Recorder.
var _ Recorder = (*instances.Service)(nil)

// durable is the provisioning runner's consumer.
const durable = "effect-" + Name

// rig is one test's world: an embedded nats-server on a temporary
// directory, an in-process connection, the JetStream event store and the
// instance service.
type rig struct {
	nc    *nats.Conn
	store *eventstore.JetStreamStore
	svc   *instances.Service
	log   *slog.Logger
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newRig(t *testing.T) *rig {
	t.Helper()
	log := testLogger()
	env := testenv.Instances(t, log)
	return &rig{nc: env.NC, store: env.Store, svc: env.Svc, log: log}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fastConfig retries quickly so that tests of retries finish soon.
func fastConfig() Config {
	c := DefaultConfig()
	c.Runner.RetryBase, c.Runner.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	return c
}

// newRunner builds the provisioning runner without starting it.
func (r *rig) newRunner(t *testing.T, resolve Resolver, def Provisioner, cfg Config) *effects.Runner {
	t.Helper()
	c := r.store.Config()
	run, err := NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, r.svc, resolve, def, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// runner builds and starts a provisioning runner; it is stopped at
// cleanup.
func (r *rig) runner(t *testing.T, resolve Resolver, def Provisioner, cfg Config) *effects.Runner {
	t.Helper()
	run := r.newRunner(t, resolve, def, cfg)
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	return run
}

func (r *rig) create(t *testing.T, n int, route string) string {
	t.Helper()
	id, err := r.tryCreate(testContext(t), n, route)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryCreate is newInstance for order o-n, line l-n, businessId biz-n.
func (r *rig) tryCreate(ctx context.Context, n int, route string) (string, error) {
	id := fmt.Sprintf("biz-%d", n)
	cause := event.Causation{Activity: "newInstance", OrderID: fmt.Sprintf("o-%d", n), OrderLineID: fmt.Sprintf("l-%d", n), BusinessID: id, Route: route}
	st, err := r.svc.Create(ctx, cause.OrderID, cause.OrderLineID, id, cause, 0)
	if err != nil {
		return "", err
	}
	if st.ID != id {
		return "", fmt.Errorf("created %q, want %q", st.ID, id)
	}
	return id, nil
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a liveness bound, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until the instance is no longer provisioning and returns it.
func (r *rig) settled(t *testing.T, id string) instance.State {
	t.Helper()
	var st instance.State
	eventually(t, id+" is provisioned or failed", func() bool {
		var err error
		st, err = r.svc.Get(testContext(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Provisioned || st.Status == instance.StatusFailed
	})
	return st
}

// drained waits until the durable has nothing pending or unacked.
func (r *rig) drained(t *testing.T, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	eventually(t, "consumer "+durable+" is drained", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err = c.Info(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	return info
}

// done waits until the runner has handled the instance's create: the
// consumer is drained, and nothing is parked. A successful provisioning
// leaves no progress record (effects.SuccessUnrecorded), so the progress
// returned is empty.
func done(t *testing.T, r *rig, run *effects.Runner, id string) effects.Progress {
	t.Helper()
	r.drained(t, durable)
	p, err := run.Progress(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Parked) != 0 {
		t.Fatalf("%s: parked %+v", id, p.Parked)
	}
	return p
}

// counting records every call per instance and answers with fn.
type counting struct {
	mu    sync.Mutex
	calls map[string][]Request
	fn    func(req Request, n int) (instance.AppInfo, error)
}

func newCounting(fn func(req Request, n int) (instance.AppInfo, error)) *counting {
	return &counting{calls: map[string][]Request{}, fn: fn}
}

func (c *counting) Provision(_ context.Context, req Request) (instance.AppInfo, error) {
	c.mu.Lock()
	c.calls[req.InstanceID] = append(c.calls[req.InstanceID], req)
	n := len(c.calls[req.InstanceID])
	c.mu.Unlock()
	return c.fn(req, n)
}

func (c *counting) of(id string) []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.calls[id]...)
}

func (c *counting) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += len(v)
	}
	return n
}

func appFor(tag string) func(Request, int) (instance.AppInfo, error) {
	return func(req Request, _ int) (instance.AppInfo, error) {
		return instance.AppInfo{FrontEndURL: "https://" + tag + ".example.com/" + req.InstanceID}, nil
	}
}

func TestBuiltinProvisionsCreatedInstance(t *testing.T) {
	r := newRig(t)
	b, err := NewBuiltin(DefaultBuiltinConfig())
	if err != nil {
		t.Fatal(err)
	}
	run := r.runner(t, nil, b, DefaultConfig())
	if run.Name() != Name || run.Durable() != durable {
		t.Fatalf("runner %s, durable %s", run.Name(), run.Durable())
	}
	id := r.create(t, 1, "/saas/demo")

	st := r.settled(t, id)
	if st.Status != instance.StatusActive || st.AppInfo == nil {
		t.Fatalf("state = %+v", st)
	}
	if st.AppInfo.FrontEndURL != "https://app.example.com/"+id || st.AppInfo.AdminURL != "https://admin.example.com/"+id ||
		st.AppInfo.UserName != "admin-"+short(id) {
		t.Fatalf("app info = %+v", st.AppInfo)
	}
	if msg := checkPassword(st.AppInfo.Password); msg != "" {
		t.Fatal(msg)
	}
	// The outcome is an event caused by the provisioner, on the create's route.
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1].Event
	if len(recs) != 2 || last.Type != instance.TypeProvisioned ||
		last.Causation != (event.Causation{Actor: Actor, Route: "/saas/demo"}) {
		t.Fatalf("events: %d, last %s caused by %+v", len(recs), last.Type, last.Causation)
	}
	// A successful provisioning is its own record: no EffectDone.
	if p := done(t, r, run, id); p.Done != 0 || p.Seq != 0 {
		t.Fatalf("progress = %+v", p)
	}
	// Every event on the instance subjects, the provisioned one included,
	// is acked.
	r.drained(t, durable)
}

// TestCreateWithBudgetIsReady is newInstance's 000000 path: with the runner
// going, a create that may wait answers from an active instance.
func TestCreateWithBudgetIsReady(t *testing.T) {
	r := newRig(t)
	b, err := NewBuiltin(DefaultBuiltinConfig())
	if err != nil {
		t.Fatal(err)
	}
	r.runner(t, nil, b, DefaultConfig())
	cause := event.Causation{Activity: "newInstance", OrderID: "o-b", OrderLineID: "l-b", BusinessID: "biz-b"}
	st, err := r.svc.Create(testContext(t), "o-b", "l-b", "biz-b", cause, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != instance.StatusActive || !st.Provisioned || st.AppInfo == nil || st.AppInfo.FrontEndURL != "https://app.example.com/biz-b" {
		t.Fatalf("create answered from %+v, want an active, provisioned instance", st)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	const failures = 3
	r := newRig(t)
	p := newCounting(func(req Request, n int) (instance.AppInfo, error) {
		if n <= failures {
			return instance.AppInfo{}, fmt.Errorf("vendor unavailable (call %d)", n)
		}
		return appFor("flaky")(req, n)
	})
	run := r.runner(t, nil, p, fastConfig())
	id := r.create(t, 1, "")

	st := r.settled(t, id)
	if st.Status != instance.StatusActive || st.AppInfo.FrontEndURL != "https://flaky.example.com/"+id {
		t.Fatalf("state = %+v", st)
	}
	run.Stop() // nothing in flight any more: the count is final
	calls := p.of(id)
	if len(calls) != failures+1 {
		t.Fatalf("provisioner called %d times, want %d", len(calls), failures+1)
	}
	for _, c := range calls {
		if c.EventID == "" || c.EventID != calls[0].EventID || c.OrderID != "o-1" || c.OrderLineID != "l-1" || c.BusinessID != id {
			t.Fatalf("requests differ between attempts or lack data: %+v", calls)
		}
	}
	// The retries ended in success: nothing parked, and no progress record
	// (effects.SuccessUnrecorded).
	r.drained(t, durable)
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: "effect", Keys: []string{Name, id}}, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("progress events %d, %v", len(recs), err)
	}
}

func TestVendorConfigErrorsAreRetriedNotRefused(t *testing.T) {
	r := newRig(t)
	p := newCounting(func(req Request, n int) (instance.AppInfo, error) {
		switch n {
		case 1: // a refusal KooGallery has no code for
			return instance.AppInfo{}, Refuse("999999", "nope")
		case 2: // app info that cannot be sent
			return instance.AppInfo{FrontEndURL: "https://x.example.com/", UserName: string(make([]byte, 80))}, nil
		case 3: // no frontEndUrl
			return instance.AppInfo{UserName: "admin"}, nil
		case 4:
			panic("vendor bug")
		}
		return appFor("fixed")(req, n)
	})
	r.runner(t, nil, p, fastConfig())
	id := r.create(t, 1, "")
	st := r.settled(t, id)
	if st.Status != instance.StatusActive || st.Failure != nil || len(p.of(id)) != 5 {
		t.Fatalf("state = %+v after %d calls", st, len(p.of(id)))
	}
}

// TestRefusalFailsInstance: a refusal is an outcome, recorded as
// InstanceProvisioningFailed; the effect is done, not parked.
func TestRefusalFailsInstance(t *testing.T) {
	r := newRig(t)
	p := newCounting(func(Request, int) (instance.AppInfo, error) {
		return instance.AppInfo{}, Refuse("000106", "sold out")
	})
	run := r.runner(t, nil, p, fastConfig())
	id := r.create(t, 1, "")

	st := r.settled(t, id)
	if st.Status != instance.StatusFailed || st.Failure == nil || *st.Failure != (instance.Failure{Code: "000106", Message: "sold out"}) {
		t.Fatalf("state = %+v", st)
	}
	if p := done(t, r, run, id); p.Done != 0 || p.Seq != 0 {
		t.Fatalf("progress = %+v (a refusal is an outcome, not parked)", p)
	}
	// KooGallery re-sends newInstance for the order: it is refused again,
	// from the log, without asking the provisioner.
	cause := event.Causation{Activity: "newInstance", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "biz-resent"}
	_, err := r.svc.Create(testContext(t), "o-1", "l-1", "biz-resent", cause, 0)
	var refused *instance.RefusedError
	if !errors.As(err, &refused) || refused.Failure.Code != "000106" || refused.Failure.Message != "sold out" {
		t.Fatalf("repeated create: err = %v", err)
	}
	run.Stop()
	if n := len(p.of(id)); n != 1 {
		t.Fatalf("provisioner called %d times, want 1", n)
	}
	if parked, err := run.ListParked(testContext(t), Name); err != nil || len(parked) != 0 {
		t.Fatalf("parked %+v, %v", parked, err)
	}
}

// TestExhaustedRetriesParkAndRedrive: after MaxAttempts failures the
// instance is parked (listed for the operators, still provisioning); a
// re-drive provisions it once the vendor is back.
func TestExhaustedRetriesParkAndRedrive(t *testing.T) {
	r := newRig(t)
	var up atomic.Bool
	p := newCounting(func(req Request, n int) (instance.AppInfo, error) {
		if !up.Load() {
			return instance.AppInfo{}, fmt.Errorf("vendor down (call %d)", n)
		}
		return appFor("back")(req, n)
	})
	cfg := fastConfig()
	cfg.Runner.MaxAttempts = 3
	run := r.runner(t, nil, p, cfg)
	id := r.create(t, 1, "")

	admin, err := effects.NewAdmin(run)
	if err != nil {
		t.Fatal(err)
	}
	var parked []effects.ParkedEffect
	eventually(t, id+" parked", func() bool {
		parked, err = admin.ListParked(testContext(t), Name)
		if err != nil {
			t.Fatal(err)
		}
		return len(parked) == 1
	})
	if pe := parked[0]; pe.InstanceID != id || pe.EventType != instance.TypeCreated || pe.Attempts != 3 || !strings.Contains(pe.Reason, "vendor down") {
		t.Fatalf("parked %+v", pe)
	}
	if st, err := r.svc.Get(testContext(t), id); err != nil || st.Status != instance.StatusProvisioning || st.Provisioned {
		t.Fatalf("parked instance %+v, %v", st, err)
	}
	if n := len(p.of(id)); n != 3 {
		t.Fatalf("provisioner called %d times, want 3", n)
	}
	r.drained(t, durable) // parked is acked: nothing left pending

	up.Store(true)
	if err := admin.Redrive(testContext(t), Name, id, "ops"); err != nil {
		t.Fatal(err)
	}
	if st, err := r.svc.Get(testContext(t), id); err != nil || !st.Provisioned || st.AppInfo.FrontEndURL != "https://back.example.com/"+id {
		t.Fatalf("after the re-drive %+v, %v", st, err)
	}
	if parked, err := admin.ListParked(testContext(t), Name); err != nil || len(parked) != 0 {
		t.Fatalf("still parked %+v, %v", parked, err)
	}
}

// TestReplicasProvisionEachInstanceOnce: two runners on one durable, as two
// replicas would run, share the work; every instance is provisioned once.
func TestReplicasProvisionEachInstanceOnce(t *testing.T) {
	const n = 20
	r := newRig(t)
	p := newCounting(appFor("shared"))
	var byA, byB atomic.Int64
	a := r.runner(t, nil, tagged{p, &byA}, fastConfig())
	b := r.runner(t, nil, tagged{p, &byB}, fastConfig())

	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = r.tryCreate(testContext(t), i, "") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if st := r.settled(t, id); st.Status != instance.StatusActive {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	a.Stop()
	b.Stop()
	for _, id := range ids {
		if c := len(p.of(id)); c != 1 {
			t.Fatalf("%s provisioned %d times", id, c)
		}
	}
	if p.total() != n || byA.Load()+byB.Load() != n {
		t.Fatalf("calls: %d (a %d, b %d), want %d", p.total(), byA.Load(), byB.Load(), n)
	}
	t.Logf("replica a handled %d, replica b %d", byA.Load(), byB.Load())
}

type tagged struct {
	p *counting
	n *atomic.Int64
}

func (t tagged) Provision(ctx context.Context, req Request) (instance.AppInfo, error) {
	t.n.Add(1)
	return t.p.Provision(ctx, req)
}

// TestRedeliveryDoesNotProvisionAgain: a consumer that sees every
// InstanceCreated again (here: the durable deleted and created anew, so it
// reads the log from the start) finds the creates done in the progress and
// never calls the provisioner; and the handler alone, given a create whose
// instance is provisioned, does not call it either.
func TestRedeliveryDoesNotProvisionAgain(t *testing.T) {
	r := newRig(t)
	first := newCounting(appFor("first"))
	run := r.runner(t, nil, first, fastConfig())
	var ids []string
	for i := range 5 {
		ids = append(ids, r.create(t, i, ""))
	}
	for _, id := range ids {
		r.settled(t, id)
		done(t, r, run, id)
	}
	run.Stop()
	if err := r.store.Stream().DeleteConsumer(testContext(t), durable); err != nil {
		t.Fatal(err)
	}

	again := newCounting(appFor("again"))
	r.runner(t, nil, again, fastConfig())
	info := r.drained(t, durable)
	if info.Delivered.Stream == 0 {
		t.Fatal("the new consumer saw nothing")
	}
	if again.total() != 0 {
		t.Fatalf("provisioned again %d times", again.total())
	}
	for _, id := range ids {
		if st, _ := r.svc.Get(testContext(t), id); st.AppInfo.FrontEndURL != "https://first.example.com/"+id {
			t.Fatalf("%s: %+v", id, st.AppInfo)
		}
	}

	h, err := NewHandler(r.svc, nil, again, 0, r.log)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{ids[0]}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(testContext(t), recs[0].Event, recs[0].Seq); err != nil || again.total() != 0 {
		t.Fatalf("handling a provisioned instance's create again: %v, %d calls", err, again.total())
	}
}

// TestUpgradeFromTheWorker: instances the provisioning worker (durable
// "provisioner") handled before the upgrade are skipped, those it had not
// handled yet are provisioned, and the worker's consumer is deleted.
func TestUpgradeFromTheWorker(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	// The worker's consumer, with the creates still pending on it.
	if _, err := r.store.Stream().CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: LegacyDurable, FilterSubject: r.store.Config().Prefix + ".instance.>", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	old := r.create(t, 1, "")
	if _, err := r.svc.RecordProvisioning(ctx, old, instance.RecordProvisioning{AppInfo: &instance.AppInfo{FrontEndURL: "https://worker.example.com/" + old}},
		event.Causation{Actor: Actor}); err != nil {
		t.Fatal(err)
	}
	pending := r.create(t, 2, "")

	c := r.store.Config()
	removed, err := RemoveLegacyConsumer(ctx, r.store.JetStream(), c.Stream)
	if err != nil || !removed {
		t.Fatalf("RemoveLegacyConsumer = %v, %v", removed, err)
	}
	if _, err := r.store.Stream().Consumer(ctx, LegacyDurable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("legacy consumer still there: %v", err)
	}
	if removed, err := RemoveLegacyConsumer(ctx, r.store.JetStream(), c.Stream); err != nil || removed {
		t.Fatalf("second RemoveLegacyConsumer = %v, %v", removed, err)
	}

	p := newCounting(appFor("runner"))
	run := r.runner(t, nil, p, fastConfig())
	if st := r.settled(t, pending); st.AppInfo.FrontEndURL != "https://runner.example.com/"+pending {
		t.Fatalf("pending instance %+v", st)
	}
	done(t, r, run, old)
	done(t, r, run, pending)
	r.drained(t, durable)
	if len(p.of(old)) != 0 || len(p.of(pending)) != 1 {
		t.Fatalf("provisioner calls: old %d, pending %d", len(p.of(old)), len(p.of(pending)))
	}
	if st, _ := r.svc.Get(ctx, old); st.AppInfo.FrontEndURL != "https://worker.example.com/"+old {
		t.Fatalf("old instance %+v", st.AppInfo)
	}
}

// TestReleasedBeforeProvisioningIsSkipped: an instance released before the
// runner got to it is not provisioned.
func TestReleasedBeforeProvisioningIsSkipped(t *testing.T) {
	r := newRig(t)
	id := r.create(t, 1, "")
	cause := event.Causation{Activity: "releaseInstance"}
	if _, err := r.svc.Execute(testContext(t), id, instance.Release{}, cause); err != nil {
		t.Fatal(err)
	}
	p := newCounting(appFor("late"))
	run := r.runner(t, nil, p, fastConfig())
	done(t, r, run, id)
	r.drained(t, durable)
	if p.total() != 0 {
		t.Fatalf("released instance provisioned (%d calls)", p.total())
	}
	if st, err := r.svc.Get(testContext(t), id); err != nil || st.Status != instance.StatusReleased || st.Provisioned {
		t.Fatalf("state = %+v, %v", st, err)
	}
}

// TestDebugCreatesAreNotProvisioned: the handler leaves a debug request's
// create alone.
func TestDebugCreatesAreNotProvisioned(t *testing.T) {
	r := newRig(t)
	p := newCounting(appFor("debug"))
	h, err := NewHandler(r.svc, nil, p, 0, r.log)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"instanceId":"biz-debug","orderId":"o","orderLineId":"l","businessId":"biz-debug"}`)
	ev := event.Envelope{ID: "e-1", Type: instance.TypeCreated, Version: 1, AggregateKind: instance.Kind, AggregateID: "biz-debug",
		Causation: event.Causation{TestFlag: true}, Data: data}
	if _, err := instance.Decode(ev.Type, ev.Version, ev.Data); err != nil {
		t.Fatalf("test event: %v", err)
	}
	if err := h.Handle(testContext(t), ev, 1); err != nil || p.total() != 0 {
		t.Fatalf("debug create: %v, %d calls", err, p.total())
	}
	if h.Wants(instance.TypeProvisioned) || !h.Wants(instance.TypeCreated) || h.Name() != Name {
		t.Fatal("the handler wants more than InstanceCreated")
	}
}

func TestResolverPicksPerRoute(t *testing.T) {
	r := newRig(t)
	special, def := newCounting(appFor("special")), newCounting(appFor("default"))
	var routes sync.Map
	resolve := func(route string) Provisioner {
		routes.Store(route, true)
		if route == "/saas/special" {
			return special
		}
		return nil
	}
	r.runner(t, resolve, def, fastConfig())
	a := r.create(t, 1, "/saas/special")
	b := r.create(t, 2, "/saas/plain")

	if st := r.settled(t, a); st.AppInfo.FrontEndURL != "https://special.example.com/"+a {
		t.Fatalf("%s: %+v", a, st.AppInfo)
	}
	if st := r.settled(t, b); st.AppInfo.FrontEndURL != "https://default.example.com/"+b {
		t.Fatalf("%s: %+v", b, st.AppInfo)
	}
	if c := special.of(a); len(c) != 1 || c[0].Route != "/saas/special" {
		t.Fatalf("special provisioner calls: %+v", c)
	}
	if len(def.of(a)) != 0 || len(special.of(b)) != 0 {
		t.Fatal("a provisioner was asked for the other route")
	}
	if _, ok := routes.Load("/saas/plain"); !ok {
		t.Fatal("resolver not asked for /saas/plain")
	}
}

// blocking holds every call until released.
type blocking struct {
	entered chan string
	release chan struct{}
}

func (b *blocking) Provision(ctx context.Context, req Request) (instance.AppInfo, error) {
	b.entered <- req.InstanceID
	select {
	case <-b.release:
		return appFor("late")(req, 1)
	case <-ctx.Done():
		return instance.AppInfo{}, ctx.Err()
	}
}

func TestStopWaitsForInFlightWork(t *testing.T) {
	r := newRig(t)
	p := &blocking{entered: make(chan string, 1), release: make(chan struct{})}
	run := r.runner(t, nil, p, DefaultConfig())
	id := r.create(t, 1, "")
	if got := <-p.entered; got != id {
		t.Fatalf("provisioning %s, want %s", got, id)
	}

	stopped := make(chan struct{})
	go func() {
		run.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a provisioning was in flight")
	default:
	}
	close(p.release)
	<-stopped
	// Stop returned after the outcome was recorded: no polling needed.
	st, err := r.svc.Get(testContext(t), id)
	if err != nil || !st.Provisioned || st.AppInfo.FrontEndURL != "https://late.example.com/"+id {
		t.Fatalf("after Stop: %+v, %v", st, err)
	}
	if pr, err := run.Progress(testContext(t), id); err != nil || pr.Done != 0 || len(pr.Parked) != 0 {
		t.Fatalf("after Stop: progress %+v, %v", pr, err)
	}
	if err := run.Start(testContext(t)); err == nil {
		t.Fatal("a stopped runner started again")
	}
}

// TestStopHandsBackUnstartedMessages: a message received while every slot
// is busy is handed back on Stop, and another replica takes it at once.
func TestStopHandsBackUnstartedMessages(t *testing.T) {
	r := newRig(t)
	cfg := DefaultConfig()
	cfg.Runner.Concurrency, cfg.Runner.AckWait = 1, 10*time.Minute // no redelivery by AckWait during the test
	p := &blocking{entered: make(chan string, 2), release: make(chan struct{})}
	run := r.runner(t, nil, p, cfg)
	first := r.create(t, 1, "")
	if got := <-p.entered; got != first {
		t.Fatalf("provisioning %s first", got)
	}
	second := r.create(t, 2, "")
	// Both delivered: the second waits in the runner for the one slot.
	eventually(t, "both creates are delivered", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testContext(t))
		return err == nil && info.NumAckPending == 2
	})
	stopped := make(chan struct{})
	go func() {
		run.Stop()
		close(stopped)
	}()
	close(p.release)
	<-stopped
	if st, _ := r.svc.Get(testContext(t), first); !st.Provisioned {
		t.Fatalf("in-flight %s not finished by Stop: %+v", first, st)
	}
	if st, _ := r.svc.Get(testContext(t), second); st.Provisioned {
		t.Fatalf("%s was started after Stop began", second)
	}
	r.runner(t, nil, newCounting(appFor("takeover")), cfg)
	if st := r.settled(t, second); st.AppInfo.FrontEndURL != "https://takeover.example.com/"+second {
		t.Fatalf("state = %+v", st)
	}
}

// TestCancelHandsWorkToAnotherReplica: cancelling Start's context aborts
// the attempt in flight and hands the event back at once; another replica
// provisions it.
func TestCancelHandsWorkToAnotherReplica(t *testing.T) {
	r := newRig(t)
	// With this AckWait only a message handed back at once can be
	// redelivered before the test's deadline.
	cfg := DefaultConfig()
	cfg.Runner.AckWait = 10 * time.Minute
	p := &blocking{entered: make(chan string, 1), release: make(chan struct{})}
	run := r.newRunner(t, nil, p, cfg)
	ctx, cancel := context.WithCancel(testContext(t))
	if err := run.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id := r.create(t, 1, "")
	<-p.entered
	cancel()
	run.Stop() // returns once the aborted attempt has handed the message back

	r.runner(t, nil, newCounting(appFor("takeover")), cfg)
	if st := r.settled(t, id); st.AppInfo.FrontEndURL != "https://takeover.example.com/"+id {
		t.Fatalf("state = %+v", st)
	}
}

// TestPoisonMessages: an undecodable message is terminated; a create whose
// data cannot be decoded is parked at once (retrying cannot help); the
// instances after them are provisioned.
func TestPoisonMessages(t *testing.T) {
	r := newRig(t)
	js, err := jetstream.New(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	prefix := r.store.Config().Prefix
	for subj, body := range map[string]string{
		prefix + ".instance.junk":  "not json",
		prefix + ".instance.junk2": `{"id":"x","type":"InstanceCreated","v":9,"kind":"instance","aggregateId":"junk2","data":{}}`,
	} {
		if _, err := js.Publish(testContext(t), subj, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// JetStream announces every terminated message.
	terminated := make(chan *nats.Msg, 10)
	sub, err := r.nc.ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+r.store.Config().Stream+"."+durable, terminated)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	p := newCounting(appFor("after"))
	run := r.runner(t, nil, p, fastConfig())
	id := r.create(t, 1, "")
	r.settled(t, id)
	// Drained: a poison message that was retried would stay ack-pending.
	r.drained(t, durable)
	select {
	case <-terminated:
	case <-testContext(t).Done():
		t.Fatal("undecodable message not terminated")
	}
	parked, err := run.ListParked(testContext(t), Name)
	if err != nil || len(parked) != 1 || parked[0].InstanceID != "junk2" || parked[0].Attempts != 1 {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	if p.total() != 1 {
		t.Fatalf("provisioner calls = %d", p.total())
	}
}

func TestNewRunnerRejects(t *testing.T) {
	r := newRig(t)
	b, _ := NewBuiltin(DefaultBuiltinConfig())
	js, c := r.store.JetStream(), r.store.Config()
	if _, err := NewRunner(js, r.store, c.Stream, "bad prefix", r.svc, nil, b, Config{}, nil); err == nil {
		t.Fatal("bad prefix accepted")
	}
	if _, err := NewRunner(js, r.store, c.Stream, c.Prefix, r.svc, nil, nil, Config{}, nil); err == nil {
		t.Fatal("nil default provisioner accepted")
	}
	if _, err := NewRunner(js, r.store, c.Stream, c.Prefix, nil, nil, b, Config{}, nil); err == nil {
		t.Fatal("nil recorder accepted")
	}
	if _, err := NewRunner(js, r.store, c.Stream, c.Prefix, r.svc, nil, b, Config{Runner: effects.RunnerConfig{Concurrency: -1}}, nil); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := NewRunner(js, r.store, c.Stream, c.Prefix, r.svc, nil, b, Config{ProvisionTimeout: -time.Second}, nil); err == nil {
		t.Fatal("negative provision timeout accepted")
	}
	run, err := NewRunner(js, r.store, c.Stream, c.Prefix, r.svc, nil, b, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if run.Config() != DefaultRunnerConfig() {
		t.Fatalf("effective config = %+v", run.Config())
	}
	run.Stop() // never started: returns at once
}
