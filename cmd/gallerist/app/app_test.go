package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

const (
	routePath = "/kg/v2"
	// machineURL is the NATS server (with JetStream) of the machine.
	machineURL = "nats://127.0.0.1:4222"
	// requireServicesEnv = "1" turns a missing machine NATS into a failure.
	requireServicesEnv = "GALLERIST_REQUIRE_SERVICES"
)

var routeKey = []byte("k")

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is the default configuration on the embedded server in dir,
// one SaaS V2 route with key "k", listening on a free loopback port.
func testConfig(dir string) Config {
	c := Defaults()
	c.Listen = "127.0.0.1:0"
	c.DataDir = dir
	// nats-server arms its file store's first sync timer without its lock;
	// a long interval keeps a loaded -race run from reporting that race.
	c.SyncInterval = time.Hour
	c.Routes = []config.Route{{Path: routePath, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: "k"}}}}
	return c
}

// running is an App under test; it is shut down at cleanup unless the test
// did it.
type running struct {
	*App
	down atomic.Bool
	kg   *kgClient
}

func (r *running) shutdown(t *testing.T) error {
	t.Helper()
	if !r.down.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.Shutdown(ctx)
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The App's effects live as long as the context given to Start: use a
	// context that outlives the test body, Shutdown ends everything.
	a, err := Start(context.WithoutCancel(ctx), cfg, testLogger())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	r := &running{App: a}
	r.kg = newKG(t, "http://"+a.Addr()+routePath)
	t.Cleanup(func() {
		if err := r.shutdown(t); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
	})
	return r
}

// ---------------------------------------------------------------------------
// A KooGallery stand-in: signs requests like KooGallery, checks Body-Sign.

type appInfo struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl"`
	UserName    string `json:"userName"`
	Password    string `json:"password"`
	Memo        string `json:"memo"`
}

type answer struct {
	ResultCode  string `json:"resultCode"`
	ResultMsg   string `json:"resultMsg"`
	InstanceID  string `json:"instanceId"`
	EncryptType string `json:"encryptType"`
	Info        []struct {
		InstanceID string   `json:"instanceId"`
		AppInfo    *appInfo `json:"appInfo"`
	} `json:"info"`
}

type kgClient struct {
	url    string
	client *http.Client
}

func newKG(t *testing.T, url string) *kgClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &kgClient{url: url, client: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

var codeRE = regexp.MustCompile(`^[0-9]{6}$`)

// errNoResponse marks a call that got no HTTP response at all.
var errNoResponse = errors.New("no HTTP response")

// send signs body and posts it. Every HTTP response must be a complete,
// Body-Signed JSON answer with a resultCode; an error wrapping
// errNoResponse means the server could not be reached.
func (k *kgClient) send(body map[string]any) (answer, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{}, err
	}
	q := koogallery.SignV2Request(routeKey, raw, time.Now(), koogallery.NewNonce())
	req, err := http.NewRequest(http.MethodPost, k.url+"?"+q.Encode(), bytes.NewReader(raw))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	resp, err := k.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %w", errNoResponse, err)
	}
	defer func() { _ = resp.Body.Close() }()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("HTTP %d answer cut short: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, got)
	}
	if err := koogallery.VerifyBodySign(routeKey, got, resp.Header.Get(koogallery.BodySignHeader)); err != nil {
		return answer{}, fmt.Errorf("Body-Sign of %s: %w", got, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return answer{}, fmt.Errorf("Content-Type %q", ct)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return answer{}, fmt.Errorf("answer %s: %w", got, err)
	}
	if !codeRE.MatchString(a.ResultCode) {
		return answer{}, fmt.Errorf("answer %s has no resultCode", got)
	}
	return a, nil
}

func (k *kgClient) must(t *testing.T, body map[string]any) answer {
	t.Helper()
	a, err := k.send(body)
	if err != nil {
		t.Fatalf("%v: %v", body["activity"], err)
	}
	return a
}

