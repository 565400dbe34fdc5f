// Package app wires Gallerist together: the bus (embedded or external
// NATS), the JetStream event store, the nonce guard, the instance service,
// the effect runners (provisioning, vendor webhook, Query Order, …), the
// read models, the query API and the HTTP ingress.
// cmd/gallerist runs it; the end-to-end tests start it in-process.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/bus/nonce"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/ingress/licenses"
	"github.com/gallerist/gallerist/ingress/server"
	"github.com/gallerist/gallerist/projections/api"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/licensedelivery"
	"github.com/gallerist/gallerist/projections/openapi"
	"github.com/gallerist/gallerist/projections/provision"
	"github.com/gallerist/gallerist/projections/queryorder"
	"github.com/gallerist/gallerist/projections/usagepush"
	"github.com/gallerist/gallerist/projections/views"
	"github.com/gallerist/gallerist/projections/webhook"
)

// Config is everything `gallerist serve` can be told.
type Config struct {
	// Listen is the HTTP(S) address; ":0" picks a free port.
	Listen string
	// TLSCert and TLSKey serve HTTPS directly (KooGallery requires HTTPS;
	// without them, terminate TLS in front of Gallerist).
	TLSCert, TLSKey string
	// DataDir holds the embedded JetStream store (and the demo config).
	DataDir string
	// NATSURL uses an external NATS server or cluster instead of the
	// embedded one.
	NATSURL string
	// NATSListen lets the embedded server also listen on TCP (host:port).
	NATSListen string
	// Sync and SyncInterval set the embedded server's fsync policy.
	Sync         bus.SyncMode
	SyncInterval time.Duration
	// Stream, Prefix and Replicas shape the JetStream stream.
	Stream, Prefix string
	Replicas       int
	// ProvisionBudget, RequestTimeout and BodyLimit tune the ingress.
	ProvisionBudget time.Duration
	RequestTimeout  time.Duration
	BodyLimit       int64
	// CacheSize bounds the in-memory aggregate cache.
	CacheSize int
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// NonceBucket names the JetStream KV bucket of seen nonces; deployments
	// sharing one NATS must not share it unless they share their routes.
	NonceBucket string
	// Routes are the production addresses.
	Routes []config.Route
	// Provisioning tunes the provisioning effect: the timeout of the
	// provisioner calls and its runner's own retry policy. Zero fields take
	// the defaults of provision.DefaultConfig (retries for about
	// KooGallery's 3 h window, then the instance is parked).
	Provisioning provision.Config
	// DisableProvisioner leaves provisioning to other replicas or tools.
	// The provisioning runner is still built (without a consumer), so that
	// this process lists and re-drives parked provisioning.
	DisableProvisioner bool
	// ViewsDSN is where the SQL read models live: a SQLite file path (or
	// sqlite://path) or a postgres:// URL; empty means DataDir/views.db.
	ViewsDSN string
	// DisableViews runs without read models (another replica keeps them).
	DisableViews bool
	// APIAddr serves the query API on its own listener ("" = off); it
	// needs the views and at least one of APITokens.
	APIAddr   string
	APITokens []string
	// Effects tunes the effect runners (vendor webhook notifications,
	// Query Order enrichment); zero fields take the defaults of
	// effects.DefaultRunnerConfig.
	Effects effects.RunnerConfig
	// DisableEffects leaves the effect runners to another replica. This
	// process still serves re-drives through the query API (they run the
	// effect here, recorded in the shared log).
	DisableEffects bool
	// KooGallery configures the open-API client of the Query Order effect:
	// Site (default mainland), Hosts (overrides the documented hosts, e.g.
	// a local stand-in), AK and SK (both or neither; never logged). Without
	// AK and SK, Query Order enrichment is off.
	KooGallery openapi.Config
	// Getenv reads the webhook secrets (the variables the routes' webhook
	// secretEnv names); nil means os.Getenv.
	Getenv func(string) string
	// UsageRoute names the SaaS V2 route whose (first) key signs the usage
	// pushes to KooGallery (outgoing.md §3); empty turns the push off
	// (POST /v1/usage still records the usage).
	UsageRoute string
	// UsageNumericValue sends usage_value as a JSON number (the
	// international site's form) instead of a string.
	UsageNumericValue bool
	// UsageAllowLate accepts usage past KooGallery's reporting deadlines
	// (the 21-day limit still holds).
	UsageAllowLate bool
}

