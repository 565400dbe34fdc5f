package kg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

// licenseKeyEnv names the variable holding the test issuer's private key.
const licenseKeyEnv = "GALLERIST_KG_TEST_LICENSE_KEY"

// familyPaths are the routes startAllFamilies serves, one per family.
var familyPaths = map[string]string{
	FamilySaaSV2:   "/kg/v2",
	FamilySaaSV1:   "/kg/v1",
	FamilyLicenseA: "/kg/license-a",
	FamilyLicenseB: "/kg/license-b",
	FamilyLicenseC: "/kg/license-c",
}

// startAllFamilies starts a real Gallerist with one route of every family
// (familyPaths, key testKey); the License A/C issuer's key comes from a
// fresh Ed25519 seed in licenseKeyEnv. It returns the server's base URL
// (scheme://host:port) and the issuer's public key as text.
func startAllFamilies(t *testing.T) (base, pubText string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(licenseKeyEnv, base64.StdEncoding.EncodeToString(priv.Seed()))
	cfg := app.Defaults()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.DisableViews = true
	cfg.SyncInterval = time.Hour
	issuer := &config.Issuer{Builtin: &config.BuiltinIssuer{PrivateKeyEnv: licenseKeyEnv}}
	for _, fam := range familyNames {
		r := config.Route{Path: familyPaths[fam], Family: config.Family(fam), Keys: []config.Key{{Value: testKey}}}
		if fam == FamilyLicenseA || fam == FamilyLicenseC {
			r.Issuer = issuer
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	a, err := app.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + a.Addr(), licensetoken.EncodePublicKey(pub)
}

// familyVerdicts maps rule id to PASS/FAIL from the printed lines.
func familyVerdicts(t *testing.T, out string) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`^(PASS|FAIL) ([A-Z0-9]+-[A-Z0-9-]+) (.+?) — (.+)$`)
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "PASS ") && !strings.HasPrefix(l, "FAIL ") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("rule line %q is not PASS|FAIL <id> <ref> — <evidence>", l)
			continue
		}
		got[m[2]] = m[1]
	}
	return got
}

// Every rule of every new family passes against Gallerist.
func TestConformanceLicenseFamiliesPassAgainstGallerist(t *testing.T) {
	base, pub := startAllFamilies(t)
	for _, tc := range []struct {
		family string
		rules  []Rule
		extra  []string
	}{
		{FamilyLicenseA, licenseARules(), []string{"--license-public-key", pub}},
		{FamilyLicenseB, licenseBRules(), nil},
		{FamilyLicenseC, licenseCRules(), nil},
		{FamilySaaSV1, v1Rules(), nil},
	} {
		t.Run(tc.family, func(t *testing.T) {
			args := append([]string{"--family", tc.family, "--speed", "100000"}, tc.extra...)
			out, rep, err := conformanceRun(t, base+familyPaths[tc.family], args...)
			if err != nil {
				t.Fatalf("conformance: %v\n%s", err, out)
			}
			got := familyVerdicts(t, out)
			for _, r := range tc.rules {
				if got[r.ID] != "PASS" {
					t.Errorf("%s: %q", r.ID, got[r.ID])
				}
			}
			if rep.Family != tc.family || rep.Passed != len(tc.rules) || rep.Failed != 0 || len(rep.NotCovered) == 0 {
				t.Errorf("report: family %s, passed %d of %d, failed %d\n%s", rep.Family, rep.Passed, len(tc.rules), rep.Failed, out)
			}
			for _, r := range rep.Rules {
				if !r.Pass || r.Evidence == "" || len(r.Steps) == 0 || r.Ref == "" {
					t.Errorf("report rule %+v", r.Rule)
				}
			}
		})
	}
}

// Without --license-public-key the License A run leaves the verification
// rule out and says so.
func TestConformanceLicenseAWithoutPublicKey(t *testing.T) {
	base, _ := startAllFamilies(t)
	out, rep, err := conformanceRun(t, base+familyPaths[FamilyLicenseA], "--family", FamilyLicenseA, "--only", "LA-GET|LA-LICENSE")
	if err != nil {
		t.Fatalf("conformance: %v\n%s", err, out)
	}
	if !strings.Contains(out, "not covered: LA-LICENSE-VERIFIES runs only with --license-public-key") {
		t.Errorf("the output does not say the verification needs --license-public-key:\n%s", out)
	}
	for _, r := range rep.Rules {
		if r.ID == "LA-LICENSE-VERIFIES" {
			t.Errorf("LA-LICENSE-VERIFIES ran without a key")
		}
	}
	// A wrong public key fails the rule.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	out, _, err = conformanceRun(t, base+familyPaths[FamilyLicenseA], "--family", FamilyLicenseA, "--only", "LA-LICENSE-VERIFIES",
		"--license-public-key", licensetoken.EncodePublicKey(other))
	if !errors.Is(err, ErrConformanceFailed) || !strings.Contains(out, "FAIL LA-LICENSE-VERIFIES") {
		t.Errorf("wrong key: err %v\n%s", err, out)
	}
}

