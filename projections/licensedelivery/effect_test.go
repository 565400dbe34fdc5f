package licensedelivery

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// The instance service is the effect's Recorder, the open-API client its
// Uploader, the built-in issuer an Issuer.
var (
	_ Recorder = (*instances.Service)(nil)
	_ Uploader = (*openapi.Client)(nil)
	_ Issuer   = (*Builtin)(nil)
)

const (
	testAK = "AK-LICENSEDELIVERY-TEST"
	testSK = "SK-LICENSEDELIVERY-TEST"
	route  = "/koogallery/license-c"
)

var testKey = ed25519.NewKeyFromSeed([]byte("licensedelivery-test-seed-000032"))

// rig is one test's world: an embedded nats-server (fsync interval an
// hour, see testenv), the JetStream event store, the instance service, a
// KooGallery stand-in over TLS, the effect on a real open-API client and
// the effects runner.
type rig struct {
	url   string
	hc    *http.Client
	store *eventstore.JetStreamStore
	svc   *instances.Service
	kg    *standin.Server
	eff   *Effect
	log   *slog.Logger
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newRig(t *testing.T) *rig {
	t.Helper()
	log := testLogger()
	env := testenv.Instances(t, log)
	kg := standin.New(standin.Config{Credentials: map[string]string{testAK: testSK}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	r := &rig{url: srv.URL, store: env.Store, svc: env.Svc, kg: kg, log: log,
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	iss, err := NewBuiltin(testKey, 0, map[string]string{"edition": "industrial"})
	if err != nil {
		t.Fatal(err)
	}
	eff, err := New(r.client(t, testSK), env.Svc, func(path string) (Issuer, bool) { return iss, path == route }, log)
	if err != nil {
		t.Fatal(err)
	}
	r.eff = eff
	return r
}

// client is an open-API client of the stand-in with the test AK and sk.
func (r *rig) client(t *testing.T, sk string) *openapi.Client {
	t.Helper()
	c, err := openapi.New(openapi.Config{
		Site: openapi.SiteMainland, Hosts: []string{r.url}, AK: testAK, SK: sk, Timeout: 5 * time.Second, HTTPClient: r.hc,
	}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastConfig retries quickly so that tests of retries finish soon.
func fastConfig() effects.RunnerConfig {
	return effects.RunnerConfig{
		RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond, MaxAttempts: 5,
		Concurrency: 4, AckWait: 5 * time.Second, TurnWaitMax: 50 * time.Millisecond,
	}
}

// runner starts the effect's runner; it is stopped at cleanup.
func (r *rig) runner(t *testing.T) *effects.Runner {
	t.Helper()
	c := r.store.Config()
	run, err := effects.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, r.eff, fastConfig(), r.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	return run
}

// create is newInstance on the License C route; it returns the instance id.
func (r *rig) create(t *testing.T, tag string) string {
	t.Helper()
	cause := event.Causation{Activity: "newInstance", OrderID: "o-" + tag, OrderLineID: "l-" + tag, BusinessID: "biz-" + tag, Route: route}
	st, err := r.svc.Create(testContext(t), cause.OrderID, cause.OrderLineID, cause.BusinessID, cause, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}

// apply is getLicenseAsync as the ingress records it.
func (r *rig) apply(t *testing.T, id string, cmd instance.RequestLicense) {
	t.Helper()
	cause := event.Causation{Activity: "getLicenseAsync", Nonce: "n-" + cmd.EventID, Route: route}
	if _, err := r.svc.Execute(testContext(t), id, cmd, cause); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) application(t *testing.T, id, eventID string) instance.LicenseApplication {
	t.Helper()
	st, err := r.svc.Get(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := st.LicenseApplication(eventID)
	if !ok {
		t.Fatalf("no application %s on %s", eventID, id)
	}
	return a
}

func (r *rig) events(t *testing.T, id string) []eventstore.Record {
	t.Helper()
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (r *rig) last(t *testing.T, id, typ string) eventstore.Record {
	t.Helper()
	var found *eventstore.Record
	for _, rec := range r.events(t, id) {
		if rec.Event.Type == typ {
			found = &rec
		}
	}
	if found == nil {
		t.Fatalf("no %s event for %s", typ, id)
	}
	return *found
}

func (r *rig) count(t *testing.T, id, typ string) int {
	t.Helper()
	n := 0
	for _, rec := range r.events(t, id) {
		if rec.Event.Type == typ {
			n++
		}
	}
	return n
}

// uploadsOf returns the stand-in's accepted uploads for an event id.
func (r *rig) uploadsOf(eventID string) []standin.Upload {
	var out []standin.Upload
	for _, u := range r.kg.Uploads() {
		if u.EventID == eventID {
			out = append(out, u)
		}
	}
	return out
}

// eventually polls cond until it holds, failing after a generous deadline
// (a liveness bound, not a timing assertion).
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

func verify(t *testing.T, text string, at time.Time) licensetoken.License {
	t.Helper()
	l, err := licensetoken.Verify(testKey.Public().(ed25519.PublicKey), []byte(text), at)
	if err != nil {
		t.Fatalf("the uploaded license does not verify with the public key: %v", err)
	}
	return l
}

func TestDeliversThroughTheRunner(t *testing.T) {
	r := newRig(t)
	id := r.create(t, "1")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const fp = "04:7C:16:5E:E3:5D|001B_444A_488B_5CEC.||BFEBFBFF00090672"
	r.apply(t, id, instance.RequestLicense{EventID: "87b94795-0603-4e24-8ae5-69420d60e3c8", Fingerprint: fp,
		EffectiveTime: start, ExpireTime: start.AddDate(1, 0, 0)})
	// A fingerprint of 3 KB makes a License longer than 1024 characters:
	// uploaded as a file.
	bigFP := strings.Repeat("A1:B2:C3:D4:E5:F6,", 170)
	r.apply(t, id, instance.RequestLicense{EventID: "ev-big", Fingerprint: bigFP, EffectiveTime: start})
	run := r.runner(t)

	eventually(t, "both licenses delivered", func() bool {
		return r.application(t, id, "87b94795-0603-4e24-8ae5-69420d60e3c8").Delivered && r.application(t, id, "ev-big").Delivered
	})
	if p, err := run.Progress(testContext(t), id); err != nil || len(p.Parked) != 0 {
		t.Fatalf("progress %+v %v", p, err)
	}

	ups := r.uploadsOf("87b94795-0603-4e24-8ae5-69420d60e3c8")
	if len(ups) != 1 || ups[0].Type != standin.UploadCharacters || ups[0].AK != testAK {
		t.Fatalf("uploads %+v", ups)
	}
	l := verify(t, ups[0].Characters, start.Add(time.Hour))
	if l.InstanceID != id || l.OrderID != "o-1" || !l.NotBefore.Equal(start) || !l.NotAfter.Equal(start.AddDate(1, 0, 0)) ||
		l.Features[FingerprintFeature] != fp || l.Features["edition"] != "industrial" {
		t.Errorf("license %+v", l)
	}
	app := r.application(t, id, "87b94795-0603-4e24-8ae5-69420d60e3c8")
	if app.Text != ups[0].Characters || app.LicenseID != l.ID || app.DeliveryType != string(openapi.UploadCharacters) || app.Failure != nil {
		t.Errorf("application %+v", app)
	}
	for _, req := range r.kg.Requests() {
		if !req.Verified {
			t.Errorf("a request was not AK/SK-verified: %+v", req.AuthError)
		}
	}

	big := r.uploadsOf("ev-big")
	if len(big) != 1 || big[0].Type != standin.UploadFile || big[0].FileName == "" {
		t.Fatalf("uploads %+v", big)
	}
	sum := sha256.Sum256(big[0].File)
	lb := verify(t, string(big[0].File), start.Add(time.Hour))
	if lb.Features[FingerprintFeature] != bigFP || !lb.NotAfter.Equal(start.AddDate(1, 0, 0)) { // default validity: 365 days
		t.Errorf("big license %+v", lb)
	}
	if a := r.application(t, id, "ev-big"); a.DeliveryType != string(openapi.UploadFile) || a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("big application %+v", a)
	}
	if r.count(t, id, instance.TypeLicenseIssued) != 2 || r.count(t, id, instance.TypeLicenseDelivered) != 2 {
		t.Errorf("events %v", r.events(t, id))
	}
	d := r.last(t, id, instance.TypeLicenseDelivered)
	if c := d.Event.Causation; c.Actor != Actor || c.Route != route {
		t.Errorf("causation %+v", c)
	}

	// Handling the event again (a redelivery after a crash) changes nothing.
	req := r.last(t, id, instance.TypeLicenseRequested)
	if err := r.eff.Handle(testContext(t), req.Event, req.Seq); err != nil {
		t.Fatal(err)
	}
	if len(r.kg.Uploads()) != 2 || r.count(t, id, instance.TypeLicenseDelivered) != 2 {
		t.Errorf("a redelivery uploaded or recorded again")
	}
}

func TestTransientFailureIsRetried(t *testing.T) {
	r := newRig(t)
	id := r.create(t, "2")
	r.kg.FailNext(1, http.StatusServiceUnavailable)
	r.apply(t, id, instance.RequestLicense{EventID: "ev-retry", EffectiveTime: time.Now().Add(-time.Hour)})
	run := r.runner(t)
	eventually(t, "delivered after a retry", func() bool { return r.application(t, id, "ev-retry").Delivered })
	if p, err := run.Progress(testContext(t), id); err != nil || len(p.Parked) != 0 {
		t.Fatalf("progress %+v %v", p, err)
	}
	if n := len(r.kg.Requests()); n != 2 {
		t.Errorf("%d upload calls, want 2 (one failed, one retried)", n)
	}
	ups := r.uploadsOf("ev-retry")
	if len(ups) != 1 {
		t.Fatalf("uploads %+v", ups)
	}
	verify(t, ups[0].Characters, time.Now())
	if r.count(t, id, instance.TypeLicenseIssued) != 1 || r.count(t, id, instance.TypeLicenseDeliveryFailed) != 0 {
		t.Errorf("events %v", r.events(t, id))
	}
}

func TestPermanentRefusalParks(t *testing.T) {
	r := newRig(t)
	id := r.create(t, "3")
	r.kg.AddUploadEvent(standin.UploadEvent{ID: "ev-denied", Outcome: standin.CodeUploadDenied})
	r.apply(t, id, instance.RequestLicense{EventID: "ev-denied", EffectiveTime: time.Now().Add(-time.Hour)})
	run := r.runner(t)

	var p effects.Progress
	eventually(t, "the refusal parked", func() bool {
		var err error
		if p, err = run.Progress(testContext(t), id); err != nil {
			t.Fatal(err)
		}
		return len(p.Parked) == 1
	})
	if pk := p.Parked[0]; pk.Attempts != 1 || pk.EventType != instance.TypeLicenseRequested || !strings.Contains(pk.Reason, standin.CodeUploadDenied) {
		t.Errorf("parked %+v", pk)
	}
	a := r.application(t, id, "ev-denied")
	if a.Delivered || a.Failure == nil || a.Failure.Code != standin.CodeUploadDenied || a.Text == "" {
		t.Fatalf("application %+v", a)
	}
	if n := len(r.uploadsOf("ev-denied")); n != 0 {
		t.Errorf("%d uploads accepted", n)
	}

	// KooGallery takes it now: an operator's re-drive uploads the same
	// License and records the delivery.
	r.kg.AddUploadEvent(standin.UploadEvent{ID: "ev-denied"})
	if err := run.Redrive(testContext(t), Name, id, "tester"); err != nil {
		t.Fatal(err)
	}
	a2 := r.application(t, id, "ev-denied")
	ups := r.uploadsOf("ev-denied")
	if !a2.Delivered || a2.Failure != nil || len(ups) != 1 || ups[0].Characters != a.Text {
		t.Fatalf("after the re-drive: %+v, uploads %+v", a2, ups)
	}
	if r.count(t, id, instance.TypeLicenseIssued) != 1 {
		t.Error("the license was issued twice")
	}
}

func TestUploadsTheRecordedLicense(t *testing.T) {
	r := newRig(t)
	id := r.create(t, "4")
	r.apply(t, id, instance.RequestLicense{EventID: "ev-same", EffectiveTime: time.Now().Add(-time.Hour)})
	// A License recorded earlier (a crash after issuing) is the one
	// uploaded; nothing is generated again.
	other, err := NewBuiltin(ed25519.NewKeyFromSeed([]byte("another-seed-of-32-bytes-0000032")), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.svc.Get(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	first, err := other.Issue(testContext(t), Request{InstanceID: id, EventID: "ev-same", EffectiveTime: time.Now().Add(-time.Hour), Instance: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Execute(testContext(t), id, instance.RecordLicenseIssued{EventID: "ev-same", LicenseID: first.LicenseID, Text: first.Text},
		event.Causation{Actor: Actor}); err != nil {
		t.Fatal(err)
	}
	req := r.last(t, id, instance.TypeLicenseRequested)
	if err := r.eff.Handle(testContext(t), req.Event, req.Seq); err != nil {
		t.Fatal(err)
	}
	if ups := r.uploadsOf("ev-same"); len(ups) != 1 || ups[0].Characters != first.Text {
		t.Fatalf("uploads %+v", ups)
	}
	if r.count(t, id, instance.TypeLicenseIssued) != 1 {
		t.Error("a second license was issued")
	}
}

func TestSkipsAndPermanentErrors(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	id := r.create(t, "5")
	r.apply(t, id, instance.RequestLicense{EventID: "ev-skip", EffectiveTime: time.Now().Add(-time.Hour)})
	req := r.last(t, id, instance.TypeLicenseRequested)

	if !r.eff.Wants(instance.TypeLicenseRequested) || r.eff.Wants(instance.TypeCreated) || r.eff.Wants(instance.TypeLicenseDelivered) || r.eff.Name() != Name {
		t.Error("wants or name")
	}
	debug := req
	debug.Event.Causation.TestFlag = true
	if err := r.eff.Handle(ctx, debug.Event, debug.Seq); err != nil {
		t.Fatal(err)
	}
	noIssuer := req
	noIssuer.Event.Causation.Route = "/elsewhere"
	if err := r.eff.Handle(ctx, noIssuer.Event, noIssuer.Seq); !effects.IsPermanent(err) {
		t.Errorf("no issuer: %v", err)
	}
	bad := req
	bad.Event.Data = []byte(`{"eventId":`)
	if err := r.eff.Handle(ctx, bad.Event, bad.Seq); !effects.IsPermanent(err) {
		t.Errorf("corrupt event: %v", err)
	}
	if len(r.kg.Requests()) != 0 || r.count(t, id, instance.TypeLicenseIssued) != 0 {
		t.Fatal("something was issued or uploaded")
	}

	// An instance released before the delivery gets none.
	if _, err := r.svc.Execute(ctx, id, instance.Release{}, event.Causation{Activity: "releaseInstance"}); err != nil {
		t.Fatal(err)
	}
	if err := r.eff.Handle(ctx, req.Event, req.Seq); err != nil {
		t.Fatal(err)
	}
	if len(r.kg.Requests()) != 0 {
		t.Error("a released instance's license was uploaded")
	}

	// Wrong credentials are refused for good (and recorded).
	id = r.create(t, "6")
	r.apply(t, id, instance.RequestLicense{EventID: "ev-cred", EffectiveTime: time.Now().Add(-time.Hour)})
	eff, err := New(r.client(t, "not-the-sk"), r.svc, r.eff.issuers, r.log)
	if err != nil {
		t.Fatal(err)
	}
	cred := r.last(t, id, instance.TypeLicenseRequested)
	err = eff.Handle(ctx, cred.Event, cred.Seq)
	var ae *openapi.APIError
	if !effects.IsPermanent(err) || !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("wrong SK: %v", err)
	}
	if a := r.application(t, id, "ev-cred"); a.Failure == nil || a.Failure.Code == "" || a.Delivered {
		t.Errorf("application %+v", a)
	}
	if _, err := New(nil, r.svc, r.eff.issuers, nil); err == nil {
		t.Error("New without an uploader")
	}
}
