package kg

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// serveUsage is the help text of `gallerist kg serve`.
const serveUsage = `usage: gallerist kg serve [flags]

Run the stand-in for KooGallery's open APIs (Query Order with the documented
mock orders, string/file upload, License B activate/query/usage statistics),
checking every call's AK/SK signature like the API gateway, so that a
vendor's integration runs offline. It serves HTTPS only (the client verifies
certificates strictly): a self-signed certificate is generated in --data-dir
unless --tls-cert/--tls-key are given; trust it with SSL_CERT_FILE.

The accepted AK/SK come from the environment variables named by --ak-env and
--sk-env (default GALLERIST_KG_AK, GALLERIST_KG_SK). When both are unset, an
AK/SK pair is generated once and kept in --data-dir: the AK is printed, the
SK is written to <data-dir>/sk (mode 0600) and never printed or logged.

Flags:
`

// serveFlags are the flags of `kg serve`.
type serveFlags struct {
	listen, dataDir, akEnv, skEnv, tlsCert, tlsKey, logLevel, logFormat string
	usageKeyEnv                                                         string
	strictUploads                                                       bool
	licenseCodes                                                        stringList
}

// stringList collects a repeated flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// serveInfo is what a started stand-in tells its caller (and prints).
type serveInfo struct {
	// URL is the base URL to configure as the open-API host.
	URL string
	// AK is the accepted AK; SKFile is where a generated SK is ("" when
	// the SK came from the environment).
	AK, SKFile string
	// CertFile is the server certificate (PEM) to trust.
	CertFile string
	// SelfSigned is true when CertFile was generated.
	SelfSigned bool
}

// runServe runs `gallerist kg serve` until ctx is cancelled.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	return serveStandin(ctx, args, stdout, stderr, lookup, nil)
}

