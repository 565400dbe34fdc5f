package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/gallerist/gallerist/internal/testenv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/provision"
	"github.com/gallerist/gallerist/projections/webhook"
)

var secret = []byte("vendor-secret-0123456789abcdef")

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
	return &rig{nc: nc, store: store, svc: svc, log: log}
}

func (r *rig) create(t *testing.T, tag, route string) (string, eventstore.Record) {
	t.Helper()
	id := "biz-" + tag
	cause := event.Causation{Activity: "newInstance", OrderID: "o-" + tag, OrderLineID: "l-" + tag, BusinessID: id, Route: route}
	if _, err := r.svc.Create(testContext(t), cause.OrderID, cause.OrderLineID, id, cause, 0); err != nil {
		t.Fatal(err)
	}
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return id, recs[0]
}

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

// request is one request as the vendor received it.
type request struct {
	header http.Header
	body   []byte
	n      webhook.Notification
	status int
}

// endpoint is a vendor endpoint answering with answer (status, body).
type endpoint struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(n webhook.Notification, attempt int) (int, string)
}

func newEndpoint(t *testing.T, answer func(n webhook.Notification, attempt int) (int, string)) *endpoint {
	e := &endpoint{answer: answer}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rq := request{header: req.Header.Clone(), body: body}
		if req.Method != http.MethodPost {
			t.Errorf("method %s", req.Method)
		}
		if err := json.Unmarshal(body, &rq.n); err != nil {
			t.Errorf("undecodable body %q", body)
		}
		e.mu.Lock()
		attempt := 1
		for _, p := range e.reqs {
			if p.n.EventID == rq.n.EventID {
				attempt++
			}
		}
		e.mu.Unlock()
		status, answer := http.StatusOK, ""
		if webhook.Verify(secret, req.Header.Get(webhook.HeaderSignature), body) != nil {
			status = http.StatusUnauthorized
		} else if e.answer != nil {
			status, answer = e.answer(rq.n, attempt)
		}
		rq.status = status
		e.mu.Lock()
		e.reqs = append(e.reqs, rq)
		e.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) received() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reqs)
}

func resolverFor(routes map[string]webhook.Config) webhook.Resolver {
	return func(route string) (webhook.Config, bool) {
		c, ok := routes[route]
		return c, ok
	}
}

func TestNotificationIsSignedWithIdempotencyKey(t *testing.T) {
	r := newRig(t)
	ep := newEndpoint(t, nil)
	n, err := webhook.NewNotifier(resolverFor(map[string]webhook.Config{"/p": {URL: ep.srv.URL + "/hook?token=x", Secret: secret}}), r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, created := r.create(t, "1", "/p")
	if err := n.Handle(testContext(t), created.Event, created.Seq); err != nil {
		t.Fatal(err)
	}
	reqs := ep.received()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	got := reqs[0]
	ev := created.Event
	for name, want := range map[string]string{
		"Content-Type":         "application/json",
		"Gallerist-Event-Id":   ev.ID,
		"Gallerist-Event-Type": instance.TypeCreated,
		"Idempotency-Key":      ev.ID,
		"Gallerist-Signature":  webhook.Sign(secret, got.body),
	} {
		if v := got.header.Get(name); v != want {
			t.Errorf("header %s = %q, want %q", name, v, want)
		}
	}
	if sig := got.header.Get(webhook.HeaderSignature); !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 || strings.ToLower(sig) != sig {
		t.Errorf("signature %q is not sha256=<64 lower-case hex>", sig)
	}
	if err := webhook.Verify(secret, got.header.Get(webhook.HeaderSignature), got.body); err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(got.body, &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"causation", "data", "eventId", "eventType", "instanceId", "occurredAt", "route", "sequence"}; !slices.Equal(keys, want) {
		t.Fatalf("body fields %v, want %v", keys, want)
	}
	var data instance.Created
	if err := json.Unmarshal(got.n.Data, &data); err != nil {
		t.Fatal(err)
	}
	if got.n.EventID != ev.ID || got.n.EventType != instance.TypeCreated || got.n.Sequence != created.Seq ||
		got.n.InstanceID != id || got.n.Route != "/p" || !got.n.OccurredAt.Equal(ev.OccurredAt) ||
		got.n.Causation != ev.Causation || data != (instance.Created{InstanceID: id, OrderID: "o-1", OrderLineID: "l-1", BusinessID: id}) {
		t.Fatalf("notification %+v (data %+v), event %+v", got.n, data, ev)
	}

	// Verify rejects everything else.
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
	}{
		"other secret":  {[]byte("another-secret-0123456789"), webhook.Sign(secret, got.body), got.body},
		"tampered body": {secret, webhook.Sign(secret, got.body), append(slices.Clone(got.body), ' ')},
		"no prefix":     {secret, strings.TrimPrefix(webhook.Sign(secret, got.body), "sha256="), got.body},
		"not hex":       {secret, "sha256=" + strings.Repeat("z", 64), got.body},
		"short":         {secret, webhook.Sign(secret, got.body)[:40], got.body},
		"empty":         {secret, "", got.body},
	} {
		if err := webhook.Verify(c.secret, c.header, c.body); !errors.Is(err, webhook.ErrBadSignature) {
			t.Errorf("%s: Verify = %v", name, err)
		}
	}
}

