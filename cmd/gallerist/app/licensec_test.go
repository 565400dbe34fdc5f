package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// On a License C route, serve records getLicenseAsync and its
// license-delivery effect uploads a signed license to KooGallery (the
// stand-in, AK/SK-verified) under the application's eventId; the license
// verifies with the route's public key.
func TestLicenseCDelivered(t *testing.T) {
	const ak, sk = "AK-GALLERIST-LIC-C", "SK-GALLERIST-LIC-C-0123456789"
	kg := standin.New(standin.Config{Credentials: map[string]string{ak: sk}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GALLERIST_TEST_LICENSE_C_KEY", base64.StdEncoding.EncodeToString(priv.Seed()))
	cfg := testConfig(t.TempDir())
	const path = "/kg/license-c"
	cfg.Routes = append(cfg.Routes, config.Route{Path: path, Family: config.FamilyLicenseC, Keys: []config.Key{{Value: "k"}},
		Issuer: &config.Issuer{Builtin: &config.BuiltinIssuer{PrivateKeyEnv: "GALLERIST_TEST_LICENSE_C_KEY"}}})
	cfg.Effects = fastEffects
	cfg.KooGallery = openapi.Config{
		Hosts: []string{srv.URL}, AK: ak, SK: sk, Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}
	r := start(t, cfg)
	c := newKG(t, "http://"+r.Addr()+path)
	a := c.must(t, newInstanceBody(newOrder()))
	if a.ResultCode != "000000" && a.ResultCode != "000004" {
		t.Fatalf("newInstance = %+v", a)
	}
	c.waitReady(t, a.InstanceID)
	const ev = "evt-license-c-1"
	app := map[string]any{"activity": "getLicenseAsync", "instanceId": a.InstanceID, "eventId": ev,
		"effectiveTime": "2026-01-01 00:00:00 z", "expireTime": "2027-01-01 00:00:00 z", "deviceFingerprint": "fp-0123"}
	if got := c.must(t, app); got.ResultCode != "000004" && got.ResultCode != "000000" {
		t.Fatalf("getLicenseAsync = %+v", got)
	}
	var up standin.Upload
	eventually(t, "the license uploaded to KooGallery", func() (bool, string) {
		for _, u := range kg.Uploads() {
			if u.EventID == ev && u.AK == ak {
				up = u
				return true, ""
			}
		}
		return false, "no upload yet"
	})
	text := up.Characters
	if up.Type == standin.UploadFile {
		text = string(up.File)
	}
	lic, err := licensetoken.Verify(pub, []byte(text), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("uploaded license does not verify: %v", err)
	}
	if lic.InstanceID != a.InstanceID || lic.Features["deviceFingerprint"] != "fp-0123" {
		t.Errorf("license %+v", lic)
	}
	eventually(t, "the delivery recorded", func() (bool, string) {
		st, err := r.Instances().Get(testContext(t), a.InstanceID)
		if err != nil {
			return false, err.Error()
		}
		la, _ := st.LicenseApplication(ev)
		return la.Delivered, fmt.Sprintf("%+v", la)
	})
	// A re-send after the delivery answers 000000 and uploads the same
	// License again (license.md §4.6, point 5).
	if got := c.must(t, app); got.ResultCode != "000000" {
		t.Fatalf("re-sent getLicenseAsync = %+v", got)
	}
	eventually(t, "the same license uploaded again", func() (bool, string) {
		var texts []string
		for _, u := range kg.Uploads() {
			if u.EventID == ev {
				texts = append(texts, u.Characters+string(u.File))
			}
		}
		return len(texts) == 2 && texts[0] == texts[1], fmt.Sprintf("%d uploads", len(texts))
	})
}

// The vendor's software activates a License B code through the query API
// (Gallerist holds the AK/SK and calls KooGallery, here the stand-in); the
// activation registers the code, so KooGallery's later freeze finds it.
func TestLicenseBActivationThroughAPI(t *testing.T) {
	const ak, sk = "AK-GALLERIST-LIC-B", "SK-GALLERIST-LIC-B-0123456789"
	kg := standin.New(standin.Config{Credentials: map[string]string{ak: sk}})
	srv := httptest.NewTLSServer(kg)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := testConfig(t.TempDir())
	const path = "/kg/license-b"
	cfg.Routes = append(cfg.Routes, config.Route{Path: path, Family: config.FamilyLicenseB, Keys: []config.Key{{Value: "k"}}})
	cfg.APIAddr, cfg.APITokens = "127.0.0.1:0", []string{apiToken}
	cfg.KooGallery = openapi.Config{
		Hosts: []string{srv.URL}, AK: ak, SK: sk, Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}
	r := start(t, cfg)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	api := apiClient{base: "http://" + r.APIAddr(), hc: &http.Client{Transport: tr, Timeout: time.Minute}}
	code := standin.MockLicenseNew
	if status, b := api.do(t, http.MethodPost, "/v1/license-codes/"+code+"/activate", map[string]any{}); status != http.StatusOK {
		t.Fatalf("activate: %d %s", status, b)
	}
	if status, b := api.do(t, http.MethodPost, "/v1/license-codes/"+code+"/activate", map[string]any{}); status != http.StatusOK || !strings.Contains(string(b), `"recorded"`) {
		t.Errorf("second activate (must come from the record, not KooGallery): %d %s", status, b)
	}
	c := newKG(t, "http://"+r.Addr()+path)
	if a := c.must(t, map[string]any{"activity": "updateLicenseCodeStatus", "license": code, "status": "FREEZE"}); a.ResultCode != "000000" {
		t.Errorf("FREEZE of the activated code: %+v", a)
	}
	if status, b := api.do(t, http.MethodGet, "/v1/license-codes/"+code, nil); status != http.StatusOK || !strings.Contains(string(b), `"frozen"`) {
		t.Errorf("GET code: %d %s", status, b)
	}
}