// Defaults returns the default configuration (no routes).
func Defaults() Config {
	return Config{
		Listen: ":8080", DataDir: "./data", Sync: bus.SyncInterval, SyncInterval: 100 * time.Millisecond,
		Stream: "GALLERIST", Prefix: "gallerist", Replicas: 1,
		ProvisionBudget: 2 * time.Second, RequestTimeout: 4 * time.Second, BodyLimit: 1 << 20,
		CacheSize: 100_000, ShutdownTimeout: 15 * time.Second,
	}
}

// Validate checks what the parts do not check themselves.
func (c Config) Validate() error {
	if c.Listen == "" {
		return errors.New("listen address is empty")
	}
	if c.APIAddr != "" && (c.DisableViews || len(c.APITokens) == 0) {
		return errors.New("the query API (--api-addr) needs the views and at least one --api-token")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.NATSURL == "" && c.DataDir == "" {
		return errors.New("the embedded NATS server needs a data directory")
	}
	if !c.DisableViews && c.ViewsDSN == "" && c.DataDir == "" {
		return errors.New("the views need --views-dsn or a data directory for their SQLite file")
	}
	if len(c.Routes) == 0 {
		return errors.New("no production routes configured")
	}
	if c.UsageRoute != "" {
		r, ok := c.route(c.UsageRoute)
		switch {
		case !ok:
			return fmt.Errorf("--usage-route %s: no such route", c.UsageRoute)
		case r.Family != config.FamilySaaSV2:
			return fmt.Errorf("--usage-route %s: usage pushes are signed with a SaaS V2 key, the route is %s", c.UsageRoute, r.Family)
		}
	}
	if err := validateRunner("effects", c.Effects); err != nil {
		return err
	}
	if err := validateRunner("provisioning", c.Provisioning.Runner); err != nil {
		return err
	}
	if c.Provisioning.ProvisionTimeout < 0 {
		return errors.New("provisioning: provision timeout must not be negative")
	}
	if kg := c.kooGallery(); kg.AK != "" || kg.SK != "" {
		if kg.AK == "" || kg.SK == "" {
			return fmt.Errorf("the Query Order effect needs both %s and %s (only one is set)", openapi.EnvAK, openapi.EnvSK)
		}
		if err := kg.Validate(); err != nil {
			return fmt.Errorf("KooGallery open API: %w", err)
		}
	}
	return config.File{Routes: c.Routes}.Validate()
}

// validateRunner checks what can be checked of a runner's configuration
// before the defaults apply (effects.NewRunner checks the rest); what names
// it in the errors.
func validateRunner(what string, e effects.RunnerConfig) error {
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{"retry base", e.RetryBase < 0}, {"retry max", e.RetryMax < 0}, {"max attempts", e.MaxAttempts < 0},
		{"concurrency", e.Concurrency < 0}, {"ack wait", e.AckWait < 0}, {"max ack pending", e.MaxAckPending < 0},
		{"handle timeout", e.HandleTimeout < 0}, {"turn wait max", e.TurnWaitMax < 0},
	} {
		if f.bad {
			return fmt.Errorf("%s: %s must not be negative", what, f.name)
		}
	}
	if e.RetryBase > 0 && e.RetryMax > 0 && e.RetryMax < e.RetryBase {
		return fmt.Errorf("%s: retry max (%s) must be at least retry base (%s)", what, e.RetryMax, e.RetryBase)
	}
	return nil
}

// kooGallery is the open-API configuration with its default site; AK and
// SK are trimmed (a stray newline from a secrets file is no part of them).
// route returns the route at path.
func (c Config) route(path string) (config.Route, bool) {
	for _, r := range c.Routes {
		if r.Path == path {
			return r, true
		}
	}
	return config.Route{}, false
}

func (c Config) kooGallery() openapi.Config {
	kg := c.KooGallery
	if kg.Site == "" {
		kg.Site = openapi.SiteMainland
	}
	kg.AK, kg.SK = strings.TrimSpace(kg.AK), strings.TrimSpace(kg.SK)
	return kg
}

