package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/api"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
	"github.com/gallerist/gallerist/projections/provision"
	"github.com/gallerist/gallerist/projections/views"
	"github.com/gallerist/gallerist/projections/webhook"
)

const (
	hookPath      = "/kg/hook"
	hookSecretEnv = "GALLERIST_TEST_HOOK_SECRET"
	apiToken      = "test-token-0123456789"
)

var hookSecret = []byte("a-vendor-secret-of-32-bytes-----")

// fastEffects retries quickly and parks after three attempts.
var fastEffects = effects.RunnerConfig{RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3}

// ---------------------------------------------------------------------------
// A vendor's webhook receiver.

// delivery is one POST the receiver got.
type delivery struct {
	n      webhook.Notification
	header http.Header
	status int   // what the receiver answered
	sigErr error // webhook.Verify over the raw body
}

type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(webhook.Notification) (int, any)
}

// newReceiver serves the webhook: it verifies every signature over the raw
// body, records the delivery and answers what answer says (status, JSON
// body or nil).
func newReceiver(t *testing.T, answer func(webhook.Notification) (int, any)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "unreadable", http.StatusBadRequest)
			return
		}
		d := delivery{header: r.Header.Clone(), sigErr: webhook.Verify(hookSecret, r.Header.Get(webhook.HeaderSignature), body)}
		if err := json.Unmarshal(body, &d.n); err != nil {
			d.sigErr = errors.Join(d.sigErr, fmt.Errorf("body %q: %w", body, err))
		}
		status, out := http.StatusUnauthorized, any(nil)
		if d.sigErr == nil {
			status, out = rc.answer(d.n)
		}
		d.status = status
		rc.mu.Lock()
		rc.got = append(rc.got, d)
		rc.mu.Unlock()
		if out == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// deliveries returns the POSTs about instance id, in arrival order.
func (rc *receiver) deliveries(id string) []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []delivery
	for _, d := range rc.got {
		if d.n.InstanceID == id {
			out = append(out, d)
		}
	}
	return out
}

// accepted returns the first 2xx-answered delivery of each event of
// instance id, in arrival order (delivery is at least once).
func (rc *receiver) accepted(id string) []delivery {
	seen := map[string]bool{}
	var out []delivery
	for _, d := range rc.deliveries(id) {
		if d.status/100 == 2 && !seen[d.n.EventID] {
			seen[d.n.EventID] = true
			out = append(out, d)
		}
	}
	return out
}

// badSignatures lists the deliveries whose signature or body was wrong.
func (rc *receiver) badSignatures() []error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []error
	for _, d := range rc.got {
		if d.sigErr != nil {
			out = append(out, d.sigErr)
		}
	}
	return out
}

func typesOf(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.n.EventType
	}
	return out
}

func ok204(webhook.Notification) (int, any) { return http.StatusNoContent, nil }

// ---------------------------------------------------------------------------

