package openapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// ErrInvalidRequest marks a call refused before anything was sent (a
// missing or over-long argument). Retrying cannot help.
var ErrInvalidRequest = errors.New("openapi: invalid request")

// maxAnswer bounds the body read from an answer.
const maxAnswer = 4 << 20

// maxLogged bounds the raw body written to the log.
const maxLogged = 4 << 10

// userAgent is sent (unsigned) with every request.
const userAgent = "gallerist-openapi/1"

// Client calls KooGallery's open APIs. It is safe for concurrent use.
type Client struct {
	cfg     Config // holds the SK: never log or print it
	hc      *http.Client
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
}

// Option tunes New.
type Option func(*Client)

// WithClock sets the clock used for X-Sdk-Date (tests of the gateway's
// 15-minute skew); the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Client) {
		if now != nil {
			c.now = now
		}
	}
}

// New validates cfg and builds a client. A nil log discards.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log.With("component", "openapi", "site", string(cfg.Site)), now: time.Now, timeout: cfg.Timeout}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient // a shallow copy, so that the redirect rule below stays ours
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		hc.Transport = t
	}
	// A redirect is an answer, never followed: it could lead off HTTPS or
	// to a host that is not KooGallery.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Hosts returns the hosts api is called on, primary first.
func (c *Client) Hosts(api API) []string {
	us, err := c.cfg.hosts(api)
	if err != nil {
		return nil
	}
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// String describes the client without its SK.
func (c *Client) String() string {
	return fmt.Sprintf("openapi.Client{%s}", c.cfg)
}

// LogValue implements slog.LogValuer without the SK.
func (c *Client) LogValue() slog.Value { return c.cfg.LogValue() }

// call is one open-API request before it is sent to a host.
type call struct {
	api         API
	method      string
	path        string
	query       url.Values
	body        []byte
	contentType string
}

// answer is a host's answer that ends the host loop.
type answer struct {
	host   string
	status int
	body   []byte
}

// do sends cl to the API's hosts in order, moving on only after a
// transport failure or an HTTP 502/503/504, and returns the first other
// answer, whatever its status. When every host failed it returns the last
// failure: an error wrapping ErrTransport, or the *APIError of a 502/503/504.
func (c *Client) do(ctx context.Context, cl call) (answer, error) {
	hosts, err := c.cfg.hosts(cl.api)
	if err != nil {
		return answer{}, err
	}
	var last error
	for i, h := range hosts {
		if err := ctx.Err(); err != nil {
			if last == nil {
				return answer{}, fmt.Errorf("%w: %s: %w", ErrTransport, cl.api, err)
			}
			return answer{}, fmt.Errorf("%w: %s: %w (after: %v)", ErrTransport, cl.api, err, last)
		}
		log := c.log.With("api", string(cl.api), "host", h.Host, "attempt", i+1, "hosts", len(hosts))
		start := time.Now()
		a, err := c.attempt(ctx, h, cl)
		if err != nil {
			var se *signError
			if errors.As(err, &se) {
				return answer{}, err
			}
			last = fmt.Errorf("%w: %s on %s: %w", ErrTransport, cl.api, h.Host, err)
			log.Warn("open API host failed", "err", err, "elapsed", time.Since(start), "next", i+1 < len(hosts))
			continue
		}
		switch a.status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			ae := apiErrorOf(cl.api, a, nil)
			last = ae
			log.Warn("open API host unavailable", "status", a.status, "resultCode", ae.ResultCode,
				"resultMsg", ae.ResultMsg, "raw", logged(a.body), "elapsed", time.Since(start), "next", i+1 < len(hosts))
			continue
		}
		log.Debug("open API answered", "status", a.status, "elapsed", time.Since(start))
		return a, nil
	}
	return answer{}, last
}

// signError is a signing failure: not the host's fault, no fallback.
type signError struct{ err error }

func (e *signError) Error() string { return e.err.Error() }
func (e *signError) Unwrap() error { return e.err }

// attempt sends cl to one host within the per-attempt timeout and reads
// the whole answer; every error it returns is a transport failure except a
// *signError.
func (c *Client) attempt(ctx context.Context, host *url.URL, cl call) (answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := url.URL{Scheme: host.Scheme, Host: host.Host, Path: cl.path}
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u.String(), bytes.NewReader(cl.body))
	if err != nil {
		return answer{}, &signError{err: fmt.Errorf("openapi: %s: build request: %w", cl.api, err)}
	}
	ct := cl.contentType
	if ct == "" {
		ct = "application/json;charset=UTF-8"
	}
	req.Header.Set("Content-Type", ct)
	if err := koogallery.SignAKSK(c.cfg.AK, c.cfg.SK, req, cl.body, c.now()); err != nil {
		return answer{}, &signError{err: fmt.Errorf("openapi: %s: %w", cl.api, err)}
	}
	req.Header.Set("User-Agent", userAgent) // after signing: not a signed header
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return answer{host: host.Host, status: resp.StatusCode, body: body}, nil
}

// apiErrorOf builds the APIError of an answer, reading resultCode/resultMsg
// or the gateway's error_code/error_msg when the body is a JSON object.
func apiErrorOf(api API, a answer, cause error) *APIError {
	e := &APIError{API: api, HTTPStatus: a.status, Raw: a.body, Err: cause}
	if o, ok := parseObject(a.body); ok {
		e.ResultCode = o.str("resultCode", "error_code", "errorCode")
		e.ResultMsg = o.str("resultMsg", "error_msg", "errorMsg")
	}
	return e
}

// logged is the raw body as written to the log: bounded, one line.
func logged(b []byte) string {
	s := string(b)
	if len(s) > maxLogged {
		s = s[:maxLogged] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
