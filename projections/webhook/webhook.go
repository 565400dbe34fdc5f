// Package webhook is the vendor webhook: it tells the vendor's systems
// about every lifecycle event of an instance (a [Notifier], the effect
// "webhook" run by effects.Runner) and, on routes configured for it, asks
// the vendor to create the tenant and answer with the buyer's app info (a
// [Provisioner] for the provisioning effect).
//
// # Wire contract
//
// Every call is an HTTP POST to the route's URL with a JSON body, a
// [Notification]:
//
//	{"eventId":"0197…","eventType":"InstanceFrozen","sequence":42,
//	 "occurredAt":"2025-01-02T03:04:05.123456789Z","instanceId":"…",
//	 "route":"/koogallery/demo","data":{…},"causation":{…}}
//
// data is the event's data as stored in the log (for example
// {"instanceId","orderId","orderLineId","businessId"} for InstanceCreated,
// {"appInfo":{…}} for InstanceProvisioned, {} for InstanceFrozen);
// causation is the marketplace request that caused the event (activity,
// orderId, orderLineId, businessId, route, …). sequence is the event's
// position in the log: later events of an instance have higher sequences.
//
// Headers:
//
//	Content-Type:         application/json
//	Gallerist-Event-Id:   <eventId>
//	Gallerist-Event-Type: <eventType>
//	Idempotency-Key:      <eventId>
//	Gallerist-Signature:  sha256=<64 lower-case hex digits>
//
// The signature is HMAC-SHA256 keyed with the route's secret over the exact
// bytes of the request body, nothing else: receivers verify the raw body
// before parsing it ([Verify]). No timestamp is signed: the same event is
// delivered with the same body and signature on every attempt, a retry an
// hour later and an operator's re-drive days later included, so a freshness
// window would reject legitimate deliveries. Replays are harmless because
// every delivery carries its idempotency key (the event id); receivers
// must deduplicate on it (delivery is at least once).
//
// Answers: any 2xx is success. 408, 429, 5xx and transport errors
// (including the route's timeout) are retried with backoff; other answers
// (3xx are not followed, 4xx) are permanent and park the event at once.
// Events of one instance are delivered in order: the next is sent only
// after the previous one was answered 2xx; while one is parked, the
// instance's later events wait for an operator's re-drive, which delivers
// them in order.
//
// Creation on a provisioning route (Config.Provisioning): the provisioning
// worker POSTs the InstanceCreated notification and reads the answer: 2xx
// with {"frontEndUrl","adminUrl","userName","password","memo"} (frontEndUrl
// required) provisions the instance; 409 or 422 with
// {"resultCode":"000100"…"000107","message":"…"} refuses it (KooGallery
// creation codes; message is shown to the buyer); anything else is retried.
// The notifier does not send InstanceCreated again on such routes, and it
// sends the instance's later events only after the outcome is recorded.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gallerist/gallerist/domain/event"
)

// Header names and the signature scheme of the wire contract.
const (
	HeaderSignature      = "Gallerist-Signature"
	HeaderEventID        = "Gallerist-Event-Id"
	HeaderEventType      = "Gallerist-Event-Type"
	HeaderIdempotencyKey = "Idempotency-Key"
	// SignaturePrefix starts the signature header's value.
	SignaturePrefix = "sha256="
)

// DefaultTimeout bounds one webhook call when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// MinSecretLen is the shortest secret Config accepts, in bytes.
const MinSecretLen = 16

// maxAnswer bounds how much of an answer is read.
const maxAnswer = 64 << 10

// Config is one route's vendor webhook.
type Config struct {
	// URL receives the POSTs; an absolute http(s) URL (use https outside
	// tests: bodies carry the buyer's initial credentials).
	URL string
	// Secret keys the HMAC-SHA256 signature; at least MinSecretLen bytes.
	Secret []byte
	// Timeout bounds one call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Provisioning is set when the vendor creates the tenant itself and
	// answers InstanceCreated with the app info (see the package doc).
	Provisioning bool
}

