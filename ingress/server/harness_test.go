package server_test

// The test harness of the SaaS V2 ingress. Everything is real: an embedded
// nats-server (in-process connection, no TCP port) on a temporary
// directory, the JetStream event store, the nonce KV guard, the instances
// service, the provisioning worker with the builtin provisioner (plus two
// plain Go provisioners that block or refuse), and the gin server behind
// httptest.NewServer (real HTTP on loopback).
//
// One env (NATS, store, guard, service, worker) is shared by the subtests of
// a top-level test; every test uses its own order and instance ids.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/bus/nonce"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/licenses"
	"github.com/gallerist/gallerist/ingress/server"
	"github.com/gallerist/gallerist/projections/provision"
)

// Keys and routes of every env. keyMain is the vectors.md test key.
const (
	keyMain      = "TEST-ACCESS-KEY-0123456789"
	keyRotateOld = "ROTATION-OLD-KEY-0000000001"
	keyRotateNew = "ROTATION-NEW-KEY-0000000002"
	keyAES128    = "AES128-ROUTE-KEY-0000000003"
	keyMemo      = "MEMO-ROUTE-KEY-0000000004"
	keyTemplate  = "TEMPLATE-ROUTE-KEY-0000000005"
	keyBlock     = "BLOCK-ROUTE-KEY-0000000006"
	keyRefuse    = "REFUSE-ROUTE-KEY-0000000007"
	// keyB64Plain is what the console shows base64-encoded on pathB64.
	keyB64Plain = "BASE64-DECODED-KEY-0000000008"

	pathMain     = "/koogallery/v2"
	pathRotate   = "/koogallery/v2-rotate"
	pathAES128   = "/koogallery/v2-aes128"
	pathPlain    = "/koogallery/v2-plain" // AllowPlainSHA256, same key as pathMain
	pathMemo     = "/koogallery/v2-memo"
	pathTemplate = "/koogallery/v2-template"
	pathBlock    = "/koogallery/v2-block"
	pathRefuse   = "/koogallery/v2-refuse"
	pathB64      = "/koogallery/v2-b64"

	// SaaS V1 routes (v1_test.go): pathV1 has the vectors.md test key.
	keyV1Old      = "V1-ROTATION-OLD-KEY-000000009"
	keyV1Window   = "V1-WINDOW-ROUTE-KEY-00000010"
	pathV1        = "/koogallery/v1"
	pathV1Rotate  = "/koogallery/v1-rotate" // keyV1Old, then keyMain
	pathV1AES128  = "/koogallery/v1-aes128" // keyMain, encryptType 2
	pathV1Window  = "/koogallery/v1-window" // timestampWindow 60s
	v1WindowWidth = time.Minute

	memoChinese   = "开通成功"
	refusalCode   = "000100"
	refusalReason = "no capacity left in this region, try again tomorrow"
)

// testRoutes are the production routes every test server serves.
func testRoutes() []config.Route {
	return append([]config.Route{
		{Path: pathMain, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyMain}}},
		{Path: pathRotate, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyRotateOld}, {Value: keyRotateNew}}},
		{Path: pathAES128, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyAES128}}, EncryptType: "2"},
		{Path: pathPlain, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyMain}}, AllowPlainSHA256: true},
		{Path: pathMemo, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyMemo}},
			Provisioner: config.Provisioner{Memo: memoChinese}},
		{Path: pathTemplate, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyTemplate}},
			Provisioner: config.Provisioner{FrontEndURL: "https://t-{short}.app.example.com/login?order={orderId}&i={instanceId}"}},
		{Path: pathBlock, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyBlock}}},
		{Path: pathRefuse, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: keyRefuse}}},
		{Path: pathB64, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: base64.StdEncoding.EncodeToString([]byte(keyB64Plain)), Base64: true}}},
		{Path: pathV1, Family: config.FamilySaaSV1, Keys: []config.Key{{Value: keyMain}}},
		{Path: pathV1Rotate, Family: config.FamilySaaSV1, Keys: []config.Key{{Value: keyV1Old}, {Value: keyMain}}},
		{Path: pathV1AES128, Family: config.FamilySaaSV1, Keys: []config.Key{{Value: keyMain}}, EncryptType: "2"},
		{Path: pathV1Window, Family: config.FamilySaaSV1, Keys: []config.Key{{Value: keyV1Window}}, TimestampWindow: v1WindowWidth},
	}, licenseRoutes()...) // license_test.go
}

