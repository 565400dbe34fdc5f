package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/api"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/views"
	"github.com/gallerist/gallerist/projections/webhook"
)

const testAPIToken = "effects-cli-token-0123456789"

// redriveCall is one call the test's effects received.
type redriveCall struct {
	effect, instance, operator string
	seq                        uint64
	all                        bool
}

// recordingEffects is the re-drive side of the API in the unit tests of
// the command (the end-to-end test runs the real effect runners): it
// records the calls, and knows the effects "webhook" and "queryorder".
type recordingEffects struct {
	mu    sync.Mutex
	calls []redriveCall
}

func (r *recordingEffects) Redrive(_ context.Context, eff, instanceID, operator string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if eff != "webhook" && eff != "queryorder" {
		return fmt.Errorf("%w: unknown effect %q (known: queryorder, webhook)", api.ErrNotFound, eff)
	}
	r.calls = append(r.calls, redriveCall{effect: eff, instance: instanceID, operator: operator})
	return nil
}

func (r *recordingEffects) RedriveEvent(_ context.Context, eff, instanceID string, seq uint64, operator string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if eff != "webhook" && eff != "queryorder" {
		return fmt.Errorf("%w: unknown effect %q (known: queryorder, webhook)", api.ErrNotFound, eff)
	}
	r.calls = append(r.calls, redriveCall{effect: eff, instance: instanceID, seq: seq, operator: operator})
	return nil
}

func (r *recordingEffects) RedriveAll(_ context.Context, eff, operator string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if eff != "webhook" && eff != "queryorder" {
		return 0, fmt.Errorf("%w: unknown effect %q (known: queryorder, webhook)", api.ErrNotFound, eff)
	}
	r.calls = append(r.calls, redriveCall{effect: eff, operator: operator, all: true})
	return 2, nil
}

func (r *recordingEffects) Calls() []redriveCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]redriveCall(nil), r.calls...)
}

// apiRig is the real query API over real views (SQLite) projected from a
// real log (embedded NATS) holding parked effects.
type apiRig struct {
	url string
	fx  *recordingEffects
	seq uint64
}