func newInstanceBody(orderID string) map[string]any {
	return map[string]any{"activity": "newInstance", "orderId": orderID, "orderLineId": orderID + "-000001", "businessId": uuid.NewString()}
}

func queryBody(id string) map[string]any {
	return map[string]any{"activity": "queryInstance", "instanceId": id}
}

func statusBody(id, status string) map[string]any {
	return map[string]any{"activity": "updateInstanceStatus", "instanceId": id, "status": status}
}

func newOrder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "CS" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// create sends newInstance for a fresh order and waits (polling
// queryInstance, bounded) until the instance is provisioned.
func (k *kgClient) create(t *testing.T) string {
	t.Helper()
	a := k.must(t, newInstanceBody(newOrder()))
	if a.ResultCode != "000000" && a.ResultCode != "000004" || a.InstanceID == "" {
		t.Fatalf("newInstance = %+v", a)
	}
	if a.ResultCode == "000004" {
		k.waitReady(t, a.InstanceID)
	}
	return a.InstanceID
}

// waitReady polls queryInstance until it answers with appInfo.
func (k *kgClient) waitReady(t *testing.T, id string) answer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := k.must(t, queryBody(id))
		if a.ResultCode == "000000" {
			return a
		}
		if a.ResultCode != "000004" || time.Now().After(deadline) {
			t.Fatalf("queryInstance %s = %+v, want it provisioned", id, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAppInfo checks that a is a successful query of exactly id carrying
// the built-in provisioner's app info, encrypted with the route key.
func checkAppInfo(t *testing.T, a answer, id string) {
	t.Helper()
	if a.ResultCode != "000000" || a.EncryptType != "1" || len(a.Info) != 1 || a.Info[0].InstanceID != id || a.Info[0].AppInfo == nil {
		t.Fatalf("queryInstance %s = %+v, want 000000 with appInfo", id, a)
	}
	ai := a.Info[0].AppInfo
	if ai.FrontEndURL != "https://app.example.com/"+id || ai.AdminURL != "https://admin.example.com/"+id {
		t.Errorf("appInfo URLs = %q, %q", ai.FrontEndURL, ai.AdminURL)
	}
	c, err := koogallery.NewCipher(routeKey, koogallery.EncryptAES256)
	if err != nil {
		t.Fatal(err)
	}
	user, err := c.Decrypt(ai.UserName)
	if err != nil || !regexp.MustCompile(`^admin-[0-9a-f]{8}$`).MatchString(user) {
		t.Errorf("userName decrypts to %q, %v", user, err)
	}
	if pw, err := c.Decrypt(ai.Password); err != nil || len(pw) < 8 {
		t.Errorf("password decrypts to %d characters, %v", len(pw), err)
	}
}

func eventsOf(t *testing.T, a *App, kind string, keys ...string) []eventstore.Record {
	t.Helper()
	recs, err := a.Store().Load(testContext(t), eventstore.StreamID{Kind: kind, Keys: keys}, 0)
	if err != nil {
		t.Fatalf("Load %s %v: %v", kind, keys, err)
	}
	return recs
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

func freshState(t *testing.T, a *App, id string) instance.State {
	t.Helper()
	st, err := a.Instances().Get(testContext(t), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return st
}

// ---------------------------------------------------------------------------

func TestConfigValidate(t *testing.T) {
	ok := testConfig(t.TempDir())
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no listen":      {func(c *Config) { c.Listen = "" }, "listen"},
		"cert, no key":   {func(c *Config) { c.TLSCert = "cert.pem" }, "tls"},
		"key, no cert":   {func(c *Config) { c.TLSKey = "key.pem" }, "tls"},
		"no data dir":    {func(c *Config) { c.DataDir = "" }, "data directory"},
		"no routes":      {func(c *Config) { c.Routes = nil }, "routes"},
		"bad route":      {func(c *Config) { c.Routes[0].Path = "kg" }, "must start with /"},
		"duplicate path": {func(c *Config) { c.Routes = append(c.Routes, c.Routes[0]) }, "twice"},
	} {
		c := testConfig(t.TempDir())
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
			t.Errorf("%s: Validate = %v, want an error mentioning %q", name, err, tc.want)
		}
		if _, err := Start(t.Context(), c, testLogger()); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
	// An external NATS needs no data directory, but the default SQLite
	// views do: without either, the configuration is refused.
	c := testConfig("")
	c.NATSURL = machineURL
	if err := c.Validate(); err == nil {
		t.Errorf("external NATS with neither a data dir nor a views DSN was accepted")
	}
	c.DisableViews = true
	if err := c.Validate(); err != nil {
		t.Errorf("external NATS without a data dir and without views: %v", err)
	}
}

// TestStartFailureReleasesEverything: a start that fails late (the HTTP
// port is taken) shuts the embedded server down again, so the data
// directory can be used at once.
func TestStartFailureReleasesEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Listen = ln.Addr().String()
	if a, err := Start(t.Context(), cfg, testLogger()); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		t.Fatal("Start on a taken port succeeded")
	} else if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Start error %q does not name the address", err)
	}
	r := start(t, testConfig(dir))
	id := r.kg.create(t)
	checkAppInfo(t, r.kg.waitReady(t, id), id)
}

