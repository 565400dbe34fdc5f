// Package server is the HTTP ingress: gin routes built from the configured
// production addresses, the KooGallery pipeline (body cap → authenticate →
// replay check → validate → command → answer signed with Body-Sign), and
// the health endpoints.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/licenses"
)

// NonceGuard remembers V2 nonces across all replicas (bus/nonce.Guard).
type NonceGuard interface {
	Remember(ctx context.Context, scope, nonce string) error
}

// ProductInfo is the target specification of a changeInstanceCheck.
type ProductInfo struct {
	ProductID   string `json:"productId"`
	SKUCode     string `json:"skuCode"`
	ProductName string `json:"productName"`
	LinearValue *int64 `json:"linearValue,omitempty"`
}

// ChangePolicy decides a changeInstanceCheck (renewal with change). A
// non-nil error refuses the change; its text becomes the resultMsg.
type ChangePolicy interface {
	CheckChange(ctx context.Context, st instance.State, target ProductInfo) error
}

// AcceptAll is the default ChangePolicy: every change is acceptable.
type AcceptAll struct{}

// CheckChange implements ChangePolicy.
func (AcceptAll) CheckChange(context.Context, instance.State, ProductInfo) error { return nil }

// Deps are the services the ingress calls.
type Deps struct {
	Instances *instances.Service
	Store     eventstore.Store
	Nonces    NonceGuard
	Policy    ChangePolicy
	// Usage reports the usage of metered SaaS V1 instances in queryInstance;
	// nil: metered instances answer an empty usageInfo.
	Usage UsageSource
	// Licenses serves the License A and B routes; nil: built on Store
	// (default repository settings) when the routes have any.
	Licenses *licenses.Service
	// Ready reports whether the service can take calls (for /readyz).
	Ready func(context.Context) error
}

// Options tune the ingress.
type Options struct {
	// BodyLimit caps request bodies (413 above it). Default 1 MiB.
	BodyLimit int64
	// ProvisionBudget is how long newInstance waits for provisioning before
	// answering 000004. Default 2s.
	ProvisionBudget time.Duration
	// RequestTimeout bounds the work of one call so that the answer leaves
	// inside KooGallery's 5 s. Default 4s.
	RequestTimeout time.Duration
	// Registry receives the metrics; nil means a private registry.
	Registry *prometheus.Registry
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Validate checks the options after defaults.
func (o Options) Validate() error {
	if o.BodyLimit < 1024 {
		return fmt.Errorf("server: body limit %d is below 1 KiB", o.BodyLimit)
	}
	if o.RequestTimeout <= 0 || o.RequestTimeout > 5*time.Second {
		return fmt.Errorf("server: request timeout %v must be in (0, 5s]", o.RequestTimeout)
	}
	if o.ProvisionBudget < 0 || o.ProvisionBudget >= o.RequestTimeout {
		return fmt.Errorf("server: provisioning budget %v must be ≥ 0 and below the request timeout %v", o.ProvisionBudget, o.RequestTimeout)
	}
	return nil
}

func (o *Options) defaults() {
	if o.BodyLimit == 0 {
		o.BodyLimit = 1 << 20
	}
	if o.ProvisionBudget == 0 {
		o.ProvisionBudget = 2 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 4 * time.Second
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server is the HTTP ingress.
type Server struct {
	deps    Deps
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	engine  *gin.Engine
	byPath  map[string]*endpoint
}

// New builds the ingress for the given routes.
func New(routes []config.Route, deps Deps, opts Options, log *slog.Logger) (*Server, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Instances == nil || deps.Store == nil || deps.Nonces == nil {
		return nil, errors.New("server: Instances, Store and Nonces are required")
	}
	if deps.Policy == nil {
		deps.Policy = AcceptAll{}
	}
	if deps.Licenses == nil && hasLicenseRoutes(routes) {
		svc, err := licenses.New(deps.Store, licenses.Config{Now: opts.Now}, routes, log)
		if err != nil {
			return nil, err
		}
		deps.Licenses = svc
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{deps: deps, opts: opts, log: log, metrics: NewMetrics(opts.Registry), byPath: map[string]*endpoint{}}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(gin.CustomRecoveryWithWriter(io.Discard, s.recovered))
	for _, r := range routes {
		ep, err := newEndpoint(r, opts)
		if err != nil {
			return nil, err
		}
		s.byPath[r.Path] = ep
		switch r.Family {
		case config.FamilySaaSV2:
			e.POST(r.Path, s.serveV2(ep))
		case config.FamilySaaSV1:
			h := s.serveV1(ep)
			e.GET(r.Path, h)
			e.POST(r.Path, h)
		case config.FamilyLicenseA:
			h := s.serveLicenseA(ep)
			e.GET(r.Path, h)
			e.POST(r.Path, h)
		case config.FamilyLicenseB, config.FamilyLicenseC:
			e.POST(r.Path, s.serveV2(ep))
		default:
			return nil, fmt.Errorf("server: route %s: family %q is not served", r.Path, r.Family)
		}
	}
	e.NoMethod(s.noMethod)
	e.NoRoute(func(c *gin.Context) { c.String(http.StatusNotFound, "404 page not found") })
	e.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})))
	s.engine = e
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) readyz(c *gin.Context) {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(c.Request.Context()); err != nil {
			c.String(http.StatusServiceUnavailable, "not ready: %v", err)
			return
		}
	}
	c.String(http.StatusOK, "ready")
}