// ---------------------------------------------------------------------------
// Provisioners of the tests (plain Go types implementing provision.Provisioner).

// gateProvisioner blocks each instance until its gate is opened, then
// answers like the builtin provisioner.
type gateProvisioner struct {
	inner provision.Provisioner
	mu    sync.Mutex
	gates map[string]chan struct{}
	calls map[string]int
}

func (g *gateProvisioner) gate(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.gates[id]
	if !ok {
		ch = make(chan struct{})
		g.gates[id] = ch
	}
	return ch
}

// open releases the instance's provisioning (idempotent).
func (g *gateProvisioner) open(id string) {
	ch := g.gate(id)
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (g *gateProvisioner) openAll() {
	g.mu.Lock()
	ids := make([]string, 0, len(g.gates))
	for id := range g.gates {
		ids = append(ids, id)
	}
	g.mu.Unlock()
	for _, id := range ids {
		g.open(id)
	}
}

func (g *gateProvisioner) called(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

func (g *gateProvisioner) Provision(ctx context.Context, req provision.Request) (instance.AppInfo, error) {
	g.mu.Lock()
	g.calls[req.InstanceID]++
	g.mu.Unlock()
	select {
	case <-g.gate(req.InstanceID):
	case <-ctx.Done():
		return instance.AppInfo{}, ctx.Err()
	}
	return g.inner.Provision(ctx, req)
}

// refuser refuses every instance with a creation code (codes-and-rules.md §2.2).
type refuser struct{ code, msg string }

func (r refuser) Provision(context.Context, provision.Request) (instance.AppInfo, error) {
	return instance.AppInfo{}, provision.Refuse(r.code, r.msg)
}

// ---------------------------------------------------------------------------
// Logs: warnings and errors are kept, so that a test can fail on a recovered
// panic and print the logs when it failed.

type logCapture struct {
	mu   sync.Mutex
	recs []string
}

func (l *logCapture) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) matching(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if strings.Contains(r, substr) {
			out = append(out, r)
		}
	}
	return out
}

func (l *logCapture) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// ---------------------------------------------------------------------------
// env: the shared infrastructure.

