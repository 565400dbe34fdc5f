package kg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// KooGallery's timing as codes-and-rules.md documents it. Only the waits
// between calls are compressed by --speed; the 5 s answer timeout is not.
const (
	// answerTimeout: KooGallery waits 5 s for an answer (saas-v2.md §1).
	answerTimeout = 5 * time.Second
	// retryInterval: KooGallery re-sends a failed call, and polls
	// queryInstance, every 2 minutes (codes-and-rules.md §4: License B and
	// License C, the V2-style rules; the SaaS V2 pages state no interval).
	retryInterval = 2 * time.Minute
	// retryWindow: it keeps retrying for 2 hours (codes-and-rules.md §4,
	// License C newInstance; SaaS V1 newInstance: 3 h), then gives up.
	retryWindow = 2 * time.Hour
	// dialTestGap: the dial tests replay the saved debug cases every
	// morning and afternoon (codes-and-rules.md §5).
	dialTestGap = 12 * time.Hour
)

// errViolation is wrapped by every error that reports a broken rule (as
// opposed to a transport failure or a cancelled run).
var errViolation = errors.New("violation")

// violation returns an error reporting a broken rule.
func violation(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errViolation, fmt.Sprintf(format, args...))
}

// Step is one call of a scenario or rule as printed and reported.
type Step struct {
	Activity string `json:"activity"`
	// Note says what is special about the call (debug, tampered, retry…).
	Note string `json:"note,omitempty"`
	// Result is the resultCode, "HTTP <status>" without one, or
	// "transport".
	Result string `json:"result"`
	// Evidence is what the answer showed: message, instanceId, Body-Sign.
	Evidence   string  `json:"evidence"`
	DurationMs float64 `json:"durationMs"`
}

// driver sends calls to one production address as KooGallery does. It is
// shared by the sessions of one run and safe for concurrent use.
type driver struct {
	t      target
	client *http.Client
	speed  float64 // waits between calls are divided by it
	storm  int     // concurrent calls of a duplicate storm
	tag    string  // makes this run's order and business ids unique
	seq    atomic.Int64
	// licensePub (--license-public-key) verifies the License A licenses;
	// nil: not checked.
	licensePub ed25519.PublicKey
}

func newDriver(t target, insecure bool, speed float64, storm int) *driver {
	return &driver{
		t:      t,
		client: &http.Client{Transport: httpTransport(max(storm, 4), insecure), Timeout: answerTimeout},
		speed:  speed,
		storm:  storm,
		tag:    strings.ToUpper(randomText(8)),
	}
}

func (d *driver) close() { d.client.CloseIdleConnections() }

// scaled returns a KooGallery wait compressed by --speed.
func (d *driver) scaled(w time.Duration) time.Duration {
	return time.Duration(math.Max(float64(w)/d.speed, float64(time.Millisecond)))
}

// session is one scenario or rule run: its steps and the ids it made.
type session struct {
	d      *driver
	onStep func(Step) // called for every step as it happens; may be nil
	mu     sync.Mutex
	steps  []Step
}

func (d *driver) session(onStep func(Step)) *session { return &session{d: d, onStep: onStep} }

func (s *session) record(st Step) {
	s.mu.Lock()
	s.steps = append(s.steps, st)
	s.mu.Unlock()
	if s.onStep != nil {
		s.onStep(st)
	}
}

// order returns fresh ids for a new purchase: orderId, orderLineId and a
// businessId.
func (s *session) order() (orderID, lineID, businessID string) {
	n := s.d.seq.Add(1)
	orderID = fmt.Sprintf("CS%sKG%05d", s.d.tag, n)
	return orderID, orderID + "-000001", uuidText()
}