func TestNewAndQueryInstance(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	order := newOrder()
	body := newInstanceBody(order)
	a := r.kg.must(t, body)
	if a.ResultCode != "000000" || a.InstanceID != body["businessId"] || a.EncryptType != "1" {
		t.Fatalf("newInstance = %+v, want 000000 with instanceId = businessId %v (provisioned within the budget)", a, body["businessId"])
	}
	id := a.InstanceID
	checkAppInfo(t, r.kg.must(t, queryBody(id)), id)

	// A resend (new businessId) answers the same instance.
	again := newInstanceBody(order)
	if a := r.kg.must(t, again); a.ResultCode != "000000" || a.InstanceID != id {
		t.Errorf("resent newInstance = %+v, want 000000 for %s", a, id)
	}
	if n := countType(eventsOf(t, r.App, instance.Kind, id), instance.TypeCreated); n != 1 {
		t.Errorf("%d InstanceCreated events, want 1", n)
	}
	if a := r.kg.must(t, queryBody("no-such-instance")); a.ResultCode != "000003" {
		t.Errorf("query of an unknown id = %+v, want 000003", a)
	}
}

func TestReadyz(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	for _, path := range []string{"/readyz", "/healthz"} {
		resp, err := http.Get("http://" + r.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, resp.StatusCode, b)
		}
	}
}