func TestAnswersAreClassified(t *testing.T) {
	r := newRig(t)
	_, created := r.create(t, "1", "/p")
	var status int
	ep := newEndpoint(t, func(webhook.Notification, int) (int, string) { return status, "vendor says\nno" })
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body) // then the server notices the client hanging up
		<-req.Context().Done()      // answers only when the client gave up
	}))
	t.Cleanup(slow.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	handle := func(cfg webhook.Config) error {
		cfg.Secret = secret
		n, err := webhook.NewNotifier(resolverFor(map[string]webhook.Config{"/p": cfg}), r.store, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n.Handle(testContext(t), created.Event, created.Seq)
	}
	for _, c := range []struct {
		status    int
		ok, retry bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{408, false, true}, {429, false, true}, {500, false, true}, {502, false, true}, {503, false, true},
		{301, false, false}, {307, false, false}, {400, false, false}, {401, false, false}, {404, false, false}, {410, false, false},
	} {
		status = c.status
		err := handle(webhook.Config{URL: ep.srv.URL})
		switch {
		case c.ok && err != nil, !c.ok && err == nil:
			t.Errorf("HTTP %d: err = %v", c.status, err)
		case err != nil && effects.IsPermanent(err) == c.retry:
			t.Errorf("HTTP %d: permanent = %v, want %v (%v)", c.status, effects.IsPermanent(err), !c.retry, err)
		case err != nil && !strings.Contains(err.Error(), "vendor says no"):
			t.Errorf("HTTP %d: the error does not quote the answer: %v", c.status, err)
		}
	}
	for name, cfg := range map[string]webhook.Config{
		"connection refused": {URL: closed.URL},
		"timeout":            {URL: slow.URL, Timeout: 50 * time.Millisecond},
	} {
		if err := handle(cfg); err == nil || effects.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a retryable error", name, err)
		}
	}
	if err := handle(webhook.Config{URL: "ftp://x"}); !effects.IsPermanent(err) {
		t.Errorf("a broken route config: err = %v, want permanent", err)
	}
	if err := handle(webhook.Config{URL: ep.srv.URL + "/?token=s3cr3t"}); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("the error names the URL's query: %v", err)
	}
}

