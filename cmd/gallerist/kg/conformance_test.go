package kg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// conformanceRun runs `kg conformance` with args and returns its output,
// its JSON report and its error.
func conformanceRun(t *testing.T, base string, args ...string) (string, ConformanceReport, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	all := append([]string{"conformance", "--url", base, "--key", testKey, "--json", path}, args...)
	err := run(context.Background(), all, &out, &errOut, noEnv)
	var rep ConformanceReport
	raw, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("no report (%v); err %v; stderr %q; output:\n%s", rerr, err, errOut.String(), out.String())
	}
	if jerr := json.Unmarshal(raw, &rep); jerr != nil {
		t.Fatalf("report is not JSON: %v", jerr)
	}
	return out.String(), rep, err
}

// verdicts maps rule id to PASS/FAIL from the printed lines, checking their
// shape "PASS|FAIL <id> <ref> — <evidence>".
func verdicts(t *testing.T, out string) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`^(PASS|FAIL) (V2-[A-Z0-9-]+) (.+?) — (.+)$`)
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

func TestConformancePassesAgainstGallerist(t *testing.T) {
	_, base := startGallerist(t)
	out, rep, err := conformanceRun(t, base)
	if err != nil {
		t.Fatalf("conformance failed: %v\n%s", err, out)
	}
	rules := v2Rules()
	got := verdicts(t, out)
	if len(got) != len(rules) {
		t.Errorf("%d rule lines, want %d:\n%s", len(got), len(rules), out)
	}
	for _, r := range rules {
		if got[r.ID] != "PASS" {
			t.Errorf("%s: %q", r.ID, got[r.ID])
		}
	}
	if rep.Failed != 0 || rep.Passed != len(rules) || len(rep.Rules) != len(rules) || rep.Family != FamilySaaSV2 || len(rep.NotCovered) == 0 {
		t.Errorf("report: passed %d failed %d rules %d family %q", rep.Passed, rep.Failed, len(rep.Rules), rep.Family)
	}
	for _, r := range rep.Rules {
		if !r.Pass || r.Evidence == "" || len(r.Steps) == 0 || r.Ref == "" {
			t.Errorf("report rule %+v", r.Rule)
		}
	}
	if !strings.Contains(out, strconv.Itoa(len(rules))+" rules: "+strconv.Itoa(len(rules))+" passed, 0 failed") {
		t.Errorf("no summary line:\n%s", out)
	}
}

// wrapper is a thin http.Handler in front of a real Gallerist: onRequest
// may replace the request (query and body) before it is forwarded, or
// answer it itself; onAnswer may replace the answer body and sign it.
type wrapper struct {
	upstream  string
	onRequest func(q url.Values, body []byte) (url.Values, []byte, []byte) // answer != nil: do not forward
	onAnswer  func(reqBody, answer []byte) []byte
	// bodySignKey signs the answers the wrapper changes or makes.
	bodySignKey func(answer []byte) []byte
}