type env struct {
	nc      *nats.Conn
	store   *eventstore.JetStreamStore
	guard   *nonce.Guard
	svc     *instances.Service
	gate    *gateProvisioner
	lic     *licenses.Service
	licGate *licenseGate // the issuer of pathLicASlow
	logs    *logCapture
	log     *slog.Logger
	routes  []config.Route
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := &logCapture{}
	log := slog.New(logs)
	// The long sync interval keeps nats-server's file-store sync timer from
	// firing during a test (see projections/provision/worker_test.go: the
	// race detector reports it now and then). Nothing here needs fsync.
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), SyncInterval: time.Hour}, nil)
	if err != nil {
		t.Fatalf("start embedded nats-server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{}, log)
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	guard, err := nonce.Open(ctx, store.JetStream(), nonce.Config{TTL: 2 * koogallery.DefaultV2Window})
	if err != nil {
		t.Fatalf("open nonce guard: %v", err)
	}
	svc, err := instances.New(store, nc, instances.Config{Prefix: store.Config().Prefix}, log)
	if err != nil {
		t.Fatalf("instances service: %v", err)
	}
	t.Cleanup(svc.Close)

	routes := testRoutes()
	builtin := func(p config.Provisioner) provision.Provisioner {
		bc := provision.DefaultBuiltinConfig()
		if p.FrontEndURL != "" {
			bc.FrontEndURL = p.FrontEndURL
		}
		if p.AdminURL != "" {
			bc.AdminURL = p.AdminURL
		}
		if p.UserName != "" {
			bc.UserName = p.UserName
		}
		if p.Memo != "" {
			bc.Memo = p.Memo
		}
		b, err := provision.NewBuiltin(bc)
		if err != nil {
			t.Fatalf("builtin provisioner: %v", err)
		}
		return b
	}
	byRoute := map[string]provision.Provisioner{}
	for _, r := range routes {
		byRoute[r.Path] = builtin(r.Provisioner)
	}
	gate := &gateProvisioner{inner: builtin(config.Provisioner{}), gates: map[string]chan struct{}{}, calls: map[string]int{}}
	byRoute[pathBlock] = gate
	byRoute[pathRefuse] = refuser{code: refusalCode, msg: refusalReason}

	pcfg := provision.DefaultConfig()
	pcfg.Runner.RetryBase, pcfg.Runner.RetryMax = 20*time.Millisecond, 500*time.Millisecond
	worker, err := provision.NewRunner(store.JetStream(), store, store.Config().Stream, store.Config().Prefix, svc,
		func(route string) provision.Provisioner { return byRoute[route] }, builtin(config.Provisioner{}), pcfg, log)
	if err != nil {
		t.Fatalf("provisioning runner: %v", err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	if err := worker.Start(wctx); err != nil {
		wcancel()
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		gate.openAll()
		wcancel()
		worker.Stop()
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range logs.all() {
				t.Log("log: " + r)
			}
		}
	})
	lic, licGate := newLicenses(t, store, routes, log) // license_test.go
	return &env{nc: nc, store: store, guard: guard, svc: svc, gate: gate, lic: lic, licGate: licGate, logs: logs, log: log, routes: routes}
}

// events returns the events of one stream of the store.
func (e *env) events(t testing.TB, kind string, keys ...string) []eventstore.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := e.store.Load(ctx, eventstore.StreamID{Kind: kind, Keys: keys}, 0)
	if err != nil {
		t.Fatalf("load %s %v: %v", kind, keys, err)
	}
	return recs
}

func (e *env) instanceEvents(t testing.TB, id string) []eventstore.Record {
	t.Helper()
	return e.events(t, instance.Kind, id)
}

func (e *env) indexEvents(t testing.TB, orderID, orderLineID string) []eventstore.Record {
	t.Helper()
	return e.events(t, instance.IndexKind, orderID, orderLineID)
}

// state reads an instance through the instances service.
func (e *env) state(t testing.TB, id string) instance.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.svc.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return st
}

func typesOf(recs []eventstore.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Event.Type
	}
	return out
}

