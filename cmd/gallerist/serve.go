package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/webhook"
)

// demoPath is the route the demo configuration serves.
const demoPath = "/koogallery/demo"

// serveOptions are serve's settings beyond app.Config.
type serveOptions struct {
	configPath, logLevel, logFormat string
}

// parseServe reads serve's flags, then GALLERIST_<FLAG> (and the open API's
// AK/SK) through lookup.
func parseServe(args []string, stderr io.Writer, lookup func(string) (string, bool)) (app.Config, serveOptions, error) {
	cfg := app.Defaults()
	var opt serveOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.configPath, "config", "", "routes file (YAML); without it a demo route with a generated key is served")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP(S) listen address")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); KooGallery requires HTTPS")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) for --tls-cert")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory of the embedded NATS JetStream store")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this external NATS server or cluster (comma-separated URLs) instead of the embedded one")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "let the embedded NATS server also accept TCP clients on host:port (default: no port at all)")
	sync := fs.String("sync", string(cfg.Sync), "embedded JetStream fsync policy: always (every write) or interval")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", cfg.SyncInterval, "fsync period with --sync=interval")
	fs.StringVar(&cfg.Stream, "stream", cfg.Stream, "JetStream stream name")
	fs.StringVar(&cfg.Prefix, "subject-prefix", cfg.Prefix, "subject prefix of the event log")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "stream replicas (3 on a NATS cluster)")
	fs.StringVar(&cfg.NonceBucket, "nonce-bucket", "gallerist_nonces", "JetStream KV bucket of seen V2 nonces")
	fs.DurationVar(&cfg.ProvisionBudget, "provision-budget", cfg.ProvisionBudget, "how long newInstance waits for provisioning before answering 000004")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "upper bound of the work for one call (KooGallery waits 5s)")
	fs.Int64Var(&cfg.BodyLimit, "body-limit", cfg.BodyLimit, "largest request body in bytes (413 above)")
	fs.IntVar(&cfg.CacheSize, "cache-size", cfg.CacheSize, "aggregates kept in memory")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "graceful shutdown bound")
	fs.StringVar(&cfg.ViewsDSN, "views-dsn", "", "SQL read models: a SQLite file (default <data-dir>/views.db) or a postgres:// URL")
	fs.BoolVar(&cfg.DisableViews, "no-views", false, "run without the SQL read models (another replica keeps them)")
	fs.StringVar(&cfg.APIAddr, "api-addr", "", "serve the query API on this address (needs --api-token)")
	apiTokens := fs.String("api-token", "", "bearer token(s) of the query API, comma-separated (rotation); at least 16 characters each")
	eff := effects.DefaultRunnerConfig()
	fs.DurationVar(&eff.RetryBase, "effect-retry-base", eff.RetryBase, "effects (webhook, Query Order): first wait between two attempts of one event (doubling, jittered)")
	fs.DurationVar(&eff.RetryMax, "effect-retry-max", eff.RetryMax, "effects: longest wait between two attempts")
	fs.IntVar(&eff.MaxAttempts, "effect-max-attempts", eff.MaxAttempts, "effects: attempts of one event before it is parked for an operator's re-drive")
	fs.IntVar(&eff.Concurrency, "effect-concurrency", eff.Concurrency, "effects: events handled at once, per effect")
	fs.BoolVar(&cfg.DisableEffects, "no-effects", false, "run no effect runners (another replica runs them); re-drives through the query API still work")
	fs.StringVar(&cfg.UsageRoute, "usage-route", "", "push the usage recorded through POST /v1/usage to KooGallery, signed with this SaaS V2 route's key (empty: no push)")
	fs.BoolVar(&cfg.UsageNumericValue, "usage-numeric-value", false, "send usage_value as a JSON number (international site) instead of a string")
	fs.BoolVar(&cfg.UsageAllowLate, "usage-allow-late", false, "accept usage past KooGallery's reporting deadlines (the 21-day limit still holds)")
	kgSite := fs.String("kg-site", string(openapi.SiteMainland), "KooGallery site of the open API (Query Order): mainland, international or eu")
	kgHosts := fs.String("kg-hosts", "", "open API hosts, comma-separated, primary first (default: the site's documented hosts)")
	fs.StringVar(&opt.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&opt.logFormat, "log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: gallerist serve [flags]

Flags (each can also be set as GALLERIST_<FLAG>, dashes as underscores; the
command line wins):
`)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), `
Secrets come only from the environment, never from flags:
  %s, %s
    	AK/SK of the KooGallery open API; with both set, Query Order
    	enriches every new order
  <the variable a route's webhook.secretEnv names>
    	the HMAC secret of that route's vendor webhook (at least %d bytes)
`, openapi.EnvAK, openapi.EnvSK, webhook.MinSecretLen)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opt, err
	}
	if err := envFlags(fs, lookup); err != nil {
		return cfg, opt, err
	}
	cfg.Sync = bus.SyncMode(*sync)
	for _, tok := range strings.Split(*apiTokens, ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			cfg.APITokens = append(cfg.APITokens, tok)
		}
	}
	cfg.Effects = eff
	site, err := openapi.ParseSite(*kgSite)
	if err != nil {
		return cfg, opt, fmt.Errorf("--kg-site: %w", err)
	}
	cfg.KooGallery.Site = site
	for _, h := range strings.Split(*kgHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.KooGallery.Hosts = append(cfg.KooGallery.Hosts, h)
		}
	}
	cfg.KooGallery.AK, _ = lookup(openapi.EnvAK)
	cfg.KooGallery.SK, _ = lookup(openapi.EnvSK)
	return cfg, opt, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, opt, err := parseServe(args, stderr, os.LookupEnv)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, opt.logLevel, opt.logFormat)
	if err != nil {
		return err
	}
	demo := false
	if opt.configPath == "" {
		opt.configPath = filepath.Join(cfg.DataDir, "demo-config.yaml")
		if err := ensureDemoConfig(opt.configPath); err != nil {
			return err
		}
		demo = true
	}
	file, err := config.Load(opt.configPath)
	if err != nil {
		return err
	}
	cfg.Routes = file.Routes
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if demo {
		printDemo(stdout, a.Addr(), opt.configPath, cfg.TLSCert != "")
	}
	var served error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case served = <-a.Done():
		if served != nil {
			log.Error("http server stopped", "err", served)
			served = fmt.Errorf("http server: %w", served)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return errors.Join(served, err)
	}
	log.Info("stopped")
	return served
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}

// ensureDemoConfig writes a one-route configuration with a freshly generated
// key the first time, and keeps it for later starts.
func ensureDemoConfig(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("demo config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	key := rand.Text() // 26 base32 characters, 130 bits
	text := fmt.Sprintf(`# Generated by "gallerist serve" because no --config was given.
# A demo SaaS V2 production route; replace the key with the one bound to your
# production address in KooGallery's Key Management before going live.
routes:
  - path: %s
    family: saas-v2
    keys:
      - value: %q
    encryptType: "1"
    provisioner:
      frontEndUrl: "https://app.example.com/{instanceId}"
      adminUrl: "https://admin.example.com/{instanceId}"
`, demoPath, key)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	return nil
}

func printDemo(w io.Writer, addr, configPath string, tls bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, port), demoPath)
	fmt.Fprintf(w, `
No --config given: serving a demo SaaS V2 route (key in %s).

  POST %s

Try it from another terminal (each command prints a signed curl; "| sh" runs it):

  go run ./cmd/gallerist sign --config %s --url %s --activity newInstance | sh
  go run ./cmd/gallerist sign --config %s --url %s --activity queryInstance --field instanceId=<instanceId from above> | sh

`, configPath, url, shellQuote(configPath), shellQuote(url), shellQuote(configPath), shellQuote(url))
}