// TestRestartSameDataDir: everything written before a restart is there
// after it, and the new process starts with an empty cache.
func TestRestartSameDataDir(t *testing.T) {
	dir := t.TempDir()
	r1 := start(t, testConfig(dir))
	active := r1.kg.create(t)
	frozen := r1.kg.create(t)
	released := r1.kg.create(t)
	order := newOrder()
	resend := newInstanceBody(order)
	a := r1.kg.must(t, resend)
	if a.InstanceID == "" {
		t.Fatalf("newInstance = %+v", a)
	}
	fourth := a.InstanceID
	r1.kg.waitReady(t, fourth)
	if a := r1.kg.must(t, statusBody(frozen, "FREEZE")); a.ResultCode != "000000" {
		t.Fatalf("FREEZE = %+v", a)
	}
	if a := r1.kg.must(t, map[string]any{"activity": "releaseInstance", "instanceId": released}); a.ResultCode != "000000" {
		t.Fatalf("releaseInstance = %+v", a)
	}
	before := map[string]instance.State{}
	for _, id := range []string{active, frozen, fourth} {
		before[id] = freshState(t, r1.App, id)
	}
	if before[frozen].Status != instance.StatusFrozen || before[active].Status != instance.StatusActive {
		t.Fatalf("before the restart: %+v", before)
	}
	oldAddr := r1.Addr()
	if err := r1.shutdown(t); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-r1.Done():
		if err != nil {
			t.Errorf("Done after Shutdown = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Done not signalled after Shutdown")
	}

	r2 := start(t, testConfig(dir))
	if r2.Addr() == oldAddr {
		t.Logf("the new process got the same port %s again", oldAddr)
	}
	if n := r2.Instances().Repo().CacheLen(); n != 0 {
		t.Fatalf("CacheLen right after the restart = %d, want 0 (loaded lazily)", n)
	}
	checkAppInfo(t, r2.kg.must(t, queryBody(active)), active)
	if n := r2.Instances().Repo().CacheLen(); n != 1 {
		t.Errorf("CacheLen after one query = %d, want 1", n)
	}
	for id, st := range before {
		got := freshState(t, r2.App, id)
		if got.Status != st.Status || got.Events != st.Events || got.OrderID != st.OrderID || got.AppInfo == nil || *got.AppInfo != *st.AppInfo {
			t.Errorf("%s after the restart = %+v, before %+v", id, got, st)
		}
	}
	checkAppInfo(t, r2.kg.must(t, queryBody(frozen)), frozen) // frozen still answers its app info

	// Frozen stays frozen: FREEZE again is a no-op, UNFREEZE works.
	if a := r2.kg.must(t, statusBody(frozen, "FREEZE")); a.ResultCode != "000000" {
		t.Errorf("FREEZE of the frozen instance = %+v", a)
	}
	if got := freshState(t, r2.App, frozen); got.Status != instance.StatusFrozen || got.Events != before[frozen].Events {
		t.Errorf("frozen after a second FREEZE = %+v, want frozen with no new event", got)
	}
	if a := r2.kg.must(t, statusBody(frozen, "UNFREEZE")); a.ResultCode != "000000" {
		t.Errorf("UNFREEZE = %+v", a)
	}
	if got := freshState(t, r2.App, frozen); got.Status != instance.StatusActive {
		t.Errorf("after UNFREEZE: %s", got.Status)
	}
	if a := r2.kg.must(t, statusBody(active, "FREEZE")); a.ResultCode != "000000" {
		t.Errorf("FREEZE = %+v", a)
	}
	if got := freshState(t, r2.App, active); got.Status != instance.StatusFrozen {
		t.Errorf("after FREEZE: %s", got.Status)
	}

	// Released stays released.
	if a := r2.kg.must(t, queryBody(released)); a.ResultCode != "000003" {
		t.Errorf("query of the released instance = %+v, want 000003", a)
	}
	if a := r2.kg.must(t, statusBody(released, "FREEZE")); a.ResultCode != "000003" {
		t.Errorf("FREEZE of the released instance = %+v, want 000003", a)
	}
	if st, _, err := r2.Instances().Repo().Get(testContext(t), released, true); err != nil || st.Status != instance.StatusReleased {
		t.Errorf("released instance after the restart = %+v, %v", st, err)
	}

	// The order index survived: a resent newInstance gets the same id.
	resend["businessId"] = uuid.NewString()
	if a := r2.kg.must(t, resend); a.ResultCode != "000000" || a.InstanceID != fourth {
		t.Errorf("resent newInstance after the restart = %+v, want 000000 for %s", a, fourth)
	}
	if n := countType(eventsOf(t, r2.App, instance.Kind, fourth), instance.TypeCreated); n != 1 {
		t.Errorf("%d InstanceCreated for %s, want 1", n, fourth)
	}
	// A new instance after the restart works end to end.
	id := r2.kg.create(t)
	checkAppInfo(t, r2.kg.waitReady(t, id), id)
}