// hookConfig is testConfig plus a route hookPath whose webhook posts to url
// (provisioning as given), with the secret in the injected environment.
func hookConfig(t *testing.T, url string, provisioning bool) Config {
	cfg := testConfig(t.TempDir())
	cfg.Routes = append(cfg.Routes, config.Route{
		Path: hookPath, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: "k"}},
		Webhook: &config.Webhook{URL: url, SecretEnv: hookSecretEnv, Timeout: 5 * time.Second, Provisioning: provisioning},
	})
	cfg.Getenv = func(name string) string {
		if name == hookSecretEnv {
			return string(hookSecret)
		}
		return ""
	}
	cfg.Effects = fastEffects
	return cfg
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is start with the App's log (Info and above) in a buffer.
func startLogged(t *testing.T, cfg Config) (*running, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(context.WithoutCancel(ctx), cfg, slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
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
	return r, buf
}

// eventually polls cond until it holds; it fails the test with cond's last
// description after a generous deadline.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened: %s", what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logIDs returns the ids of the instance's events of the given types, in
// log order.
func logIDs(t *testing.T, a *App, id string, types ...string) []string {
	t.Helper()
	var out []string
	for _, rec := range eventsOf(t, a, instance.Kind, id) {
		if slices.Contains(types, rec.Event.Type) {
			out = append(out, rec.Event.ID)
		}
	}
	return out
}

// ---------------------------------------------------------------------------

// A route with a notifying webhook: the vendor receives the instance's
// lifecycle in order, each event signed and keyed by its id.
func TestWebhookNotifiesLifecycle(t *testing.T) {
	recv := newReceiver(t, ok204)
	r, logs := startLogged(t, hookConfig(t, recv.URL+"/gallerist?tenant=all", false))
	kg := newKG(t, "http://"+r.Addr()+hookPath)

	id := kg.create(t)
	if a := kg.must(t, statusBody(id, "FREEZE")); a.ResultCode != "000000" {
		t.Fatalf("FREEZE = %+v", a)
	}
	if a := kg.must(t, map[string]any{"activity": "releaseInstance", "instanceId": id}); a.ResultCode != "000000" {
		t.Fatalf("releaseInstance = %+v", a)
	}
	want := []string{instance.TypeCreated, instance.TypeProvisioned, instance.TypeFrozen, instance.TypeReleased}
	eventually(t, "the whole lifecycle at the vendor", func() (bool, string) {
		got := typesOf(recv.accepted(id))
		return len(got) >= len(want), fmt.Sprint(got)
	})
	got := recv.accepted(id)
	if !slices.Equal(typesOf(got), want) {
		t.Fatalf("vendor received %v, want %v", typesOf(got), want)
	}
	ids := logIDs(t, r.App, id, want...)
	for i, d := range got {
		if d.n.EventID != ids[i] || d.header.Get(webhook.HeaderIdempotencyKey) != d.n.EventID || d.header.Get(webhook.HeaderEventID) != d.n.EventID ||
			d.header.Get(webhook.HeaderEventType) != d.n.EventType {
			t.Errorf("delivery %d: event %s (log: %s), Idempotency-Key %q, headers %v", i, d.n.EventID, ids[i], d.header.Get(webhook.HeaderIdempotencyKey), d.header)
		}
		if d.n.Route != hookPath || d.n.InstanceID != id {
			t.Errorf("delivery %d: route %q instance %q", i, d.n.Route, d.n.InstanceID)
		}
		if i > 0 && d.n.Sequence <= got[i-1].n.Sequence {
			t.Errorf("delivery %d: sequence %d after %d", i, d.n.Sequence, got[i-1].n.Sequence)
		}
	}
	if errs := recv.badSignatures(); len(errs) > 0 {
		t.Errorf("deliveries with a bad signature: %v", errs)
	}
	// The route without a webhook calls nobody.
	other := r.kg.create(t)
	if ds := recv.deliveries(other); len(ds) != 0 {
		t.Errorf("route without webhook: %d deliveries", len(ds))
	}
	if n := strings.Count(logs.String(), "Query Order enrichment is off"); n != 1 {
		t.Errorf("%d log lines say Query Order is off, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), string(hookSecret)) {
		t.Error("the webhook secret is in the log")
	}
}

// A provisioning route: the vendor's answer to InstanceCreated is the app
// info KooGallery receives, or a refusal with a creation code.
func TestWebhookProvisioning(t *testing.T) {
	recv := newReceiver(t, func(n webhook.Notification) (int, any) {
		if n.EventType != instance.TypeCreated {
			return http.StatusNoContent, nil
		}
		if strings.HasPrefix(n.Causation.OrderID, "REFUSE") {
			return http.StatusUnprocessableEntity, webhook.Refusal{ResultCode: "000103", Message: "already purchased by this buyer"}
		}
		return http.StatusOK, map[string]string{
			"frontEndUrl": "https://vendor.example.com/t/" + n.InstanceID, "adminUrl": "https://vendor.example.com/admin/" + n.InstanceID,
			"userName": "vendor-admin", "password": "Vendor-Pass-123!", "memo": "made by the vendor",
		}
	})
	r := start(t, hookConfig(t, recv.URL, true))
	kg := newKG(t, "http://"+r.Addr()+hookPath)

	id := kg.create(t)
	a := kg.waitReady(t, id)
	if len(a.Info) != 1 || a.Info[0].AppInfo == nil || a.Info[0].AppInfo.FrontEndURL != "https://vendor.example.com/t/"+id {
		t.Fatalf("queryInstance = %+v, want the vendor's app info", a)
	}
	c, err := koogallery.NewCipher(routeKey, koogallery.EncryptAES256)
	if err != nil {
		t.Fatal(err)
	}
	if user, err := c.Decrypt(a.Info[0].AppInfo.UserName); err != nil || user != "vendor-admin" {
		t.Errorf("userName decrypts to %q, %v", user, err)
	}
	if pw, err := c.Decrypt(a.Info[0].AppInfo.Password); err != nil || pw != "Vendor-Pass-123!" {
		t.Errorf("password decrypts to %q, %v", pw, err)
	}
	if a.Info[0].AppInfo.Memo != "made by the vendor" {
		t.Errorf("memo %q", a.Info[0].AppInfo.Memo)
	}

	body := newInstanceBody("REFUSE" + newOrder())
	refused := body["businessId"].(string)
	first := kg.must(t, body)
	if first.ResultCode != "000103" && first.ResultCode != "000004" {
		t.Fatalf("newInstance of a refused order = %+v, want 000103 (or 000004 while the vendor answers)", first)
	}
	eventually(t, "the refusal in queryInstance", func() (bool, string) {
		q := kg.must(t, queryBody(refused))
		return q.ResultCode == "000103" && strings.Contains(q.ResultMsg, "already purchased by this buyer"), fmt.Sprintf("%+v", q)
	})
	if again := kg.must(t, body); again.ResultCode != "000103" || !strings.Contains(again.ResultMsg, "already purchased by this buyer") {
		t.Errorf("newInstance resent after the refusal = %+v, want 000103 with the vendor's message", again)
	}

	// The vendor hears of the outcomes only after it answered the creation
	// (the InstanceCreated it answered is not sent again).
	for inst, want := range map[string][]string{
		id:      {instance.TypeCreated, instance.TypeProvisioned},
		refused: {instance.TypeCreated, instance.TypeProvisioningFailed},
	} {
		eventually(t, "the outcome at the vendor", func() (bool, string) {
			got := typesOf(recv.accepted(inst))
			return slices.Contains(got, want[1]), fmt.Sprintf("%s: %v (all: %v)", inst, got, typesOf(recv.deliveries(inst)))
		})
		seen := map[string]bool{}
		var got []string
		for _, d := range recv.deliveries(inst) {
			if !seen[d.n.EventID] {
				seen[d.n.EventID] = true
				got = append(got, d.n.EventType)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: vendor received %v, want %v", inst, got, want)
		}
	}
	if errs := recv.badSignatures(); len(errs) > 0 {
		t.Errorf("deliveries with a bad signature: %v", errs)
	}
}

// apiClient calls the query API with the test token.
type apiClient struct {
	base string
	hc   *http.Client
}

func (c apiClient) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(testContext(t), method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (c apiClient) parked(t *testing.T, id string) []views.ParkedEffect {
	t.Helper()
	status, b := c.do(t, http.MethodGet, "/v1/effects/parked?effect=webhook&instanceId="+id, nil)
	if status != http.StatusOK {
		t.Fatalf("GET parked: %d %s", status, b)
	}
	var l api.ParkedList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Effects
}

// A vendor refusing an instance's notifications parks them, holds back the
// instance's later events while other instances' flow, shows them in the
// query API's parked list, and delivers them in order when re-driven
// through the API once the vendor is fixed.
func TestWebhookParksAndRedrives(t *testing.T) {
	var mu sync.Mutex
	failing := map[string]bool{}
	recv := newReceiver(t, func(n webhook.Notification) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		if failing[n.InstanceID] {
			return http.StatusBadRequest, map[string]string{"error": "no such tenant"}
		}
		return http.StatusNoContent, nil
	})
	cfg := hookConfig(t, recv.URL, false)
	cfg.APIAddr, cfg.APITokens = "127.0.0.1:0", []string{apiToken}
	r := start(t, cfg)
	kg := newKG(t, "http://"+r.Addr()+hookPath)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := apiClient{base: "http://" + r.APIAddr(), hc: &http.Client{Transport: tr, Timeout: time.Minute}}

	body := newInstanceBody(newOrder())
	stuck := body["businessId"].(string)
	mu.Lock()
	failing[stuck] = true
	mu.Unlock()
	if a := kg.must(t, body); a.ResultCode != "000000" && a.ResultCode != "000004" {
		t.Fatalf("newInstance = %+v", a)
	}
	kg.waitReady(t, stuck)
	if a := kg.must(t, statusBody(stuck, "FREEZE")); a.ResultCode != "000000" {
		t.Fatalf("FREEZE = %+v", a)
	}
	held := []string{instance.TypeCreated, instance.TypeProvisioned, instance.TypeFrozen}

	// Another instance's events flow meanwhile.
	flowing := kg.create(t)
	kg.must(t, statusBody(flowing, "FREEZE"))
	eventually(t, "the other instance's events at the vendor", func() (bool, string) {
		got := typesOf(recv.accepted(flowing))
		return slices.Equal(got, held), fmt.Sprint(got)
	})

	// The stuck instance: its creation parked at the first 400, the rest
	// held back behind it, all listed by the API.
	eventually(t, "the parked list", func() (bool, string) {
		ps := c.parked(t, stuck)
		var types []string
		for _, p := range ps {
			types = append(types, p.EventType)
		}
		return slices.Equal(types, held), fmt.Sprintf("%+v", ps)
	})
	ps := c.parked(t, stuck)
	if !strings.Contains(ps[0].Reason, "400") || ps[0].Attempts != 1 || !strings.Contains(ps[1].Reason, "held back") {
		t.Errorf("parked: %+v", ps)
	}
	if got := typesOf(recv.deliveries(stuck)); !slices.Equal(got, []string{instance.TypeCreated}) {
		t.Errorf("the vendor got %v for the stuck instance, want only the refused creation", got)
	}

	redrive := map[string]string{"effect": webhook.Name, "instanceId": stuck, "operator": "test-operator"}
	// Re-driven while the vendor still refuses: done, and parked anew.
	if status, b := c.do(t, http.MethodPost, "/v1/effects/redrive", redrive); status != http.StatusAccepted {
		t.Fatalf("re-drive while failing: %d %s", status, b)
	}
	if exact, err := r.Effects().ListParked(testContext(t), webhook.Name); err != nil || len(exact) != len(held) {
		t.Fatalf("after a failed re-drive: %+v, %v", exact, err)
	}
	if got := typesOf(recv.deliveries(stuck)); len(got) < 2 || slices.ContainsFunc(got, func(typ string) bool { return typ != instance.TypeCreated }) {
		t.Errorf("the vendor got %v for the stuck instance, want only the creation, refused again", got)
	}

	mu.Lock()
	delete(failing, stuck)
	mu.Unlock()
	status, b := c.do(t, http.MethodPost, "/v1/effects/redrive", redrive)
	var res api.RedriveResult
	if status != http.StatusAccepted || json.Unmarshal(b, &res) != nil || res.Redriven != 1 {
		t.Fatalf("re-drive: %d %s", status, b)
	}
	if got := typesOf(recv.accepted(stuck)); !slices.Equal(got, held) {
		t.Fatalf("after the re-drive the vendor accepted %v, want %v", got, held)
	}
	if ids, got := logIDs(t, r.App, stuck, held...), recv.accepted(stuck); len(ids) != len(got) || ids[0] != got[0].n.EventID || ids[2] != got[2].n.EventID {
		t.Errorf("re-driven events %v are not the log's %v", got, ids)
	}
	eventually(t, "the parked list emptied", func() (bool, string) {
		ps := c.parked(t, stuck)
		return len(ps) == 0, fmt.Sprintf("%+v", ps)
	})

	// The instance's later events flow again.
	kg.must(t, statusBody(stuck, "UNFREEZE"))
	eventually(t, "the unfreeze at the vendor", func() (bool, string) {
		got := typesOf(recv.accepted(stuck))
		return slices.Equal(got, append(held, instance.TypeUnfrozen)), fmt.Sprint(got)
	})

	// Nothing left to re-drive, or an effect this server does not run: 404.
	for _, body := range []map[string]string{
		redrive,
		{"effect": webhook.Name, "operator": "test-operator"},
		{"effect": "nope", "instanceId": stuck, "operator": "test-operator"},
	} {
		if status, b := c.do(t, http.MethodPost, "/v1/effects/redrive", body); status != http.StatusNotFound {
			t.Errorf("re-drive %v: %d %s, want 404", body, status, b)
		}
	}
	if errs := recv.badSignatures(); len(errs) > 0 {
		t.Errorf("deliveries with a bad signature: %v", errs)
	}
}

// With AK/SK set, every new order is enriched by Query Order (here against
// the local stand-in of KooGallery's open API); the event log and the views
// show what was bought. AK and SK stay out of the log.
func TestQueryOrderEnrichment(t *testing.T) {
	const ak, sk = "AK-GALLERIST-APP-TEST", "SK-GALLERIST-APP-TEST-0123456789"
	kg := standin.New(standin.Config{Credentials: map[string]string{ak: sk}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	order := newOrder()
	mock := standin.MockOrders()[0] // a yearly PERIOD order of MockProductPeriod, SKU MockSKUBasic
	mock.OrderID, mock.OrderLine[0].OrderLineID = order, order+"-000001"
	kg.AddOrder(mock)

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := testConfig(t.TempDir())
	cfg.Effects = fastEffects
	cfg.KooGallery = openapi.Config{
		Hosts: []string{srv.URL}, AK: ak, SK: sk, Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}
	r, logs := startLogged(t, cfg)

	a := r.kg.must(t, newInstanceBody(order))
	if a.ResultCode != "000000" && a.ResultCode != "000004" {
		t.Fatalf("newInstance = %+v", a)
	}
	id := a.InstanceID
	var info instance.OrderInfo
	eventually(t, "InstanceOrderQueried in the log", func() (bool, string) {
		for _, rec := range eventsOf(t, r.App, instance.Kind, id) {
			if rec.Event.Type == instance.TypeOrderQueried {
				var q instance.OrderQueried
				if err := json.Unmarshal(rec.Event.Data, &q); err != nil {
					return false, err.Error()
				}
				info = q.Info
				return true, ""
			}
		}
		return false, "no such event"
	})
	if info.OrderID != order || info.ProductID != standin.MockProductPeriod || info.SKUCode != standin.MockSKUBasic || info.ChargingMode != "PERIOD" {
		t.Errorf("order info %+v", info)
	}
	eventually(t, "product and SKU in the views", func() (bool, string) {
		inst, _, err := r.Views().GetInstance(testContext(t), id)
		if err != nil {
			return false, err.Error()
		}
		return inst.ProductID == standin.MockProductPeriod && inst.SKUCode == standin.MockSKUBasic, fmt.Sprintf("%+v", inst)
	})
	verified := 0
	for _, req := range kg.Requests() {
		if req.Verified && req.AK == ak && req.Path == standin.PathQueryOrder {
			verified++
		}
	}
	if verified == 0 {
		t.Errorf("no AK/SK-verified Query Order at the stand-in: %+v", kg.Requests())
	}
	if l := logs.String(); strings.Contains(l, sk) || strings.Contains(l, ak) || !strings.Contains(l, "Query Order enrichment on") {
		t.Errorf("log leaks AK/SK or does not say Query Order is on:\n%s", l)
	}
}

// A webhook whose secret is missing or short stops the start, naming the
// route and the variable.
func TestWebhookSecretRequired(t *testing.T) {
	for _, secret := range []string{"", "too-short"} {
		cfg := hookConfig(t, "https://vendor.example.com/hook", false)
		cfg.Getenv = func(string) string { return secret }
		a, err := Start(testContext(t), cfg, testLogger())
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = a.Shutdown(ctx)
			cancel()
			t.Fatalf("secret %q: Start succeeded", secret)
		}
		if msg := err.Error(); !strings.Contains(msg, hookSecretEnv) || !strings.Contains(msg, hookPath) || secret != "" && strings.Contains(msg, secret) {
			t.Errorf("secret %q: error %q does not name %s and %s (or repeats the secret)", secret, msg, hookSecretEnv, hookPath)
		}
	}
	cfg := testConfig(t.TempDir())
	cfg.KooGallery.AK = "only-the-ak"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), openapi.EnvSK) {
		t.Errorf("AK without SK: %v", err)
	}
}

// The adapter of the query API maps the runners' errors onto the API's.
func TestEffectsAPIErrors(t *testing.T) {
	e := effectsAPI{log: testLogger()}
	still := fmt.Errorf("%w: effect webhook, instance i1, event 7", effects.ErrStillParked)
	other := errors.New("NATS went away")
	for _, tc := range []struct {
		err  error
		want error // nil: success
	}{
		{nil, nil},
		{still, nil},
		{errors.Join(errors.Join(still, still)), nil},
		{fmt.Errorf("%w: %w", effects.ErrStillParked, other), nil},
		{errors.Join(still, other), other},
		{fmt.Errorf("%w: \"nope\"", effects.ErrUnknownEffect), api.ErrNotFound},
		{fmt.Errorf("%w: instance i1", effects.ErrNotParked), api.ErrNotFound},
		{fmt.Errorf("%w: event 9 behind 7", effects.ErrOutOfOrder), api.ErrInvalid},
		{context.DeadlineExceeded, context.DeadlineExceeded},
	} {
		got := e.result(tc.err, "webhook")
		if tc.want == nil && got != nil || tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("%v → %v, want %v", tc.err, got, tc.want)
		}
	}
	for _, args := range [][2]string{{"", "alice"}, {"webhook", " "}} {
		if err := checkRedrive(args[0], args[1]); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("checkRedrive%v = %v", args, err)
		}
	}
	if err := (effectsAPI{log: testLogger()}).Redrive(t.Context(), "webhook", "", "alice"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Redrive without an instance: %v", err)
	}
}