// --family all runs each route of the config file with its family.
func TestConformanceFamilyAll(t *testing.T) {
	base, pub := startAllFamilies(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "routes.yaml")
	var b strings.Builder
	b.WriteString("routes:\n")
	for _, fam := range familyNames {
		b.WriteString("  - path: " + familyPaths[fam] + "\n    family: " + fam + "\n    keys: [{value: " + testKey + "}]\n")
		if fam == FamilyLicenseA || fam == FamilyLicenseC {
			b.WriteString("    issuer: {builtin: {privateKeyEnv: " + licenseKeyEnv + "}}\n")
		}
	}
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "all.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"conformance", "--family", "all", "--config", cfgPath, "--base-url", base,
		"--only", "ENVELOPE|UNKNOWN|LICENSE-VERIFIES", "--license-public-key", pub, "--json", report}, &out, io.Discard, noEnv)
	if err != nil {
		t.Fatalf("--family all: %v\n%s", err, out.String())
	}
	var all AllReport
	raw, _ := os.ReadFile(report)
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	fams := map[string]bool{}
	for _, r := range all.Routes {
		fams[r.Family] = true
		if r.Failed != 0 || r.Passed == 0 {
			t.Errorf("route %s: passed %d failed %d", r.URL, r.Passed, r.Failed)
		}
	}
	if len(fams) != len(familyNames) || all.Failed != 0 {
		t.Errorf("families %v, failed %d\n%s", fams, all.Failed, out.String())
	}
	for _, id := range []string{"V2-ENVELOPE", "V1-UNKNOWN-INSTANCE", "LA-LICENSE-VERIFIES", "LB-UNKNOWN-CODE", "LC-UNKNOWN-INSTANCE"} {
		if !strings.Contains(out.String(), "PASS "+id+" ") {
			t.Errorf("no PASS %s:\n%s", id, out.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conformance", "--family", "all", "--base-url", base}, "--config"},
		{[]string{"conformance", "--family", "all", "--config", cfgPath}, "--base-url"},
		{[]string{"conformance", "--family", "all", "--config", cfgPath, "--base-url", base, "--url", base + "/kg/v2"}, "--url"},
		{[]string{"conformance", "--url", base + "/kg/v2", "--key", testKey, "--base-url", base}, "--base-url"},
		{[]string{"conformance", "--url", base + "/kg/v2", "--key", testKey, "--family", "license-x"}, "license-x"},
	} {
		if err := run(context.Background(), tc.args, io.Discard, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one naming %s", tc.args, err, tc.want)
		}
	}
	var list bytes.Buffer
	if err := run(context.Background(), []string{"conformance", "--list", "--family", "all"}, &list, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"V2-ENVELOPE", "V1-POST-BODY", "LA-GET-IDEMPOTENT", "LB-DEBUG", "LC-GLA-FINGERPRINT"} {
		if !strings.Contains(list.String(), id) {
			t.Errorf("--list --family all lacks %s", id)
		}
	}
}

// licenseWrapper puts w in front of the route of family on the Gallerist
// at base and returns the wrapper's production address.
func licenseWrapper(t *testing.T, base, family string, w *wrapper) string {
	t.Helper()
	return serveWrapper(t, base+familyPaths[family], w)
}

// bodyOf decodes a V2 JSON body; the V1-style families carry the
// parameters in the query.
func bodyOf(body []byte) map[string]any {
	var b map[string]any
	_ = json.Unmarshal(body, &b)
	return b
}

// Conformance fails, naming the right rule, against a deliberately broken
// handler of each new family: a thin wrapper around the real Gallerist.
func TestConformanceLicenseFamiliesFailAgainstBrokenHandlers(t *testing.T) {
	base, pub := startAllFamilies(t)
	for _, tc := range []struct {
		name, family string
		w            func() *wrapper
		args         []string
		mustFail     []string
		mustPass     []string
	}{
		{
			// License A: every getLicense re-send is answered with a
			// freshly generated license text (not idempotent).
			name: "license-a new license text on every re-send", family: FamilyLicenseA,
			w: func() *wrapper {
				var mu sync.Mutex
				seen := map[string]bool{}
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					if q.Get("activity") != "getLicense" || q.Get("testFlag") == "1" {
						return q, body, nil
					}
					mu.Lock()
					dup := seen[q.Get("orderId")]
					seen[q.Get("orderId")] = true
					mu.Unlock()
					if !dup {
						return q, body, nil
					}
					return q, body, []byte(`{"resultCode":"000000","resultMsg":"success.","instanceId":"` + q.Get("businessId") + `","license":"` + randomText(20) + `"}`)
				}}
			},
			args:     []string{"--license-public-key", pub},
			mustFail: []string{"LA-GET-IDEMPOTENT", "LA-AFTER-RELEASE"},
			mustPass: []string{"LA-ENVELOPE", "LA-GET-LICENSE", "LA-LICENSE-VERIFIES", "LA-UNKNOWN-INSTANCE"},
		},
		{
			// License B: a debug call of an unknown code is looked up
			// like a real one (000003).
			name: "license-b debug calls answered 000003", family: FamilyLicenseB,
			w: func() *wrapper {
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					b := bodyOf(body)
					if b["testFlag"] != "1" || !verifies(q, body) {
						return q, body, nil
					}
					if strings.Contains(string(body), "PAUSE") || strings.Contains(string(body), "RENEW\"") || strings.Contains(string(body), "2030-01-01") {
						return q, body, nil
					}
					return q, body, []byte(`{"resultCode":"000003","resultMsg":"authorization code does not exist"}`)
				}}
			},
			mustFail: []string{"LB-DEBUG", "LB-ENVELOPE"},
			mustPass: []string{"LB-UNKNOWN-CODE", "LB-SIG-TAMPERED", "LB-FIELD-MISSING"},
		},
		{
			// License C: getLicenseAsync ignores the fingerprint, so the
			// same eventId with another fingerprint is accepted.
			name: "license-c getLicenseAsync ignores the fingerprint", family: FamilyLicenseC,
			w: func() *wrapper {
				var mu sync.Mutex
				first := map[string]bool{}
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					b := bodyOf(body)
					if b["activity"] != "getLicenseAsync" || b["testFlag"] != nil || !verifies(q, body) {
						return q, body, nil
					}
					ev, _ := b["eventId"].(string)
					mu.Lock()
					seen := first[ev]
					first[ev] = true
					mu.Unlock()
					if !seen {
						return q, body, nil
					}
					return q, body, []byte(`{"resultCode":"000004","resultMsg":"request is processing"}`)
				}}
			},
			mustFail: []string{"LC-GLA-FINGERPRINT"},
			mustPass: []string{"LC-ENVELOPE", "LC-GLA-ASYNC", "LC-NEW-IDEMPOTENT", "LC-DEBUG"},
		},
		{
			// SaaS V1: pay-per-use orders are keyed on orderId only, so a
			// second billing item gets the first item's instance.
			name: "saas-v1 pay-per-use keyed on orderId only", family: FamilySaaSV1,
			w: func() *wrapper {
				var mu sync.Mutex
				byOrder := map[string]string{}
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					if q.Get("activity") != "newInstance" || q.Get("chargingMode") != "0" || q.Get("testFlag") == "1" {
						return q, body, nil
					}
					mu.Lock()
					id, ok := byOrder[q.Get("orderId")]
					if !ok {
						byOrder[q.Get("orderId")] = q.Get("businessId")
					}
					mu.Unlock()
					if !ok {
						return q, body, nil
					}
					return q, body, []byte(`{"resultCode":"000000","resultMsg":"success.","instanceId":"` + id + `"}`)
				}}
			},
			mustFail: []string{"V1-PAY-PER-USE"},
			mustPass: []string{"V1-NEW-IDEMPOTENT", "V1-POST-BODY", "V1-FIELD-MISSING"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := licenseWrapper(t, base, tc.family, tc.w())
			args := append([]string{"--family", tc.family, "--speed", "100000"}, tc.args...)
			out, rep, err := conformanceRun(t, u, args...)
			if !errors.Is(err, ErrConformanceFailed) {
				t.Fatalf("err %v, want ErrConformanceFailed\n%s", err, out)
			}
			got := familyVerdicts(t, out)
			for _, id := range tc.mustFail {
				if got[id] != "FAIL" {
					t.Errorf("%s: %q, want FAIL", id, got[id])
				}
				if !strings.Contains(err.Error(), id) {
					t.Errorf("error %q does not name %s", err, id)
				}
			}
			for _, id := range tc.mustPass {
				if got[id] != "PASS" {
					t.Errorf("%s: %q, want PASS", id, got[id])
				}
			}
			if rep.Failed == 0 {
				t.Errorf("report: passed %d, failed %d", rep.Passed, rep.Failed)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// kg call builds and signs the License activities: License A over GET
// with an authToken, License B and C as V2 POSTs.
func TestCallLicenseFamilies(t *testing.T) {
	base, _ := startAllFamilies(t)
	rep, err := callJSON(t, "--url", base+familyPaths[FamilyLicenseA], "--key", testKey, "--family", FamilyLicenseA)
	if err != nil || rep.Request.Method != "GET" || !strings.Contains(rep.Request.URL, "activity=getLicense") || !strings.Contains(rep.Request.URL, "authToken=") ||
		rep.Answer == nil || rep.Answer.ResultCode != "000000" || rep.Answer.InstanceID == "" {
		t.Fatalf("license-a getLicense: %+v %v", rep, err)
	}
	id := rep.Answer.InstanceID
	rep, err = callJSON(t, "--url", base+familyPaths[FamilyLicenseA], "--key", testKey, "--family", FamilyLicenseA, "--method", "POST",
		"--activity", "refreshLicense", "--field", "instanceId="+id)
	if err != nil || rep.Request.Method != "POST" || rep.Answer.ResultCode != "000000" {
		t.Errorf("license-a refreshLicense (POST): %+v %v", rep, err)
	}
	rep, err = callJSON(t, "--url", base+familyPaths[FamilyLicenseB], "--key", testKey, "--family", FamilyLicenseB,
		"--activity", "releaseLicenseCode", "--field", "license=PLNOSUCHCODE")
	if err != nil || rep.Request.Method != "POST" || !strings.Contains(rep.Request.URL, "signature=") || rep.Answer.ResultCode != "000003" {
		t.Errorf("license-b releaseLicenseCode: %+v %v", rep, err)
	}
	rep, err = callJSON(t, "--url", base+familyPaths[FamilyLicenseC], "--key", testKey, "--family", FamilyLicenseC)
	if err != nil || rep.Answer.ResultCode != "000000" && rep.Answer.ResultCode != "000004" {
		t.Fatalf("license-c newInstance: %+v %v", rep, err)
	}
	id = rep.Answer.InstanceID
	rep, err = callJSON(t, "--url", base+familyPaths[FamilyLicenseC], "--key", testKey, "--family", FamilyLicenseC,
		"--activity", "getLicenseAsync", "--field", "instanceId="+id, "--field", "deviceFingerprint=04:7C:16:5E:E3:5D|||")
	if err != nil || !strings.Contains(rep.Request.Body, `"eventId"`) || !strings.Contains(rep.Request.Body, `"effectiveTime"`) ||
		(rep.Answer.ResultCode != "000000" && rep.Answer.ResultCode != "000004") {
		t.Errorf("license-c getLicenseAsync: %+v %v", rep, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--family", FamilyLicenseB, "--activity", "refreshLicenseCode"}, "--field license="},
		{[]string{"--family", FamilyLicenseC, "--activity", "getLicenseAsync"}, "--field instanceId="},
		{[]string{"--family", FamilyLicenseB, "--method", "GET"}, "--method"},
		{[]string{"--family", FamilyLicenseA, "--activity", "newInstance"}, "getLicense"},
	} {
		args := append([]string{"call", "--url", base + "/kg/x", "--key", testKey}, tc.args...)
		if err := run(context.Background(), args, io.Discard, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// The per-family lifecycle scenarios pass against Gallerist.
func TestScenarioLicenseFamilies(t *testing.T) {
	base, _ := startAllFamilies(t)
	var list bytes.Buffer
	if err := run(context.Background(), []string{"run", "--list"}, &list, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios() {
		if sc.Family == "" || sc.Family == FamilySaaSV2 {
			continue
		}
		if !strings.Contains(list.String(), sc.Name+" ") {
			t.Errorf("--list lacks %s:\n%s", sc.Name, list.String())
		}
		var out bytes.Buffer
		// No --family: the scenario's family is used.
		err := run(context.Background(), []string{"run", sc.Name, "--url", base + familyPaths[sc.Family], "--key", testKey, "--speed", "1000000"}, &out, io.Discard, noEnv)
		if err != nil || !strings.Contains(out.String(), "PASS "+sc.Name+" — ") {
			t.Errorf("%s: %v\n%s", sc.Name, err, out.String())
		}
	}
	err := run(context.Background(), []string{"run", "license-a-lifecycle", "--url", base + "/kg/v2", "--key", testKey, "--family", FamilySaaSV2}, io.Discard, io.Discard, noEnv)
	if err == nil || !strings.Contains(err.Error(), FamilyLicenseA) {
		t.Errorf("a License A scenario with --family saas-v2: %v", err)
	}
}