// TestGracefulShutdown: calls in flight while Shutdown runs all get a
// complete, signed answer; Shutdown returns nil; every instance answered
// for was durably recorded.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	r := start(t, testConfig(dir))
	const workers = 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered []string
		bad      []error
		total    atomic.Int64
		inflight atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for range 1000 {
				inflight.Add(1)
				a, err := r.kg.send(newInstanceBody(newOrder()))
				inflight.Add(-1)
				if errors.Is(err, errNoResponse) {
					return // the server stopped accepting: fine
				}
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, err)
				case a.ResultCode != "000000" && a.ResultCode != "000004" || a.InstanceID == "":
					bad = append(bad, fmt.Errorf("answer during shutdown: %+v", a))
				default:
					answered = append(answered, a.InstanceID)
				}
				mu.Unlock()
				total.Add(1)
				if err != nil {
					return
				}
			}
		})
	}
	// Let traffic flow, then shut down with calls in flight.
	deadline := time.Now().Add(20 * time.Second)
	for total.Load() < 3*workers {
		if time.Now().After(deadline) {
			t.Fatalf("only %d answers before the deadline", total.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	atShutdown := inflight.Load()
	if err := r.shutdown(t); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	wg.Wait()
	for _, err := range bad {
		t.Error(err)
	}
	if len(answered) == 0 {
		t.Fatal("no call was answered")
	}
	if _, err := http.Get("http://" + r.Addr() + "/readyz"); err == nil {
		t.Error("the HTTP server still answers after Shutdown")
	}

	// Every answer was given after JetStream acknowledged the instance.
	r2 := start(t, testConfig(dir))
	for _, id := range answered {
		if _, err := r2.Instances().Get(testContext(t), id); err != nil {
			t.Errorf("instance %s answered before the shutdown: %v", id, err)
		}
	}
	t.Logf("%d calls answered, %d in flight when Shutdown began", len(answered), atShutdown)
}

// ---------------------------------------------------------------------------
// Two serve processes on the machine's NATS server.

// machine reports whether the machine NATS is reachable; it skips the test
// (or fails it when GALLERIST_REQUIRE_SERVICES=1) otherwise.
func machine(t *testing.T) *nats.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(machineURL, "nats://"), 2*time.Second)
	if err != nil {
		if os.Getenv(requireServicesEnv) == "1" {
			t.Fatalf("machine NATS at %s unreachable and %s=1: %v", machineURL, requireServicesEnv, err)
		}
		t.Skipf("machine NATS at %s unreachable (%v); set %s=1 to make this a failure", machineURL, err, requireServicesEnv)
	}
	_ = c.Close()
	nc, err := nats.Connect(machineURL, nats.Name("gallerist-app-test"), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to machine NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// machineConfig is a configuration on the machine's NATS with a stream and
// subject prefix of the test's own, deleted at cleanup (registered before
// any App starts, so that it runs after they stopped). The nonce bucket is
// the fixed default one, shared and left alone (see the report).
func machineConfig(t *testing.T) Config {
	t.Helper()
	nc := machine(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "GALLERIST_APPTEST_" + strings.ToUpper(hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("jetstream: %v", err)
			return
		}
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	c := testConfig(t.TempDir()) // the data dir only holds this replica's SQLite views
	c.NATSURL = machineURL
	c.Stream = name
	c.Prefix = "gapptest." + strings.ToLower(name)
	return c
}

func TestTwoProcessesOnOneNATS(t *testing.T) {
	cfg := machineConfig(t)
	a := start(t, cfg)
	b := start(t, cfg)
	ctx := testContext(t)

	// Created on A, read on B.
	created := a.kg.must(t, newInstanceBody(newOrder()))
	if created.ResultCode != "000000" {
		t.Fatalf("newInstance on A = %+v, want 000000", created)
	}
	id := created.InstanceID
	checkAppInfo(t, b.kg.must(t, queryBody(id)), id)

	// Frozen on B; A's cache does not know it.
	if ans := b.kg.must(t, statusBody(id, "FREEZE")); ans.ResultCode != "000000" {
		t.Fatalf("FREEZE on B = %+v", ans)
	}
	if st, _, err := a.Instances().Repo().Get(ctx, id, false); err != nil || st.Status == instance.StatusFrozen {
		t.Fatalf("A's cached state = %+v, %v; the test needs it stale (not frozen)", st, err)
	}
	// FREEZE on A, decided on the stale cache, conflicts, reloads: already
	// frozen, so 000000 and no second event.
	if ans := a.kg.must(t, statusBody(id, "FREEZE")); ans.ResultCode != "000000" {
		t.Errorf("FREEZE on A = %+v, want 000000", ans)
	}
	if st := freshState(t, a.App, id); st.Status != instance.StatusFrozen {
		t.Errorf("A reads %s, want frozen", st.Status)
	}
	if n := countType(eventsOf(t, a.App, instance.Kind, id), instance.TypeFrozen); n != 1 {
		t.Errorf("%d InstanceFrozen events, want exactly 1", n)
	}
	// UNFREEZE on A is seen by B.
	if ans := a.kg.must(t, statusBody(id, "UNFREEZE")); ans.ResultCode != "000000" {
		t.Errorf("UNFREEZE on A = %+v", ans)
	}
	if st := freshState(t, b.App, id); st.Status != instance.StatusActive {
		t.Errorf("B reads %s after UNFREEZE on A, want active", st.Status)
	}

	// 20 concurrent newInstance of one order line over A and B: one id.
	order := newOrder()
	const n = 20
	var wg sync.WaitGroup
	answers := make([]answer, n)
	errs := make([]error, n)
	for i := range n {
		k := a.kg
		if i%2 == 1 {
			k = b.kg
		}
		wg.Go(func() { answers[i], errs[i] = k.send(newInstanceBody(order)) })
	}
	wg.Wait()
	ids := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
			continue
		}
		if c := answers[i].ResultCode; c != "000000" && c != "000004" {
			t.Errorf("call %d = %+v", i, answers[i])
		}
		ids[answers[i].InstanceID]++
	}
	if len(ids) != 1 {
		t.Fatalf("one order line got %d instance ids: %v", len(ids), ids)
	}
	var one string
	for id := range ids {
		one = id
	}
	if c := countType(eventsOf(t, a.App, instance.Kind, one), instance.TypeCreated); c != 1 {
		t.Errorf("%d InstanceCreated events for %s, want 1", c, one)
	}
	if c := len(eventsOf(t, b.App, instance.IndexKind, order, order+"-000001")); c != 1 {
		t.Errorf("%d order index events, want 1", c)
	}
	checkAppInfo(t, a.kg.waitReady(t, one), one)
	checkAppInfo(t, b.kg.waitReady(t, one), one)
}

// TestStartContextOnlyGovernsStart: like bus.StartEmbedded and bus.Connect,
// Start's context bounds the start. `gallerist serve` passes its signal
// context, which is cancelled before Shutdown runs; Shutdown's contract is
// "finish in-flight calls, then stop the effects". So after the context is
// cancelled (and before Shutdown), newInstance must still be provisioned.
func TestStartContextOnlyGovernsStart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ProvisionBudget = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	a, err := Start(ctx, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	r := &running{App: a, kg: newKG(t, "http://"+a.Addr()+routePath)}
	t.Cleanup(func() {
		if err := r.shutdown(t); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	if ans := r.kg.must(t, newInstanceBody(newOrder())); ans.ResultCode != "000000" {
		t.Fatalf("newInstance before the cancel = %+v", ans)
	}
	cancel() // SIGTERM in serve: Shutdown follows, in-flight calls still run
	until := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(until); i++ {
		ans := r.kg.must(t, newInstanceBody(newOrder()))
		if ans.ResultCode != "000000" {
			t.Fatalf("newInstance %d after Start's context was cancelled (server still serving) = %+v, want 000000: "+
				"the provisioning worker was stopped by the context before Shutdown", i, ans)
		}
	}
}