// startAPIRig logs three parked events (two of webhook, one of
// queryorder), projects them and serves the API; withEffects false serves
// it without re-drive (as serve without effect runners).
func startAPIRig(t *testing.T, withEffects bool) *apiRig {
	t.Helper()
	ctx := t.Context()
	log := quietLogger()
	env := testenv.Instances(t, log)
	parkedAt := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	var last uint64
	for i, p := range []effect.Parked{
		{Effect: "webhook", InstanceID: "inst-a", EventSeq: 11, EventType: "InstanceCreated", Attempts: 5, Reason: "HTTP 400 from the vendor:\n\tbad request"},
		{Effect: "webhook", InstanceID: "inst-b", EventSeq: 12, EventType: "InstanceFrozen", Attempts: 0, Reason: "held back behind an earlier parked event"},
		{Effect: "queryorder", InstanceID: "inst-a", EventSeq: 13, EventType: "InstanceCreated", Attempts: 3, Reason: strings.Repeat("x", 300)},
	} {
		p.EventID = uuid.NewString()
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := env.Store.Append(ctx, eventstore.StreamID{Kind: effect.Kind, Keys: []string{p.Effect, p.InstanceID}}, 0, event.Envelope{
			ID: uuid.NewString(), Type: effect.TypeParked, Version: 1, AggregateKind: effect.Kind,
			AggregateID: p.Effect + "/" + p.InstanceID, OccurredAt: parkedAt.Add(time.Duration(i) * time.Minute),
			Causation: event.Causation{Actor: "effects"}, Data: data,
		})
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	st, err := views.Open(ctx, filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	js, err := jetstream.New(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	proj, err := views.NewProjector(st, js, env.Store.Config().Stream, env.Store.Config().Prefix, log)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() {
		defer close(pdone)
		_ = proj.Run(pctx)
	}()
	t.Cleanup(func() { cancel(); <-pdone })
	waitFor(t, "the parked effects to be projected", func() (bool, error) {
		seq, err := st.Checkpoint(ctx, views.ViewEffects)
		return seq >= last, err
	})
	rig := &apiRig{seq: last}
	var fx api.Effects
	if withEffects {
		rig.fx = &recordingEffects{}
		fx = rig.fx
	}
	srv, err := api.New(st, env.Store, fx, api.Config{Tokens: []string{testAPIToken}}, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	rig.url = hs.URL
	return rig
}

// clearAPIEnv keeps the environment of the test run out of the command.
func clearAPIEnv(t *testing.T) {
	for _, name := range []string{"GALLERIST_API_URL", "GALLERIST_API_TOKEN", "GALLERIST_OPERATOR"} {
		t.Setenv(name, "") // restored at cleanup
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEffectsCmdParked(t *testing.T) {
	clearAPIEnv(t)
	rig := startAPIRig(t, true)
	flags := []string{"--api-url", rig.url, "--api-token", testAPIToken}

	code, out, errOut := runCmd(t, append([]string{"effects", "parked"}, flags...)...)
	if code != 0 {
		t.Fatalf("effects parked exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("effects parked printed %d lines, want header, 3 rows, footer:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"EFFECT", "INSTANCE", "EVENT SEQ", "TYPE", "ATTEMPTS", "PARKED AT", "REASON"},
		{"webhook", "inst-a", "11", "InstanceCreated", "5", "2025-05-01T10:00:00Z", "HTTP 400 from the vendor:  bad request"},
		{"webhook", "inst-b", "12", "InstanceFrozen", "0", "2025-05-01T10:01:00Z", "held back behind an earlier parked event"},
		{"queryorder", "inst-a", "13", "InstanceCreated", "3", "2025-05-01T10:02:00Z", strings.Repeat("x", reasonWidth) + "…"},
	} {
		for _, cell := range want {
			if !strings.Contains(lines[i], cell) {
				t.Errorf("line %d %q lacks %q", i, lines[i], cell)
			}
		}
	}
	// The columns line up: every row starts its second column where the
	// header does.
	col := strings.Index(lines[0], "INSTANCE")
	for _, l := range lines[1:4] {
		if l[col-2:col] != "  " || l[col] != 'i' {
			t.Errorf("misaligned row %q (INSTANCE at %d)", l, col)
		}
	}
	if want := fmt.Sprintf("3 parked (effects view at sequence %d)", rig.seq); lines[4] != want {
		t.Errorf("footer %q, want %q", lines[4], want)
	}

	// Filters, the limit, an empty answer.
	code, out, _ = runCmd(t, append([]string{"effects", "parked", "--effect", "webhook", "--instance", "inst-a"}, flags...)...)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "inst-a") || strings.Contains(out, "queryorder") {
		t.Errorf("--effect webhook --instance inst-a: exit %d:\n%s", code, out)
	}
	code, out, _ = runCmd(t, append([]string{"effects", "parked", "--limit", "1"}, flags...)...)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "1 parked") || !strings.Contains(out, "raise --limit") {
		t.Errorf("--limit 1: exit %d:\n%s", code, out)
	}
	code, out, _ = runCmd(t, append([]string{"effects", "parked", "--instance", "nobody"}, flags...)...)
	if want := fmt.Sprintf("no parked effects (effects view at sequence %d)\n", rig.seq); code != 0 || out != want {
		t.Errorf("--instance nobody: exit %d, %q, want %q", code, out, want)
	}

	// JSON: the API's answer, whole reasons included.
	code, out, errOut = runCmd(t, append([]string{"effects", "parked", "--json"}, flags...)...)
	if code != 0 {
		t.Fatalf("--json exited %d: %s", code, errOut)
	}
	var list api.ParkedList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	if len(list.Effects) != 3 || list.ConsistentTo != rig.seq || list.Truncated || list.Effects[2].Reason != strings.Repeat("x", 300) ||
		list.Effects[0].Reason != "HTTP 400 from the vendor:\n\tbad request" || list.Effects[0].EventSeq != 11 {
		t.Errorf("--json: %+v", list)
	}

	// The URL and token from the environment, as serve's are.
	t.Setenv("GALLERIST_API_URL", rig.url+"/")
	t.Setenv("GALLERIST_API_TOKEN", " "+testAPIToken+",another-token-0123456789")
	if code, out, errOut := runCmd(t, "effects", "parked", "--effect", "queryorder"); code != 0 || !strings.Contains(out, "1 parked") {
		t.Errorf("from the environment: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestEffectsCmdRedrive(t *testing.T) {
	clearAPIEnv(t)
	rig := startAPIRig(t, true)
	flags := []string{"--api-url", rig.url, "--api-token", testAPIToken, "--operator", "ops@test"}

	code, out, errOut := runCmd(t, append([]string{"effects", "redrive", "--effect", "webhook", "--instance", "inst-a"}, flags...)...)
	if code != 0 || !strings.Contains(out, "re-drove the parked webhook events of instance inst-a") {
		t.Fatalf("redrive --instance: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", "queryorder", "--all"}, flags...)...)
	if code != 0 || !strings.Contains(out, "re-drove the parked queryorder events of 2 instance(s)") {
		t.Fatalf("redrive --all: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", "webhook", "--instance", "inst-b", "--seq", "7"}, flags...)...)
	if code != 0 || !strings.Contains(out, "instance inst-b (event 7 only)") {
		t.Fatalf("redrive --seq: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", "webhook", "--seq", "7"}, flags...)...); code == 0 || !strings.Contains(errOut, "--seq needs --instance") {
		t.Errorf("--seq without --instance: exit %d, stderr %q", code, errOut)
	}
	want := []redriveCall{{effect: "webhook", instance: "inst-a", operator: "ops@test"}, {effect: "queryorder", operator: "ops@test", all: true},
		{effect: "webhook", instance: "inst-b", seq: 7, operator: "ops@test"}}
	if got := rig.fx.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("re-drives %+v, want %+v", got, want)
	}
	// The API's refusal is the error, with a non-zero exit.
	code, _, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", "nope", "--all"}, flags...)...)
	if code != 1 || !strings.Contains(errOut, "the query API answered 404 Not Found") || !strings.Contains(errOut, `unknown effect "nope"`) {
		t.Errorf("unknown effect: exit %d, stderr %q", code, errOut)
	}
	// Without --operator it is user@host.
	if op := defaultOperator(); op == "" {
		t.Error("no default operator")
	}
}

// A serve without effect runners answers re-drives 503: the command says
// what the API said.
func TestEffectsCmdRedriveUnavailable(t *testing.T) {
	clearAPIEnv(t)
	rig := startAPIRig(t, false)
	code, out, errOut := runCmd(t, "effects", "redrive", "--api-url", rig.url, "--api-token", testAPIToken, "--effect", "webhook", "--instance", "inst-a")
	if code != 1 || out != "" || !strings.Contains(errOut, "503 Service Unavailable: re-drive is not available") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestEffectsCmdErrors(t *testing.T) {
	clearAPIEnv(t)
	rig := startAPIRig(t, true)
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()

	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"effects"}, 1, []string{"give a subcommand: parked or redrive", "usage: gallerist effects"}},
		{[]string{"effects", "frob"}, 1, []string{`unknown subcommand "frob"`}},
		{[]string{"effects", "parked", "extra"}, 1, []string{`unexpected argument "extra"`}},
		{[]string{"effects", "parked", "--limit", "-1"}, 1, []string{"--limit must be positive"}},
		{[]string{"effects", "parked", "--api-url", rig.url}, 1, []string{"needs a bearer token", "GALLERIST_API_TOKEN"}},
		{[]string{"effects", "parked", "--api-url", "ftp://x", "--api-token", testAPIToken}, 1, []string{`--api-url "ftp://x"`}},
		{[]string{"effects", "parked", "--api-url", rig.url, "--api-token", "wrong-token-0123456789"}, 1,
			[]string{"401 Unauthorized: the bearer token is not valid (Authorization)", "check GALLERIST_API_TOKEN"}},
		{[]string{"effects", "parked", "--api-url", rig.url, "--api-token", testAPIToken, "--limit", "9999"}, 1,
			[]string{"400 Bad Request", "(limit)"}},
		{[]string{"effects", "parked", "--api-url", closed, "--api-token", testAPIToken}, 1,
			[]string{"query API at " + closed, "is gallerist serve running with --api-addr?"}},
		{[]string{"effects", "redrive", "--instance", "x"}, 1, []string{"--effect is required"}},
		{[]string{"effects", "redrive", "--effect", "webhook"}, 1, []string{"--instance <id> or --all"}},
		{[]string{"effects", "redrive", "--effect", "webhook", "--instance", "x", "--all"}, 1, []string{"exclude each other"}},
		{[]string{"effects", "redrive", "--effect", "webhook", "--all", "--operator", " "}, 1, []string{"--operator is empty"}},
	} {
		code, out, errOut := runCmd(t, c.args...)
		ok := code == c.code && out == ""
		for _, w := range c.want {
			ok = ok && strings.Contains(errOut, w)
		}
		if !ok {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
	// Which events to re-drive is never taken from the environment.
	t.Setenv("GALLERIST_API_URL", rig.url)
	t.Setenv("GALLERIST_API_TOKEN", testAPIToken)
	t.Setenv("GALLERIST_EFFECT", "webhook")
	t.Setenv("GALLERIST_ALL", "true")
	if code, _, errOut := runCmd(t, "effects", "redrive"); code != 1 || !strings.Contains(errOut, "--effect is required") {
		t.Errorf("redrive from the environment: exit %d, stderr %q", code, errOut)
	}
	if len(rig.fx.Calls()) != 0 {
		t.Errorf("refused commands re-drove: %+v", rig.fx.Calls())
	}
	for _, args := range [][]string{{"effects", "-h"}, {"effects", "parked", "-h"}, {"effects", "redrive", "-h"}} {
		if code, _, _ := runCmd(t, args...); code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
	}
	if code, out, _ := runCmd(t, "help"); code != 0 || !strings.Contains(out, "replay") || !strings.Contains(out, "effects") {
		t.Errorf("help does not list replay and effects: %q", out)
	}
}

func TestEffectsCmdPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		"a\tb\nc\r\x1b[31m": "a b c  [31m",
		"ünïcödé":           "ünïcödé",
		"abcdef":            "abcd…",
	} {
		if got := printable(in, 4+map[bool]int{true: 100}[in != "abcdef"]); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// hookReceiver is a vendor's webhook endpoint: it records every delivery
// and refuses them with 400 while failing is set.
type hookReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	failing bool
	got     []hookDelivery
}

type hookDelivery struct {
	instanceID, eventType string
	status                int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rc := &hookReceiver{failing: true}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n webhook.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, "not a notification", http.StatusUnprocessableEntity)
			return
		}
		rc.mu.Lock()
		status := http.StatusNoContent
		if rc.failing {
			status = http.StatusBadRequest
		}
		rc.got = append(rc.got, hookDelivery{instanceID: n.InstanceID, eventType: n.EventType, status: status})
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) setFailing(v bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.failing = v
}