// noMethod answers 405 on a configured path (signed, no resultCode) and
// 404 elsewhere.
func (s *Server) noMethod(c *gin.Context) {
	ep, ok := s.byPath[c.Request.URL.Path]
	if !ok {
		c.String(http.StatusNotFound, "404 page not found")
		return
	}
	allowed := "POST"
	if ep.route.Family == config.FamilySaaSV1 || ep.route.Family == config.FamilyLicenseA {
		allowed = "GET or POST"
	}
	s.writePlain(c, ep, http.StatusMethodNotAllowed, "method not allowed: use "+allowed)
}

func (s *Server) recovered(c *gin.Context, v any) {
	s.log.Error("panic while serving a call", "path", c.Request.URL.Path, "panic", fmt.Sprint(v))
	if ep, ok := s.byPath[c.Request.URL.Path]; ok {
		s.write(c, ep, 0, result{ResultCode: string(koogallery.CodeInternal), ResultMsg: koogallery.CodeInternal.DefaultMessage()})
		return
	}
	c.AbortWithStatus(http.StatusInternalServerError)
}

// scope is the nonce scope of a route: stable across replicas, KV-safe.
func scope(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:8])
}

// readBody reads at most limit bytes; tooLarge reports a bigger body.
func readBody(r *http.Request, limit int64) (b []byte, tooLarge bool, err error) {
	if r.ContentLength > limit {
		return nil, true, nil
	}
	b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, true, nil
	}
	return b, false, nil
}

// result is the envelope every answer starts with.
type result struct {
	ResultCode string `json:"resultCode"`
	ResultMsg  string `json:"resultMsg"`
}

func errorResult(err error) result {
	code, msg := resultOf(err)
	return result{ResultCode: string(code), ResultMsg: msg}
}

// write serialises v once, signs exactly those bytes with the key that
// authenticated the request (the primary key otherwise) and writes them.
func (s *Server) write(c *gin.Context, ep *endpoint, keyIdx int, v any) {
	b, err := koogallery.MarshalResponse(v)
	if err != nil {
		s.log.Error("serialising an answer", "err", err)
		b, _ = koogallery.MarshalResponse(result{ResultCode: string(koogallery.CodeInternal), ResultMsg: koogallery.CodeInternal.DefaultMessage()})
	}
	c.Header(koogallery.BodySignHeader, koogallery.BodySignValue(ep.keys[keyIdx], b))
	c.Data(http.StatusOK, "application/json;charset=UTF-8", b)
}