func TestUnconfiguredRoutesAndDebugEventsAreSkipped(t *testing.T) {
	r := newRig(t)
	ep := newEndpoint(t, nil)
	n, err := webhook.NewNotifier(resolverFor(map[string]webhook.Config{"/p": {URL: ep.srv.URL, Secret: secret}}), r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, other := r.create(t, "1", "/other")
	if err := n.Handle(testContext(t), other.Event, other.Seq); err != nil {
		t.Fatal(err)
	}
	_, created := r.create(t, "2", "/p")
	debug := created.Event
	debug.Causation.TestFlag = true
	if err := n.Handle(testContext(t), debug, created.Seq); err != nil {
		t.Fatal(err)
	}
	if len(ep.received()) != 0 {
		t.Fatalf("%d requests", len(ep.received()))
	}
	for _, typ := range webhook.NotifiedTypes {
		if !n.Wants(typ) {
			t.Errorf("does not want %s", typ)
		}
	}
	if n.Wants(instance.TypeOrderQueried) || n.Name() != "webhook" {
		t.Error("wants the order-queried event, or is misnamed")
	}
	if (webhook.Config{URL: "https://v.example/h", Secret: []byte("short")}).Validate() == nil {
		t.Error("a short secret was accepted")
	}
}

func TestProvisionerReadsAppInfoAndRefusals(t *testing.T) {
	r := newRig(t)
	var status int
	var answer string
	ep := newEndpoint(t, func(webhook.Notification, int) (int, string) { return status, answer })
	routes := map[string]webhook.Config{
		"/prov":   {URL: ep.srv.URL, Secret: secret, Provisioning: true},
		"/notify": {URL: ep.srv.URL, Secret: secret},
	}
	p, err := webhook.NewProvisioner(resolverFor(routes), r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Resolver(); res("/prov") == nil || res("/notify") != nil || res("/none") != nil {
		t.Fatal("the resolver picks the webhook provisioner on other routes than provisioning ones")
	}
	id, created := r.create(t, "1", "/prov")
	req := provision.Request{EventID: created.Event.ID, InstanceID: id, OrderID: "o-1", OrderLineID: "l-1", BusinessID: id, Route: "/prov"}

	status, answer = 200, `{"frontEndUrl":"https://t.example/1","adminUrl":"https://a.example/1","userName":"u","password":"p","memo":"备注","extra":1}`
	app, err := p.Provision(testContext(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if app != (instance.AppInfo{FrontEndURL: "https://t.example/1", AdminURL: "https://a.example/1", UserName: "u", Password: "p", Memo: "备注"}) {
		t.Fatalf("app info %+v", app)
	}
	got := ep.received()[0]
	if got.n.EventID != created.Event.ID || got.n.EventType != instance.TypeCreated || got.n.Sequence != created.Seq ||
		got.header.Get(webhook.HeaderIdempotencyKey) != created.Event.ID {
		t.Fatalf("provisioning request %+v", got)
	}

	for _, st := range []int{409, 422} {
		status, answer = st, `{"resultCode":"000106","message":"sold out"}`
		_, err = p.Provision(testContext(t), req)
		var refused *provision.RefusedError
		if !errors.As(err, &refused) || refused.Code != "000106" || refused.Message != "sold out" {
			t.Fatalf("HTTP %d refusal: %v", st, err)
		}
	}
	for _, c := range []struct {
		status int
		answer string
	}{
		{409, `{"resultCode":"000000","message":"?"}`}, {422, `not json`}, {500, ``}, {400, `{}`}, {200, `[1]`},
	} {
		status, answer = c.status, c.answer
		_, err = p.Provision(testContext(t), req)
		var refused *provision.RefusedError
		if err == nil || errors.As(err, &refused) {
			t.Errorf("HTTP %d %s: err = %v, want a plain (retried) error", c.status, c.answer, err)
		}
	}
	if _, err := p.Provision(testContext(t), provision.Request{EventID: "x", InstanceID: id, Route: "/notify"}); err == nil {
		t.Error("provisioned on a route without a provisioning webhook")
	}
}

// TestProvisioningRoute runs the provisioning effect with the webhook
// provisioner and the notifier effect together: the vendor creates the
// tenants of the provisioning route (after failing twice), refuses one,
// and hears about every later event only after the creation; the other
// route keeps the built-in provisioner.
func TestProvisioningRoute(t *testing.T) {
	r := newRig(t)
	frozen := make(chan struct{}) // closed once the freeze is in the log
	ep := newEndpoint(t, func(n webhook.Notification, attempt int) (int, string) {
		switch {
		case n.EventType != instance.TypeCreated:
			return http.StatusNoContent, ""
		case n.InstanceID == "biz-refused":
			return http.StatusConflict, `{"resultCode":"000100","message":"no resource"}`
		case n.InstanceID == "biz-vendored" && attempt == 1:
			select { // the outcome must come after the freeze
			case <-frozen:
			case <-time.After(30 * time.Second):
			}
			return http.StatusServiceUnavailable, "busy"
		case n.InstanceID == "biz-vendored" && attempt == 2:
			return http.StatusServiceUnavailable, "busy"
		case n.InstanceID != "biz-vendored":
			return http.StatusNoContent, "" // a notification of the built-in route
		}
		return http.StatusOK, `{"frontEndUrl":"https://vendor.example/` + n.InstanceID + `","userName":"admin","password":"pw"}`
	})
	routes := resolverFor(map[string]webhook.Config{
		"/prov":   {URL: ep.srv.URL, Secret: secret, Provisioning: true},
		"/notify": {URL: ep.srv.URL, Secret: secret},
	})
	prov, err := webhook.NewProvisioner(routes, r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := provision.NewBuiltin(provision.DefaultBuiltinConfig())
	if err != nil {
		t.Fatal(err)
	}
	pcfg := provision.DefaultConfig()
	pcfg.Runner.RetryBase, pcfg.Runner.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	c := r.store.Config()
	w, err := provision.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, r.svc, prov.Resolver(), builtin, pcfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	notifier, err := webhook.NewNotifier(routes, r.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := effects.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, notifier, effects.RunnerConfig{
		RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond, MaxAttempts: 5, AckWait: 5 * time.Second, TurnWaitMax: 50 * time.Millisecond,
	}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)

	freeze := func(id, route string) {
		if _, err := r.svc.Execute(testContext(t), id, instance.SetStatus{Target: instance.TargetFreeze}, event.Causation{Route: route}); err != nil {
			t.Fatal(err)
		}
	}
	vendored, _ := r.create(t, "vendored", "/prov")
	freeze(vendored, "/prov") // while the vendor is still failing the creation
	close(frozen)
	refused, _ := r.create(t, "refused", "/prov")
	local, _ := r.create(t, "local", "/notify")

	lastDone := func(id string) {
		t.Helper()
		eventually(t, id+" fully notified", func() bool {
			// Settled first: until the provisioning outcome is in the log, the
			// last event may be an earlier one the notifier already handled.
			st, err := r.svc.Get(testContext(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Provisioned && st.Status != instance.StatusFailed {
				return false
			}
			recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
			if err != nil {
				t.Fatal(err)
			}
			p, err := run.Progress(testContext(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Parked) != 0 {
				t.Fatalf("%s parked: %+v", id, p.Parked)
			}
			last := recs[len(recs)-1]
			return p.Cursor == last.Seq && last.Event.Type != instance.TypeCreated
		})
	}
	lastDone(vendored)
	lastDone(refused)
	lastDone(local)

	st, err := r.svc.Get(testContext(t), vendored)
	if err != nil {
		t.Fatal(err)
	}
	if st.AppInfo == nil || st.AppInfo.FrontEndURL != "https://vendor.example/"+vendored || st.Status != instance.StatusFrozen {
		t.Fatalf("vendored instance %+v", st)
	}
	st, err = r.svc.Get(testContext(t), refused)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != instance.StatusFailed || st.Failure == nil || *st.Failure != (instance.Failure{Code: "000100", Message: "no resource"}) {
		t.Fatalf("refused instance %+v", st)
	}
	st, err = r.svc.Get(testContext(t), local)
	if err != nil {
		t.Fatal(err)
	}
	if st.AppInfo == nil || st.AppInfo.FrontEndURL != "https://app.example.com/"+local {
		t.Fatalf("built-in instance %+v", st)
	}

	byInstance := map[string][]request{}
	for _, rq := range ep.received() {
		byInstance[rq.n.InstanceID] = append(byInstance[rq.n.InstanceID], rq)
	}
	want := map[string][]string{
		// the creation three times (the provisioner's retries), then the
		// notifications; the freeze came before the outcome in the log.
		vendored: {instance.TypeCreated, instance.TypeCreated, instance.TypeCreated, instance.TypeFrozen, instance.TypeProvisioned},
		refused:  {instance.TypeCreated, instance.TypeProvisioningFailed},
		local:    {instance.TypeCreated, instance.TypeProvisioned},
	}
	for id, w := range want {
		var got []string
		for _, rq := range byInstance[id] {
			got = append(got, rq.n.EventType)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: vendor received %v, want %v", id, got, w)
		}
	}
	creations := byInstance[vendored][:3]
	for _, rq := range creations {
		if rq.n.EventID != creations[0].n.EventID || rq.header.Get(webhook.HeaderIdempotencyKey) != creations[0].n.EventID {
			t.Fatal("the creation's retries differ in event id or idempotency key")
		}
	}
}
