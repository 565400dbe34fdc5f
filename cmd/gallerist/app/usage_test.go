package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/projections/api"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// Usage reported through POST /v1/usage is pushed to KooGallery (the
// stand-in, which verifies the push signature with the route's key) by the
// usage-push effect that serve starts for --usage-route; a second report
// of the same record is a duplicate and is not pushed again.
func TestUsagePushEndToEnd(t *testing.T) {
	gw := standin.New(standin.Config{Credentials: map[string]string{"AK-UNUSED": "SK-UNUSED-0123456789"}})
	cfg := testConfig(t.TempDir())
	key, err := cfg.Routes[0].Keys[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	usage := standin.NewUsage(gw, standin.UsageConfig{Key: key})
	srv := httptest.NewTLSServer(usage.Handler())
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg.Effects = fastEffects
	cfg.APIAddr, cfg.APITokens = "127.0.0.1:0", []string{apiToken}
	cfg.UsageRoute = routePath
	cfg.KooGallery = openapi.Config{
		Hosts: []string{srv.URL}, Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}
	r := start(t, cfg)
	a := r.kg.must(t, newInstanceBody(newOrder()))
	if a.ResultCode != "000000" && a.ResultCode != "000004" {
		t.Fatalf("newInstance = %+v", a)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := apiClient{base: "http://" + r.APIAddr(), hc: &http.Client{Transport: tr, Timeout: time.Minute}}

	end := time.Now().UTC().Truncate(time.Hour)
	rec := map[string]any{
		"instanceId": a.InstanceID, "recordKey": "meter-1-" + end.Format("2006010215"),
		"recordTime": end.Format(time.RFC3339), "beginTime": end.Add(-time.Hour).Format(time.RFC3339),
		"endTime": end.Format(time.RFC3339), "usageValue": "12.5", "billing": "hourly",
	}
	report := map[string]any{"records": []any{rec}}
	status, b := c.do(t, http.MethodPost, "/v1/usage", report)
	if status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("POST /v1/usage: %d %s", status, b)
	}
	var res api.UsageReportResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Recorded != 1 || len(res.Records) != 1 || res.Records[0].MeteringSN == "" {
		t.Fatalf("report answer %s", b)
	}
	sn := res.Records[0].MeteringSN
	eventually(t, "the record accepted by the stand-in", func() (bool, string) {
		got, ok := usage.Accepted()[sn]
		return ok && got.InstanceID == a.InstanceID, "not yet"
	})
	eventually(t, "the record shown as pushed", func() (bool, string) {
		status, b := c.do(t, http.MethodGet, "/v1/usage?instanceId="+a.InstanceID, nil)
		return status == http.StatusOK && strings.Contains(string(b), `"pushed"`), string(b)
	})
	// The same record again: a duplicate, nothing new pushed.
	pushes := len(usage.Pushes())
	status, b = c.do(t, http.MethodPost, "/v1/usage", report)
	if err := json.Unmarshal(b, &res); err != nil || status/100 != 2 || res.Duplicates != 1 || res.Recorded != 0 {
		t.Fatalf("second report: %d %s", status, b)
	}
	if n := len(usage.Pushes()); n != pushes {
		t.Errorf("a duplicate report was pushed again: %d pushes, was %d", n, pushes)
	}
	// A record failing validation names the field and records nothing.
	bad := map[string]any{"records": []any{map[string]any{"instanceId": a.InstanceID, "recordKey": "x", "recordTime": "yesterday",
		"beginTime": rec["beginTime"], "endTime": rec["endTime"], "usageValue": "1"}}}
	if status, b := c.do(t, http.MethodPost, "/v1/usage", bad); status != http.StatusBadRequest || !strings.Contains(string(b), "recordTime") {
		t.Errorf("bad record: %d %s", status, b)
	}
}

// --usage-route must name a SaaS V2 route.
func TestUsageRouteValidated(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.UsageRoute = "/nope"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--usage-route /nope") {
		t.Errorf("Validate = %v", err)
	}
}

// A License B route is served by serve's licenses service: a code it was
// told about is frozen and unfrozen, an unknown one is 000003.
func TestLicenseBRouteServed(t *testing.T) {
	cfg := testConfig(t.TempDir())
	const path = "/kg/license-b"
	cfg.Routes = append(cfg.Routes, config.Route{Path: path, Family: config.FamilyLicenseB, Keys: []config.Key{{Value: "k"}}})
	r := start(t, cfg)
	kg := newKG(t, "http://"+r.Addr()+path)
	if a := kg.must(t, map[string]any{"activity": "updateLicenseCodeStatus", "license": "NO-SUCH-CODE", "status": "FREEZE"}); a.ResultCode != "000003" {
		t.Errorf("unknown code: %+v", a)
	}
	if r.licenses == nil {
		t.Fatal("no licenses service for a license-b route")
	}
	if _, err := r.licenses.RegisterCode(testContext(t), "CODE-1", "order-1", event.Causation{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{"FREEZE", "UNFREEZE"} {
		if a := kg.must(t, map[string]any{"activity": "updateLicenseCodeStatus", "license": "CODE-1", "status": status}); a.ResultCode != "000000" {
			t.Errorf("%s: %+v", status, a)
		}
	}
	st, err := r.licenses.Code(testContext(t), "CODE-1")
	if err != nil || st.Status != licensecode.StatusActive {
		t.Errorf("code after FREEZE, UNFREEZE: %+v, %v", st, err)
	}
}
