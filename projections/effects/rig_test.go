package effects_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gallerist/gallerist/internal/testenv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/webhook"
)

// route is the production route of the test instances; the vendor's
// webhook is configured for it.
const route = "/koogallery/test"

// rig is one test's world: an embedded nats-server on a temporary
// directory, the JetStream event store, the instance service and a vendor
// webhook endpoint.
type rig struct {
	nc     *nats.Conn
	store  *eventstore.JetStreamStore
	svc    *instances.Service
	vendor *vendor
	log    *slog.Logger
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newRig(t *testing.T) *rig {
	t.Helper()
	log := testLogger()
	env := testenv.Instances(t, log)
	nc, store, svc := env.NC, env.Store, env.Svc
	return &rig{nc: nc, store: store, svc: svc, vendor: newVendor(t), log: log}
}

// fastConfig retries quickly so that tests of retries finish soon.
func fastConfig() effects.RunnerConfig {
	return effects.RunnerConfig{
		RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond, MaxAttempts: 5,
		Concurrency: 8, AckWait: 5 * time.Second, TurnWaitMax: 50 * time.Millisecond,
	}
}

// notifier is the webhook effect aimed at the rig's vendor.
func (r *rig) notifier(t *testing.T) *webhook.Notifier {
	t.Helper()
	n, err := webhook.NewNotifier(r.resolver(), r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *rig) resolver() webhook.Resolver {
	return func(rt string) (webhook.Config, bool) {
		if rt != route {
			return webhook.Config{}, false
		}
		return webhook.Config{URL: r.vendor.srv.URL + "/hook", Secret: r.vendor.secret, Timeout: 5 * time.Second}, true
	}
}

// newRunner builds a runner of h; it is not started.
func (r *rig) newRunner(t *testing.T, h effects.Handler, cfg effects.RunnerConfig) *effects.Runner {
	t.Helper()
	c := r.store.Config()
	run, err := effects.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, h, cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// runner builds and starts a runner of h; it is stopped at cleanup.
func (r *rig) runner(t *testing.T, h effects.Handler, cfg effects.RunnerConfig) *effects.Runner {
	t.Helper()
	run := r.newRunner(t, h, cfg)
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	return run
}

// create is newInstance for order o-<tag> on the test route; it returns
// the instance id.
func (r *rig) create(t *testing.T, tag string) string {
	t.Helper()
	id := "biz-" + tag
	cause := event.Causation{Activity: "newInstance", OrderID: "o-" + tag, OrderLineID: "l-" + tag, BusinessID: id, Route: route}
	st, err := r.svc.Create(testContext(t), cause.OrderID, cause.OrderLineID, id, cause, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != id {
		t.Fatalf("created %q, want %q", st.ID, id)
	}
	return id
}

func (r *rig) setStatus(t *testing.T, id string, target instance.Target) {
	t.Helper()
	cause := event.Causation{Activity: "updateInstanceStatus", Route: route}
	if _, err := r.svc.Execute(testContext(t), id, instance.SetStatus{Target: target}, cause); err != nil {
		t.Fatal(err)
	}
}

// events returns the instance's events (type and sequence), oldest first.
func (r *rig) events(t *testing.T, id string) []eventstore.Record {
	t.Helper()
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// progressEvents returns the types of the effect's progress events of id.
func (r *rig) progressEvents(t *testing.T, name, id string) []string {
	t.Helper()
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: effect.Kind, Keys: []string{name, id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rec := range recs {
		out = append(out, rec.Event.Type)
	}
	return out
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

// progress polls the runner's progress of id until cond holds.
func progress(t *testing.T, run *effects.Runner, id, what string, cond func(effects.Progress) bool) effects.Progress {
	t.Helper()
	var p effects.Progress
	eventually(t, id+": "+what, func() bool {
		var err error
		p, err = run.Progress(testContext(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return cond(p)
	})
	return p
}

// doneThrough reports whether every event of the instance up to seq is
// handled and nothing is parked.
func doneThrough(seq uint64) func(effects.Progress) bool {
	return func(p effects.Progress) bool { return p.Cursor >= seq && len(p.Parked) == 0 }
}

// call is one request the vendor received. arrived and answered are
// ticks of one clock shared by every call of the vendor.
type call struct {
	n                 webhook.Notification
	idemKey           string
	signature         bool
	status            int
	arrived, answered int
}

// vendor is a webhook endpoint that verifies every signature and answers
// what answer says (200 by default); gate, when set, is waited on before
// answering.
type vendor struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte

	mu       sync.Mutex
	clock    int
	calls    []call
	attempts map[string]int // per event id
	answer   func(n webhook.Notification, attempt int) int
	gate     func(n webhook.Notification) <-chan struct{}
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{t: t, secret: []byte("test-secret-0123456789abcdef"), attempts: map[string]int{}}
	v.srv = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c := call{idemKey: req.Header.Get(webhook.HeaderIdempotencyKey)}
	c.signature = webhook.Verify(v.secret, req.Header.Get(webhook.HeaderSignature), body) == nil
	if err := json.Unmarshal(body, &c.n); err != nil {
		v.t.Errorf("vendor: undecodable body %q: %v", body, err)
	}
	v.mu.Lock()
	v.clock++
	c.arrived = v.clock
	v.attempts[c.n.EventID]++
	attempt := v.attempts[c.n.EventID]
	answer, gate := v.answer, v.gate
	v.mu.Unlock()
	if gate != nil {
		if ch := gate(c.n); ch != nil {
			<-ch
		}
	}
	c.status = http.StatusOK
	if !c.signature {
		c.status = http.StatusUnauthorized
	} else if answer != nil {
		c.status = answer(c.n, attempt)
	}
	v.mu.Lock()
	v.clock++
	c.answered = v.clock
	v.calls = append(v.calls, c)
	v.mu.Unlock()
	w.WriteHeader(c.status)
	fmt.Fprintf(w, `{"status":%d}`, c.status)
}

func (v *vendor) setAnswer(f func(n webhook.Notification, attempt int) int) {
	v.mu.Lock()
	v.answer = f
	v.mu.Unlock()
}

func (v *vendor) setGate(f func(n webhook.Notification) <-chan struct{}) {
	v.mu.Lock()
	v.gate = f
	v.mu.Unlock()
}

// received returns the calls answered so far, in the order they were
// answered.
func (v *vendor) received() []call {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]call(nil), v.calls...)
}

// of returns the answered calls about instance id.
func (v *vendor) of(id string) []call {
	var out []call
	for _, c := range v.received() {
		if c.n.InstanceID == id {
			out = append(out, c)
		}
	}
	return out
}

// types lists the event types of calls.
func types(calls []call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.n.EventType)
	}
	return out
}

// checkOrder fails the test if an event of an instance arrived at the
// vendor before every earlier event of that instance that the vendor ever
// received had been answered 2xx.
func checkOrder(t *testing.T, calls []call) {
	t.Helper()
	for _, c := range calls {
		for _, prev := range calls {
			if prev.n.InstanceID != c.n.InstanceID || prev.n.Sequence >= c.n.Sequence {
				continue
			}
			accepted := false
			for _, p := range calls {
				if p.n.EventID == prev.n.EventID && p.status/100 == 2 && p.answered < c.arrived {
					accepted = true
					break
				}
			}
			if !accepted {
				t.Fatalf("instance %s: %s (seq %d) reached the vendor before %s (seq %d) was accepted",
					c.n.InstanceID, c.n.EventType, c.n.Sequence, prev.n.EventType, prev.n.Sequence)
			}
		}
	}
}