// sleep waits a KooGallery interval (compressed) or until ctx ends.
func (s *session) sleep(ctx context.Context, w time.Duration) error {
	t := time.NewTimer(s.d.scaled(w))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("kg: interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// callOpts change how one call is made.
type callOpts struct {
	test  bool      // testFlag "1"
	note  string    // shown with the step
	at    time.Time // signing time; zero means now
	nonce string    // "" means a fresh one
	// mutate changes the signed request before it is sent (a tampered
	// body, a dropped parameter…) and returns the body to send.
	mutate func(q url.Values, body []byte) []byte
	// rawBody is sent (and signed over its raw bytes) instead of the
	// built body.
	rawBody []byte
	// post sends a SaaS V1 / License A call as the POST-body variant
	// (auth.md §3.3) instead of GET.
	post bool
	// omit drops these parameters of a SaaS V1 / License A call before it
	// is signed (the family's defaults would otherwise fill them in).
	omit []string
}

// reply is one answer as KooGallery checks it.
type reply struct {
	Answer
	body      []byte
	took      time.Duration
	badReason string // why the answer breaks the envelope rules ("" if fine)
}

func (r reply) code() koogallery.Code { return koogallery.Code(r.ResultCode) }

// call builds, signs and sends one SaaS V2 call and checks its answer:
// Body-Sign valid, HTTP 200 JSON with a known resultCode and a resultMsg,
// every encrypted field decryptable. A broken check is an errViolation;
// a transport failure another error.
func (s *session) call(ctx context.Context, activity string, fields map[string]any, o callOpts) (reply, error) {
	if v1, ok := s.d.t.family.(*v1Family); ok {
		return s.callV1(ctx, v1, activity, fields, o)
	}
	b := map[string]any{"activity": activity}
	for k, v := range fields {
		b[k] = v
	}
	if o.test {
		b["testFlag"] = "1"
	}
	body, err := json.Marshal(b) // members sorted: forms (a), (b), (c) agree
	if err != nil {
		return reply{}, fmt.Errorf("kg: encode %s body: %w", activity, err)
	}
	if o.rawBody != nil {
		body = o.rawBody
	}
	at := o.at
	if at.IsZero() {
		at = time.Now()
	}
	nonce := o.nonce
	if nonce == "" {
		nonce = koogallery.NewNonce()
	}
	u := *s.d.t.url
	q := koogallery.SignV2Request(s.d.t.key, body, at, nonce)
	if o.mutate != nil {
		body = o.mutate(q, body)
	}
	u.RawQuery = q.Encode()
	p := Prepared{Method: http.MethodPost, URL: u.String(), Body: body,
		Header: http.Header{"Content-Type": {"application/json;charset=utf8"}, "Accept": {"application/json"}}}
	r, err := s.send(ctx, p)
	return s.finish(activity, o, r, err)
}

// finish records the step of a call and returns its verdict.
func (s *session) finish(activity string, o callOpts, r reply, err error) (reply, error) {
	st := Step{Activity: activity, Note: o.note, DurationMs: float64(r.took.Microseconds()) / 1000}
	if o.test {
		st.Note = strings.TrimPrefix(st.Note+", debug (testFlag 1)", ", ")
	}
	if err != nil {
		st.Result, st.Evidence = "transport", err.Error()
		s.record(st)
		return r, err
	}
	st.Result, st.Evidence = r.result(), r.evidence()
	s.record(st)
	if r.badReason != "" {
		return r, violation("%s answer: %s", activity, r.badReason)
	}
	return r, nil
}

// send sends p and checks the answer (see call).
func (s *session) send(ctx context.Context, p Prepared) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	req, err := p.Request(ctx)
	if err != nil {
		return reply{}, err
	}
	start := time.Now()
	resp, err := s.d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return reply{took: time.Since(start)}, violation("no answer within KooGallery's %s", answerTimeout)
		}
		return reply{took: time.Since(start)}, fmt.Errorf("kg: %s %s: %w", p.Method, redactQuery(p.URL), err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	_ = resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return reply{took: took}, fmt.Errorf("kg: read answer: %w", err)
	}
	r := reply{Answer: checkAnswer(s.d.t, resp.StatusCode, resp.Header, raw), body: raw, took: took}
	r.badReason = r.envelopeProblem(resp.Header)
	return r, nil
}

// result is the answer's resultCode, or its HTTP status without one.
func (r reply) result() string {
	if r.ResultCode != "" {
		return r.ResultCode
	}
	return "HTTP " + strconv.Itoa(r.Status)
}

func (r reply) evidence() string {
	var parts []string
	if r.ResultMsg != "" {
		parts = append(parts, strconv.Quote(r.ResultMsg))
	}
	if r.InstanceID != "" {
		parts = append(parts, "instanceId="+r.InstanceID)
	}
	if n := len(r.Decrypted); n > 0 {
		parts = append(parts, fmt.Sprintf("%d field(s) decrypted", n))
	}
	if r.BodySign.Valid {
		parts = append(parts, "Body-Sign valid")
	} else {
		parts = append(parts, "Body-Sign WRONG: "+r.BodySign.Error)
	}
	if r.badReason != "" {
		parts = append(parts, "VIOLATION: "+r.badReason)
	}
	return strings.Join(parts, ", ")
}

