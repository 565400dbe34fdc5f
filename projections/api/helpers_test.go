package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/gallerist/gallerist/internal/pgtest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/projections/views"
)

// The tokens of the test servers.
const (
	token      = "test-token-0123456789abcdef"
	otherToken = "rotated-token-ABCDEFGHIJKLMNOP"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// ---- the log fixture: one embedded NATS and one event log for the package ----

// The days of the fixture (UTC).
var (
	day1 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	day2 = day1.AddDate(0, 0, 1)
	day4 = day1.AddDate(0, 0, 3) // day 3 (2026-03-04) has no event
)

func at(day time.Time, hh, mm int) time.Time {
	return day.Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}

// spec is one instance of the fixture and the commands it goes through.
type spec struct {
	id      string
	created time.Time
	info    *instance.OrderInfo // recorded 10 ms after the creation
	latency time.Duration       // provisioned this long after the creation; 0: never
	failure *instance.Failure   // provisioning refused 1 s after the creation
	frozen  time.Time           // frozen then, if set
	release time.Time           // released then, if set
	formal  time.Time           // refreshed TRIAL_TO_FORMAL then (expireTime formalExpire), if set
}

var formalExpire = time.Date(2027, 3, 5, 0, 0, 0, 0, time.UTC)

func info(product, sku, charging, customer, orderType string, expire time.Time) *instance.OrderInfo {
	return &instance.OrderInfo{ProductID: product, SKUCode: sku, ChargingMode: charging, CustomerID: customer, OrderType: orderType, ExpireTime: expire}
}

// specs is the fixture. i01 and i02 are created at the same instant (the
// listing's tie-break on instanceId); i08's id needs escaping in a path.
var specs = []spec{
	{id: "i01", created: at(day1, 9, 0), info: info("P1", "SKU-A", "PERIOD", "C1", "NEW", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)), latency: 100 * time.Millisecond},
	{id: "i02", created: at(day1, 9, 0), info: info("P1", "SKU-B", "ON_DEMAND", "C2", "TRIAL", time.Time{}), latency: 200 * time.Millisecond},
	{id: "i03", created: at(day1, 10, 0), info: info("P2", "SKU-A", "PERIOD", "C1", "NEW", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)), latency: 300 * time.Millisecond, frozen: at(day2, 8, 0)},
	{id: "i04", created: at(day1, 11, 0), info: info("P2", "SKU-C", "ONE_TIME", "C3", "NEW", time.Time{}), failure: &instance.Failure{Code: "000100", Message: `=HYPERLINK("http://evil")`}},
	{id: "i05", created: at(day2, 9, 0), info: info("P1", "SKU-A", "PERIOD", "C2", "NEW", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)), latency: 400 * time.Millisecond, release: at(day4, 10, 0)},
	{id: "i06", created: at(day2, 12, 0)},
	{id: "i07", created: at(day4, 8, 0), info: info("P3", "SKU-D", "PERIOD", "C4", "TRIAL", time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)), latency: 500 * time.Millisecond, formal: at(day4, 12, 0)},
	{id: "i08/é x", created: at(day4, 9, 0), info: info("P1", "SKU-B", "ON_DEMAND", "C3", "NEW", time.Time{}), latency: time.Second},
}

func password(id string) string { return "pw-" + id + "-S3cret!" }

// parkedSpec is a progress event of an effect, appended to the log.
type parkedSpec struct {
	effect, instance, typ string
	at                    time.Time
	attempts              int
	reason, operator      string
}

// parkedSpecs: what stays parked is webhook/i01, queryorder/i01 and
// webhook/i05 (i02's was re-driven, i03's done).
var parkedSpecs = []parkedSpec{
	{effect: "webhook", instance: "i01", typ: effect.TypeParked, at: at(day4, 13, 0), attempts: 5, reason: "vendor answered 500"},
	{effect: "webhook", instance: "i02", typ: effect.TypeParked, at: at(day4, 13, 1), attempts: 5, reason: "vendor answered 502"},
	{effect: "queryorder", instance: "i01", typ: effect.TypeParked, at: at(day4, 13, 2), attempts: 3, reason: "timeout"},
	{effect: "webhook", instance: "i03", typ: effect.TypeParked, at: at(day4, 13, 3), attempts: 0, reason: "held back"},
	{effect: "webhook", instance: "i05", typ: effect.TypeParked, at: at(day4, 13, 4), attempts: 2, reason: "connection refused"},
	{effect: "webhook", instance: "i02", typ: effect.TypeRedriven, at: at(day4, 13, 5), operator: "alice"},
	{effect: "webhook", instance: "i03", typ: effect.TypeDone, at: at(day4, 13, 6), attempts: 1},
}

