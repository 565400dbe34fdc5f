package openapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// encode is vectors.md §9's URI encoding, written again here: unreserved
// A–Z a–z 0–9 - _ . ~ kept, every other byte %XY in upper-case hex.
func encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// canonical builds an API Gateway canonical request (auth.md §8 step 2)
// without the koogallery package: a second, independent reading of the
// rules. headers maps lower-case names to values.
func canonical(method, path string, query url.Values, headers map[string]string, signed []string, body []byte) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = encode(s)
	}
	uri := strings.Join(segs, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	var pairs []string
	for name, vs := range query {
		for _, v := range vs {
			pairs = append(pairs, encode(name)+"="+encode(v))
		}
	}
	slices.Sort(pairs)
	var hdr strings.Builder
	for _, name := range signed {
		hdr.WriteString(name + ":" + strings.TrimSpace(headers[name]) + "\n")
	}
	sum := sha256.Sum256(body)
	return strings.Join([]string{method, uri, strings.Join(pairs, "&"), hdr.String(), strings.Join(signed, ";"), hex.EncodeToString(sum[:])}, "\n")
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestCanonicalBuilderMatchesVectors checks the test's own builder against
// vectors.md §9 before it is trusted below.
func TestCanonicalBuilderMatchesVectors(t *testing.T) {
	got := canonical("GET", "/app1", url.Values{"b": {"2"}, "a": {"1"}},
		map[string]string{"host": "c967a237-cd6c-470e-906f-a8655461897e.apigw.exampleRegion.com", "x-sdk-date": "20191111T093443Z"},
		[]string{"host", "x-sdk-date"}, nil)
	want := "GET\n/app1/\na=1&b=2\nhost:c967a237-cd6c-470e-906f-a8655461897e.apigw.exampleRegion.com\nx-sdk-date:20191111T093443Z\n\nhost;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got != want {
		t.Fatalf("canonical request\n%s\nwant\n%s", got, want)
	}
	sum := sha256.Sum256([]byte(got))
	if h := hex.EncodeToString(sum[:]); h != "af71c5a7ef45310b8dc05ab15f7da50189ffa81a95cc284379ebaa5eb61155c0" {
		t.Fatalf("hash %s", h)
	}
	sts := "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
	if sig := hmacHex("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", sts); sig != "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe" {
		t.Fatalf("signature %s", sig)
	}
}

// TestSignatureIndependentlyVerified re-computes the signature of a request
// the stand-in received, from the rules of auth.md §8 alone, with an
// orderId that needs encoding.
func TestSignatureIndependentlyVerified(t *testing.T) {
	const id = "CS 22/07+26~x"
	s, srv := startStandin(t, standin.Config{Orders: map[string]standin.Order{id: {OrderType: "NEW", OrderLine: []standin.OrderLine{{OrderLineID: id + "-000001", ChargingMode: "ONE_TIME"}}}}})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	if _, err := c.QueryOrder(t.Context(), id, id+"-000001"); err != nil {
		t.Fatal(err)
	}
	r := s.Requests()[0]
	auth := r.Header.Get("Authorization")
	m := regexp.MustCompile(`^SDK-HMAC-SHA256 Access=([^,]+), SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`).FindStringSubmatch(auth)
	if m == nil {
		t.Fatalf("Authorization %q", auth)
	}
	if m[1] != testAK {
		t.Errorf("Access %q", m[1])
	}
	signed := strings.Split(m[2], ";")
	for _, h := range []string{"content-type", "host", "x-sdk-date"} {
		if !slices.Contains(signed, h) {
			t.Errorf("%s not signed: %v", h, signed)
		}
	}
	if !slices.IsSorted(signed) {
		t.Errorf("signed headers not sorted: %v", signed)
	}
	date := r.Header.Get("X-Sdk-Date")
	if d, err := time.Parse("20060102T150405Z", date); err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("X-Sdk-Date %q: %v", date, err)
	}
	headers := map[string]string{"host": r.Host}
	for _, h := range signed {
		if h != "host" {
			headers[h] = r.Header.Get(h)
		}
	}
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil || q.Get("orderId") != id {
		t.Fatalf("query %q: %v", r.RawQuery, err)
	}
	cr := canonical(r.Method, r.Path, q, headers, signed, r.Body)
	sum := sha256.Sum256([]byte(cr))
	want := hmacHex(testSK, "SDK-HMAC-SHA256\n"+date+"\n"+hex.EncodeToString(sum[:]))
	if m[3] != want {
		t.Errorf("signature %s, independently computed %s over\n%s", m[3], want, cr)
	}
	if !strings.Contains(cr, "orderId=CS%2022%2F07%2B26~x&orderLineId=CS%2022%2F07%2B26~x-000001") {
		t.Errorf("canonical query not as the rules say:\n%s", cr)
	}
}