// With DisableEffects the runners do not consume (no durable consumer is
// created), but this process still has them for re-drives; provisioning
// (here through the webhook provisioner) has its own switch and still runs.
func TestDisableEffects(t *testing.T) {
	recv := newReceiver(t, func(n webhook.Notification) (int, any) {
		if n.EventType == instance.TypeCreated {
			return http.StatusOK, map[string]string{"frontEndUrl": "https://vendor.example.com/t/" + n.InstanceID}
		}
		return http.StatusNoContent, nil
	})
	cfg := hookConfig(t, recv.URL, true)
	cfg.DisableEffects = true
	r := start(t, cfg)
	kg := newKG(t, "http://"+r.Addr()+hookPath)
	id := kg.create(t)
	if a := kg.waitReady(t, id); a.Info[0].AppInfo.FrontEndURL != "https://vendor.example.com/t/"+id {
		t.Errorf("queryInstance = %+v, want the vendor's app info", a)
	}
	// Provisioning is an effect too: listed, re-drivable, and running.
	if r.Effects() == nil || !slices.Equal(r.Effects().Effects(), []string{provision.Name, webhook.Name}) {
		t.Fatalf("effects for re-drives: %v", r.Effects())
	}
	js, err := jetstream.New(r.conns[3])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(testContext(t), r.Store().Config().Stream, "effect-"+provision.Name); err != nil {
		t.Errorf("the provisioning consumer with DisableEffects: %v", err)
	}
	if _, err := js.Consumer(testContext(t), r.Store().Config().Stream, "effect-"+webhook.Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the webhook's consumer with DisableEffects: %v, want not found", err)
	}
	if ps, err := r.Effects().ListParked(testContext(t), ""); err != nil || len(ps) != 0 {
		t.Errorf("ListParked: %v, %v", ps, err)
	}
}
