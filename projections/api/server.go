// Package api is the query API: a JSON (and CSV) HTTP interface over the
// SQL read models (package views) and the event log, for operators and
// dashboards, on its own listener (--api-addr) behind bearer tokens.
//
// Every answer states the stream sequence it is consistent to: for data
// from a view, the view's checkpoint in the same read transaction (the
// answer reflects every event up to it and none after); for an instance's
// history read from the log, the sequence of the last event read. JSON
// answers carry it as "consistentTo" and every successful answer also in
// the Gallerist-Consistent-To header.
//
// The routes, parameters and answers are described by the OpenAPI 3.0.3
// document the server itself serves at GET /openapi.json (openapi.go).
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/projections/views"
)

// Effects re-drives parked effects (the effect runners, adapted). An
// implementation reports an unknown effect or nothing to re-drive with an
// error wrapping [ErrNotFound] (answered 404) and a request it refuses
// with one wrapping [ErrInvalid] (400); [ErrUnavailable] answers 503 and
// any other error 500. A re-drive whose event failed again and was parked
// again is best reported as success: the re-drive was done, and the event
// shows up again in the parked list.
type Effects interface {
	// Redrive re-drives the parked events of one instance for effect.
	Redrive(ctx context.Context, effect, instanceID, operator string) error
	// RedriveEvent re-drives one parked event (the instance event at
	// stream sequence seq); it must be the instance's oldest parked event
	// (an implementation refuses a later one with ErrInvalid).
	RedriveEvent(ctx context.Context, effect, instanceID string, seq uint64, operator string) error
	// RedriveAll re-drives every instance with parked events of effect
	// and returns how many instances it re-drove.
	RedriveAll(ctx context.Context, effect, operator string) (int, error)
}

// Errors an [Effects] implementation wraps to choose the HTTP status.
var (
	// ErrNotFound: unknown effect, or nothing parked to re-drive (404).
	ErrNotFound = errors.New("api: not found")
	// ErrInvalid: a request the implementation refuses (400).
	ErrInvalid = errors.New("api: invalid request")
	// ErrUnavailable: the implementation cannot serve now (503).
	ErrUnavailable = errors.New("api: unavailable")
)

// DefaultMaxPageSize is Config.MaxPageSize when zero.
const DefaultMaxPageSize = 500

// defaultPageSize is the page size of a listing without limit.
const defaultPageSize = 100

// minTokenLen bounds bearer tokens from below: shorter ones are guessable.
const minTokenLen = 16

// Timeouts of one call.
const (
	// queryTimeout bounds a JSON read (the views and the log).
	queryTimeout = 30 * time.Second
	// redriveTimeout bounds a re-drive, which runs the effect's handler
	// with its retries.
	redriveTimeout = 5 * time.Minute
)

// ConsistencyHeader carries the sequence an answer is consistent to.
const ConsistencyHeader = "Gallerist-Consistent-To"

// Config configures the API.
type Config struct {
	// Tokens are the accepted bearer tokens (several, for rotation): at
	// least one, each at least 16 characters of RFC 6750's b64token
	// alphabet (A–Z a–z 0–9 - . _ ~ + /, then any '='). They are compared
	// in constant time.
	Tokens []string
	// MaxPageSize bounds the limit of a listing and is the page size of
	// the CSV export: 1..views.MaxPageSize; 0 means DefaultMaxPageSize.
	MaxPageSize int
	// Usage records and reads the vendor's usage (POST and GET /v1/usage);
	// nil answers those 503.
	Usage Usage
	// LicenseCodes makes the outgoing License B calls for the vendor's
	// software and reads the codes (/v1/license-codes); nil answers 503.
	LicenseCodes LicenseCodes
}

// Validate checks c; a zero MaxPageSize is valid (the default).
func (c Config) Validate() error {
	if len(c.Tokens) == 0 {
		return errors.New("api: at least one bearer token is required")
	}
	for i, t := range c.Tokens {
		if len(t) < minTokenLen {
			return fmt.Errorf("api: bearer token %d is shorter than %d characters", i+1, minTokenLen)
		}
		if !isB64Token(t) {
			return fmt.Errorf("api: bearer token %d has characters outside A-Z a-z 0-9 - . _ ~ + / (and trailing =)", i+1)
		}
	}
	if c.MaxPageSize < 0 || c.MaxPageSize > views.MaxPageSize {
		return fmt.Errorf("api: max page size %d must be in 1..%d (0 for the default %d)", c.MaxPageSize, views.MaxPageSize, DefaultMaxPageSize)
	}
	return nil
}

// isB64Token reports whether s is an RFC 6750 b64token.
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// Server is the query API. It is safe for concurrent use.
type Server struct {
	views   *views.Store
	log     eventstore.Store
	effects Effects
	cfg     Config
	logger  *slog.Logger
	// tokens are the SHA-256 digests of the accepted tokens.
	tokens  [][sha256.Size]byte
	engine  *gin.Engine
	openapi []byte
}