func TestFallbackOnClosedPrimary(t *testing.T) {
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	s, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{deadURL, srv.URL}, []*httptest.Server{dead, srv}, nil)
	got, err := c.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001")
	if err != nil || got.ChargingMode != "PERIOD" {
		t.Fatalf("%+v %v", got, err)
	}
	if len(s.Requests()) != 1 {
		t.Errorf("secondary got %d requests", len(s.Requests()))
	}
}

func TestFallbackOnUnavailable(t *testing.T) {
	for _, status := range []int{502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			p, primary := startStandin(t, standin.Config{})
			s, secondary := startStandin(t, standin.Config{})
			p.FailNext(1, status)
			c := newClient(t, nil, []string{primary.URL, secondary.URL}, []*httptest.Server{primary, secondary}, nil)
			if _, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", "MOCKONDEMAND-000001"); err != nil {
				t.Fatal(err)
			}
			if len(p.Requests()) != 1 || len(s.Requests()) != 1 || p.Requests()[0].Status != status {
				t.Errorf("primary %d, secondary %d requests", len(p.Requests()), len(s.Requests()))
			}
			// The primary is healthy again: the next call stays there.
			if _, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", "MOCKONDEMAND-000001"); err != nil {
				t.Fatal(err)
			}
			if len(p.Requests()) != 2 || len(s.Requests()) != 1 {
				t.Errorf("primary %d, secondary %d requests", len(p.Requests()), len(s.Requests()))
			}
		})
	}
}

// stallingServer never answers: its handler waits until the client gives
// up, then drops the connection without a response (a handler that just
// returned would answer 200 with an empty body, and that answer can still
// reach a client whose deadline just passed).
func stallingServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFallbackOnTimeout(t *testing.T) {
	slow := stallingServer(t)
	s, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{slow.URL, srv.URL}, []*httptest.Server{slow, srv}, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	if _, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", ""); err != nil {
		t.Fatal(err)
	}
	if len(s.Requests()) != 1 {
		t.Errorf("secondary got %d requests", len(s.Requests()))
	}
}

// TestNoFallbackOnAnswer: an answer with an error code (4xx, 500, 401) is
// final; the secondary never sees the request.
func TestNoFallbackOnAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		setup  func(*standin.Server)
		id     string
	}{
		{"unknown order", 400, func(*standin.Server) {}, "NOSUCHORDER"},
		{"internal error", 500, func(s *standin.Server) { s.FailNext(1, 500) }, "MOCKONDEMAND"},
		{"auth", 401, func(*standin.Server) {}, "MOCKONDEMAND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := map[string]string{testAK: testSK}
			if tc.status == 401 {
				creds = map[string]string{testAK: "another-sk"}
			}
			p, primary := startStandin(t, standin.Config{Credentials: creds})
			s, secondary := startStandin(t, standin.Config{})
			tc.setup(p)
			c := newClient(t, nil, []string{primary.URL, secondary.URL}, []*httptest.Server{primary, secondary}, nil)
			_, err := c.QueryOrder(t.Context(), tc.id, "")
			var ae *APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != tc.status {
				t.Fatalf("err %v", err)
			}
			if len(s.Requests()) != 0 {
				t.Errorf("secondary was asked after an answer")
			}
		})
	}
}