func countType(recs []eventstore.Record, typ string) int {
	n := 0
	for _, r := range recs {
		if r.Event.Type == typ {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// harness: one ingress server on the env.

type harness struct {
	*env
	srv    *server.Server
	URL    string
	signer signer
	keys   map[string][][]byte // route path → decoded keys, primary first
	client *http.Client
}

// signer is what signs requests by default: a key and the route path.
type signer struct {
	key  []byte
	path string
}

type harnessConfig struct {
	env    *env
	opts   server.Options
	policy server.ChangePolicy
	usage  server.UsageSource
	ready  func(context.Context) error
	signer signer
}

type harnessOpt func(*harnessConfig)

// onEnv shares an existing env instead of starting a new one.
func onEnv(e *env) harnessOpt { return func(c *harnessConfig) { c.env = e } }

// withOptions tunes the server options.
func withOptions(f func(*server.Options)) harnessOpt {
	return func(c *harnessConfig) { f(&c.opts) }
}

// withClock fixes the server clock.
func withClock(now func() time.Time) harnessOpt {
	return func(c *harnessConfig) { c.opts.Now = now }
}

func withPolicy(p server.ChangePolicy) harnessOpt { return func(c *harnessConfig) { c.policy = p } }

func withUsage(u server.UsageSource) harnessOpt { return func(c *harnessConfig) { c.usage = u } }

func withReady(f func(context.Context) error) harnessOpt {
	return func(c *harnessConfig) { c.ready = f }
}

// signedBy sets the default signer.
func signedBy(key, path string) harnessOpt {
	return func(c *harnessConfig) { c.signer = signer{key: []byte(key), path: path} }
}

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	cfg := harnessConfig{signer: signer{key: []byte(keyMain), path: pathMain}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.env == nil {
		cfg.env = newEnv(t)
	}
	e := cfg.env
	srv, err := server.New(e.routes, server.Deps{
		Instances: e.svc, Store: e.store, Nonces: e.guard, Policy: cfg.policy, Usage: cfg.usage, Ready: cfg.ready,
		Licenses: e.lic,
	}, cfg.opts, e.log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		for _, p := range e.logs.matching("panic") {
			t.Errorf("the server recovered from a panic: %s", p)
		}
	})
	keys := map[string][][]byte{}
	for _, r := range e.routes {
		for _, k := range r.Keys {
			b, err := k.Bytes()
			if err != nil {
				t.Fatalf("key of %s: %v", r.Path, err)
			}
			keys[r.Path] = append(keys[r.Path], b)
		}
	}
	return &harness{env: e, srv: srv, URL: ts.URL, signer: cfg.signer, keys: keys, client: ts.Client()}
}

// ---------------------------------------------------------------------------
// Requests.

// request is one call before it is sent; mutators change it.
type request struct {
	method    string
	path      string
	key       []byte
	answerKey []byte // key expected on Body-Sign; nil: derived
	form      koogallery.Form
	ts        time.Time
	nonce     string
	sign      func(key, body []byte, ts time.Time, nonce string) url.Values // custom signer
	query     []func(url.Values)                                            // after signing
	rawQuery  *string                                                       // replaces the query entirely
	tamper    func([]byte) []byte                                           // body after signing
	chunked   bool
	header    http.Header
}

type mutator func(*request)

func withKey(k string) mutator           { return func(r *request) { r.key = []byte(k) } }
func withKeyBytes(k []byte) mutator      { return func(r *request) { r.key = k } }
func withPath(p string) mutator          { return func(r *request) { r.path = p } }
func withMethod(m string) mutator        { return func(r *request) { r.method = m } }
func withTime(ts time.Time) mutator      { return func(r *request) { r.ts = ts } }
func withNonce(n string) mutator         { return func(r *request) { r.nonce = n } }
func withForm(f koogallery.Form) mutator { return func(r *request) { r.form = f } }
func chunked() mutator                   { return func(r *request) { r.chunked = true } }
func answeredWith(k string) mutator      { return func(r *request) { r.answerKey = []byte(k) } }
func withRawQuery(q string) mutator      { return func(r *request) { r.rawQuery = &q } }
func withHeader(k, v string) mutator {
	return func(r *request) { r.header.Set(k, v) }
}
func withQuery(f func(url.Values)) mutator {
	return func(r *request) { r.query = append(r.query, f) }
}
func tampered(f func([]byte) []byte) mutator { return func(r *request) { r.tamper = f } }
func signedWith(f func(key, body []byte, ts time.Time, nonce string) url.Values) mutator {
	return func(r *request) { r.sign = f }
}

// response is one answer as received.
type response struct {
	path      string
	answerKey []byte
	status    int
	hdr       http.Header
	raw       []byte
	m         map[string]any
	sent      []byte // the request body (an echo of it is no leak)
}

func bodyBytes(body any) ([]byte, error) {
	switch b := body.(type) {
	case []byte:
		return b, nil
	case string:
		return []byte(b), nil
	case nil:
		return nil, nil
	}
	return json.Marshal(body)
}

// do signs and sends one request; it fails only on transport errors.
func (h *harness) do(body any, mutate ...mutator) (*response, error) {
	raw, err := bodyBytes(body)
	if err != nil {
		return nil, err
	}
	rq := &request{
		method: http.MethodPost, path: h.signer.path, key: h.signer.key, form: koogallery.FormA,
		ts: time.Now(), nonce: koogallery.NewNonce(), header: http.Header{},
	}
	rq.header.Set("Content-Type", "application/json;charset=utf8")
	rq.header.Set("Accept", "application/json")
	for _, m := range mutate {
		m(rq)
	}
	var q url.Values
	switch {
	case rq.sign != nil:
		q = rq.sign(rq.key, raw, rq.ts, rq.nonce)
	case rq.form == koogallery.FormA:
		q = koogallery.SignV2Request(rq.key, raw, rq.ts, rq.nonce)
	default:
		if q, err = koogallery.SignV2RequestForm(rq.key, raw, rq.ts, rq.nonce, rq.form); err != nil {
			return nil, err
		}
	}
	for _, f := range rq.query {
		f(q)
	}
	sent := raw
	if rq.tamper != nil {
		sent = rq.tamper(bytes.Clone(raw))
	}
	u := h.URL + rq.path + "?" + q.Encode()
	if rq.rawQuery != nil {
		u = h.URL + rq.path
		if *rq.rawQuery != "" {
			u += "?" + *rq.rawQuery
		}
	}
	var rd io.Reader = bytes.NewReader(sent)
	if rq.chunked {
		rd = struct{ io.Reader }{bytes.NewReader(sent)} // unknown length: chunked
	}
	req, err := http.NewRequest(rq.method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header = rq.header
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &response{path: rq.path, status: resp.StatusCode, hdr: resp.Header, raw: rb, answerKey: rq.answerKey, sent: sent}
	if out.answerKey == nil {
		keys := h.keys[rq.path]
		for _, k := range keys {
			if bytes.Equal(k, rq.key) {
				out.answerKey = k
			}
		}
		if out.answerKey == nil && len(keys) > 0 {
			out.answerKey = keys[0]
		}
	}
	return out, nil
}

// bodySignRE is the exact documented layout of Body-Sign (auth.md §4).
var bodySignRE = regexp.MustCompile(`^sign_type="HMAC-SHA256", signature= "([A-Za-z0-9+/]{43}=)"$`)

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// check verifies what every answer must carry; it also decodes r.m.
func (h *harness) check(r *response) error {
	var errs []error
	for _, keys := range h.keys {
		for _, k := range keys {
			if bytes.Contains(r.raw, k) && !bytes.Contains(r.sent, k) {
				errs = append(errs, fmt.Errorf("the answer echoes a key: %s", r.raw))
			}
		}
	}
	sign := r.hdr.Values(koogallery.BodySignHeader)
	switch r.status {
	case http.StatusOK:
		if ct := r.hdr.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
			errs = append(errs, fmt.Errorf("Content-Type = %q, want application/json;charset=UTF-8", ct))
		}
		if len(sign) != 1 || !bodySignRE.MatchString(sign[0]) {
			errs = append(errs, fmt.Errorf("Body-Sign = %q, want exactly one `sign_type=\"HMAC-SHA256\", signature= \"<b64>\"`", sign))
		} else if err := koogallery.VerifyBodySign(r.answerKey, r.raw, sign[0]); err != nil {
			errs = append(errs, fmt.Errorf("Body-Sign does not verify over the raw body with key %q: %v", r.answerKey, err))
		}
		for i, c := range r.raw {
			if c >= 0x80 {
				errs = append(errs, fmt.Errorf("raw body is not pure ASCII: byte 0x%02x at %d", c, i))
				break
			}
		}
		dec := json.NewDecoder(bytes.NewReader(r.raw))
		if err := dec.Decode(&r.m); err != nil || r.m == nil || dec.More() {
			errs = append(errs, fmt.Errorf("body is not one JSON object (%v): %s", err, r.raw))
			break
		}
		if c, ok := r.m["resultCode"].(string); !ok || !sixDigits.MatchString(c) {
			errs = append(errs, fmt.Errorf("resultCode = %#v, want a 6-digit string", r.m["resultCode"]))
		}
		if m, ok := r.m["resultMsg"].(string); !ok || m == "" {
			errs = append(errs, fmt.Errorf("resultMsg = %#v, want a non-empty string", r.m["resultMsg"]))
		}
	case http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		keys := h.keys[r.path]
		if len(keys) == 0 {
			errs = append(errs, fmt.Errorf("status %d on an unconfigured path %s", r.status, r.path))
			break
		}
		if len(sign) != 1 || !bodySignRE.MatchString(sign[0]) {
			errs = append(errs, fmt.Errorf("status %d: Body-Sign = %q, want the documented layout", r.status, sign))
		} else if err := koogallery.VerifyBodySign(keys[0], r.raw, sign[0]); err != nil {
			errs = append(errs, fmt.Errorf("status %d: Body-Sign does not verify with the primary key: %v", r.status, err))
		}
		if bytes.Contains(r.raw, []byte("resultCode")) {
			errs = append(errs, fmt.Errorf("status %d carries a resultCode: %s", r.status, r.raw))
		}
	case http.StatusNotFound:
		if len(sign) != 0 {
			errs = append(errs, fmt.Errorf("404 carries Body-Sign %q", sign))
		}
	default:
		errs = append(errs, fmt.Errorf("unexpected HTTP status %d: %s", r.status, r.raw))
	}
	return errors.Join(errs...)
}

// call signs body with the harness's signer (changed by mutate), posts it
// and verifies the envelope: on 200 Body-Sign in the exact form verifying
// over the raw bytes with the key that signed the request, pure ASCII,
// Content-Type application/json;charset=UTF-8, resultCode and resultMsg.
func (h *harness) call(t testing.TB, body any, mutate ...mutator) (int, http.Header, []byte, map[string]any) {
	t.Helper()
	r, err := h.do(body, mutate...)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if err := h.check(r); err != nil {
		t.Errorf("answer %d %s:\n%v", r.status, r.raw, err)
	}
	return r.status, r.hdr, r.raw, r.m
}

// expect calls and requires HTTP 200 with resultCode code.
func (h *harness) expect(t testing.TB, code string, body any, mutate ...mutator) map[string]any {
	t.Helper()
	st, _, raw, m := h.call(t, body, mutate...)
	if st != http.StatusOK {
		t.Fatalf("HTTP %d, want 200: %s", st, raw)
	}
	if got := codeOf(m); got != code {
		t.Fatalf("resultCode = %s, want %s; body %s", got, code, raw)
	}
	return m
}

// invalid requires 000002 with a resultMsg naming field.
func (h *harness) invalid(t testing.TB, field string, body any, mutate ...mutator) map[string]any {
	t.Helper()
	m := h.expect(t, "000002", body, mutate...)
	if msg := msgOf(m); !strings.Contains(msg, field) {
		t.Errorf("resultMsg %q does not name %q", msg, field)
	}
	return m
}

func codeOf(m map[string]any) string { s, _ := m["resultCode"].(string); return s }
func msgOf(m map[string]any) string  { s, _ := m["resultMsg"].(string); return s }
func strOf(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// infos returns the info array of a queryInstance answer.
func infos(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["info"]
	if !ok {
		return nil
	}
	arr, ok := raw.([]any)
	if !ok {
		t.Fatalf("info is %T, want an array", raw)
	}
	out := make([]map[string]any, len(arr))
	for i, v := range arr {
		if out[i], ok = v.(map[string]any); !ok {
			t.Fatalf("info[%d] is %T, want an object", i, v)
		}
	}
	return out
}

// get fetches a plain (non-protocol) URL of the harness.
func (h *harness) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := h.client.Get(h.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// ---------------------------------------------------------------------------
// Bodies and ids.

var idSeq atomic.Int64

// uid returns a fresh id with a readable prefix.
func uid(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%d", prefix, hex.EncodeToString(b[:]), idSeq.Add(1))
}

type obj = map[string]any

func newInstanceBody(orderID, orderLineID, businessID string) obj {
	return obj{"activity": "newInstance", "orderId": orderID, "orderLineId": orderLineID, "businessId": businessID}
}

func queryBody(ids ...string) obj {
	return obj{"activity": "queryInstance", "instanceId": strings.Join(ids, ",")}
}

func refreshBody(scene, orderID, orderLineID, id, expire string) obj {
	return obj{"activity": "refreshInstance", "scene": scene, "orderId": orderID, "orderLineId": orderLineID,
		"instanceId": id, "expireTime": expire}
}

func statusBody(id, status string) obj {
	return obj{"activity": "updateInstanceStatus", "instanceId": id, "status": status}
}

func releaseBody(id string) obj { return obj{"activity": "releaseInstance", "instanceId": id} }

func upgradeBody(id, orderID, orderLineID string) obj {
	return obj{"activity": "upgradeInstance", "instanceId": id, "orderId": orderID, "orderLineId": orderLineID}
}

func productInfo() obj {
	return obj{"productId": "OFFI461867333479178240", "skuCode": "sku-basic", "productName": "Basic", "linearValue": 5}
}

func changeBody(id string, p obj) obj {
	b := obj{"activity": "changeInstanceCheck", "instanceId": id}
	if p != nil {
		b["productInfo"] = p
	}
	return b
}

func notifyBody(orderID, orderLineID string) obj {
	b := obj{"activity": "orderNotify", "orderId": orderID}
	if orderLineID != "" {
		b["orderLineId"] = orderLineID
	}
	return b
}

// debug returns a copy of b marked as a debugging request.
func debug(b obj) obj { return with(b, "testFlag", "1") }

// with returns a copy of b with k set to v.
func with(b obj, k string, v any) obj {
	out := make(obj, len(b)+1)
	for kk, vv := range b {
		out[kk] = vv
	}
	out[k] = v
	return out
}

// without returns a copy of b without k.
func without(b obj, k string) obj {
	out := make(obj, len(b))
	for kk, vv := range b {
		if kk != k {
			out[kk] = vv
		}
	}
	return out
}

// eventually polls f until it reports done, failing after the deadline.
func eventually(t testing.TB, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for {
		done, state := f()
		if done {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: gave up waiting; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// create opens a new instance on the harness's signer route (or path) and
// waits until it is provisioned; it returns the instance id and order keys.
func (h *harness) create(t testing.TB, mutate ...mutator) (id, orderID, orderLineID string) {
	t.Helper()
	orderID, orderLineID, id = uid("CS"), uid("CS-line"), uid("biz")
	h.createFor(t, orderID, orderLineID, id, mutate...)
	return id, orderID, orderLineID
}

// createFor sends newInstance (re-sending while 000004) until 000000.
func (h *harness) createFor(t testing.TB, orderID, orderLineID, businessID string, mutate ...mutator) {
	t.Helper()
	eventually(t, "newInstance "+businessID, func() (bool, string) {
		m := h.expectOneOf(t, []string{"000000", "000004"}, newInstanceBody(orderID, orderLineID, businessID), mutate...)
		if got := strOf(m, "instanceId"); got != businessID {
			t.Fatalf("instanceId = %q, want the businessId %q", got, businessID)
		}
		return codeOf(m) == "000000", codeOf(m)
	})
}

func (h *harness) expectOneOf(t testing.TB, codes []string, body any, mutate ...mutator) map[string]any {
	t.Helper()
	st, _, raw, m := h.call(t, body, mutate...)
	if st != http.StatusOK || !slices.Contains(codes, codeOf(m)) {
		t.Fatalf("HTTP %d resultCode %s, want one of %v: %s", st, codeOf(m), codes, raw)
	}
	return m
}
