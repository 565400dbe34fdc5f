package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/ingress/licenses"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

const (
	licenseAK = "APITESTAK00000000001"
	licenseSK = "api-test-SK-must-never-be-logged-0001"
)

// newLicenseCodes builds the licenses service on its own embedded
// nats-server, calling a stand-in of KooGallery over HTTPS.
func newLicenseCodes(t *testing.T) (*licenses.Service, *standin.Server) {
	t.Helper()
	kg := standin.New(standin.Config{Credentials: map[string]string{licenseAK: licenseSK}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client, err := openapi.New(openapi.Config{
		Site: openapi.SiteMainland, Hosts: []string{srv.URL}, AK: licenseAK, SK: licenseSK, Timeout: 10 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.Instances(t, testLogger())
	svc, err := licenses.New(env.Store, licenses.Config{KooGallery: client}, nil, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, kg
}

// post POSTs body (a string, or a value to encode; nil sends none) and
// decodes the answer into v, failing unless the status is want.
func (c *client) post(path string, body any, want int, v any) answer {
	c.t.Helper()
	var b []byte
	switch body := body.(type) {
	case nil:
	case string:
		b = []byte(body)
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.t.Fatal(err)
		}
	}
	a := c.do(http.MethodPost, path, token, b)
	if a.status != want {
		c.t.Fatalf("POST %s: %d, want %d: %s", path, a.status, want, a.body)
	}
	if v != nil {
		if err := json.Unmarshal(a.body, v); err != nil {
			c.t.Fatalf("POST %s: %v in %s", path, err, a.body)
		}
	}
	return a
}

// postBad POSTs body and checks the 400 names field.
func (c *client) postBad(path string, body any, field string) {
	c.t.Helper()
	var e ErrorBody
	c.post(path, body, http.StatusBadRequest, &e)
	if e.Field != field || e.Error == "" {
		c.t.Fatalf("POST %s %v: error %+v, want one about %q", path, body, e, field)
	}
}

// refused POSTs body and checks KooGallery's refusal is answered with
// status and code.
func (c *client) refused(path string, body any, status int, code string) LicenseRefusal {
	c.t.Helper()
	var r LicenseRefusal
	c.post(path, body, status, &r)
	if r.ResultCode != code || r.ResultMessage == "" || r.Error == "" {
		c.t.Fatalf("POST %s: refusal %+v, want %s", path, r, code)
	}
	return r
}

func TestLicenseCodeActivate(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	svc, kg := newLicenseCodes(t)
	c := newClient(t, newServer(t, st, nil, Config{LicenseCodes: svc}))
	path := func(code string) string { return "/v1/license-codes/" + code + "/activate" }

	var act LicenseActivation
	c.post(path(standin.MockLicenseNew), map[string]string{"realEffectTime": "20240603010203", "reference": "shop-1"}, http.StatusOK, &act)
	if act.Source != licenses.SourceKooGallery || act.State.Activation != "confirmed" || act.State.Status != "active" ||
		act.State.Reference != "shop-1" || act.State.OrderID != "MOCKLICENSE-1" || act.State.ExpireTime == nil {
		t.Fatalf("activation %+v", act)
	}
	if l, _ := kg.LicenseCode(standin.MockLicenseNew); !l.RealEffectTime.Equal(time.Date(2024, 6, 3, 1, 2, 3, 0, time.UTC)) {
		t.Fatalf("stand-in %+v", l)
	}
	calls := len(kg.Requests())
	c.post(path(standin.MockLicenseNew), nil, http.StatusOK, &act)
	if act.Source != licenses.SourceRecorded || len(kg.Requests()) != calls {
		t.Fatalf("repeat: %+v, %d calls", act, len(kg.Requests())-calls)
	}

	var code LicenseCode
	a := c.get("/v1/license-codes/"+standin.MockLicenseNew, http.StatusOK, &code)
	if code.Activation != "confirmed" || code.ConsistentTo == 0 || a.header.Get(ConsistencyHeader) != fmt.Sprint(code.ConsistentTo) {
		t.Fatalf("GET: %+v", code)
	}
	c.get("/v1/license-codes/PLUNKNOWN", http.StatusNotFound, nil)

	// KooGallery's refusals, recorded on the code.
	c.refused(path(standin.MockLicenseNotReceived), nil, http.StatusConflict, openapi.CodeLicenseNotReceived)
	c.get("/v1/license-codes/"+standin.MockLicenseNotReceived, http.StatusOK, &code)
	if code.Activation != "refused" || code.ActivationError == nil || code.ActivationError.ResultCode != openapi.CodeLicenseNotReceived {
		t.Fatalf("refused code: %+v", code)
	}
	r := c.refused(path("PLNOPE"), nil, http.StatusUnprocessableEntity, openapi.CodeLicenseNotExist)
	if r.License != "PLNOPE" {
		t.Fatalf("refusal %+v", r)
	}
	kg.AddLicenseCode(standin.LicenseCode{Code: "PLORDERED", OrderTime: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)})
	c.refused(path("PLORDERED"), map[string]string{"realEffectTime": "2024-05-01T00:00:00Z"}, http.StatusUnprocessableEntity, openapi.CodeLicenseInvalidParam)

	// No verdict: temporary (503) or unusable (502); nothing recorded.
	kg.AddLicenseCode(standin.LicenseCode{Code: "PLFLAKY"})
	kg.FailNext(1, http.StatusInternalServerError)
	a = c.post(path("PLFLAKY"), nil, http.StatusServiceUnavailable, nil)
	if a.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	c.get("/v1/license-codes/PLFLAKY", http.StatusNotFound, nil)
	kg.AddLicenseCode(standin.LicenseCode{Code: "PLOTHER", Owner: "another-vendor"})
	c.post(path("PLOTHER"), nil, http.StatusBadGateway, nil)

	// Bad input, refused before KooGallery is called.
	calls = len(kg.Requests())
	c.postBad(path(strings.Repeat("x", 65)), nil, "code")
	c.postBad(path("PL%0A1"), nil, "code")
	c.postBad(path("PL1"), map[string]string{"realEffectTime": "yesterday"}, "realEffectTime")
	c.postBad(path("PL1"), map[string]string{"real_effect_time": "20240603010203"}, "real_effect_time")
	c.postBad(path("PL1"), map[string]any{"reference": 7}, "reference")
	c.postBad(path("PL1"), "[1]", "")
	c.postBad(path("PL1"), "{} {}", "")
	c.postBad(path("PL1")+"?x=1", nil, "x")
	if len(kg.Requests()) != calls {
		t.Fatal("bad input reached KooGallery")
	}
}

func TestLicenseCodeHeartbeatAndUsage(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	svc, kg := newLicenseCodes(t)
	c := newClient(t, newServer(t, st, nil, Config{LicenseCodes: svc}))
	hb := func(code string) string { return "/v1/license-codes/" + code + "/heartbeat" }

	c.post("/v1/license-codes/"+standin.MockLicenseNew+"/activate", nil, http.StatusOK, nil)
	var h LicenseHeartbeat
	c.post(hb(standin.MockLicenseNew), map[string]string{"thirdPartyAccount": "device-1", "ip": "10.1.2.3"}, http.StatusOK, &h)
	if h.RemoteStatus != "ALIVE" || h.ExpireTime == nil || h.ActivateTime == nil || h.State.LastQuery == nil || h.State.LastQuery.ResultCode != openapi.CodeLicenseSuccess {
		t.Fatalf("heartbeat %+v", h)
	}
	if got := kg.LicenseHeartbeats(); len(got) != 1 || got[0].ThirdPartyAccount != "device-1" {
		t.Fatalf("stand-in %+v", got)
	}
	c.refused(hb(standin.MockLicenseNotReceived), nil, http.StatusConflict, openapi.CodeLicenseNotActivated)
	c.postBad(hb("PL1"), map[string]string{"ip": "10.1.2.3"}, "thirdPartyAccount")
	c.postBad(hb("PL1"), map[string]string{"thirdPartyAccount": "a", "ip": strings.Repeat("1", 33)}, "ip")
	c.postBad(hb("PL1"), map[string]string{"heartbeatInfo": "x"}, "heartbeatInfo")
	kg.FailNext(1, http.StatusBadGateway)
	c.post(hb(standin.MockLicenseNew), nil, http.StatusServiceUnavailable, nil)

	const usage = "/v1/license-codes/usage"
	entry := func(id string) map[string]any { return map[string]any{"id": id} }
	item := func(code string, entries ...map[string]any) map[string]any {
		return map[string]any{"license": code, "softwareUsageInfo": entries}
	}
	report := func(items ...map[string]any) map[string]any { return map[string]any{"usageInfo": items} }

	var res LicenseUsageResult
	c.post(usage, report(item(standin.MockLicenseNew, entry("acct-1"), entry("acct-2")), item(standin.MockLicenseActive, map[string]any{"activeNum": 4})), http.StatusOK, &res)
	if res.ResultCode != openapi.CodeLicenseSuccess || len(res.Items) != 2 || !res.Items[0].Accepted || !res.Items[0].Recorded || !res.Items[1].Recorded {
		t.Fatalf("usage %+v", res)
	}
	var code LicenseCode
	c.get("/v1/license-codes/"+standin.MockLicenseActive, http.StatusOK, &code)
	if code.UsageReports != 1 || code.LastUsage == nil || code.LastUsage.ResultCode != openapi.CodeLicenseSuccess {
		t.Fatalf("usage recorded: %+v", code)
	}
	c.post(usage, report(item(standin.MockLicenseNew, entry("a")), item("PLNOPE", entry("a"))), http.StatusOK, &res)
	if res.ResultCode != openapi.CodeLicenseInvalidInBatch || !res.Items[0].Accepted || res.Items[1].Accepted || res.Items[1].Recorded ||
		res.Items[1].ResultCode != openapi.CodeLicenseInvalidInBatch {
		t.Fatalf("partial: %+v", res)
	}

	for _, bad := range []struct {
		body  any
		field string
	}{
		{nil, ""},
		{"{}", "usageInfo"},
		{report(), "usageInfo"},
		{map[string]any{"usageInfo": []any{}, "extra": 1}, "extra"},
		{report(map[string]any{"softwareUsageInfo": []any{entry("a")}}), "usageInfo[0].license"},
		{report(map[string]any{"license": "PL1"}), "usageInfo[0].softwareUsageInfo"},
		{report(item("PL1")), "usageInfo[0].softwareUsageInfo"},
		{report(item("PL1", map[string]any{"id": "a", "activeNum": 1})), "usageInfo[0].softwareUsageInfo[0]"},
		{report(item("PL1", map[string]any{"activeNum": -1})), "usageInfo[0].softwareUsageInfo[0].activeNum"},
		{report(item("PL1", map[string]any{"activeNum": 1.5})), "usageInfo[0].softwareUsageInfo[0].activeNum"},
		{report(item("PL1", map[string]any{"activeNum": "3"})), "usageInfo[0].softwareUsageInfo[0].activeNum"},
		{report(item("PL1", map[string]any{"ID": "a"})), "usageInfo[0].softwareUsageInfo[0].ID"},
		{report(item("PL1", entry(strings.Repeat("x", 257)))), "usageInfo[0].softwareUsageInfo[0].id"},
		{report(item("PL1", entry("a")), item("PL1", entry("b"))), "usageInfo[1].license"},
		{report(item(strings.Repeat("x", 65), entry("a"))), "usageInfo[0].license"},
	} {
		c.postBad(usage, bad.body, bad.field)
	}
}

func TestLicenseCodesOff(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{}))
	c.get("/v1/license-codes/PL1", http.StatusServiceUnavailable, nil)
	c.post("/v1/license-codes/PL1/activate", nil, http.StatusServiceUnavailable, nil)
	c.post("/v1/license-codes/PL1/heartbeat", nil, http.StatusServiceUnavailable, nil)
	c.post("/v1/license-codes/usage", `{"usageInfo":[{"license":"PL1","softwareUsageInfo":[{"id":"a"}]}]}`, http.StatusServiceUnavailable, nil)
	// Without the AK/SK, the calls are unavailable too.
	svc, err := licenses.New(testenv.Instances(t, testLogger()).Store, licenses.Config{}, nil, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RegisterCode(t.Context(), "PL1", "", event.Causation{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, newServer(t, st, nil, Config{LicenseCodes: svc}))
	c.post("/v1/license-codes/PL1/activate", nil, http.StatusServiceUnavailable, nil)
	c.get("/v1/license-codes/PL1", http.StatusOK, nil)
}