func TestAllHostsUnavailable(t *testing.T) {
	p, primary := startStandin(t, standin.Config{})
	s, secondary := startStandin(t, standin.Config{})
	p.FailNext(1, 503)
	s.FailNext(1, 502)
	c := newClient(t, nil, []string{primary.URL, secondary.URL}, []*httptest.Server{primary, secondary}, nil)
	_, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 502 || !ae.Temporary() || ae.ResultCode != standin.CodeInjected {
		t.Fatalf("err %v", err)
	}
}

func TestTimeoutIsTransport(t *testing.T) {
	slow := stallingServer(t)
	c := newClient(t, nil, []string{slow.URL}, []*httptest.Server{slow}, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", "")
	if !errors.Is(err, ErrTransport) || !IsTemporary(err) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestUntrustedCertificateIsTransport: a server whose certificate the
// client does not trust is a TLS failure, never an answer.
func TestUntrustedCertificateIsTransport(t *testing.T) {
	srv := httptest.NewUnstartedServer(standin.New(standin.Config{}))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the expected handshake failure
	srv.StartTLS()
	defer srv.Close()
	c := newClient(t, nil, []string{srv.URL}, nil, nil) // trusts nothing of httptest's
	_, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", "")
	if !errors.Is(err, ErrTransport) {
		t.Fatalf("err %v", err)
	}
}

// TestSecretsNeverLogged runs successes and every kind of failure with a
// debug logger and checks that neither the SK nor a signature appears in
// the log or in an error, and that printing the config or the client
// redacts the SK.
func TestSecretsNeverLogged(t *testing.T) {
	var buf syncBuffer
	log := testLog(&buf)
	p, primary := startStandin(t, standin.Config{})
	_, secondary := startStandin(t, standin.Config{})
	wrong, wrongSrv := startStandin(t, standin.Config{Credentials: map[string]string{testAK: "other"}})
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	dead.Close()
	servers := []*httptest.Server{primary, secondary, wrongSrv, dead}
	c := newClient(t, log, []string{dead.URL, primary.URL, secondary.URL}, servers, nil)
	var errs []error
	p.FailNext(1, 503)
	for _, id := range []string{"MOCKPERIODYEARNEW", "NOSUCHORDER"} {
		_, err := c.QueryOrder(t.Context(), id, "")
		errs = append(errs, err)
	}
	cw := newClient(t, log, []string{wrongSrv.URL}, servers, nil)
	_, err := cw.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "")
	errs = append(errs, err)
	if len(wrong.Requests()) != 1 {
		t.Fatal("no request to the wrong-SK stand-in")
	}
	ct := newClient(t, log, []string{dead.URL}, servers, nil)
	_, err = ct.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "")
	errs = append(errs, err)

	cfg := Config{Site: SiteEU, AK: testAK, SK: testSK}
	log.Info("config", "cfg", cfg, "client", c)
	printed := fmt.Sprintf("%v %+v %#v %s %v %+v", cfg, cfg, cfg, cfg, c, &cfg)

	var sigs []string
	for _, r := range append(p.Requests(), wrong.Requests()...) {
		if i := strings.Index(r.Header.Get("Authorization"), "Signature="); i >= 0 {
			sigs = append(sigs, r.Header.Get("Authorization")[i+len("Signature="):])
		}
	}
	if len(sigs) < 2 {
		t.Fatalf("only %d signatures seen", len(sigs))
	}
	out := buf.String()
	if !strings.Contains(out, "resultCode") || !strings.Contains(out, "raw") || !strings.Contains(out, "[REDACTED]") {
		t.Errorf("log lacks resultCode/raw/redaction:\n%s", out)
	}
	if !strings.Contains(printed, "[REDACTED]") {
		t.Errorf("printed config: %s", printed)
	}
	for _, secret := range append([]string{testSK}, sigs...) {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q in the log:\n%s", secret, out)
		}
		if strings.Contains(printed, secret) {
			t.Errorf("secret %q printed: %s", secret, printed)
		}
		for _, err := range errs {
			if err != nil && strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
				t.Errorf("secret %q in error %v", secret, err)
			}
		}
	}
	if errs[0] != nil || errs[1] == nil || errs[2] == nil || errs[3] == nil {
		t.Errorf("want a success then three failures: %v", errs)
	}
	if !strings.Contains(out, "MKT.0000") || !strings.Contains(out, "APIGW.0301") || !strings.Contains(out, "MKT.0101") {
		t.Errorf("resultCodes not logged:\n%s", out)
	}
	if strings.Contains(out, "Authorization") || strings.Contains(out, "SDK-HMAC-SHA256 Access") {
		t.Errorf("Authorization header in the log:\n%s", out)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Site: SiteInternational, AK: "ak", SK: "sk"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the config under test must be rejected
	for name, mut := range map[string]func(*Config){
		"no site":          func(c *Config) { c.Site = "" },
		"unknown site":     func(c *Config) { c.Site = "mars" },
		"no AK":            func(c *Config) { c.AK = "" },
		"no SK":            func(c *Config) { c.SK = " " },
		"negative timeout": func(c *Config) { c.Timeout = -time.Second },
		"http host":        func(c *Config) { c.Hosts = []string{"http://mkt.myhuaweicloud.com"} },
		"host with path":   func(c *Config) { c.Hosts = []string{"https://mkt.myhuaweicloud.com/api"} },
		"host with user":   func(c *Config) { c.Hosts = []string{"https://u:p@mkt.myhuaweicloud.com"} },
		"empty host":       func(c *Config) { c.Hosts = []string{""} },
		"empty API hosts":  func(c *Config) { c.APIHosts = map[API][]string{APIQueryOrder: nil} },
		"http API host":    func(c *Config) { c.APIHosts = map[API][]string{APIQueryOrder: {"http://x"}} },
		"skip verify":      func(c *Config) { c.HTTPClient = insecure },
	} {
		c := ok
		mut(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v", name, err)
		}
		if _, nerr := New(c, nil); nerr == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestHosts(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		api  API
		want []string
	}{
		{Config{Site: SiteMainland}, APIQueryOrder, []string{"https://mkt.myhuaweicloud.com", "https://mkt.myhuaweicloud.cn"}},
		{Config{Site: SiteMainland}, APILicenseActivate, []string{"https://mkt.myhuaweicloud.com", "https://mkt.myhuaweicloud.cn"}},
		{Config{Site: SiteInternational}, APIQueryOrder, []string{"https://mkt-intl.myhuaweicloud.com"}},
		{Config{Site: SiteInternational}, APIUsagePush, []string{"https://mkt-intl.myhuaweicloud.com", "https://mkt.myhuaweicloud.cn"}},
		{Config{Site: SiteInternational}, APIUpload, []string{"https://mkt-intl.myhuaweicloud.com"}},
		{Config{Site: SiteEU}, APIQueryOrder, []string{"https://mkt.myhuaweicloud.eu"}},
		{Config{Site: SiteEU, Hosts: []string{"mkt-euro.myhuaweicloud.com:443", "https://b.example:8443/"}}, APIQueryOrder, []string{"https://mkt-euro.myhuaweicloud.com", "https://b.example:8443"}},
		{Config{Site: SiteEU, Hosts: []string{"a.example"}, APIHosts: map[API][]string{APIQueryOrder: {"q.example"}}}, APIQueryOrder, []string{"https://q.example"}},
		{Config{Site: SiteEU, Hosts: []string{"a.example"}, APIHosts: map[API][]string{APIQueryOrder: {"q.example"}}}, APIUsagePush, []string{"https://a.example"}},
	} {
		tc.cfg.AK, tc.cfg.SK = "ak", "sk"
		c, err := New(tc.cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Hosts(tc.api); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.cfg.Site, tc.api, got, tc.want)
		}
	}
	for in, want := range map[string]Site{"mainland": SiteMainland, "CN": SiteMainland, "intl": SiteInternational, "International": SiteInternational, "eu": SiteEU} {
		if got, err := ParseSite(in); err != nil || got != want {
			t.Errorf("ParseSite(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSite("moon"); err == nil {
		t.Error("ParseSite accepted moon")
	}
}

var _ slog.LogValuer = Config{}