// webhooks resolves the routes' webhooks, reading each secret from the
// variable its secretEnv names. A missing or short secret is an error
// naming the route and the variable (never the secret).
func (c Config) webhooks() (map[string]webhook.Config, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	hooks := map[string]webhook.Config{}
	for _, r := range c.Routes {
		w := r.Webhook
		if w == nil {
			continue
		}
		secret := getenv(w.SecretEnv)
		switch {
		case secret == "":
			return nil, fmt.Errorf("route %s: webhook secret: environment variable %s is not set (or empty)", r.Path, w.SecretEnv)
		case len(secret) < webhook.MinSecretLen:
			return nil, fmt.Errorf("route %s: webhook secret in environment variable %s has %d bytes, at least %d are required",
				r.Path, w.SecretEnv, len(secret), webhook.MinSecretLen)
		}
		wc := webhook.Config{URL: w.URL, Secret: []byte(secret), Timeout: w.Timeout, Provisioning: w.Provisioning}
		if err := wc.Validate(); err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Path, err)
		}
		hooks[r.Path] = wc
	}
	return hooks, nil
}

// App is a running Gallerist.
type App struct {
	cfg      Config
	log      *slog.Logger
	embedded *bus.Embedded
	nc       *nats.Conn
	conns    []*nats.Conn
	store    *eventstore.JetStreamStore
	pool     *eventstore.Pool
	svc      *instances.Service
	licenses *licenses.Service
	usage    *usagepush.Service
	hooks    map[string]webhook.Config // by route path; read-only after Start
	prov     *effects.Runner           // the provisioning effect's runner (also in runners)
	runners  []*effects.Runner
	admin    *effects.Admin
	effStop  context.CancelFunc // ends the runners' context (and their handler calls)
	views    *views.Store
	proj     *views.Projector
	projStop context.CancelFunc
	projDone chan struct{}
	apiHTTP  *http.Server
	apiLn    net.Listener
	http     *http.Server
	ln       net.Listener
	served   chan error
}