// New builds the API over the views and the event log. effects may be nil:
// re-drive then answers 503. logger nil discards.
func New(vs *views.Store, log eventstore.Store, effects Effects, cfg Config, logger *slog.Logger) (*Server, error) {
	if vs == nil || log == nil {
		return nil, errors.New("api: New needs the views store and the event store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPageSize == 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{views: vs, log: log, effects: effects, cfg: cfg, logger: logger.With("component", "api")}
	for _, t := range cfg.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	doc, err := s.openAPIJSON()
	if err != nil {
		return nil, err
	}
	s.openapi = doc

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Route on the escaped path so that an instance id may contain an
	// escaped '/'; path values are unescaped for the handlers.
	e.UseRawPath = true
	e.UnescapePathValues = true
	e.Use(s.recovery, s.authenticate)
	e.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "no such route", "") })
	e.NoMethod(func(c *gin.Context) { writeError(c, http.StatusMethodNotAllowed, "method not allowed", "") })

	e.GET("/healthz", s.healthz)
	e.GET("/openapi.json", s.serveOpenAPI)
	e.GET("/v1/instances", s.listInstances)
	e.GET("/v1/instances.csv", s.exportInstances)
	e.GET("/v1/instances/:id", s.getInstance)
	e.GET("/v1/stats", s.stats)
	e.GET("/v1/effects/parked", s.parked)
	e.POST("/v1/effects/redrive", s.redrive)
	e.GET("/v1/usage", s.listUsage)
	e.POST("/v1/usage", s.reportUsage)
	s.licenseRoutes(e) // licenses.go
	e.GET("/v1/license-codes/:code", s.getLicenseCode)
	e.POST("/v1/license-codes/:code/activate", s.activateLicenseCode)
	e.POST("/v1/license-codes/:code/heartbeat", s.heartbeatLicenseCode)
	e.POST("/v1/license-codes/usage", s.reportLicenseUsage)
	s.engine = e
	return s, nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// openPaths are served without a token.
var openPaths = map[string]bool{"/healthz": true, "/openapi.json": true}

// authenticate requires "Authorization: Bearer <token>" everywhere but on
// openPaths (unknown paths too, so that they reveal nothing).
func (s *Server) authenticate(c *gin.Context) {
	if openPaths[c.Request.URL.Path] {
		c.Next()
		return
	}
	c.Header("Cache-Control", "no-store")
	h := c.GetHeader("Authorization")
	if h == "" {
		c.Header("WWW-Authenticate", `Bearer realm="gallerist"`)
		writeError(c, http.StatusUnauthorized, "a bearer token is required", "Authorization")
		c.Abort()
		return
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Header("WWW-Authenticate", `Bearer realm="gallerist", error="invalid_request"`)
		writeError(c, http.StatusUnauthorized, `use "Authorization: Bearer <token>"`, "Authorization")
		c.Abort()
		return
	}
	idx := s.tokenIndex(token)
	if idx < 0 {
		s.logger.Info("refused a call with an unknown bearer token", "path", c.Request.URL.Path, "remote", c.ClientIP())
		c.Header("WWW-Authenticate", `Bearer realm="gallerist", error="invalid_token"`)
		writeError(c, http.StatusUnauthorized, "the bearer token is not valid", "Authorization")
		c.Abort()
		return
	}
	c.Set(tokenKey, idx+1)
	c.Next()
}

// tokenKey holds the 1-based index of the token that authenticated the
// call (for logs of changes).
const tokenKey = "api.token"

// tokenIndex returns the index of the accepted token equal to t, -1 if
// none. Every token is compared, in constant time over digests, so the
// answer time says nothing about how close t was.
func (s *Server) tokenIndex(t string) int {
	d := sha256.Sum256([]byte(t))
	found := -1
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(d[:], s.tokens[i][:]) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

// recovery answers 500 for a panic, unless the answer has started, and
// lets http.ErrAbortHandler through to net/http, which then aborts the
// connection (an export that fails half-way must not look complete).
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v)
		}
		s.logger.Error("panic while serving a call", "path", c.Request.URL.Path, "panic", fmt.Sprint(v))
		if !c.Writer.Written() {
			writeError(c, http.StatusInternalServerError, "internal error", "")
		}
		c.Abort()
	}()
	c.Next()
}

func (s *Server) healthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	writeJSON(c, http.StatusOK, struct {
		Status string `json:"status"`
	}{"ok"})
}

func (s *Server) serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.openapi)
}

// setConsistency sets the consistency header of a successful answer.
func setConsistency(c *gin.Context, seq uint64) {
	c.Header(ConsistencyHeader, strconv.FormatUint(seq, 10))
}

// failed answers an error of a store: timeouts are 503, the rest 500 (and
// logged; the client learns nothing of the internals).
func (s *Server) failed(c *gin.Context, what string, err error) {
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		c.Abort() // the client went away
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		s.logger.Warn(what+" timed out", "path", c.Request.URL.Path, "err", err)
		writeError(c, http.StatusServiceUnavailable, what+" timed out; try again", "")
		return
	}
	s.logger.Error(what+" failed", "path", c.Request.URL.Path, "err", err)
	writeError(c, http.StatusInternalServerError, "internal error while reading "+what, "")
}

// withTimeout bounds the work of a JSON call.
func withTimeout(c *gin.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), d)
}
