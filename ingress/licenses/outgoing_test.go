package licenses_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/licenses"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

const (
	outAK = "LICENSESTESTAK000001"
	outSK = "licenses-test-SK-never-in-a-log-0001" // must never appear in the log
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// outgoing is a licenses service whose open-API client calls a stand-in
// over HTTPS, on an embedded event store.
type outgoing struct {
	svc   *licenses.Service
	kg    *standin.Server
	store *eventstore.JetStreamStore
	log   *lockedBuffer
}

func newOutgoing(t *testing.T) *outgoing {
	t.Helper()
	kg := standin.New(standin.Config{Credentials: map[string]string{outAK: outSK}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := openapi.New(openapi.Config{
		Site: openapi.SiteMainland, Hosts: []string{srv.URL}, AK: outAK, SK: outSK, Timeout: 10 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t)
	svc, err := licenses.New(store, licenses.Config{KooGallery: client}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	t.Cleanup(func() {
		if strings.Contains(buf.String(), outSK) {
			t.Error("the SK was logged")
		}
	})
	return &outgoing{svc: svc, kg: kg, store: store, log: &buf}
}

// calls counts the requests the stand-in received on path.
func (o *outgoing) calls(path string) int {
	n := 0
	for _, r := range o.kg.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// events returns the event types of code's stream.
func (o *outgoing) events(t *testing.T, code string) []string {
	t.Helper()
	recs, err := o.store.Load(ctx(t), eventstore.StreamID{Kind: licensecode.Kind, Keys: []string{code}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Event.Type)
	}
	return out
}

func wantEvents(t *testing.T, o *outgoing, code string, want ...string) {
	t.Helper()
	if got := o.events(t, code); !slices.Equal(got, want) {
		t.Fatalf("%s: events %v, want %v", code, got, want)
	}
}

func wantRefusal(t *testing.T, err error, code string, conflict bool) *licenses.Refusal {
	t.Helper()
	var r *licenses.Refusal
	if !errors.As(err, &r) || r.Code != code || r.Conflict() != conflict || r.Message == "" {
		t.Fatalf("want a refusal %s (conflict %v), got %v", code, conflict, err)
	}
	return r
}

var apiCause = event.Causation{Actor: "api:token1"}

func TestActivate(t *testing.T) {
	o := newOutgoing(t)
	activate := func(code string, req licenses.ActivateRequest) (licenses.Outcome, error) {
		return o.svc.Activate(ctx(t), code, req, apiCause)
	}

	t.Run("success registers the code and records the activation", func(t *testing.T) {
		effect := time.Date(2024, 6, 3, 1, 2, 3, 0, time.UTC)
		out, err := activate(standin.MockLicenseNew, licenses.ActivateRequest{RealEffectTime: effect, Reference: "shop-1"})
		if err != nil {
			t.Fatal(err)
		}
		st := out.State
		if out.Source != licenses.SourceKooGallery || st.Status != licensecode.StatusActive || st.Activation != licensecode.ActivationConfirmed ||
			st.Reference != "shop-1" || st.OrderID != "MOCKLICENSE-1" || st.Amount != 2 || st.ProductID != standin.MockLicenseProduct ||
			!st.ExpireTime.Equal(time.Date(2099, 12, 31, 16, 0, 0, 0, time.UTC)) || st.ActivatedAt.IsZero() {
			t.Fatalf("outcome %+v", out)
		}
		wantEvents(t, o, standin.MockLicenseNew, licensecode.TypeRegistered, licensecode.TypeActivated)
		if l, _ := o.kg.LicenseCode(standin.MockLicenseNew); !l.Activated || !l.RealEffectTime.Equal(effect) {
			t.Fatalf("stand-in: %+v", l)
		}
		if got, err := o.svc.Code(ctx(t), standin.MockLicenseNew); err != nil || got.Activation != licensecode.ActivationConfirmed {
			t.Fatalf("Code: %+v %v", got, err)
		}
	})
	t.Run("a repeat answers the record without calling KooGallery", func(t *testing.T) {
		before := o.calls(standin.PathLicenseActivate)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				out, err := activate(standin.MockLicenseNew, licenses.ActivateRequest{})
				if err != nil || out.Source != licenses.SourceRecorded || out.State.Activation != licensecode.ActivationConfirmed {
					t.Errorf("repeat: %+v %v", out, err)
				}
			})
		}
		wg.Wait()
		if n := o.calls(standin.PathLicenseActivate); n != before {
			t.Fatalf("KooGallery called %d more times", n-before)
		}
		wantEvents(t, o, standin.MockLicenseNew, licensecode.TypeRegistered, licensecode.TypeActivated)
	})
	t.Run("concurrent first activations call KooGallery once", func(t *testing.T) {
		o.kg.AddLicenseCode(standin.LicenseCode{Code: "PLCONCURRENT"})
		before := o.calls(standin.PathLicenseActivate)
		var wg sync.WaitGroup
		sources := make([]string, 4)
		for i := range sources {
			wg.Go(func() {
				out, err := activate("PLCONCURRENT", licenses.ActivateRequest{})
				if err != nil {
					t.Error(err)
				}
				sources[i] = out.Source
			})
		}
		wg.Wait()
		if n := o.calls(standin.PathLicenseActivate) - before; n != 1 {
			t.Fatalf("KooGallery called %d times", n)
		}
		slices.Sort(sources)
		if !slices.Equal(sources, []string{licenses.SourceKooGallery, licenses.SourceRecorded, licenses.SourceRecorded, licenses.SourceRecorded}) {
			t.Fatalf("sources %v", sources)
		}
		wantEvents(t, o, "PLCONCURRENT", licensecode.TypeRegistered, licensecode.TypeActivated)
	})

	t.Run("92020002 invalid param on a known code", func(t *testing.T) {
		o.kg.AddLicenseCode(standin.LicenseCode{Code: "PLLATEORDER", OrderTime: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)})
		if _, err := o.svc.RegisterCode(ctx(t), "PLLATEORDER", "", apiCause); err != nil {
			t.Fatal(err)
		}
		_, err := activate("PLLATEORDER", licenses.ActivateRequest{RealEffectTime: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
		wantRefusal(t, err, openapi.CodeLicenseInvalidParam, false)
		wantEvents(t, o, "PLLATEORDER", licensecode.TypeRegistered, licensecode.TypeActivationFailed)
		st, err := o.svc.Code(ctx(t), "PLLATEORDER")
		if err != nil || st.Activation != licensecode.ActivationRefused || st.ActivationError == nil || st.ActivationError.ErrorCode != openapi.CodeLicenseInvalidParam {
			t.Fatalf("state %+v %v", st, err)
		}
		// Corrected, the activation succeeds.
		out, err := activate("PLLATEORDER", licenses.ActivateRequest{RealEffectTime: time.Date(2024, 6, 2, 0, 0, 0, 0, time.UTC)})
		if err != nil || out.State.Activation != licensecode.ActivationConfirmed || out.State.ActivationError != nil {
			t.Fatalf("corrected: %+v %v", out, err)
		}
		wantEvents(t, o, "PLLATEORDER", licensecode.TypeRegistered, licensecode.TypeActivationFailed, licensecode.TypeActivated)
	})
	t.Run("92020003 illegal state, recovered by a query", func(t *testing.T) {
		out, err := activate(standin.MockLicenseActive, licenses.ActivateRequest{})
		if err != nil || out.Source != licenses.SourceQuery || out.State.Activation != licensecode.ActivationConfirmed ||
			out.State.Query == nil || out.State.Query.Info.Status != licensecode.RemoteAlive {
			t.Fatalf("recovered: %+v %v", out, err)
		}
		wantEvents(t, o, standin.MockLicenseActive, licensecode.TypeRegistered, licensecode.TypeActivationFailed, licensecode.TypeQueried)
	})
	t.Run("92020003 illegal state, not activated", func(t *testing.T) {
		o.kg.AddLicenseCode(standin.LicenseCode{Code: "PLRELEASEDEARLY", Released: true})
		_, err := activate("PLRELEASEDEARLY", licenses.ActivateRequest{})
		wantRefusal(t, err, openapi.CodeLicenseIllegalState, true)
		wantEvents(t, o, "PLRELEASEDEARLY", licensecode.TypeRegistered, licensecode.TypeActivationFailed)
	})
	t.Run("92020004 not received registers the code", func(t *testing.T) {
		_, err := activate(standin.MockLicenseNotReceived, licenses.ActivateRequest{})
		wantRefusal(t, err, openapi.CodeLicenseNotReceived, true)
		wantEvents(t, o, standin.MockLicenseNotReceived, licensecode.TypeRegistered, licensecode.TypeActivationFailed)
		// A second refusal is recorded too (a newer verdict).
		_, err = activate(standin.MockLicenseNotReceived, licenses.ActivateRequest{})
		wantRefusal(t, err, openapi.CodeLicenseNotReceived, true)
		wantEvents(t, o, standin.MockLicenseNotReceived, licensecode.TypeRegistered, licensecode.TypeActivationFailed, licensecode.TypeActivationFailed)
	})
	t.Run("92020005 not exist: recorded on a known code, nothing on an unknown one", func(t *testing.T) {
		_, err := activate("PLNOPE", licenses.ActivateRequest{})
		wantRefusal(t, err, openapi.CodeLicenseNotExist, false)
		wantEvents(t, o, "PLNOPE")
		if _, err := o.svc.RegisterCode(ctx(t), "PLNOPE", "typo?", apiCause); err != nil {
			t.Fatal(err)
		}
		_, err = activate("PLNOPE", licenses.ActivateRequest{})
		wantRefusal(t, err, openapi.CodeLicenseNotExist, false)
		wantEvents(t, o, "PLNOPE", licensecode.TypeRegistered, licensecode.TypeActivationFailed)
	})
	t.Run("an authentication failure is no verdict", func(t *testing.T) {
		o.kg.AddLicenseCode(standin.LicenseCode{Code: "PLOTHERVENDOR", Owner: "someone-else"})
		_, err := activate("PLOTHERVENDOR", licenses.ActivateRequest{})
		if !errors.Is(err, licenses.ErrKooGallery) || errors.Is(err, licenses.ErrTemporary) {
			t.Fatalf("err = %v", err)
		}
		wantEvents(t, o, "PLOTHERVENDOR")
	})
	t.Run("5xx is temporary and records nothing", func(t *testing.T) {
		o.kg.AddLicenseCode(standin.LicenseCode{Code: "PLFLAKY"})
		o.kg.FailNext(1, http.StatusInternalServerError)
		_, err := activate("PLFLAKY", licenses.ActivateRequest{})
		if !errors.Is(err, licenses.ErrTemporary) {
			t.Fatalf("err = %v", err)
		}
		wantEvents(t, o, "PLFLAKY")
		if out, err := activate("PLFLAKY", licenses.ActivateRequest{}); err != nil || out.Source != licenses.SourceKooGallery {
			t.Fatalf("retry: %+v %v", out, err)
		}
	})
	t.Run("invalid codes are refused before any call", func(t *testing.T) {
		before := len(o.kg.Requests())
		for _, bad := range []string{"", strings.Repeat("x", 65), "PL\n1"} {
			if _, err := activate(bad, licenses.ActivateRequest{}); !errors.Is(err, licensecode.ErrInvalid) {
				t.Fatalf("%q: %v", bad, err)
			}
		}
		if len(o.kg.Requests()) != before {
			t.Fatal("an invalid code was sent")
		}
	})
}

func TestActivateWithoutKooGallery(t *testing.T) {
	svc, err := licenses.New(openStore(t), licenses.Config{}, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx(t), "PL1", licenses.ActivateRequest{}, apiCause); !errors.Is(err, licenses.ErrNoKooGallery) {
		t.Fatalf("activate: %v", err)
	}
	if _, err := svc.Heartbeat(ctx(t), "PL1", licenses.HeartbeatRequest{}, apiCause); !errors.Is(err, licenses.ErrNoKooGallery) {
		t.Fatalf("heartbeat: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	o := newOutgoing(t)
	heartbeat := func(code string, req licenses.HeartbeatRequest) (licenses.Outcome, error) {
		return o.svc.Heartbeat(ctx(t), code, req, apiCause)
	}
	if _, err := o.svc.Activate(ctx(t), standin.MockLicenseNew, licenses.ActivateRequest{}, apiCause); err != nil {
		t.Fatal(err)
	}
	out, err := heartbeat(standin.MockLicenseNew, licenses.HeartbeatRequest{ThirdPartyAccount: "device-7", IP: "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	q := out.State.Query
	if q == nil || !q.Answer.OK() || q.Info.Status != licensecode.RemoteAlive || q.Info.ActivateTime.IsZero() ||
		!q.Info.ExpireTime.Equal(time.Date(2099, 12, 31, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("query %+v", q)
	}
	hbs := o.kg.LicenseHeartbeats()
	if len(hbs) != 1 || hbs[0].ThirdPartyAccount != "device-7" || hbs[0].IP != "10.0.0.7" {
		t.Fatalf("stand-in heartbeats %+v", hbs)
	}
	// Every heartbeat is recorded.
	if _, err := heartbeat(standin.MockLicenseNew, licenses.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, o, standin.MockLicenseNew, licensecode.TypeRegistered, licensecode.TypeActivated, licensecode.TypeQueried, licensecode.TypeQueried)

	// A code activated elsewhere and expired: registered, authoritative expiry.
	out, err = heartbeat(standin.MockLicenseExpired, licenses.HeartbeatRequest{})
	if err != nil || out.State.Query.Info.Status != licensecode.RemoteExpired || out.State.Activation != licensecode.ActivationConfirmed ||
		!out.State.ExpireTime.Equal(time.Date(2024, 7, 1, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("expired: %+v %v", out, err)
	}
	wantEvents(t, o, standin.MockLicenseExpired, licensecode.TypeRegistered, licensecode.TypeQueried)

	// 92020011: a code never activated; the failure is recorded.
	_, err = heartbeat(standin.MockLicenseNotReceived, licenses.HeartbeatRequest{})
	wantRefusal(t, err, openapi.CodeLicenseNotActivated, true)
	wantEvents(t, o, standin.MockLicenseNotReceived, licensecode.TypeRegistered, licensecode.TypeQueried)
	st, err := o.svc.Code(ctx(t), standin.MockLicenseNotReceived)
	if err != nil || st.Query == nil || st.Query.Answer.ErrorCode != openapi.CodeLicenseNotActivated || st.Activation != licensecode.ActivationPending {
		t.Fatalf("state %+v %v", st, err)
	}

	// 92020005 on an unknown code: nothing recorded.
	_, err = heartbeat("PLNOPE", licenses.HeartbeatRequest{})
	wantRefusal(t, err, openapi.CodeLicenseNotExist, false)
	wantEvents(t, o, "PLNOPE")

	o.kg.FailNext(1, http.StatusServiceUnavailable)
	if _, err := heartbeat(standin.MockLicenseNew, licenses.HeartbeatRequest{}); !errors.Is(err, licenses.ErrTemporary) {
		t.Fatalf("503: %v", err)
	}
	if _, err := heartbeat(standin.MockLicenseNew, licenses.HeartbeatRequest{IP: "10.0.0.1"}); !errors.Is(err, licensecode.ErrInvalid) {
		t.Fatalf("ip without account: %v", err)
	}
}

func TestReportUsage(t *testing.T) {
	o := newOutgoing(t)
	report := func(items ...licenses.UsageItem) (licenses.UsageResult, error) {
		return o.svc.ReportUsage(ctx(t), items, apiCause)
	}
	n := func(v int) *int { return &v }
	for _, c := range []string{standin.MockLicenseNew} {
		if _, err := o.svc.Activate(ctx(t), c, licenses.ActivateRequest{}, apiCause); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.svc.RegisterCode(ctx(t), standin.MockLicenseNotReceived, "", apiCause); err != nil {
		t.Fatal(err)
	}

	// A clean report: both codes accepted; the code activated elsewhere is registered.
	res, err := report(
		licenses.UsageItem{Code: standin.MockLicenseNew, Entries: []licensecode.UsageEntry{{ID: "account-1"}, {ID: "account-2"}}},
		licenses.UsageItem{Code: standin.MockLicenseActive, Entries: []licensecode.UsageEntry{{ActiveNum: n(12)}}},
	)
	if err != nil || res.Code != openapi.CodeLicenseSuccess || len(res.Items) != 2 || !res.Items[0].Accepted || !res.Items[0].Recorded ||
		!res.Items[1].Accepted || !res.Items[1].Recorded {
		t.Fatalf("report: %+v %v", res, err)
	}
	wantEvents(t, o, standin.MockLicenseNew, licensecode.TypeRegistered, licensecode.TypeActivated, licensecode.TypeUsageReported)
	wantEvents(t, o, standin.MockLicenseActive, licensecode.TypeRegistered, licensecode.TypeUsageReported)
	if got := o.kg.LicenseUsageReports(); len(got) != 2 || len(got[0].Entries) != 2 || got[1].Entries[0].ActiveNum == nil || *got[1].Entries[0].ActiveNum != 12 {
		t.Fatalf("stand-in usage %+v", got)
	}

	// 92020020: the invalid codes are refused, the others accepted.
	res, err = report(
		licenses.UsageItem{Code: standin.MockLicenseNew, Entries: []licensecode.UsageEntry{{ActiveNum: n(3)}}},
		licenses.UsageItem{Code: standin.MockLicenseNotReceived, Entries: []licensecode.UsageEntry{{ID: "a"}}},
		licenses.UsageItem{Code: "PLNOPE", Entries: []licensecode.UsageEntry{{ID: "a"}}},
	)
	if err != nil || res.Code != openapi.CodeLicenseInvalidInBatch || res.Message == "" {
		t.Fatalf("partial: %+v %v", res, err)
	}
	want := []licenses.UsageItemResult{
		{Code: standin.MockLicenseNew, Accepted: true, ErrorCode: openapi.CodeLicenseSuccess, Recorded: true},
		{Code: standin.MockLicenseNotReceived, ErrorCode: openapi.CodeLicenseInvalidInBatch, Recorded: true},
		{Code: "PLNOPE", ErrorCode: openapi.CodeLicenseInvalidInBatch},
	}
	if !slices.Equal(res.Items, want) {
		t.Fatalf("items %+v, want %+v", res.Items, want)
	}
	st, err := o.svc.Code(ctx(t), standin.MockLicenseNew)
	if err != nil || st.UsageReports != 2 || st.Usage == nil || !st.Usage.OK() {
		t.Fatalf("accepted code: %+v %v", st, err)
	}
	st, err = o.svc.Code(ctx(t), standin.MockLicenseNotReceived)
	if err != nil || st.UsageReports != 1 || st.Usage.ErrorCode != openapi.CodeLicenseInvalidInBatch {
		t.Fatalf("refused code: %+v %v", st, err)
	}
	wantEvents(t, o, "PLNOPE")

	o.kg.FailNext(1, http.StatusBadGateway)
	if _, err := report(licenses.UsageItem{Code: standin.MockLicenseNew, Entries: []licensecode.UsageEntry{{ID: "x"}}}); !errors.Is(err, licenses.ErrTemporary) {
		t.Fatalf("502: %v", err)
	}

	for _, bad := range [][]licenses.UsageItem{
		nil,
		{{Code: "", Entries: []licensecode.UsageEntry{{ID: "a"}}}},
		{{Code: "PL1", Entries: nil}},
		{{Code: "PL1", Entries: []licensecode.UsageEntry{{ID: "a", ActiveNum: n(1)}}}},
		{{Code: "PL1", Entries: []licensecode.UsageEntry{{ActiveNum: n(-1)}}}},
		{{Code: "PL1", Entries: []licensecode.UsageEntry{{ActiveNum: n(1_000_000_000)}}}},
		{{Code: "PL1", Entries: []licensecode.UsageEntry{{ID: strings.Repeat("é", 257)}}}},
		{{Code: "PL1", Entries: []licensecode.UsageEntry{{ID: "a"}}}, {Code: "PL1", Entries: []licensecode.UsageEntry{{ID: "b"}}}},
	} {
		var ue *licenses.UsageError
		if _, err := report(bad...); !errors.As(err, &ue) || !errors.Is(err, licensecode.ErrInvalid) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}
