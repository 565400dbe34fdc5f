package kg

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// lockedBuffer is an output sink safe for concurrent use.
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

// startServe runs `kg serve` in-process on 127.0.0.1:0 and returns what it
// announced, its outputs and a stop function returning serve's error.
func startServe(t *testing.T, env map[string]string, args ...string) (serveInfo, *lockedBuffer, *lockedBuffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stdout, stderr lockedBuffer
	ready := make(chan serveInfo, 1)
	done := make(chan error, 1)
	args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	go func() {
		done <- serveStandin(ctx, args, &stdout, &stderr, lookup, func(i serveInfo) { ready <- i })
	}()
	var info serveInfo
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return info, &stdout, &stderr, stop
}

// serveClient is an openapi client on the stand-in, trusting its
// certificate file (full verification).
func serveClient(t *testing.T, info serveInfo, ak, sk string) *openapi.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(info.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in", info.CertFile)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	c, err := openapi.New(openapi.Config{Site: openapi.SiteMainland, Hosts: []string{info.URL}, AK: ak, SK: sk, Timeout: 5 * time.Second, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exerciseServe calls Query Order and activate through the client, then
// checks that a bad signature is refused.
func exerciseServe(t *testing.T, info serveInfo, ak, sk string) {
	t.Helper()
	c := serveClient(t, info, ak, sk)
	o, err := c.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001")
	if err != nil {
		t.Fatal(err)
	}
	if o.OrderType != "NEW" || o.ChargingMode != "PERIOD" || o.ProductID != standin.MockProductPeriod || o.PeriodType != "year" {
		t.Errorf("order %+v", o)
	}
	act, err := c.ActivateLicense(t.Context(), standin.MockLicenseNew, time.Time{})
	if err != nil || act.ResultCode != openapi.CodeLicenseSuccess || act.Info == nil || act.Info.Status != openapi.LicenseAlive {
		t.Fatalf("activate: %+v %v", act, err)
	}
	_, err = c.ActivateLicense(t.Context(), standin.MockLicenseNew, time.Time{})
	var ae *openapi.APIError
	if !errors.As(err, &ae) || ae.ResultCode != openapi.CodeLicenseIllegalState {
		t.Errorf("second activation: %v", err)
	}

	bad := serveClient(t, info, ak, sk+"x")
	for name, call := range map[string]func() error{
		"query order": func() error { _, err := bad.QueryOrder(t.Context(), "MOCKONDEMAND", ""); return err },
		"activate":    func() error { _, err := bad.ActivateLicense(t.Context(), "PLMOCKNEW", time.Time{}); return err },
	} {
		err := call()
		if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized || ae.ResultCode != standin.CodeAuthFailed || openapi.IsTemporary(err) {
			t.Errorf("%s with a bad signature: %v", name, err)
		}
	}
}

func TestServeWithEnvCredentials(t *testing.T) {
	const ak, sk = "SERVETESTAK0123456789", "serve-test-sk-must-not-be-printed"
	dir := t.TempDir()
	info, stdout, stderr, stop := startServe(t, map[string]string{openapi.EnvAK: ak, openapi.EnvSK: sk},
		"--data-dir", dir, "--license-code", "PLMINE1,PLMINE2")
	if info.AK != ak || info.SKFile != "" || !info.SelfSigned || !strings.HasPrefix(info.URL, "https://127.0.0.1:") {
		t.Errorf("info %+v", info)
	}
	exerciseServe(t, info, ak, sk)
	if _, err := serveClient(t, info, ak, sk).ActivateLicense(t.Context(), "PLMINE2", time.Time{}); err != nil {
		t.Errorf("--license-code: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	out, logs := stdout.String(), stderr.String()
	if strings.Contains(out, sk) || strings.Contains(logs, sk) {
		t.Error("SK printed or logged")
	}
	if !strings.Contains(out, ak) || !strings.Contains(out, "--kg-hosts "+info.URL) || !strings.Contains(out, "PLMINE1") {
		t.Errorf("stdout:\n%s", out)
	}
	if n := strings.Count(logs, "open API call"); n != 6 || !strings.Contains(logs, "code=92020003") || !strings.Contains(logs, "status=401") ||
		!strings.Contains(logs, "stand-in stopped") {
		t.Errorf("%d calls logged:\n%s", n, logs)
	}
	if _, err := os.Stat(filepath.Join(dir, "sk")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SK file written with env credentials: %v", err)
	}
}

func TestServeGeneratesCredentials(t *testing.T) {
	dir := t.TempDir()
	info, stdout, stderr, stop := startServe(t, nil, "--data-dir", dir, "--log-format", "json")
	skb, err := os.ReadFile(info.SKFile)
	if err != nil {
		t.Fatal(err)
	}
	sk := strings.TrimSpace(string(skb))
	if fi, err := os.Stat(info.SKFile); err != nil || fi.Mode().Perm() != 0o600 || info.SKFile != filepath.Join(dir, "sk") || len(sk) < 40 {
		t.Fatalf("SK file %s: %v %v", info.SKFile, fi.Mode(), err)
	}
	exerciseServe(t, info, info.AK, sk)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); strings.Contains(out, sk) || strings.Contains(stderr.String(), sk) || !strings.Contains(out, info.AK) ||
		!strings.Contains(out, "SSL_CERT_FILE="+info.CertFile) {
		t.Errorf("stdout:\n%s", out)
	}

	// A restart keeps the AK/SK and the certificate.
	info2, _, _, _ := startServe(t, nil, "--data-dir", dir)
	if info2.AK != info.AK {
		t.Errorf("AK changed: %s → %s", info.AK, info2.AK)
	}
	c := serveClient(t, info2, info.AK, sk)
	if _, err := c.QueryOrder(t.Context(), "MOCKONDEMAND", ""); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

func TestServeFlagErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"only AK":        {map[string]string{openapi.EnvAK: "x"}, nil},
		"only cert":      {nil, []string{"--tls-cert", "c.pem"}},
		"argument":       {nil, []string{"extra"}},
		"long code":      {nil, []string{"--license-code", strings.Repeat("c", 65)}},
		"bad log format": {nil, []string{"--log-format", "xml"}},
	} {
		t.Run(name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			args := append([]string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)
			var out, errOut bytes.Buffer
			if err := run(t.Context(), append([]string{"serve"}, args...), &out, &errOut, lookup); err == nil {
				t.Error("no error")
			}
		})
	}
}