func (w *wrapper) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	if w.onRequest != nil {
		var answer []byte
		if q, body, answer = w.onRequest(q, body); answer != nil {
			w.write(rw, http.StatusOK, http.Header{"Content-Type": {"application/json;charset=UTF-8"}}, answer, true)
			return
		}
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, w.upstream+r.URL.Path+"?"+q.Encode(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	changed := false
	if w.onAnswer != nil {
		if a := w.onAnswer(body, answer); !bytes.Equal(a, answer) {
			answer, changed = a, true
		}
	}
	w.write(rw, resp.StatusCode, resp.Header, answer, changed)
}

func (w *wrapper) write(rw http.ResponseWriter, status int, h http.Header, answer []byte, resign bool) {
	for k, vs := range h {
		if k != "Content-Length" {
			rw.Header()[k] = vs
		}
	}
	if resign || w.bodySignKey != nil {
		key := []byte(testKey)
		if w.bodySignKey != nil {
			key = w.bodySignKey(answer)
		}
		rw.Header().Set(koogallery.BodySignHeader, koogallery.BodySignValue(key, answer))
	}
	rw.WriteHeader(status)
	_, _ = rw.Write(answer)
}

// serveWrapper starts w in front of the Gallerist at base and returns the
// wrapper's production address.
func serveWrapper(t *testing.T, base string, w *wrapper) string {
	t.Helper()
	u, _ := url.Parse(base)
	w.upstream = u.Scheme + "://" + u.Host
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return srv.URL + u.Path
}

func resultOfAnswer(answer []byte) string {
	var a struct {
		ResultCode string `json:"resultCode"`
	}
	_ = json.Unmarshal(answer, &a)
	return a.ResultCode
}

func verifies(q url.Values, body []byte) bool {
	v := &koogallery.V2Verifier{Keys: [][]byte{[]byte(testKey)}}
	_, err := v.Verify(q, body)
	return err == nil
}

// Conformance fails, naming the right rule, against deliberately broken
// handlers: thin wrappers around the real Gallerist.
func TestConformanceFailsAgainstBrokenHandlers(t *testing.T) {
	_, base := startGallerist(t)
	for _, tc := range []struct {
		name     string
		w        func() *wrapper
		mustFail []string
		mustPass []string
	}{
		{
			// The error path signs its answers with the wrong key.
			name: "wrong Body-Sign on error answers",
			w: func() *wrapper {
				return &wrapper{bodySignKey: func(answer []byte) []byte {
					if resultOfAnswer(answer) == string(koogallery.CodeSuccess) {
						return []byte(testKey)
					}
					return []byte("not-the-key")
				}}
			},
			mustFail: []string{"V2-BODY-SIGN", "V2-ENVELOPE", "V2-SIG-TAMPERED"},
			mustPass: []string{"V2-NEW-READY", "V2-REFRESH", "V2-DIAL-TEST"},
		},
		{
			// A re-sent newInstance creates a second instance: the
			// wrapper gives every repeat of an order line a fresh order
			// line and businessId (re-signed, so the server accepts it).
			name: "duplicate instance on retry",
			w: func() *wrapper {
				var mu sync.Mutex
				seen := map[string]bool{}
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					var b map[string]any
					_ = json.Unmarshal(body, &b)
					order, _ := b["orderId"].(string)
					line, _ := b["orderLineId"].(string)
					if b["activity"] != "newInstance" || b["testFlag"] != nil || line == "" || !verifies(q, body) {
						return q, body, nil
					}
					key := order + "/" + line
					mu.Lock()
					dup := seen[key]
					seen[key] = true
					mu.Unlock()
					if !dup {
						return q, body, nil
					}
					b["orderLineId"] = b["orderLineId"].(string) + "-" + randomText(6)
					b["businessId"] = uuidText()
					nb, _ := json.Marshal(b)
					return koogallery.SignV2Request([]byte(testKey), nb, time.Now(), koogallery.NewNonce()), nb, nil
				}}
			},
			mustFail: []string{"V2-NEW-IDEMPOTENT", "V2-NEW-STORM", "V2-NEW-RETRY-SCHEDULE"},
			mustPass: []string{"V2-BODY-SIGN", "V2-SIG-TAMPERED", "V2-NEW-READY"},
		},
		{
			// A call whose signature does not verify is answered 000000.
			name: "000000 for a tampered signature",
			w: func() *wrapper {
				return &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
					if q.Get("signature") != "" && q.Get("timestamp") != "" && q.Get("nonce") != "" && json.Valid(body) && !verifies(q, body) {
						return q, body, []byte(`{"resultCode":"000000","resultMsg":"success."}`)
					}
					return q, body, nil
				}}
			},
			mustFail: []string{"V2-SIG-TAMPERED", "V2-TS-STALE"},
			mustPass: []string{"V2-BODY-SIGN", "V2-NEW-IDEMPOTENT", "V2-NONCE-REPLAY"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := serveWrapper(t, base, tc.w())
			out, rep, err := conformanceRun(t, u)
			if !errors.Is(err, ErrConformanceFailed) {
				t.Fatalf("err %v, want ErrConformanceFailed\n%s", err, out)
			}
			got := verdicts(t, out)
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
			if rep.Failed == 0 || rep.Failed+rep.Passed != len(v2Rules()) {
				t.Errorf("report: passed %d, failed %d", rep.Passed, rep.Failed)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// A slow provisioner: newInstance answers 000004 and the first
// queryInstance poll too (the instance without appInfo). The rules accept
// it and poll until the app info is there.
func TestConformanceAcceptsProcessingThenPolling(t *testing.T) {
	_, base := startGallerist(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	w := &wrapper{onAnswer: func(req, answer []byte) []byte {
		var b map[string]any
		if json.Unmarshal(req, &b) != nil || b["testFlag"] != nil || resultOfAnswer(answer) != string(koogallery.CodeSuccess) {
			return answer
		}
		var key, slow string
		switch b["activity"] {
		case "newInstance":
			order, _ := b["orderId"].(string)
			line, _ := b["orderLineId"].(string)
			business, _ := b["businessId"].(string)
			key = "new/" + order + "/" + line
			slow = `{"resultCode":"000004","resultMsg":"request is processing","instanceId":"` + business + `","encryptType":"1"}`
		case "queryInstance":
			id, _ := b["instanceId"].(string)
			if id == "" || strings.Contains(id, ",") {
				return answer
			}
			key = "query/" + id
			slow = `{"resultCode":"000004","resultMsg":"request is processing","encryptType":"1","info":[{"instanceId":"` + id + `"}]}`
		default:
			return answer
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[key] {
			return answer
		}
		seen[key] = true
		return []byte(slow)
	}}
	u := serveWrapper(t, base, w)
	out, _, err := conformanceRun(t, u, "--only", "NEW-READY|LIFECYCLE", "--steps")
	if err != nil {
		t.Fatalf("conformance: %v\n%s", err, out)
	}
	if !strings.Contains(out, "newInstance 000004 instanceId=businessId; queryInstance 000000 after 2 poll(s)") {
		t.Errorf("the 000004 path was not taken:\n%s", out)
	}
}

// The SaaS V1 rules pass against a Gallerist V1 route.
func TestConformanceV1PassesAgainstGallerist(t *testing.T) {
	cfg := app.Defaults()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.DisableViews = true
	cfg.Routes = []config.Route{{Path: "/kg/v1", Family: config.FamilySaaSV1, Keys: []config.Key{{Value: testKey}}}}
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
	out, rep, err := conformanceRun(t, "http://"+a.Addr()+"/kg/v1", "--family", "saas-v1")
	if err != nil {
		t.Fatalf("conformance: %v\n%s", err, out)
	}
	if rep.Family != FamilySaaSV1 || rep.Passed != len(v1Rules()) || rep.Failed != 0 {
		t.Errorf("report: family %s, passed %d, failed %d\n%s", rep.Family, rep.Passed, rep.Failed, out)
	}
}

func TestConformanceArguments(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"conformance", "--list", "--only", "NONCE"}, &out, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "V2-NONCE-REPLAY") || strings.Contains(out.String(), "V2-SIG-TAMPERED") {
		t.Errorf("--list --only NONCE:\n%s", out.String())
	}
	u := "http://127.0.0.1:1/kg"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conformance", "--url", u, "--key", testKey, "--only", "("}, "--only"},
		{[]string{"conformance", "--url", u, "--key", testKey, "--only", "NOPE"}, "--only"},
		{[]string{"conformance", "--url", u, "--key", testKey, "--speed", "0"}, "--speed"},
		{[]string{"conformance", "--url", u, "--key", testKey, "--storm", "1"}, "--storm"},
		{[]string{"conformance", "--url", u, "--key", testKey, "--family", "saas-v1", "--only", "V2-"}, "saas-v1"},
		{[]string{"conformance", "--key", testKey}, "--url"},
		{[]string{"run", "--url", u, "--key", testKey}, "SCENARIO"},
		{[]string{"run", "nope", "--url", u, "--key", testKey}, "nope"},
		{[]string{"run", "negative", "--url", u, "--key", testKey, "--speed", "-1"}, "--speed"},
		{[]string{"run", "negative", "extra", "--url", u}, "extra"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard, noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// Every scenario passes against Gallerist and prints its steps; waits are
// compressed so far that the run is quick.
func TestScenarioRunAgainstGallerist(t *testing.T) {
	_, base := startGallerist(t)
	var list bytes.Buffer
	if err := run(context.Background(), []string{"run", "--list"}, &list, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios() {
		if !strings.Contains(list.String(), sc.Name+" ") {
			t.Errorf("--list lacks %s:\n%s", sc.Name, list.String())
		}
		if sc.Family != FamilySaaSV2 {
			continue // TestScenarioLicenseFamilies
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"run", sc.Name, "--url", base, "--key", testKey, "--speed", "1000000", "--storm", "8"}, &out, io.Discard, noEnv)
		if err != nil {
			t.Errorf("%s: %v\n%s", sc.Name, err, out.String())
			continue
		}
		if !strings.Contains(out.String(), "PASS "+sc.Name+" — ") || !strings.Contains(out.String(), "Body-Sign valid") {
			t.Errorf("%s output:\n%s", sc.Name, out.String())
		}
	}
	// The flags may also come before the scenario; --json reports the steps.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"run", "--url", base, "--key", testKey, "--json", "lifecycle-one-time"}, &out, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	var rep ScenarioReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !rep.Pass || len(rep.Steps) < 5 || rep.Steps[0].Activity != "newInstance" {
		t.Errorf("json report %+v, %v", rep, err)
	}
}

// A scenario against a broken handler fails with ErrScenarioFailed and
// says why.
func TestScenarioFailsAgainstBrokenHandler(t *testing.T) {
	_, base := startGallerist(t)
	u := serveWrapper(t, base, &wrapper{onRequest: func(q url.Values, body []byte) (url.Values, []byte, []byte) {
		if !verifies(q, body) && json.Valid(body) {
			return q, body, []byte(`{"resultCode":"000000","resultMsg":"success."}`)
		}
		return q, body, nil
	}})
	var out bytes.Buffer
	err := run(context.Background(), []string{"run", "negative", "--url", u, "--key", testKey}, &out, io.Discard, noEnv)
	if !errors.Is(err, ErrScenarioFailed) || !strings.Contains(out.String(), "FAIL negative — newInstance (body changed after signing) answered 000000") {
		t.Errorf("err %v\n%s", err, out.String())
	}
}