// fixture is the shared log.
type fixture struct {
	embedded *bus.Embedded
	nc       *nats.Conn
	store    *eventstore.JetStreamStore
	svc      *instances.Service
	lastSeq  uint64
	// provisionedSeq is the sequence of each instance's InstanceProvisioned.
	provisionedSeq map[string]uint64
}

var fx *fixture

// clock is the instances' clock: the fixture sets it before each command.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gallerist-api-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fx, err = buildFixture(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the log fixture:", err)
		os.Exit(1)
	}
	code := m.Run()
	fx.svc.Close()
	fx.nc.Close()
	fx.embedded.Shutdown()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func buildFixture(dir string) (*fixture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := testLogger()
	// A long sync interval keeps nats-server's unlocked first sync timer
	// from firing during a race-detector run (docs/decisions.md).
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: dir, SyncInterval: time.Hour}, log)
	if err != nil {
		return nil, err
	}
	f := &fixture{embedded: e, provisionedSeq: map[string]uint64{}}
	if f.nc, err = e.Connect(); err != nil {
		return nil, err
	}
	if f.store, err = eventstore.OpenJetStream(ctx, f.nc, eventstore.JetStreamConfig{Stream: "APITEST", Prefix: "apitest"}, log); err != nil {
		return nil, err
	}
	clk := &clock{}
	cfg := instances.Config{Prefix: "apitest", Aggregate: aggregate.Config{CacheSize: 1000, MaxRetries: 8, Now: clk.Now}}
	if f.svc, err = instances.New(f.store, f.nc, cfg, log); err != nil {
		return nil, err
	}
	for _, s := range specs {
		cause := event.Causation{Activity: "newInstance", OrderID: "o-" + s.id, OrderLineID: "l-" + s.id, BusinessID: s.id, Route: "/saas"}
		clk.set(s.created)
		st, err := f.svc.Create(ctx, cause.OrderID, cause.OrderLineID, s.id, cause, 0)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", s.id, err)
		}
		if st.ID != s.id {
			return nil, fmt.Errorf("created %q, want %q", st.ID, s.id)
		}
		actor := func(a string) event.Causation { return event.Causation{Actor: a} }
		if s.info != nil {
			in := *s.info
			in.OrderID, in.OrderLineID = cause.OrderID, cause.OrderLineID
			clk.set(s.created.Add(10 * time.Millisecond))
			if _, err := f.svc.Execute(ctx, s.id, instance.RecordOrderInfo{Info: in}, actor("queryorder")); err != nil {
				return nil, fmt.Errorf("order info %s: %w", s.id, err)
			}
		}
		if s.latency > 0 {
			clk.set(s.created.Add(s.latency))
			app := &instance.AppInfo{FrontEndURL: "https://app.example/" + s.id, UserName: "admin", Password: password(s.id)}
			if _, err := f.svc.RecordProvisioning(ctx, s.id, instance.RecordProvisioning{AppInfo: app}, actor("provisioner")); err != nil {
				return nil, fmt.Errorf("provision %s: %w", s.id, err)
			}
			last, err := f.store.Last(ctx, eventstore.StreamID{Kind: instance.Kind, Keys: []string{s.id}})
			if err != nil {
				return nil, err
			}
			f.provisionedSeq[s.id] = last
		}
		if s.failure != nil {
			clk.set(s.created.Add(time.Second))
			if _, err := f.svc.RecordProvisioning(ctx, s.id, instance.RecordProvisioning{Failure: s.failure}, actor("provisioner")); err != nil {
				return nil, fmt.Errorf("fail %s: %w", s.id, err)
			}
		}
		if !s.frozen.IsZero() {
			clk.set(s.frozen)
			if _, err := f.svc.Execute(ctx, s.id, instance.SetStatus{Target: instance.TargetFreeze}, event.Causation{Activity: "updateInstanceStatus"}); err != nil {
				return nil, fmt.Errorf("freeze %s: %w", s.id, err)
			}
		}
		if !s.formal.IsZero() {
			clk.set(s.formal)
			cmd := instance.Refresh{Scene: instance.SceneTrialToFormal, OrderID: "o2-" + s.id, OrderLineID: "l2-" + s.id, ProductID: s.info.ProductID, ExpireTime: formalExpire}
			if _, err := f.svc.Execute(ctx, s.id, cmd, event.Causation{Activity: "refreshInstance"}); err != nil {
				return nil, fmt.Errorf("refresh %s: %w", s.id, err)
			}
		}
	}
	// Releases last, so that a release's day follows the other events.
	for _, s := range specs {
		if !s.release.IsZero() {
			clk.set(s.release)
			if _, err := f.svc.Execute(ctx, s.id, instance.Release{}, event.Causation{Activity: "releaseInstance"}); err != nil {
				return nil, fmt.Errorf("release %s: %w", s.id, err)
			}
		}
	}
	for _, p := range parkedSpecs {
		if err := f.appendProgress(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := f.appendLicenses(ctx); err != nil { // licenses_test.go
		return nil, err
	}
	info, err := f.store.JetStream().Stream(ctx, "APITEST")
	if err != nil {
		return nil, err
	}
	si, err := info.Info(ctx)
	if err != nil {
		return nil, err
	}
	f.lastSeq = si.State.LastSeq
	return f, nil
}

// appendProgress appends one effect progress event, as the effect runner
// does.
func (f *fixture) appendProgress(ctx context.Context, p parkedSpec) error {
	seq := f.provisionedSeq[p.instance]
	var data any
	switch p.typ {
	case effect.TypeParked:
		data = effect.Parked{Effect: p.effect, InstanceID: p.instance, EventID: "ev-" + p.instance, EventSeq: seq,
			EventType: instance.TypeProvisioned, Attempts: p.attempts, Reason: p.reason}
	case effect.TypeDone:
		data = effect.Done{Effect: p.effect, InstanceID: p.instance, EventID: "ev-" + p.instance, EventSeq: seq,
			EventType: instance.TypeProvisioned, Attempts: p.attempts}
	case effect.TypeRedriven:
		data = effect.Redriven{Effect: p.effect, InstanceID: p.instance, Operator: p.operator}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	id := eventstore.StreamID{Kind: effect.Kind, Keys: []string{p.effect, p.instance}}
	last, err := f.store.Last(ctx, id)
	if err != nil {
		return err
	}
	env := event.Envelope{
		ID: uuid.Must(uuid.NewV7()).String(), Type: p.typ, Version: 1, AggregateKind: effect.Kind,
		AggregateID: p.effect + "/" + p.instance, OccurredAt: p.at, Causation: event.Causation{Actor: "effects"}, Data: b,
	}
	if _, err := f.store.Append(ctx, id, last, env); err != nil {
		return fmt.Errorf("append %s %s/%s: %w", p.typ, p.effect, p.instance, err)
	}
	return nil
}

// ---- databases ----

// The test PostgreSQL (internal/pgtest): skip or fail when unreachable,
// and a fresh schema per test.
func postgresOK(t *testing.T) {
	t.Helper()
	pgtest.Require(t)
}

func postgresDSN(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t)
}

func redactDSN(dsn string) string { return pgtest.Redact(dsn) }

// forEachDB runs fn against a fresh SQLite and a fresh PostgreSQL database
// (in its own schema), as subtests.
func forEachDB(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, "sqlite://"+t.TempDir()+"/v.db")
	})
	t.Run("postgres", func(t *testing.T) {
		postgresOK(t)
		fn(t, postgresDSN(t))
	})
}