// With --usage-key-env the stand-in also takes usage pushes signed with
// that vendor key (and refuses one signed with another).
func TestServeUsagePush(t *testing.T) {
	const ak, sk, key = "SERVEUSAGEAK0123456789", "serve-usage-sk-0123456789", "serve-usage-vendor-key"
	info, _, _, stop := startServe(t, map[string]string{openapi.EnvAK: ak, openapi.EnvSK: sk, "KG_USAGE_KEY": key},
		"--data-dir", t.TempDir(), "--usage-key-env", "KG_USAGE_KEY")
	c := serveClient(t, info, ak, sk)
	now := time.Now().UTC().Truncate(time.Hour)
	rec, ferr := usage.Parse(usage.Input{InstanceID: "inst-usage-1", RecordKey: "meter-1",
		RecordTime: now.Format(time.RFC3339), BeginTime: now.Add(-time.Hour).Format(time.RFC3339),
		EndTime: now.Format(time.RFC3339), UsageValue: "3.25", Billing: "hourly"}, usage.DefaultRules(), now)
	if ferr != nil {
		t.Fatal(ferr)
	}
	ans, err := c.PushUsage(t.Context(), []byte(key), []usage.Record{rec}, openapi.UsageOptions{})
	if err != nil || len(ans.Records) != 0 {
		t.Fatalf("push: %+v, %v", ans, err)
	}
	if _, err := c.PushUsage(t.Context(), []byte("another-key"), []usage.Record{rec}, openapi.UsageOptions{}); err == nil {
		t.Error("a push signed with another key was accepted")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var out, errb lockedBuffer
	err = serveStandin(t.Context(), []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--usage-key-env", "UNSET_KEY"},
		&out, &errb, func(string) (string, bool) { return "", false }, nil)
	if err == nil || !strings.Contains(err.Error(), "UNSET_KEY") {
		t.Errorf("unset usage key: %v", err)
	}
}