// Start brings every part up, in dependency order, and starts serving.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	hooks, err := cfg.webhooks()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &App{cfg: cfg, log: log, served: make(chan error, 1), hooks: hooks}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if cfg.NATSURL == "" {
		a.embedded, err = bus.StartEmbedded(ctx, bus.ServerConfig{
			DataDir: cfg.DataDir, Sync: cfg.Sync, SyncInterval: cfg.SyncInterval, Listen: cfg.NATSListen,
		}, log)
		if err != nil {
			return nil, err
		}
	}
	// Separate connections for the event store, the nonce guard, change
	// notifications and the effects: the server reads each connection in
	// one loop, so one shared connection would serialise all of them.
	for _, name := range []string{"store", "nonces", "notify", "effects", "store-2", "store-3", "store-4"} {
		nc, err := a.connect(ctx, "gallerist-"+name)
		if err != nil {
			return nil, err
		}
		a.conns = append(a.conns, nc)
	}
	a.nc = a.conns[0]
	a.store, err = eventstore.OpenJetStream(ctx, a.nc, eventstore.JetStreamConfig{
		Stream: cfg.Stream, Prefix: cfg.Prefix, Replicas: cfg.Replicas,
	}, log)
	if err != nil {
		return nil, err
	}
	// Appends and direct reads spread over four connections to the stream.
	members := []eventstore.Store{a.store}
	for _, nc := range a.conns[4:] {
		m, err := eventstore.OpenJetStream(ctx, nc, a.store.Config(), log)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	a.pool = eventstore.NewPool(members...)
	window := time.Duration(0)
	for _, r := range cfg.Routes {
		window = max(window, r.Window())
	}
	nonceJS, err := jetstream.New(a.conns[1])
	if err != nil {
		return nil, fmt.Errorf("jetstream for nonces: %w", err)
	}
	guard, err := nonce.Open(ctx, nonceJS, nonce.Config{Bucket: cfg.NonceBucket, TTL: 2 * window, Replicas: cfg.Replicas})
	if err != nil {
		return nil, err
	}
	agg := aggregate.DefaultConfig()
	if cfg.CacheSize > 0 {
		agg.CacheSize = cfg.CacheSize
	}
	// An embedded server without a TCP listener has no other clients: this
	// process is the only writer, so its cache is authoritative.
	agg.SingleWriter = a.embedded != nil && cfg.NATSListen == ""
	a.svc, err = instances.New(a.pool, a.conns[2], instances.Config{Prefix: a.store.Config().Prefix, Aggregate: agg}, log.With("component", "instances"))
	if err != nil {
		return nil, err
	}
	if hasLicenseRoutes(cfg.Routes) {
		lcfg := licenses.Config{Aggregate: agg}
		if kg := cfg.kooGallery(); kg.AK != "" && kg.SK != "" {
			client, err := openapi.New(kg, log)
			if err != nil {
				return nil, fmt.Errorf("KooGallery open API: %w", err)
			}
			lcfg.KooGallery = client // the License B calls the vendor's software makes through the query API
		}
		a.licenses, err = licenses.New(a.pool, lcfg, cfg.Routes, log.With("component", "licenses"))
		if err != nil {
			return nil, fmt.Errorf("licenses: %w", err)
		}
	}
	rules := usage.DefaultRules()
	rules.AllowLate = cfg.UsageAllowLate
	a.usage, err = usagepush.NewService(a.pool, usagepush.ServiceConfig{Rules: rules, Aggregate: agg})
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	if err := a.buildProvisioner(); err != nil {
		return nil, err
	}
	if err := a.buildEffects(); err != nil {
		return nil, err
	}
	if err := a.startEffects(ctx); err != nil {
		return nil, err
	}
	if !cfg.DisableViews {
		if err := a.startViews(ctx); err != nil {
			return nil, err
		}
	}
	srv, err := server.New(cfg.Routes, server.Deps{
		Instances: a.svc, Licenses: a.licenses, Store: a.pool, Nonces: guard, Ready: a.ready,
	}, server.Options{
		BodyLimit: cfg.BodyLimit, ProvisionBudget: cfg.ProvisionBudget, RequestTimeout: cfg.RequestTimeout,
	}, log.With("component", "ingress"))
	if err != nil {
		return nil, err
	}
	a.http = &http.Server{
		Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
	}
	if cfg.TLSCert != "" {
		// Load the key pair now, so that a bad certificate fails the start.
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		a.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	a.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	go func() {
		var err error
		if a.http.TLSConfig != nil {
			err = a.http.ServeTLS(a.ln, "", "")
		} else {
			err = a.http.Serve(a.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.served <- err
	}()
	if cfg.APIAddr != "" {
		if err := a.startAPI(); err != nil {
			return nil, err
		}
	}
	log.Info("gallerist serving", "addr", a.Addr(), "routes", len(cfg.Routes), "embedded", a.embedded != nil)
	return a, nil
}

func (a *App) connect(ctx context.Context, name string) (*nats.Conn, error) {
	if a.embedded != nil {
		nc, err := a.embedded.Connect(nats.Name(name))
		if err != nil {
			return nil, fmt.Errorf("connect to embedded NATS: %w", err)
		}
		return nc, nil
	}
	return bus.Connect(ctx, a.cfg.NATSURL, name, a.log)
}

// buildProvisioner builds the provisioning effect's runner (the routes'
// built-in provisioners, the vendor webhook's on provisioning routes) as
// the first of the runners. Building starts nothing: with
// DisableProvisioner it only serves re-drives.
func (a *App) buildProvisioner() error {
	js, err := jetstream.New(a.conns[3])
	if err != nil {
		return fmt.Errorf("jetstream for effects: %w", err)
	}
	byRoute := map[string]provision.Provisioner{}
	for _, r := range a.cfg.Routes {
		bc := provision.DefaultBuiltinConfig()
		for dst, src := range map[*string]string{
			&bc.FrontEndURL: r.Provisioner.FrontEndURL, &bc.AdminURL: r.Provisioner.AdminURL,
			&bc.UserName: r.Provisioner.UserName, &bc.Memo: r.Provisioner.Memo,
		} {
			if src != "" {
				*dst = src
			}
		}
		p, err := provision.NewBuiltin(bc)
		if err != nil {
			return fmt.Errorf("route %s: provisioner: %w", r.Path, err)
		}
		byRoute[r.Path] = p
	}
	def, err := provision.NewBuiltin(provision.DefaultBuiltinConfig())
	if err != nil {
		return err
	}
	// Routes whose webhook provisions ask the vendor; every other route
	// keeps its built-in provisioner.
	resolve := func(route string) provision.Provisioner { return byRoute[route] }
	if len(a.hooks) > 0 {
		wp, err := webhook.NewProvisioner(a.webhookOf, a.pool, nil)
		if err != nil {
			return err
		}
		byWebhook := wp.Resolver()
		resolve = func(route string) provision.Provisioner {
			if p := byWebhook(route); p != nil {
				return p
			}
			return byRoute[route]
		}
	}
	pcfg := a.cfg.Provisioning.WithDefaults()
	a.prov, err = provision.NewRunner(js, a.pool, a.store.Config().Stream, a.store.Config().Prefix, a.svc, resolve, def, pcfg, a.log)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	a.runners = append(a.runners, a.prov)
	for route, h := range a.hooks {
		timeout := h.Timeout
		if timeout == 0 {
			timeout = webhook.DefaultTimeout
		}
		if h.Provisioning && timeout > pcfg.ProvisionTimeout {
			a.log.Warn("the provisioning webhook's timeout exceeds the provisioning timeout, which cuts its calls short",
				"route", route, "webhookTimeout", timeout, "provisionTimeout", pcfg.ProvisionTimeout)
		}
	}
	return nil
}

// webhookOf is the webhook.Resolver of the configured routes.
func (a *App) webhookOf(route string) (webhook.Config, bool) {
	c, ok := a.hooks[route]
	return c, ok
}

// buildEffects builds the effect runners this configuration asks for — the
// vendor webhook notifier when a route has a webhook, Query Order when AK
// and SK are set — and the operators' Admin over them and the provisioning
// runner. Building starts nothing: with DisableEffects the runners only
// serve re-drives.
func (a *App) buildEffects() error {
	var handlers []effects.Handler
	if len(a.hooks) > 0 {
		n, err := webhook.NewNotifier(a.webhookOf, a.pool, nil)
		if err != nil {
			return err
		}
		handlers = append(handlers, n)
	}
	if kg := a.cfg.kooGallery(); kg.AK != "" && kg.SK != "" {
		client, err := openapi.New(kg, a.log)
		if err != nil {
			return fmt.Errorf("KooGallery open API: %w", err)
		}
		handlers = append(handlers, queryorder.New(client, a.svc, a.log.With("component", "queryorder")))
		if hasFamily(a.cfg.Routes, config.FamilyLicenseC) {
			issuers, err := licensedelivery.IssuersFromRoutes(a.cfg.Routes, nil)
			if err != nil {
				return fmt.Errorf("license delivery: %w", err)
			}
			ld, err := licensedelivery.New(client, a.svc, issuers, a.log.With("component", "licensedelivery"))
			if err != nil {
				return fmt.Errorf("license delivery: %w", err)
			}
			handlers = append(handlers, ld)
		}
		// AK and SK stay out of the log.
		a.log.Info("Query Order enrichment on", "site", kg.Site, "hosts", kg.Hosts)
	} else if !a.cfg.DisableEffects {
		a.log.Info("Query Order enrichment is off: set " + openapi.EnvAK + " and " + openapi.EnvSK + " to turn it on")
		if hasFamily(a.cfg.Routes, config.FamilyLicenseC) {
			a.log.Warn("License C routes without " + openapi.EnvAK + "/" + openapi.EnvSK + ": getLicenseAsync is recorded and answered 000004, but no license is uploaded until they are set")
		}
	}
	var pusher *usagepush.Pusher
	if a.cfg.UsageRoute != "" {
		r, _ := a.cfg.route(a.cfg.UsageRoute) // Validate checked it
		if len(r.Keys) == 0 {
			return fmt.Errorf("--usage-route %s has no key", r.Path)
		}
		key, err := r.Keys[0].Bytes()
		if err != nil {
			return fmt.Errorf("--usage-route %s: key: %w", r.Path, err)
		}
		client, err := openapi.NewForUsage(a.cfg.kooGallery(), a.log)
		if err != nil {
			return fmt.Errorf("KooGallery usage push: %w", err)
		}
		pusher, err = usagepush.NewPusher(a.usage, client, usagepush.Config{
			Key: key, Options: openapi.UsageOptions{NumericValue: a.cfg.UsageNumericValue},
		}, a.log.With("component", "usagepush"))
		if err != nil {
			return err
		}
	}
	js, err := jetstream.New(a.conns[3])
	if err != nil {
		return fmt.Errorf("jetstream for effects: %w", err)
	}
	for _, h := range handlers {
		r, err := effects.NewRunner(js, a.pool, a.store.Config().Stream, a.store.Config().Prefix, h, a.cfg.Effects, a.log)
		if err != nil {
			return fmt.Errorf("effect %s: %w", h.Name(), err)
		}
		a.runners = append(a.runners, r)
	}
	if pusher != nil {
		// Usage lives on its own subjects (<prefix>.usage.instance.<id>); the
		// same runner drives it there, in order per instance.
		r, err := effects.NewRunner(js, usagepush.Namespace(a.pool), a.store.Config().Stream,
			usagepush.Prefix(a.store.Config().Prefix), pusher, a.cfg.Effects, a.log)
		if err != nil {
			return fmt.Errorf("effect %s: %w", pusher.Name(), err)
		}
		a.runners = append(a.runners, r)
	}
	a.admin, err = effects.NewAdmin(a.runners...)
	return err
}

// startEffects starts the runners: the provisioning one unless
// DisableProvisioner, the others unless DisableEffects. They live until
// Shutdown, not until ctx (which only bounds the start): calls in flight
// must still be provisioned while draining; close ends their context when
// they do not stop within effectsStopBound.
func (a *App) startEffects(ctx context.Context) error {
	var start []*effects.Runner
	for _, r := range a.runners {
		if r == a.prov && !a.cfg.DisableProvisioner || r != a.prov && !a.cfg.DisableEffects {
			start = append(start, r)
		}
	}
	if len(start) == 0 {
		return nil
	}
	if !a.cfg.DisableProvisioner {
		// The provisioning worker's consumer of earlier versions would keep
		// every InstanceCreated pending; the runner's consumer delivers them
		// all from the start of the log (provisioned ones are skipped).
		js, err := jetstream.New(a.conns[3])
		if err != nil {
			return fmt.Errorf("jetstream for effects: %w", err)
		}
		// Not deleting it only leaves messages pending on a consumer nobody
		// reads: no reason to refuse to start.
		removed, err := provision.RemoveLegacyConsumer(ctx, js, a.store.Config().Stream)
		if err != nil {
			a.log.Warn("could not delete the provisioning worker's consumer of an earlier version; delete it by hand",
				"legacy", provision.LegacyDurable, "err", err)
		}
		if removed {
			a.log.Info("deleted the provisioning worker's consumer of an earlier version; the effect runner's consumer replaces it",
				"legacy", provision.LegacyDurable, "durable", a.prov.Durable())
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.effStop = cancel
	for _, r := range start {
		if err := r.Start(rctx); err != nil {
			return fmt.Errorf("effect %s: %w", r.Name(), err)
		}
	}
	return nil
}

// Effects is the operators' access to the parked events of the effects
// this process can run (nil when there are none).
func (a *App) Effects() *effects.Admin { return a.admin }

// effectsAPI adapts effects.Admin to the query API's api.Effects.
type effectsAPI struct {
	admin *effects.Admin
	log   *slog.Logger
}

var _ api.Effects = effectsAPI{}

// Redrive implements api.Effects.
func (e effectsAPI) Redrive(ctx context.Context, effect, instanceID, operator string) error {
	if err := checkRedrive(effect, operator); err != nil {
		return err
	}
	if instanceID == "" {
		return fmt.Errorf("%w: instanceId is empty", api.ErrInvalid)
	}
	return e.result(e.admin.Redrive(ctx, effect, instanceID, operator), effect)
}

// RedriveEvent implements api.Effects.
func (e effectsAPI) RedriveEvent(ctx context.Context, effect, instanceID string, seq uint64, operator string) error {
	if err := checkRedrive(effect, operator); err != nil {
		return err
	}
	if instanceID == "" || seq == 0 {
		return fmt.Errorf("%w: instanceId and eventSeq are required", api.ErrInvalid)
	}
	return e.result(e.admin.RedriveEvent(ctx, effect, instanceID, seq, operator), effect)
}

// RedriveAll implements api.Effects. The count is of the instances parked
// when the re-drive began.
func (e effectsAPI) RedriveAll(ctx context.Context, effect, operator string) (int, error) {
	if err := checkRedrive(effect, operator); err != nil {
		return 0, err
	}
	parked, err := e.admin.ListParked(ctx, effect)
	if err != nil {
		return 0, e.result(err, effect)
	}
	instances := map[string]bool{}
	for _, p := range parked {
		instances[p.InstanceID] = true
	}
	if len(instances) == 0 {
		return 0, fmt.Errorf("%w: effect %s has nothing parked", api.ErrNotFound, effect)
	}
	if err := e.result(e.admin.RedriveAll(ctx, effect, operator), effect); err != nil {
		return 0, err
	}
	return len(instances), nil
}

// checkRedrive refuses what the API should never pass: an empty effect
// would mean every effect to effects.Admin.
func checkRedrive(effect, operator string) error {
	switch {
	case effect == "":
		return fmt.Errorf("%w: effect is empty", api.ErrInvalid)
	case strings.TrimSpace(operator) == "":
		return fmt.Errorf("%w: operator is empty", api.ErrInvalid)
	}
	return nil
}

// result maps the errors of effects.Admin onto the API's: an event that
// failed again and is parked anew is a re-drive done (it is listed as
// parked again, with the new reason).
func (e effectsAPI) result(err error, effect string) error {
	if err == nil {
		return nil
	}
	if rest, changed := withoutStillParked(err); changed {
		e.log.Warn("a re-driven event failed again and is parked anew", "effect", effect, "err", err)
		if rest == nil {
			return nil
		}
		err = rest
	}
	switch {
	case errors.Is(err, effects.ErrUnknownEffect), errors.Is(err, effects.ErrNotParked):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, effects.ErrOutOfOrder):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return err
}

// withoutStillParked drops the effects.ErrStillParked errors from err (a
// single error or a tree of joined ones): rest is what is left (nil when
// nothing is), changed whether anything was dropped. (Errors are not
// compared: an error value of an uncomparable type would panic.)
func withoutStillParked(err error) (rest error, changed bool) {
	if err == nil {
		return nil, false
	}
	if errors.Is(err, effects.ErrStillParked) && !isMulti(err) {
		return nil, true
	}
	m, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err, false
	}
	var kept []error
	for _, e := range m.Unwrap() {
		if e == effects.ErrStillParked { // fmt.Errorf("%w: %w", ErrStillParked, cause)
			return nil, true
		}
		r, c := withoutStillParked(e)
		changed = changed || c
		if r != nil {
			kept = append(kept, r)
		}
	}
	if !changed {
		return err, false
	}
	return errors.Join(kept...), true
}

func isMulti(err error) bool {
	_, ok := err.(interface{ Unwrap() []error })
	return ok
}

// hasFamily reports whether a route serves family f.
func hasFamily(routes []config.Route, f config.Family) bool {
	for _, r := range routes {
		if r.Family == f {
			return true
		}
	}
	return false
}

// hasLicenseRoutes reports whether a route serves a License family.
func hasLicenseRoutes(routes []config.Route) bool {
	for _, r := range routes {
		switch r.Family {
		case config.FamilyLicenseA, config.FamilyLicenseB:
			return true
		}
	}
	return false
}

// ViewsDSN returns the DSN the read models use with cfg (its default is a
// SQLite file in the data directory).
func ViewsDSN(cfg Config) string {
	if cfg.ViewsDSN != "" {
		return cfg.ViewsDSN
	}
	return filepath.Join(cfg.DataDir, "views.db")
}

// startViews opens the read models and runs the projector until Shutdown.
func (a *App) startViews(ctx context.Context) error {
	st, err := views.Open(ctx, ViewsDSN(a.cfg))
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	a.views = st
	js, err := jetstream.New(a.conns[3])
	if err != nil {
		return fmt.Errorf("jetstream for views: %w", err)
	}
	a.proj, err = views.NewProjector(st, js, a.store.Config().Stream, a.store.Config().Prefix, a.log)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.projStop, a.projDone = cancel, make(chan struct{})
	go func() {
		defer close(a.projDone)
		if err := a.proj.Run(pctx); err != nil {
			a.log.Error("views projector stopped", "err", err)
		}
	}()
	return nil
}

// startAPI serves the query API on its own listener. Re-drives go to the
// effect runners (503 when this process has none).
func (a *App) startAPI() error {
	var eff api.Effects
	if a.admin != nil {
		eff = effectsAPI{admin: a.admin, log: a.log.With("component", "api")}
	}
	apiCfg := api.Config{Tokens: a.cfg.APITokens}
	if a.usage != nil {
		apiCfg.Usage = a.usage
	}
	if a.licenses != nil { // a nil *Service in the interface would not read as nil
		apiCfg.LicenseCodes = a.licenses
	}
	srv, err := api.New(a.views, a.pool, eff, apiCfg, a.log.With("component", "api"))
	if err != nil {
		return err
	}
	a.apiLn, err = net.Listen("tcp", a.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.APIAddr, err)
	}
	// No WriteTimeout: the CSV export streams.
	a.apiHTTP = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		if err := a.apiHTTP.Serve(a.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("query API stopped", "err", err)
		}
	}()
	return nil
}

// APIAddr is the query API's listen address ("" when off).
func (a *App) APIAddr() string {
	if a.apiLn == nil {
		return ""
	}
	return a.apiLn.Addr().String()
}

// Views exposes the read models (nil when disabled).
func (a *App) Views() *views.Store { return a.views }

// Projector exposes the views projector (nil when disabled).
func (a *App) Projector() *views.Projector { return a.proj }

func (a *App) ready(ctx context.Context) error {
	if a.nc == nil || !a.nc.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if _, err := a.store.Stream().Info(ctx); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return nil
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Instances exposes the instance service (tests, tools).
func (a *App) Instances() *instances.Service { return a.svc }

// Store exposes the event store.
func (a *App) Store() *eventstore.JetStreamStore { return a.store }

// Done receives the HTTP server's exit error (nil after Shutdown) once;
// read it from one goroutine only.
func (a *App) Done() <-chan error { return a.served }

// Shutdown stops in order: stop accepting and finish in-flight calls, stop
// the effects (in-flight work finishes), flush and close the NATS
// connection, stop the embedded server.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	if a.http != nil {
		if err := a.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	if a.apiHTTP != nil {
		if err := a.apiHTTP.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("query API shutdown: %w", err))
		}
	}
	a.close()
	return errors.Join(errs...)
}