// Validate checks the config.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("webhook: URL is required")
	case err != nil:
		return fmt.Errorf("webhook: URL: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("webhook: URL %q is not an absolute http(s) URL", redact(c.URL))
	case len(c.Secret) < MinSecretLen:
		return fmt.Errorf("webhook: secret has %d bytes, at least %d are required", len(c.Secret), MinSecretLen)
	case c.Timeout < 0:
		return fmt.Errorf("webhook: negative timeout %s", c.Timeout)
	}
	return nil
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// Resolver returns the webhook of a production route (the Causation.Route
// of an event); false means the route has none.
type Resolver func(route string) (Config, bool)

// Notification is the body of every webhook call.
type Notification struct {
	EventID    string          `json:"eventId"`
	EventType  string          `json:"eventType"`
	Sequence   uint64          `json:"sequence"`
	OccurredAt time.Time       `json:"occurredAt"`
	InstanceID string          `json:"instanceId"`
	Route      string          `json:"route,omitempty"`
	Data       json.RawMessage `json:"data"`
	Causation  event.Causation `json:"causation"`
}

// NotificationOf is the notification of the instance event ev stored at
// sequence seq.
func NotificationOf(ev event.Envelope, seq uint64) Notification {
	data := ev.Data
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		data = json.RawMessage("{}")
	}
	return Notification{
		EventID: ev.ID, EventType: ev.Type, Sequence: seq, OccurredAt: ev.OccurredAt.UTC(),
		InstanceID: ev.AggregateID, Route: ev.Causation.Route, Data: data, Causation: ev.Causation,
	}
}

// Sign returns the signature header value of body: "sha256=" and the
// lower-case hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return SignaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing, malformed or wrong
// signature.
var ErrBadSignature = errors.New("webhook: bad signature")

// Verify checks the Gallerist-Signature header value against the exact
// request body, in constant time. Receivers call it on the raw body before
// parsing it.
func Verify(secret []byte, header string, body []byte) error {
	h, ok := strings.CutPrefix(strings.TrimSpace(header), SignaturePrefix)
	if !ok {
		return fmt.Errorf("%w: header does not start with %q", ErrBadSignature, SignaturePrefix)
	}
	got, err := hex.DecodeString(h)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: not %d hex-encoded bytes", ErrBadSignature, sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: mismatch", ErrBadSignature)
	}
	return nil
}

// NewHTTPClient returns the client the webhook uses by default: the
// default transport, no redirects followed (a redirected POST would lose
// its body or be re-sent elsewhere; a 3xx answer is a configuration error).
// Each call's deadline comes from Config.Timeout.
func NewHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// answer is what the vendor said.
type answer struct {
	status int
	body   []byte
}

// post sends one signed notification with cfg's timeout.
func post(ctx context.Context, hc *http.Client, cfg Config, n Notification) (answer, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return answer{}, fmt.Errorf("webhook: encode %s %s: %w", n.EventType, n.EventID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("webhook: request to %s: %w", redact(cfg.URL), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gallerist-Webhook/1")
	req.Header.Set(HeaderEventID, n.EventID)
	req.Header.Set(HeaderEventType, n.EventType)
	req.Header.Set(HeaderIdempotencyKey, n.EventID)
	req.Header.Set(HeaderSignature, Sign(cfg.Secret, body))
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the full URL; say where without query or userinfo.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return answer{}, fmt.Errorf("webhook: POST %s: %w", redact(cfg.URL), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && resp.StatusCode/100 == 2 {
		return answer{}, fmt.Errorf("webhook: POST %s: reading the answer: %w", redact(cfg.URL), err)
	}
	return answer{status: resp.StatusCode, body: b}, nil
}

// retryable reports whether an answer's status is worth retrying.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// describe is an answer for an error message: status and the start of the
// body on one line.
func (a answer) describe() string {
	s := strings.Join(strings.Fields(string(a.body)), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if s == "" {
		return fmt.Sprintf("HTTP %d", a.status)
	}
	return fmt.Sprintf("HTTP %d: %s", a.status, s)
}

// redact is u without userinfo, query and fragment, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}
