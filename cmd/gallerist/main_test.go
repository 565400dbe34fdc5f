package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
)

// syncBuffer is a bytes.Buffer safe for one writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a `gallerist serve` running in a goroutine.
type served struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
	url            string
}

var demoURLRE = regexp.MustCompile(`(?m)^  POST (https?://\S+)$`)

// startServe runs `gallerist <args>` (a serve) until the demo URL is
// printed. At cleanup it is stopped, and must have exited 0.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	if len(args) > 0 && args[0] == "serve" {
		// A long fsync interval: nats-server arms its first sync timer
		// without its lock, which a loaded -race run may report.
		args = append(append([]string{}, args...), "--sync-interval", "1h")
	}
	go func() { s.done <- run(ctx, args, s.stdout, s.stderr) }()
	t.Cleanup(func() {
		if code, stopped := s.stop(); !stopped {
			t.Errorf("serve did not stop within the deadline")
		} else if code != 0 {
			t.Errorf("serve exited %d, want 0; stderr:\n%s", code, s.stderr)
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if m := demoURLRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited %d before printing the demo URL; stdout:\n%s\nstderr:\n%s", code, s.stdout, s.stderr)
		case <-deadline:
			t.Fatalf("no demo URL printed; stdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop cancels serve's context and waits for its exit code.
func (s *served) stop() (int, bool) {
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code, true
	case <-time.After(30 * time.Second):
		return 0, false
	}
}

// runCmd runs a command that returns by itself (sign, errors).
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func signCurl(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, append([]string{"sign"}, args...)...)
	if code != 0 {
		t.Fatalf("sign %v exited %d: %s", args, code, errOut)
	}
	if !strings.HasPrefix(out, "curl ") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("sign printed %q, want one curl command line", out)
	}
	return strings.TrimSuffix(out, "\n")
}

// shellWords splits a POSIX shell command line of plain words, single
// quotes and backslash escapes (what shellQuote produces).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated quote in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '\\' && i+1 < len(line):
			cur.WriteByte(line[i+1])
			i++
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("\"$`;|&<>(){}*?!#~\n", c) >= 0:
			t.Fatalf("unquoted shell metacharacter %q in %q", c, line)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// curlRequest takes the printed curl command apart into an HTTP request.
func curlRequest(t *testing.T, line string) (*http.Request, []byte) {
	t.Helper()
	w := shellWords(t, line)
	var target, body string
	header := http.Header{}
	method := ""
	if len(w) == 0 || w[0] != "curl" {
		t.Fatalf("not a curl command: %q", line)
	}
	for i := 1; i < len(w); i++ {
		switch w[i] {
		case "-sS", "-i":
		case "-X":
			i++
			method = w[i]
		case "-H":
			i++
			name, value, ok := strings.Cut(w[i], ":")
			if !ok {
				t.Fatalf("bad header %q", w[i])
			}
			header.Add(name, strings.TrimSpace(value))
		case "--data-raw":
			i++
			body = w[i]
		default:
			if target != "" {
				t.Fatalf("unexpected word %q in %q", w[i], line)
			}
			target = w[i]
		}
	}
	if method != http.MethodPost || target == "" || body == "" {
		t.Fatalf("curl command %q: method %q, url %q, body %q", line, method, target, body)
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	return req, []byte(body)
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// sendParsed sends the curl command with net/http.
func sendParsed(t *testing.T, line string) reply {
	t.Helper()
	req, _ := curlRequest(t, line)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("send %s: %v", req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// sendCurl runs the printed command with sh when curl is installed (the
// way the demo instructions say), else sends it with net/http.
func sendCurl(t *testing.T, line string) reply {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Logf("curl not installed (%v): sending the parsed command with net/http", err)
		return sendParsed(t, line)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("curl output %q: %v", out, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

type kgAnswer struct {
	ResultCode  string `json:"resultCode"`
	ResultMsg   string `json:"resultMsg"`
	InstanceID  string `json:"instanceId"`
	EncryptType string `json:"encryptType"`
	Info        []struct {
		InstanceID string `json:"instanceId"`
		AppInfo    *struct {
			FrontEndURL string `json:"frontEndUrl"`
			AdminURL    string `json:"adminUrl"`
			UserName    string `json:"userName"`
			Password    string `json:"password"`
		} `json:"appInfo"`
	} `json:"info"`
}

// answerOf checks the reply is a 200 JSON answer signed with key.
func answerOf(t *testing.T, r reply, key []byte) kgAnswer {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.status, r.body)
	}
	if err := koogallery.VerifyBodySign(key, r.body, r.header.Get(koogallery.BodySignHeader)); err != nil {
		t.Fatalf("Body-Sign %q over %s: %v", r.header.Get(koogallery.BodySignHeader), r.body, err)
	}
	var a kgAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("answer %s: %v", r.body, err)
	}
	return a
}

func demoKey(t *testing.T, path string) []byte {
	t.Helper()
	f, err := config.Load(path)
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	if len(f.Routes) != 1 {
		t.Fatalf("demo config has %d routes, want 1", len(f.Routes))
	}
	r := f.Routes[0]
	if r.Path != demoPath || r.Family != config.FamilySaaSV2 || len(r.Keys) != 1 || r.Encrypt() != "1" {
		t.Fatalf("demo route = %+v", r)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(r.Keys[0].Value) || r.Keys[0].Base64 || r.Keys[0].ValueEnv != "" {
		t.Errorf("demo key %q is not a generated 26-character base32 key", r.Keys[0].Value)
	}
	k, err := r.Keys[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ---------------------------------------------------------------------------

func TestServeDemoSignAndCall(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	cfgPath := filepath.Join(dir, "demo-config.yaml")

	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatalf("demo config not generated: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("demo config mode %v, want 0600 (it holds a key)", fi.Mode().Perm())
	}
	original, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	key := demoKey(t, cfgPath)

	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*` + demoPath + `$`).MatchString(s.url) {
		t.Errorf("demo URL %q, want http://127.0.0.1:<port>%s", s.url, demoPath)
	}
	out := s.stdout.String()
	for _, want := range []string{
		cfgPath,
		"sign --config " + cfgPath + " --url " + s.url + " --activity newInstance | sh",
		"sign --config " + cfgPath + " --url " + s.url + " --activity queryInstance --field instanceId=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	// newInstance, the way the printed instructions say.
	line := signCurl(t, "--config", cfgPath, "--url", s.url, "--activity", "newInstance")
	created := answerOf(t, sendCurl(t, line), key)
	if created.ResultCode != "000000" || created.InstanceID == "" || created.EncryptType != "1" {
		t.Fatalf("newInstance = %+v, want 000000 with an instanceId", created)
	}
	// The printed body is what was signed: the instanceId is its businessId.
	_, body := curlRequest(t, line)
	var sent map[string]string
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["activity"] != "newInstance" || sent["businessId"] != created.InstanceID || sent["orderId"] == "" ||
		sent["orderLineId"] != sent["orderId"]+"-000001" {
		t.Errorf("signed body %s, answer %+v", body, created)
	}
	// Running the same command again replays its nonce: refused.
	if again := answerOf(t, sendParsed(t, line), key); again.ResultCode != "000001" {
		t.Errorf("replayed command = %+v, want 000001", again)
	}

	// queryInstance, taken apart and sent with net/http.
	id := created.InstanceID
	line = signCurl(t, "--config", cfgPath, "--url", s.url, "--activity", "queryInstance", "--field", "instanceId="+id)
	q := answerOf(t, sendParsed(t, line), key)
	checkQuery(t, q, id, key)

	code, stopped := s.stop()
	if !stopped || code != 0 {
		t.Fatalf("serve after cancel: exit %d (stopped %v), want 0; stderr:\n%s", code, stopped, s.stderr)
	}

	// A second start on the same directory keeps the key and the data.
	s2 := startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if now, err := os.ReadFile(cfgPath); err != nil || !bytes.Equal(now, original) {
		t.Errorf("demo config changed on the second start (%v):\nbefore:\n%s\nafter:\n%s", err, original, now)
	}
	if !strings.Contains(s2.stdout.String(), cfgPath) {
		t.Errorf("second start does not print the demo instructions:\n%s", s2.stdout)
	}
	line = signCurl(t, "--config", cfgPath, "--url", s2.url, "--activity", "queryInstance", "--field", "instanceId="+id)
	checkQuery(t, answerOf(t, sendParsed(t, line), key), id, key)
}

func checkQuery(t *testing.T, q kgAnswer, id string, key []byte) {
	t.Helper()
	if q.ResultCode != "000000" || len(q.Info) != 1 || q.Info[0].InstanceID != id || q.Info[0].AppInfo == nil {
		t.Fatalf("queryInstance = %+v, want 000000 with appInfo", q)
	}
	ai := q.Info[0].AppInfo
	if ai.FrontEndURL != "https://app.example.com/"+id || ai.AdminURL != "https://admin.example.com/"+id {
		t.Errorf("appInfo URLs %q %q", ai.FrontEndURL, ai.AdminURL)
	}
	c, err := koogallery.NewCipher(key, koogallery.EncryptAES256)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.Decrypt(ai.UserName); err != nil || !strings.HasPrefix(u, "admin-") {
		t.Errorf("userName decrypts to %q, %v", u, err)
	}
	if p, err := c.Decrypt(ai.Password); err != nil || p == "" {
		t.Errorf("password decrypts to %q, %v", p, err)
	}
}

// TestSignOutputVerifies: the printed request carries a valid V2 signature
// over exactly the printed body.
func TestSignOutputVerifies(t *testing.T) {
	key := "secret-key"
	line := signCurl(t, "--key", key, "--url", "http://127.0.0.1:9/p?ignored=1", "--activity", "updateInstanceStatus",
		"--field", "instanceId=abc'def", "--field", "status=UNFREEZE", "--test")
	req, body := curlRequest(t, line)
	if req.URL.Path != "/p" || req.URL.Host != "127.0.0.1:9" {
		t.Errorf("URL %s", req.URL)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json;charset=utf8" {
		t.Errorf("Content-Type %q", ct)
	}
	v := koogallery.V2Verifier{Keys: [][]byte{[]byte(key)}, Window: time.Minute}
	if _, err := v.Verify(req.URL.Query(), body); err != nil {
		t.Errorf("signature of %s does not verify: %v", line, err)
	}
	var b map[string]string
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"activity": "updateInstanceStatus", "instanceId": "abc'def", "status": "UNFREEZE", "testFlag": "1"}
	if fmt.Sprint(b) != fmt.Sprint(want) {
		t.Errorf("body %v, want %v", b, want)
	}
	if _, ok := req.URL.Query()["ignored"]; ok {
		t.Errorf("the URL's own query survived: %s", req.URL)
	}

	// --body is sent (and signed) verbatim.
	raw := `{"activity":"queryInstance","instanceId":"x1"}`
	line = signCurl(t, "--key", key, "--url", "http://127.0.0.1:9/p", "--body", raw)
	req, body = curlRequest(t, line)
	if string(body) != raw {
		t.Errorf("body %s, want %s", body, raw)
	}
	if _, err := v.Verify(req.URL.Query(), body); err != nil {
		t.Errorf("signature over --body does not verify: %v", err)
	}
	// --url from the environment.
	t.Setenv("GALLERIST_URL", "http://127.0.0.1:9/env")
	line = signCurl(t, "--key", key, "--activity", "orderNotify")
	if req, _ := curlRequest(t, line); req.URL.Path != "/env" {
		t.Errorf("GALLERIST_URL not used: %s", req.URL)
	}
}

func TestSignErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(cfgPath, []byte("routes:\n  - path: /a\n    family: saas-v2\n    keys:\n      - value: k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const u = "http://127.0.0.1:9/a"
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown activity":   {[]string{"--key", "k", "--url", u, "--activity", "bogus"}, `unknown activity "bogus"`},
		"missing url":        {[]string{"--key", "k"}, "--url is required"},
		"relative url":       {[]string{"--key", "k", "--url", "/a"}, "not an absolute URL"},
		"query without id":   {[]string{"--key", "k", "--url", u, "--activity", "queryInstance"}, "queryInstance needs --field instanceId="},
		"release without id": {[]string{"--config", cfgPath, "--url", u, "--activity", "releaseInstance"}, "releaseInstance needs --field instanceId="},
		"no key":             {[]string{"--url", u}, "give --key or --config"},
		"no such route":      {[]string{"--config", cfgPath, "--url", "http://127.0.0.1:9/b"}, "no route with path /b"},
		"missing config":     {[]string{"--config", filepath.Join(dir, "nope.yaml"), "--url", u}, "nope.yaml"},
		"bad field":          {[]string{"--key", "k", "--url", u, "--field", "novalue"}, "--field wants name=value"},
		"bad base64 key":     {[]string{"--key", "***", "--key-base64", "--url", u}, "base64"},
	} {
		code, out, errOut := runCmd(t, append([]string{"sign"}, tc.args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, nothing, a message with %q", name, code, out, errOut, tc.want)
		}
	}
}

func TestCommands(t *testing.T) {
	code, _, errOut := runCmd(t, "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) || !strings.Contains(errOut, "Commands:") {
		t.Errorf("unknown command: exit %d, stderr %q; want 2 with the usage", code, errOut)
	}
	if code, _, errOut := runCmd(t); code != 2 || !strings.Contains(errOut, "Commands:") {
		t.Errorf("no command: exit %d, stderr %q; want 2 with the usage", code, errOut)
	}
	if code, out, _ := runCmd(t, "help"); code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "sign") {
		t.Errorf("help: exit %d, stdout %q", code, out)
	}
	if code, _, errOut := runCmd(t, "sign", "-h"); code != 0 || !strings.Contains(errOut, "-activity") {
		t.Errorf("sign -h: exit %d, stderr %q; want 0 and the flags", code, errOut)
	}
	if code, _, errOut := runCmd(t, "serve", "--no-such-flag"); code != 1 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("serve --no-such-flag: exit %d, stderr %q; want 1", code, errOut)
	}
}

func TestEnvFlags(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *string, *time.Duration, *bool) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		listen := fs.String("listen", ":8080", "")
		natsURL := fs.String("nats-url", "", "")
		interval := fs.Duration("sync-interval", time.Second, "")
		b64 := fs.Bool("key-base64", false, "")
		return fs, listen, natsURL, interval, b64
	}
	env := map[string]string{
		"GALLERIST_LISTEN":        "127.0.0.1:1",
		"GALLERIST_NATS_URL":      "nats://n:4222",
		"GALLERIST_SYNC_INTERVAL": "250ms",
		"GALLERIST_KEY_BASE64":    "true",
		"LISTEN":                  "wrong",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	fs, listen, natsURL, interval, b64 := newFS()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := envFlags(fs, lookup); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:1" || *natsURL != "nats://n:4222" || *interval != 250*time.Millisecond || !*b64 {
		t.Errorf("from the environment: %q %q %v %v", *listen, *natsURL, *interval, *b64)
	}

	// The command line wins, even over a bad environment value.
	env["GALLERIST_SYNC_INTERVAL"] = "soon"
	fs, listen, natsURL, interval, _ = newFS()
	if err := fs.Parse([]string{"--listen", "127.0.0.1:2", "--sync-interval", "3s"}); err != nil {
		t.Fatal(err)
	}
	if err := envFlags(fs, lookup); err != nil {
		t.Fatalf("a bad environment value of a flag given on the command line: %v", err)
	}
	if *listen != "127.0.0.1:2" || *interval != 3*time.Second || *natsURL != "nats://n:4222" {
		t.Errorf("command line + environment: %q %v %q", *listen, *interval, *natsURL)
	}

	// A bad value is reported with its variable.
	fs, _, _, _, _ = newFS()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := envFlags(fs, lookup)
	if err == nil || !strings.Contains(err.Error(), "GALLERIST_SYNC_INTERVAL") || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("bad value: %v, want an error naming GALLERIST_SYNC_INTERVAL=\"soon\"", err)
	}
	// An empty but set variable is a value too.
	env = map[string]string{"GALLERIST_KEY_BASE64": ""}
	fs, _, _, _, _ = newFS()
	_ = fs.Parse(nil)
	if err := envFlags(fs, lookup); err == nil || !strings.Contains(err.Error(), "GALLERIST_KEY_BASE64") {
		t.Errorf("GALLERIST_KEY_BASE64=\"\": %v, want an error", err)
	}
}

// TestServeFromEnvironment: serve's flags come from GALLERIST_* when not
// given; the command line wins; a bad value stops serve with exit 1.
func TestServeFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GALLERIST_LISTEN", "127.0.0.1:0")
	t.Setenv("GALLERIST_DATA_DIR", dir)
	t.Setenv("GALLERIST_LOG_FORMAT", "json")
	s := startServe(t, "serve")
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Errorf("URL %q: GALLERIST_LISTEN not applied", s.url)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo-config.yaml")); err != nil {
		t.Errorf("GALLERIST_DATA_DIR not applied: %v", err)
	}
	if !strings.Contains(s.stderr.String(), `"msg":"gallerist serving"`) {
		t.Errorf("GALLERIST_LOG_FORMAT=json not applied; stderr:\n%s", s.stderr)
	}
	if code, ok := s.stop(); !ok || code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Command line wins over a listen address that could not work.
	t.Setenv("GALLERIST_LISTEN", "not-an-address")
	startServe(t, "serve", "--listen", "127.0.0.1:0")

	// A bad value: exit 1, naming the variable.
	t.Setenv("GALLERIST_SYNC_INTERVAL", "soon")
	code, _, errOut := runCmd(t, "serve", "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "GALLERIST_SYNC_INTERVAL") {
		t.Errorf("GALLERIST_SYNC_INTERVAL=soon: exit %d, stderr %q; want 1 naming the variable", code, errOut)
	}
}

// TestServeExitsNonZeroWhenHTTPServerFails: when the HTTP server stops with
// an error (here: the TLS certificate cannot be read), serve must not
// report success.
func TestServeExitsNonZeroWhenHTTPServerFails(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(dir, "missing-cert.pem"), "--tls-key", filepath.Join(dir, "missing-key.pem")}, &out, &errOut)
	if ctx.Err() != nil {
		t.Fatal("serve did not return by itself after its HTTP server failed")
	}
	if code == 0 {
		t.Errorf("serve exited 0 although its HTTPS server failed to start; stderr:\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "missing-cert.pem") {
		t.Errorf("stderr does not name the unreadable certificate:\n%s", errOut.String())
	}
}

// TestDemoInstructionsSurviveTheShell: the printed sign commands are meant
// to be pasted into a shell, so the config path and URL in them must reach
// `gallerist sign` as single arguments even when the data directory has a
// space in its name.
func TestDemoInstructionsSurviveTheShell(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my data")
	s := startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	cfgPath := filepath.Join(dir, "demo-config.yaml")
	var lines []string
	for _, l := range strings.Split(s.stdout.String(), "\n") {
		if strings.Contains(l, " sign ") {
			lines = append(lines, strings.TrimSuffix(strings.TrimSpace(l), " | sh"))
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 sign instructions, stdout:\n%s", s.stdout)
	}
	for _, l := range lines {
		w := shellWords(t, strings.ReplaceAll(l, "<instanceId from above>", "ID"))
		args := map[string]string{}
		for i := 0; i+1 < len(w); i++ {
			if strings.HasPrefix(w[i], "--") {
				args[w[i]] = w[i+1]
			}
		}
		if args["--config"] != cfgPath || args["--url"] != s.url {
			t.Errorf("instruction %q: the shell passes --config %q and --url %q, want %q and %q",
				l, args["--config"], args["--url"], cfgPath, s.url)
		}
	}
}

// TestServeEffectFlags: the effect and open-API flags, from the command
// line and from GALLERIST_*; AK/SK only from the environment.
func TestServeEffectFlags(t *testing.T) {
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	cfg, _, err := parseServe(nil, io.Discard, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Effects != effects.DefaultRunnerConfig() || cfg.DisableEffects || cfg.KooGallery.Site != openapi.SiteMainland ||
		cfg.KooGallery.Hosts != nil || cfg.KooGallery.AK != "" || cfg.KooGallery.SK != "" {
		t.Errorf("defaults: effects %+v, no-effects %v, KooGallery %v", cfg.Effects, cfg.DisableEffects, cfg.KooGallery)
	}

	env = map[string]string{
		"GALLERIST_EFFECT_RETRY_BASE": "50ms", "GALLERIST_EFFECT_MAX_ATTEMPTS": "3", "GALLERIST_NO_EFFECTS": "true",
		"GALLERIST_KG_SITE": "eu", "GALLERIST_KG_HOSTS": "https://a.example.com, b.example.com:8443",
		openapi.EnvAK: "the-ak", openapi.EnvSK: "the-sk",
	}
	cfg, _, err = parseServe([]string{"--effect-retry-max", "2s", "--effect-concurrency", "4", "--effect-max-attempts", "5"}, io.Discard, lookup)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Effects
	if e.RetryBase != 50*time.Millisecond || e.RetryMax != 2*time.Second || e.MaxAttempts != 5 || e.Concurrency != 4 || !cfg.DisableEffects {
		t.Errorf("effects %+v, no-effects %v", e, cfg.DisableEffects)
	}
	kg := cfg.KooGallery
	if kg.Site != openapi.SiteEU || strings.Join(kg.Hosts, "|") != "https://a.example.com|b.example.com:8443" || kg.AK != "the-ak" || kg.SK != "the-sk" {
		t.Errorf("KooGallery %v (AK %q)", kg, kg.AK)
	}

	for _, args := range [][]string{{"--kg-ak", "x"}, {"--kg-sk", "x"}} {
		if _, _, err := parseServe(args, io.Discard, lookup); err == nil {
			t.Errorf("%v accepted: AK/SK must not be flags", args)
		}
	}
	if _, _, err := parseServe([]string{"--kg-site", "mars"}, io.Discard, lookup); err == nil || !strings.Contains(err.Error(), "kg-site") {
		t.Errorf("--kg-site mars: %v", err)
	}
	var usage bytes.Buffer
	if _, _, err := parseServe([]string{"-h"}, &usage, lookup); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-effect-retry-base", "-effect-retry-max", "-effect-max-attempts", "-effect-concurrency", "-no-effects", "-kg-site", "-kg-hosts", openapi.EnvAK, openapi.EnvSK, "secretEnv"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage does not mention %s:\n%s", want, usage.String())
		}
	}
}
