package queryorder

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/gallerist/gallerist/internal/testenv"
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
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// The instance service is the effect's Recorder, the open-API client its
// Querier.
var (
	_ Recorder = (*instances.Service)(nil)
	_ Querier  = (*openapi.Client)(nil)
)

const (
	testAK = "AK-QUERYORDER-TEST"
	testSK = "SK-QUERYORDER-TEST"
)

// rig is one test's world: an embedded nats-server, the JetStream event
// store, the instance service, a KooGallery stand-in over TLS and the
// effect on a real open-API client.
type rig struct {
	store *eventstore.JetStreamStore
	svc   *instances.Service
	kg    *standin.Server
	eff   *Effect
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

func newRig(t *testing.T, sk string) *rig {
	t.Helper()
	log := testLogger()
	env := testenv.Instances(t, log)
	store, svc := env.Store, env.Svc

	kg := standin.New(standin.Config{Credentials: map[string]string{testAK: testSK}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client, err := openapi.New(openapi.Config{
		Site: openapi.SiteMainland, Hosts: []string{srv.URL}, AK: testAK, SK: sk, Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{store: store, svc: svc, kg: kg, eff: New(client, svc, log)}
}

// create is newInstance for the order line; it returns the instance id.
func (r *rig) create(t *testing.T, orderID, orderLineID, businessID string) string {
	t.Helper()
	cause := event.Causation{Activity: "newInstance", OrderID: orderID, OrderLineID: orderLineID, BusinessID: businessID, Route: "/saas"}
	st, err := r.svc.Create(testContext(t), orderID, orderLineID, businessID, cause, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}

// events loads the instance's events.
func (r *rig) events(t *testing.T, id string) []eventstore.Record {
	t.Helper()
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// last returns the instance's last event of type typ.
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

func (r *rig) handle(t *testing.T, rec eventstore.Record) error {
	t.Helper()
	return r.eff.Handle(testContext(t), rec.Event, rec.Seq)
}

func TestRecordsOrderOnCreate(t *testing.T) {
	r := newRig(t, testSK)
	id := r.create(t, "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001", "biz-1")
	created := r.last(t, id, instance.TypeCreated)
	if !r.eff.Wants(created.Event.Type) {
		t.Fatal("InstanceCreated not wanted")
	}
	for range 2 { // handling twice records once
		if err := r.handle(t, created); err != nil {
			t.Fatal(err)
		}
	}
	st, err := r.svc.Get(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	o := st.Order
	if o == nil {
		t.Fatal("no order recorded")
	}
	want := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	if o.OrderID != "MOCKPERIODYEARNEW" || o.OrderLineID != "MOCKPERIODYEARNEW-000001" || o.OrderType != "NEW" ||
		o.ChargingMode != "PERIOD" || o.PeriodType != "year" || o.PeriodNumber != 1 || !o.ExpireTime.Equal(want) ||
		o.ProductID != standin.MockProductPeriod || o.SKUCode != standin.MockSKUBasic || o.CustomerID != standin.MockCustomerID ||
		o.Trial || len(o.Raw) == 0 {
		t.Errorf("order %+v", o)
	}
	if st.ProductID != standin.MockProductPeriod || st.Trial {
		t.Errorf("state %+v", st)
	}
	if n := r.count(t, id, instance.TypeOrderQueried); n != 1 {
		t.Errorf("%d InstanceOrderQueried events, want 1", n)
	}
	q := r.last(t, id, instance.TypeOrderQueried)
	if c := q.Event.Causation; c.Actor != Actor || c.OrderID != "MOCKPERIODYEARNEW" || c.Route != "/saas" {
		t.Errorf("causation %+v", c)
	}
	if n := len(r.kg.Requests()); n != 2 {
		t.Errorf("%d Query Order calls, want 2", n)
	}
}

func TestTrialOrder(t *testing.T) {
	r := newRig(t, testSK)
	id := r.create(t, "MOCKPERIODDAYTRIAL", "MOCKPERIODDAYTRIAL-000001", "biz-trial")
	if err := r.handle(t, r.last(t, id, instance.TypeCreated)); err != nil {
		t.Fatal(err)
	}
	st, err := r.svc.Get(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Trial || st.Order == nil || !st.Order.Trial || st.Order.OrderType != "TRIAL" || st.Order.PeriodType != "day" {
		t.Errorf("state %+v order %+v", st, st.Order)
	}
}

// TestNewOrders: a renewal with change and an upgrade carry new orders; a
// plain renewal does not.
func TestNewOrders(t *testing.T) {
	r := newRig(t, testSK)
	ctx := testContext(t)
	id := r.create(t, "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001", "biz-2")
	cause := event.Causation{Activity: "refreshInstance"}

	renew := instance.Refresh{Scene: instance.SceneRenewal, OrderID: "MOCKMONTYRENEW", OrderLineID: "MOCKMONTYRENEW-000001", ExpireTime: time.Now().Add(time.Hour)}
	if _, err := r.svc.Execute(ctx, id, renew, cause); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(t, r.last(t, id, instance.TypeRefreshed)); err != nil {
		t.Fatal(err)
	}
	if n := len(r.kg.Requests()); n != 0 {
		t.Errorf("a plain renewal queried the order (%d calls)", n)
	}

	change := instance.Refresh{Scene: instance.SceneRenewalChange, OrderID: "MOCKMONTYCHANGE", OrderLineID: "MOCKMONTYCHANGE-000001", ExpireTime: time.Now().Add(2 * time.Hour)}
	if _, err := r.svc.Execute(ctx, id, change, cause); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(t, r.last(t, id, instance.TypeRefreshed)); err != nil {
		t.Fatal(err)
	}
	st, err := r.svc.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Order == nil || st.Order.OrderID != "MOCKMONTYCHANGE" || st.Order.OrderType != "CHANGE" || st.Order.SKUCode != standin.MockSKUPro {
		t.Errorf("after the change: %+v", st.Order)
	}

	up := instance.Upgrade{OrderID: "MOCKMONTYRENEW", OrderLineID: "MOCKMONTYRENEW-000001"}
	if _, err := r.svc.Execute(ctx, id, up, event.Causation{Activity: "upgradeInstance"}); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(t, r.last(t, id, instance.TypeUpgraded)); err != nil {
		t.Fatal(err)
	}
	if st, err = r.svc.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st.Order == nil || st.Order.OrderID != "MOCKMONTYRENEW" || st.Order.OrderType != "RENEW" {
		t.Errorf("after the upgrade: %+v", st.Order)
	}
	if n := r.count(t, id, instance.TypeOrderQueried); n != 2 {
		t.Errorf("%d InstanceOrderQueried events, want 2", n)
	}
}

func TestSkips(t *testing.T) {
	r := newRig(t, testSK)
	id := r.create(t, "MOCKONDEMAND", "MOCKONDEMAND-000001", "biz-3")
	created := r.last(t, id, instance.TypeCreated)

	debug := created
	debug.Event.Causation.TestFlag = true
	if err := r.handle(t, debug); err != nil {
		t.Fatal(err)
	}
	other := created
	other.Event.Type = instance.TypeFrozen
	if r.eff.Wants(other.Event.Type) || r.eff.Wants(instance.TypeOrderQueried) || r.eff.Wants(instance.TypeProvisioned) {
		t.Error("wants events without a new order")
	}
	if err := r.handle(t, other); err != nil {
		t.Fatal(err)
	}
	if n := len(r.kg.Requests()); n != 0 {
		t.Errorf("%d Query Order calls, want 0", n)
	}
	if n := r.count(t, id, instance.TypeOrderQueried); n != 0 {
		t.Errorf("%d InstanceOrderQueried events", n)
	}
	if r.eff.Name() != "queryorder" {
		t.Errorf("name %q", r.eff.Name())
	}
}

func TestFailures(t *testing.T) {
	r := newRig(t, testSK)
	ctx := testContext(t)

	// A transient failure is returned for a retry, which then succeeds.
	id := r.create(t, "MOCKONETIMENEW", "MOCKONETIMENEW-000001", "biz-4")
	created := r.last(t, id, instance.TypeCreated)
	r.kg.FailNext(1, http.StatusServiceUnavailable)
	err := r.handle(t, created)
	if err == nil || effects.IsPermanent(err) {
		t.Fatalf("503: %v", err)
	}
	var ae *openapi.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("503 not returned as is: %v", err)
	}
	if err := r.handle(t, created); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st, _ := r.svc.Get(ctx, id); st.Order == nil || st.Order.ChargingMode != "ONE_TIME" {
		t.Errorf("order %+v", st.Order)
	}

	// An unknown order is permanent.
	id = r.create(t, "CS2207261447AUY4H", "CS2207261447AUY4H-000001", "biz-5")
	if err := r.handle(t, r.last(t, id, instance.TypeCreated)); !effects.IsPermanent(err) {
		t.Errorf("unknown order: %v", err)
	}

	// A corrupt event is permanent.
	bad := r.last(t, id, instance.TypeCreated)
	bad.Event.Data = []byte(`{"orderId":`)
	if err := r.handle(t, bad); !effects.IsPermanent(err) {
		t.Errorf("corrupt event: %v", err)
	}
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	r := newRig(t, "not-the-sk")
	id := r.create(t, "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001", "biz-6")
	err := r.handle(t, r.last(t, id, instance.TypeCreated))
	var ae *openapi.APIError
	if !effects.IsPermanent(err) || !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("err %v", err)
	}
}