// accepted lists the event types of id the receiver answered 2xx, in
// arrival order.
func (rc *hookReceiver) accepted(id string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, d := range rc.got {
		if d.instanceID == id && d.status/100 == 2 {
			out = append(out, d.eventType)
		}
	}
	return out
}

// newInstanceCall sends a signed SaaS V2 newInstance to the App's route.
func newInstanceCall(t *testing.T, a *app.App, id string) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"activity": "newInstance", "orderId": "o-" + id, "orderLineId": "l-" + id, "businessId": id})
	if err != nil {
		t.Fatal(err)
	}
	q := koogallery.SignV2Request([]byte("k"), raw, time.Now(), koogallery.NewNonce())
	resp, err := http.Post("http://"+a.Addr()+testRoute+"?"+q.Encode(), "application/json;charset=utf8", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var ans struct {
		ResultCode string `json:"resultCode"`
		InstanceID string `json:"instanceId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || (ans.ResultCode != "000000" && ans.ResultCode != "000004") || ans.InstanceID != id {
		t.Fatalf("newInstance: HTTP %d, %+v, %v", resp.StatusCode, ans, err)
	}
}

// End to end: a vendor webhook that answers 400 parks the new instance's
// notifications; `effects parked` lists them from the running service's
// query API; once the vendor is fixed, `effects redrive --instance`
// delivers them and the list empties.
func TestEffectsCmdParkedAndRedriveEndToEnd(t *testing.T) {
	clearAPIEnv(t)
	recv := newHookReceiver(t)
	cfg := testAppConfig(t.TempDir())
	const secretEnv = "GALLERIST_TEST_CLI_HOOK_SECRET"
	cfg.Routes[0].Webhook = &config.Webhook{URL: recv.URL, SecretEnv: secretEnv, Timeout: 5 * time.Second}
	cfg.Getenv = func(name string) string {
		if name == secretEnv {
			return "a-vendor-secret-of-32-bytes-----"
		}
		return ""
	}
	cfg.Effects = effects.RunnerConfig{RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxAttempts: 3}
	cfg.APIAddr, cfg.APITokens = "127.0.0.1:0", []string{testAPIToken}
	a, _ := startApp(t, cfg)
	flags := []string{"--api-url", "http://" + a.APIAddr(), "--api-token", testAPIToken}

	const id = "inst-e2e-1"
	newInstanceCall(t, a, id)
	var list api.ParkedList
	waitFor(t, "the creation parked, the provisioning held back behind it", func() (bool, error) {
		code, out, errOut := runCmd(t, append([]string{"effects", "parked", "--json", "--effect", webhook.Name, "--instance", id}, flags...)...)
		if code != 0 {
			return false, errors.New(errOut)
		}
		list = api.ParkedList{}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err
		}
		var types []string
		for _, p := range list.Effects {
			types = append(types, p.EventType)
		}
		return slices.Equal(types, []string{instance.TypeCreated, instance.TypeProvisioned}), fmt.Errorf("parked %v", types)
	})
	code, out, errOut := runCmd(t, append([]string{"effects", "parked"}, flags...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "EFFECT") ||
		!strings.Contains(lines[1], "webhook") || !strings.Contains(lines[1], id) || !strings.Contains(lines[1], instance.TypeCreated) ||
		!strings.Contains(lines[1], "400") || !strings.Contains(lines[2], instance.TypeProvisioned) || !strings.HasPrefix(lines[3], "2 parked") {
		t.Fatalf("effects parked: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	if got := recv.accepted(id); len(got) != 0 {
		t.Fatalf("the vendor accepted %v while refusing", got)
	}

	recv.setFailing(false)
	code, out, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", webhook.Name, "--instance", id, "--operator", "e2e-test"}, flags...)...)
	if code != 0 || !strings.Contains(out, "re-drove the parked webhook events of instance "+id) {
		t.Fatalf("effects redrive: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The API answers once the re-drive ran.
	if got, want := recv.accepted(id), []string{instance.TypeCreated, instance.TypeProvisioned}; !slices.Equal(got, want) {
		t.Fatalf("after the re-drive the vendor accepted %v, want %v", got, want)
	}
	waitFor(t, "the parked list to empty", func() (bool, error) {
		code, out, errOut := runCmd(t, append([]string{"effects", "parked", "--instance", id}, flags...)...)
		return code == 0 && strings.HasPrefix(out, "no parked effects"), fmt.Errorf("exit %d: %s%s", code, out, errOut)
	})
	// Nothing parked any more: a second re-drive is the API's 404.
	code, _, errOut = runCmd(t, append([]string{"effects", "redrive", "--effect", webhook.Name, "--all"}, flags...)...)
	if code != 1 || !strings.Contains(errOut, "404 Not Found") || !strings.Contains(errOut, "nothing parked") {
		t.Errorf("re-drive of nothing: exit %d, stderr %q", code, errOut)
	}
}