func openViews(t *testing.T, dsn string) *views.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := views.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open views %s: %v", redactDSN(dsn), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// project runs the views' projector over the fixture's log until every
// view reached its last sequence.
func project(t *testing.T, st *views.Store) {
	t.Helper()
	p, err := views.NewProjector(st, fx.store.JetStream(), "APITEST", "apitest", testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		caught := true
		for _, v := range views.ViewNames() {
			caught = caught && p.Checkpoint(v) >= fx.lastSeq
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			cps := map[string]uint64{}
			for _, v := range views.ViewNames() {
				cps[v] = p.Checkpoint(v)
			}
			t.Fatalf("projector did not reach %d in time (checkpoints %v, err %v)", fx.lastSeq, cps, p.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// ---- HTTP ----

// client calls a test server and checks every JSON answer against the
// schema the server's OpenAPI document gives for it.
type client struct {
	t   *testing.T
	srv *Server
	url string
	doc map[string]any
}

// newClient starts srv on an httptest server.
func newClient(t *testing.T, srv *Server) *client {
	t.Helper()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(srv.OpenAPI()))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return &client{t: t, srv: srv, url: hs.URL, doc: doc}
}

// setup opens a views database, projects the fixture into it and starts
// a server over it.
func setup(t *testing.T, dsn string, effects Effects, cfg Config) (*client, *views.Store) {
	t.Helper()
	st := openViews(t, dsn)
	project(t, st)
	return newClient(t, newServer(t, st, effects, cfg)), st
}

func newServer(t *testing.T, st *views.Store, effects Effects, cfg Config) *Server {
	t.Helper()
	if cfg.Tokens == nil {
		cfg.Tokens = []string{token, otherToken}
	}
	srv, err := New(st, fx.store, effects, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

type answer struct {
	status int
	header http.Header
	body   []byte
	// trailer is the answer's trailer (read after the body).
	trailer http.Header
}

// do sends a request with the test token ("" for none).
func (c *client) do(method, path, tok string, body []byte) answer {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: b, trailer: resp.Trailer}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		c.checkSchema(method, req.URL.EscapedPath(), a)
	}
	return a
}

// get GETs path with the test token and decodes a JSON answer into v
// (when v is not nil), failing unless the status is want.
func (c *client) get(path string, want int, v any) answer {
	c.t.Helper()
	a := c.do(http.MethodGet, path, token, nil)
	if a.status != want {
		c.t.Fatalf("GET %s: status %d, want %d: %s", path, a.status, want, a.body)
	}
	if v != nil {
		if err := json.Unmarshal(a.body, v); err != nil {
			c.t.Fatalf("GET %s: %v in %s", path, err, a.body)
		}
	}
	return a
}

// badRequest GETs path and checks the 400 names field.
func (c *client) badRequest(path, field string) {
	c.t.Helper()
	var e ErrorBody
	c.get(path, http.StatusBadRequest, &e)
	if e.Field != field || e.Error == "" {
		c.t.Fatalf("GET %s: error %+v, want one about %q", path, e, field)
	}
}

// checkSchema validates a JSON answer against the document's schema for
// the operation and status.
func (c *client) checkSchema(method, path string, a answer) {
	c.t.Helper()
	resp, ok := c.responseDoc(method, path, a.status)
	if !ok {
		if a.status == http.StatusNotFound || a.status == http.StatusMethodNotAllowed {
			return // no such route: nothing documented
		}
		c.t.Fatalf("%s %s answered %d, which the OpenAPI document does not list", method, path, a.status)
	}
	resp = resolve(c.doc, resp)
	content, _ := resp["content"].(map[string]any)
	media, ok := content["application/json"].(map[string]any)
	if !ok {
		c.t.Fatalf("%s %s %d: the document has no application/json content", method, path, a.status)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		c.t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	if err := validate(c.doc, media["schema"].(map[string]any), v, "body"); err != nil {
		c.t.Fatalf("%s %s %d: answer does not match the documented schema: %v\n%s", method, path, a.status, err, a.body)
	}
}

// responseDoc finds the documented response of a request.
func (c *client) responseDoc(method, path string, status int) (map[string]any, bool) {
	paths := c.doc["paths"].(map[string]any)
	for tmpl, item := range paths {
		if !templateRegexp(tmpl).MatchString(path) {
			continue
		}
		op, ok := item.(map[string]any)[strings.ToLower(method)].(map[string]any)
		if !ok {
			continue // e.g. POST /v1/license-codes/usage also matches /v1/license-codes/{code}
		}
		r, ok := op["responses"].(map[string]any)[fmt.Sprint(status)].(map[string]any)
		return r, ok
	}
	return nil, false
}

// templateRegexp matches the escaped paths of an OpenAPI path template.
func templateRegexp(tmpl string) *regexp.Regexp {
	parts := strings.Split(tmpl, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = "[^/]+"
		} else {
			parts[i] = regexp.QuoteMeta(p)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
}

// ---- expectations ----

// ids returns the fixture ids of the instances for which keep holds, in
// the listing's order (created, then id).
func ids(keep func(spec) bool) []string {
	var sel []spec
	for _, s := range specs {
		if keep(s) {
			sel = append(sel, s)
		}
	}
	slices.SortStableFunc(sel, func(a, b spec) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := []string{}
	for _, s := range sel {
		out = append(out, s.id)
	}
	return out
}

func rowIDs(rows []views.Instance) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.InstanceID)
	}
	return out
}

// checkpoint reads a view's checkpoint.
func checkpoint(t *testing.T, st *views.Store, view string) uint64 {
	t.Helper()
	seq, err := st.Checkpoint(context.Background(), view)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func instanceStream(id string) eventstore.StreamID {
	return eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}
}