// envelopeProblem checks what every protocol answer must be
// (codes-and-rules.md §1, saas-v2.md §1, auth.md §4).
func (r reply) envelopeProblem(h http.Header) string {
	if err := r.problem(); err != nil { // Body-Sign, decryption
		return strings.TrimPrefix(err.Error(), "kg: ")
	}
	if r.Status != http.StatusOK {
		return fmt.Sprintf("HTTP %d, want 200 with a resultCode (codes-and-rules.md §1)", r.Status)
	}
	if ct := h.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "application/json") {
		return fmt.Sprintf("Content-Type %q is not application/json", ct)
	}
	if len(r.Notes) > 0 {
		return strings.Join(r.Notes, "; ")
	}
	if !r.code().Known() {
		return fmt.Sprintf("resultCode %q is not a documented code (codes-and-rules.md §2)", r.ResultCode)
	}
	if r.ResultMsg == "" {
		return "resultMsg is empty (Gallerist always fills it)"
	}
	if n := utf8.RuneCountInString(r.ResultMsg); n > koogallery.MaxResultMsgLen {
		return fmt.Sprintf("resultMsg is %d characters, at most %d", n, koogallery.MaxResultMsgLen)
	}
	return ""
}

// expect makes a call and requires one of codes.
func (s *session) expect(ctx context.Context, activity string, fields map[string]any, o callOpts, codes ...koogallery.Code) (reply, error) {
	r, err := s.call(ctx, activity, fields, o)
	if err != nil {
		return r, err
	}
	if !slices.Contains(codes, r.code()) {
		what := activity
		if o.note != "" {
			what += " (" + o.note + ")"
		}
		return r, violation("%s answered %s %q, want %s", what, r.ResultCode, r.ResultMsg, codeList(codes))
	}
	return r, nil
}

func codeList(codes []koogallery.Code) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = string(c)
	}
	return strings.Join(s, " or ")
}

// queryAnswer is the part of a queryInstance answer the rules look at.
type queryAnswer struct {
	EncryptType string `json:"encryptType"`
	Info        []struct {
		InstanceID string `json:"instanceId"`
		AppInfo    *struct {
			FrontEndURL string `json:"frontEndUrl"`
			AdminURL    string `json:"adminUrl"`
			UserName    string `json:"userName"`
			Password    string `json:"password"`
			Memo        string `json:"memo"`
		} `json:"appInfo"`
	} `json:"info"`
}

func (r reply) query() (queryAnswer, error) {
	var q queryAnswer
	if err := json.Unmarshal(r.body, &q); err != nil {
		return q, violation("queryInstance answer: %v", err)
	}
	return q, nil
}

// checkAppInfo checks the app info of a ready instance (saas-v2.md §10.1,
// auth.md §5, §6): frontEndUrl given, lengths, userName and password
// decrypt (done by call), no raw non-ASCII text, a valid encryptType.
// A License C instance may come without appInfo.
func checkAppInfo(r reply, id, family string) error {
	q, err := r.query()
	if err != nil {
		return err
	}
	if q.EncryptType != "" && !koogallery.EncryptType(q.EncryptType).Valid() {
		return violation("encryptType %q is not 1 or 2 (auth.md §5)", q.EncryptType)
	}
	for _, in := range q.Info {
		if in.InstanceID != id {
			continue
		}
		a := in.AppInfo
		if a == nil && family == FamilyLicenseC {
			return nil // a License instance normally has no app info (license.md §4.7)
		}
		switch {
		case a == nil:
			return violation("queryInstance %s answered %s without appInfo", id, r.ResultCode)
		case a.FrontEndURL == "":
			return violation("appInfo of %s has no frontEndUrl (M)", id)
		case len(a.FrontEndURL) > 512 || len(a.AdminURL) > 512:
			return violation("appInfo of %s: frontEndUrl/adminUrl longer than 512", id)
		case len(a.UserName) > 128 || len(a.Password) > 128:
			return violation("appInfo of %s: encrypted userName/password longer than 128 (auth.md §5)", id)
		case utf8.RuneCountInString(a.Memo) > 1024:
			return violation("appInfo of %s: memo longer than 1024", id)
		}
		for _, c := range r.body {
			if c >= utf8.RuneSelf {
				return violation("the answer carries raw non-ASCII text; Chinese only as \\uXXXX escapes (auth.md §6)")
			}
		}
		return nil
	}
	return violation("queryInstance %s: info has no element for it", id)
}

// create sends newInstance for a fresh order and returns the instance id
// (= businessId) once the answer is 000000 or 000004.
func (s *session) create(ctx context.Context, note string) (id, orderID, lineID string, err error) {
	orderID, lineID, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business},
		callOpts{note: note}, koogallery.CodeSuccess, koogallery.CodeProcessing)
	if err != nil {
		return "", orderID, lineID, err
	}
	if r.InstanceID != business {
		return r.InstanceID, orderID, lineID, violation("newInstance answered instanceId %q, want the businessId %q (saas-v2.md §3)", r.InstanceID, business)
	}
	return r.InstanceID, orderID, lineID, nil
}