// effectsStopBound bounds how long close waits for the effects and the
// projector to finish their work in flight before it closes the NATS
// connections under them; what they had not acknowledged is redelivered.
const effectsStopBound = 5 * time.Second

func (a *App) close() {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// In parallel: each waits for its work in flight.
		var wg sync.WaitGroup
		// A runner that was not started (DisableEffects,
		// DisableProvisioner: it only serves re-drives) stops at once.
		for _, r := range a.runners {
			wg.Go(r.Stop)
		}
		if a.projStop != nil {
			wg.Go(func() {
				a.projStop()
				<-a.projDone
			})
		}
		wg.Wait()
	}()
	select {
	case <-stopped:
	case <-time.After(effectsStopBound):
		// A provisioning attempt stuck on a lost append, a webhook call still
		// waiting for the vendor, or the projector's reader re-creating a
		// consumer that is gone (after a stream leader change): ending the
		// runners' context and closing the connections below ends them.
		// Nothing is lost: work not acknowledged is redelivered, and the
		// views' checkpoint is in the database.
		a.log.Warn("effects or views projector still busy; closing NATS under them", "after", effectsStopBound)
		if a.effStop != nil {
			a.effStop()
		}
	}
	if a.svc != nil {
		a.svc.Close()
	}
	if a.licenses != nil {
		a.licenses.Close() // waits for license generations still running
	}
	for _, nc := range a.conns {
		// Flush only a live connection: one reconnecting to a node that is
		// gone would wait out the whole timeout.
		if nc.IsConnected() {
			if err := nc.FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				a.log.Warn("flushing NATS", "connection", nc.Opts.Name, "err", err)
			}
		}
		nc.Close()
	}
	select {
	case <-stopped:
	case <-time.After(time.Second):
	}
	if a.effStop != nil {
		a.effStop()
	}
	if a.views != nil {
		if err := a.views.Close(); err != nil {
			a.log.Warn("closing the views database", "err", err)
		}
	}
	if a.embedded != nil {
		a.embedded.Shutdown()
	}
}
