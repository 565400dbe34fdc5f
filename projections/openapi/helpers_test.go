package openapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/openapi/standin"
)

const (
	testAK = "TESTAK0123456789ABCD"
	testSK = "TestSK-c2VjcmV0LXNlY3JldC1kby1ub3QtbG9n" // must never appear in logs or errors
)

// startStandin serves a stand-in over TLS (httptest's certificate).
func startStandin(t *testing.T, cfg standin.Config) (*standin.Server, *httptest.Server) {
	t.Helper()
	if cfg.Credentials == nil {
		cfg.Credentials = map[string]string{testAK: testSK}
	}
	s := standin.New(cfg)
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// tlsClient trusts exactly the certificates of servers, with full
// verification (no skip-verify anywhere in these tests).
func tlsClient(servers ...*httptest.Server) *http.Client {
	pool := x509.NewCertPool()
	for _, s := range servers {
		pool.AddCert(s.Certificate())
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// syncBuffer is a log sink safe for concurrent writes.
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

// testLog writes debug-level JSON to buf (and to stderr with -v).
func testLog(buf *syncBuffer) *slog.Logger {
	var w io.Writer = buf
	if testing.Verbose() {
		w = io.MultiWriter(buf, os.Stderr)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient builds a client on hosts (the stand-ins' URLs) with the test
// credentials and a client trusting servers.
func newClient(t *testing.T, log *slog.Logger, hosts []string, servers []*httptest.Server, mutate func(*Config), opts ...Option) *Client {
	t.Helper()
	cfg := Config{
		Site: SiteMainland, Hosts: hosts, AK: testAK, SK: testSK,
		Timeout: 5 * time.Second, HTTPClient: tlsClient(servers...),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