// provisioned polls queryInstance like KooGallery (every retryInterval,
// compressed, for at most retryWindow) until the instance answers 000000
// with its app info, and checks that app info.
func (s *session) provisioned(ctx context.Context, id string) (reply, int, error) {
	deadline := time.Now().Add(s.d.scaled(retryWindow))
	for polls := 1; ; polls++ {
		r, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": id}, callOpts{note: fmt.Sprintf("poll %d", polls)},
			koogallery.CodeSuccess, koogallery.CodeProcessing)
		if err != nil {
			return r, polls, err
		}
		if r.code() == koogallery.CodeSuccess {
			return r, polls, checkAppInfo(r, id, s.d.t.family.Name())
		}
		if q, err := r.query(); err != nil {
			return r, polls, err
		} else if len(q.Info) != 1 || q.Info[0].InstanceID != id || q.Info[0].AppInfo != nil {
			return r, polls, violation("queryInstance answered 000004 with info %s, want the instance without appInfo (saas-v2.md §4)", r.Body)
		}
		if time.Now().After(deadline) {
			return r, polls, violation("instance %s still provisioning (000004) after %d polls over the polling window (%s, compressed ×%g)", id, polls, retryWindow, s.d.speed)
		}
		if err := s.sleep(ctx, retryInterval); err != nil {
			return r, polls, err
		}
	}
}

// ready creates an instance and waits until it is provisioned.
func (s *session) ready(ctx context.Context) (id, orderID, lineID string, err error) {
	id, orderID, lineID, err = s.create(ctx, "")
	if err != nil {
		return id, orderID, lineID, err
	}
	_, _, err = s.provisioned(ctx, id)
	return id, orderID, lineID, err
}

// expireIn returns an expireTime (17 digits, UTC) d from now.
func expireIn(d time.Duration) string {
	return time.Now().UTC().Add(d).Format("20060102150405") + "000"
}

// refresh sends refreshInstance of scene with a fresh order.
func (s *session) refresh(ctx context.Context, id, scene string, expire string, o callOpts, codes ...koogallery.Code) (reply, error) {
	orderID, lineID, _ := s.order()
	return s.expect(ctx, "refreshInstance", map[string]any{"scene": scene, "orderId": orderID, "orderLineId": lineID,
		"instanceId": id, "expireTime": expire}, o, codes...)
}

// status sends updateInstanceStatus.
func (s *session) status(ctx context.Context, id, status string, o callOpts, codes ...koogallery.Code) (reply, error) {
	return s.expect(ctx, "updateInstanceStatus", map[string]any{"instanceId": id, "status": status}, o, codes...)
}

// productInfo is a plausible changeInstanceCheck target.
func productInfo() map[string]any {
	return map[string]any{"productId": "OFFI000000000002", "skuCode": "sku-demo-2", "productName": "demo"}
}

// unknownID returns an instance id Gallerist never issued.
func (s *session) unknownID() string { return "kg-unknown-" + uuidText() }

// stillThere checks through queryInstance that id is still a ready
// instance (no state change).
func (s *session) stillThere(ctx context.Context, id, why string) error {
	r, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": id}, callOpts{note: why}, koogallery.CodeSuccess)
	if err != nil {
		return err
	}
	return checkAppInfo(r, id, s.d.t.family.Name())
}

// absent checks through queryInstance that id was not created (000003).
func (s *session) absent(ctx context.Context, id, why string) error {
	_, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": id}, callOpts{note: why}, koogallery.CodeNotFound)
	return err
}

// rawRequest sends a request outside the protocol (wrong method, unknown
// path) and returns its status and Body-Sign check.
func (s *session) rawRequest(ctx context.Context, method, u string, body []byte, note string) (reply, error) {
	p := Prepared{Method: method, URL: u, Header: http.Header{"Content-Type": {"application/json;charset=utf8"}}}
	if body != nil {
		p.Body = body
	}
	r, err := s.send(ctx, p)
	st := Step{Activity: method + " " + redactQuery(u), Note: note, DurationMs: float64(r.took.Microseconds()) / 1000}
	if err != nil {
		st.Result, st.Evidence = "transport", err.Error()
	} else {
		st.Result = r.result()
		st.Evidence = "Body-Sign valid"
		if !r.BodySign.Valid {
			st.Evidence = "Body-Sign: " + r.BodySign.Error
		}
	}
	s.record(st)
	return r, err
}

// bodyWith returns a copy of the JSON object body with name set to value.
func bodyWith(body []byte, name string, value any) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return append(bytes.Clone(body), ' ')
	}
	m[name] = value
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}