// serveStandin is runServe; ready, when not nil, is called once the
// stand-in accepts connections.
func serveStandin(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), ready func(serveInfo)) error {
	fs := flag.NewFlagSet("kg serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	var f serveFlags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8090", "HTTPS listen address")
	fs.StringVar(&f.dataDir, "data-dir", filepath.Join("data", "kg-standin"), "where the generated AK/SK and certificate are kept")
	fs.StringVar(&f.akEnv, "ak-env", openapi.EnvAK, "environment variable holding the accepted AK")
	fs.StringVar(&f.skEnv, "sk-env", openapi.EnvSK, "environment variable holding the accepted SK")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve with this certificate (PEM) instead of a generated self-signed one")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.Var(&f.licenseCodes, "license-code", "an authorization code to serve besides the mock ones, received and not yet activated, valid one year (repeatable, or comma-separated)")
	fs.StringVar(&f.usageKeyEnv, "usage-key-env", "", "serve the usage push too (outgoing.md §3), verifying its signature with the vendor key in this environment variable (the SaaS V2 route's key)")
	fs.BoolVar(&f.strictUploads, "strict-uploads", false, "refuse uploads for event ids not known (91381034); by default any event id is accepted")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg serve: unexpected argument %q", fs.Arg(0))
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	log, err := serveLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("kg serve: give both --tls-cert and --tls-key, or neither")
	}
	for _, c := range f.licenseCodes {
		if len([]rune(c)) > 64 {
			return fmt.Errorf("kg serve: --license-code %q is longer than 64 characters", c)
		}
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("kg serve: --data-dir: %w", err)
	}
	ak, sk, skFile, err := standinCredentials(f, lookup)
	if err != nil {
		return fmt.Errorf("kg serve: %w", err)
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("kg serve: --listen: %w", err)
	}
	defer ln.Close()
	host := listenHost(ln.Addr())
	info := serveInfo{URL: "https://" + host, AK: ak, SKFile: skFile}
	cert, certFile, selfSigned, err := standinCertificate(f, host, time.Now())
	if err != nil {
		return fmt.Errorf("kg serve: %w", err)
	}
	info.CertFile, info.SelfSigned = certFile, selfSigned

	st := standin.New(standin.Config{Credentials: map[string]string{ak: sk}})
	now := time.Now().UTC()
	for _, c := range f.licenseCodes {
		st.AddLicenseCode(standin.LicenseCode{Code: c, OrderTime: now.Add(-time.Minute), ExpireTime: now.AddDate(1, 0, 0), Amount: 1})
	}
	st.SetStrictUploads(f.strictUploads)

	var h http.Handler = st
	if f.usageKeyEnv != "" {
		key, ok := lookup(f.usageKeyEnv)
		if !ok || key == "" {
			return fmt.Errorf("kg serve: --usage-key-env: %s is not set", f.usageKeyEnv)
		}
		h = standin.NewUsage(st, standin.UsageConfig{Key: []byte(key)}).Handler()
	}
	srv := &http.Server{
		Handler:           logCalls(h, st, log),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()

	printServeInfo(stdout, info, f, ln.Addr().String())
	log.Info("stand-in started", "url", info.URL, "ak", ak, "cert", certFile, "licenseCodes", len(f.licenseCodes))
	if ready != nil {
		ready(info)
	}

	select {
	case err := <-served:
		return fmt.Errorf("kg serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("kg serve: shutdown: %w", err)
	}
	log.Info("stand-in stopped")
	return nil
}

// standinCredentials returns the accepted AK/SK: from the environment, or
// kept (generated the first time) in the data directory. skFile is the
// SK's file when it is kept there.
func standinCredentials(f serveFlags, lookup func(string) (string, bool)) (ak, sk, skFile string, err error) {
	ak, _ = lookup(f.akEnv)
	sk, _ = lookup(f.skEnv)
	ak, sk = strings.TrimSpace(ak), strings.TrimSpace(sk)
	switch {
	case ak != "" && sk != "":
		return ak, sk, "", nil
	case ak != "" || sk != "":
		return "", "", "", fmt.Errorf("set both %s and %s, or neither (an AK/SK pair is then generated)", f.akEnv, f.skEnv)
	}
	akFile, skFile := filepath.Join(f.dataDir, "ak"), filepath.Join(f.dataDir, "sk")
	akb, aerr := os.ReadFile(akFile)
	skb, serr := os.ReadFile(skFile)
	if aerr == nil && serr == nil && len(bytes.TrimSpace(akb)) > 0 && len(bytes.TrimSpace(skb)) > 0 {
		if err := os.Chmod(skFile, 0o600); err != nil {
			return "", "", "", fmt.Errorf("SK file: %w", err)
		}
		return string(bytes.TrimSpace(akb)), string(bytes.TrimSpace(skb)), skFile, nil
	}
	ak = strings.ToUpper(rand.Text())[:20] // AK-like: 20 upper-case letters and digits
	sk = rand.Text() + rand.Text()         // 52 characters, 260 bits
	if err := writeFileMode(skFile, []byte(sk+"\n"), 0o600); err != nil {
		return "", "", "", fmt.Errorf("SK file: %w", err)
	}
	if err := writeFileMode(akFile, []byte(ak+"\n"), 0o644); err != nil {
		return "", "", "", fmt.Errorf("AK file: %w", err)
	}
	return ak, sk, skFile, nil
}

// writeFileMode writes data to path with exactly mode.
func writeFileMode(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// listenHost is addr as a host:port to connect to: an unspecified address
// (all interfaces) becomes 127.0.0.1.
func listenHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// standinCertificate loads --tls-cert/--tls-key, or the self-signed
// certificate kept in the data directory when it is still valid for a day
// and covers the host, or generates a new one (ECDSA P-256, one year, for
// localhost, 127.0.0.1, ::1 and the listen host).
func standinCertificate(f serveFlags, hostPort string, now time.Time) (cert tls.Certificate, certFile string, selfSigned bool, err error) {
	if f.tlsCert != "" {
		cert, err = tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return cert, "", false, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		return cert, f.tlsCert, false, nil
	}
	host, _, _ := net.SplitHostPort(hostPort)
	certFile, keyFile := filepath.Join(f.dataDir, "cert.pem"), filepath.Join(f.dataDir, "key.pem")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil &&
		c.Leaf.NotAfter.After(now.Add(24*time.Hour)) && c.Leaf.VerifyHostname(host) == nil {
		return c, certFile, true, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, "", false, fmt.Errorf("certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return cert, "", false, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Gallerist"}, CommonName: "gallerist kg serve stand-in"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root: trusted directly through SSL_CERT_FILE
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cert, "", false, fmt.Errorf("certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return cert, "", false, fmt.Errorf("certificate key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileMode(keyFile, keyPEM, 0o600); err != nil {
		return cert, "", false, fmt.Errorf("certificate key: %w", err)
	}
	if err := writeFileMode(certFile, certPEM, 0o644); err != nil {
		return cert, "", false, fmt.Errorf("certificate: %w", err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return cert, "", false, fmt.Errorf("certificate: %w", err)
	}
	return cert, certFile, true, nil
}

// printServeInfo prints where the stand-in is and how to point Gallerist
// (or the vendor's software) at it. It never prints the SK.
func printServeInfo(w io.Writer, info serveInfo, f serveFlags, addr string) {
	fmt.Fprintf(w, "KooGallery open-API stand-in listening on %s (%s)\n", info.URL, addr)
	skRef := fmt.Sprintf(`"$(cat %s)"`, info.SKFile)
	if info.SKFile != "" {
		fmt.Fprintf(w, "  AK  %s\n  SK  in %s (mode 0600; not printed)\n", info.AK, info.SKFile)
	} else {
		fmt.Fprintf(w, "  AK  %s (from $%s)\n  SK  from $%s\n", info.AK, f.akEnv, f.skEnv)
		skRef = "$" + f.skEnv
	}
	if info.SelfSigned {
		fmt.Fprintf(w, "  TLS self-signed certificate %s: trust it, e.g. SSL_CERT_FILE=%s\n", info.CertFile, info.CertFile)
	} else {
		fmt.Fprintf(w, "  TLS certificate %s\n", info.CertFile)
	}
	fmt.Fprintf(w, "  mock orders  MOCKPERIODYEARNEW MOCKONETIMENEW MOCKONDEMAND MOCKONDEMANDPKG MOCKPERIODDAYTRIAL\n")
	fmt.Fprintf(w, "               MOCKMONTYTRIALTOFORMAL MOCKMONTYUNSUBSCRIBE MOCKMONTYRENEW MOCKMONTYCHANGE (line <id>-000001)\n")
	codes := []string{}
	for _, l := range standin.MockLicenseCodes() {
		codes = append(codes, l.Code)
	}
	codes = append(codes, f.licenseCodes...)
	fmt.Fprintf(w, "  license codes %s\n", strings.Join(codes, " "))
	fmt.Fprintf(w, "Point Gallerist at it:\n  %s=%s %s=%s", openapi.EnvAK, info.AK, openapi.EnvSK, skRef)
	if info.SelfSigned {
		fmt.Fprintf(w, " SSL_CERT_FILE=%s", info.CertFile)
	}
	fmt.Fprintf(w, " gallerist serve --kg-hosts %s\n", info.URL)
}

// logCalls logs every call h (the stand-in st, with the usage push in
// front of it when served) answers (method, path, query, AK,
// status, result code and message, duration) and keeps no request history
// (the log is the history, so that a long-running stand-in does not grow).
// It never logs the Authorization header, the SK or a body.
func logCalls(h http.Handler, st *standin.Server, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &captureWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		st.Reset()
		var ak string
		if a, err := koogallery.ParseAKSKAuthorization(r.Header.Get("Authorization")); err == nil {
			ak = a.Access
		}
		var ans struct {
			ResultCode string `json:"resultCode"`
			ResultMsg  string `json:"resultMsg"`
			ErrorCode  string `json:"error_code"`
			ErrorMsg   string `json:"error_msg"`
		}
		_ = json.Unmarshal(cw.head.Bytes(), &ans)
		level := slog.LevelInfo
		if cw.status >= 400 {
			level = slog.LevelWarn
		}
		log.LogAttrs(r.Context(), level, "open API call",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("query", r.URL.RawQuery),
			slog.String("ak", ak), slog.Int("status", cw.status),
			slog.String("code", ans.ErrorCode+ans.ResultCode), slog.String("msg", ans.ErrorMsg+ans.ResultMsg),
			slog.Duration("elapsed", time.Since(start)), slog.String("remote", r.RemoteAddr))
	})
}

// captureWriter remembers the status and the first bytes of the answer.
type captureWriter struct {
	http.ResponseWriter
	status int
	head   bytes.Buffer
}

// maxCaptured bounds the answer bytes kept for the log line.
const maxCaptured = 4 << 10

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if n := maxCaptured - w.head.Len(); n > 0 {
		w.head.Write(b[:min(n, len(b))])
	}
	return w.ResponseWriter.Write(b)
}

// serveLogger is the stand-in's slog logger on w.
func serveLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("kg serve: --log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("kg serve: --log-format must be text or json, got %q", format)
}