// writePlain answers a non-200 status on a configured path, still signed.
func (s *Server) writePlain(c *gin.Context, ep *endpoint, status int, text string) {
	b := []byte(text)
	c.Header(koogallery.BodySignHeader, koogallery.BodySignValue(ep.keys[0], b))
	c.Data(status, "text/plain;charset=UTF-8", b)
}

// call carries what one request learned, for the answer, logs and metrics.
type call struct {
	ep       *endpoint
	keyIdx   int
	activity string
	form     koogallery.Form
	nonce    string
	debug    bool
}

func (s *Server) serveV2(ep *endpoint) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		raw, tooLarge, err := readBody(c.Request, s.opts.BodyLimit)
		if tooLarge {
			s.writePlain(c, ep, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", s.opts.BodyLimit))
			return
		}
		cl := &call{ep: ep, activity: "unknown"}
		var resp any
		if err != nil {
			resp = errorResult(koogallery.Invalid("body", "body could not be read"))
		} else {
			ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
			resp = s.handleV2(ctx, cl, c.Request.URL.Query(), raw)
			cancel()
		}
		s.write(c, ep, cl.keyIdx, resp)
		s.observe(cl, resp, time.Since(start))
	}
}

func (s *Server) observe(cl *call, resp any, took time.Duration) {
	code := codeOfResponse(resp)
	debug := "0"
	if cl.debug {
		debug = "1"
	}
	s.metrics.Requests.WithLabelValues(cl.ep.route.Path, cl.activity, code, debug).Inc()
	s.metrics.Durations.WithLabelValues(cl.ep.route.Path, cl.activity).Observe(took.Seconds())
	level := slog.LevelDebug
	switch code {
	case string(koogallery.CodeSuccess), string(koogallery.CodeProcessing):
	case string(koogallery.CodeInternal):
		level = slog.LevelWarn
	default:
		level = slog.LevelInfo
	}
	if s.log.Enabled(context.Background(), level) {
		s.log.Log(context.Background(), level, "call", "route", cl.ep.route.Path, "activity", cl.activity,
			"resultCode", code, "form", string(cl.form), "debug", cl.debug, "nonce", cl.nonce, "took", took)
	}
}

// handleV2 is the V2 pipeline after the body cap (auth.md §2.5 order).
func (s *Server) handleV2(ctx context.Context, cl *call, query map[string][]string, raw []byte) any {
	v, err := cl.ep.verifier.Verify(query, raw)
	if err != nil {
		return errorResult(err)
	}
	cl.keyIdx, cl.form, cl.nonce = v.KeyIndex, v.Form, v.Nonce
	s.metrics.Forms.WithLabelValues(cl.ep.route.Path, string(v.Form)).Inc()
	if _, seen := cl.ep.formSeen.LoadOrStore(v.Form, true); !seen {
		// Which canonical form KooGallery really uses is worth one line
		// (auth.md §2.3); the metric counts every call.
		s.log.Info("signature verified", "route", cl.ep.route.Path, "form", string(v.Form), "keyIndex", v.KeyIndex)
	}
	if err := s.deps.Nonces.Remember(ctx, cl.ep.nonceScope, v.Nonce); err != nil {
		if !isReplay(err) {
			s.log.Error("nonce store", "err", err)
		}
		return errorResult(err)
	}
	b, err := parseBody(raw)
	if err != nil {
		return errorResult(err)
	}
	activity, err := b.str("activity", true, 32)
	if err != nil {
		return errorResult(err)
	}
	activities, family := v2Activities(cl.ep.route.Family)
	h, ok := activities[activity]
	if !ok {
		return errorResult(koogallery.Invalid("activity", "activity %q is not a %s activity", truncate(activity, 40), family))
	}
	cl.activity = activity
	if cl.debug, err = b.testFlag(); err != nil {
		return errorResult(err)
	}
	return h(s, ctx, cl, b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func codeOfResponse(resp any) string {
	switch r := resp.(type) {
	case result:
		return r.ResultCode
	case newInstanceResponse:
		return r.ResultCode
	case queryResponse:
		return r.ResultCode
	case interface{ code() string }: // the SaaS V1 answers
		return r.code()
	}
	return "unknown"
}
