// Package standin is a local stand-in for KooGallery's open APIs (the calls
// of spec/outgoing.md), for tests and for a local KooGallery emulator. It
// checks requests the way the API gateway does (AK/SK SDK-HMAC-SHA256
// signature within a 15-minute skew, auth.md §8), serves the documented
// mock orders (outgoing.md §2.3) plus configured ones, records every request
// and can be told to fail the next calls.
//
// Each API lives in its own file (queryorder.go, upload.go, license.go) and registers its
// route in New; the gateway behaviour (routing, authentication, recording,
// injected failures) is shared, in this file.
//
// Answers whose exact form KooGallery does not publish are guesses, marked
// as such where they are defined (error codes and the order fields beyond
// the documented ones).
package standin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Gateway-level error codes. KooGallery's API gateway answers errors with
// error_code/error_msg (outgoing.md §9: "APIGW.*"); the codes below follow
// Huawei API Gateway's numbering as far as known and are otherwise guesses.
const (
	// CodeAPINotFound: no API at this method and path (HTTP 404).
	CodeAPINotFound = "APIGW.0101"
	// CodeAuthFailed: the AK/SK signature is missing, malformed, stale, from
	// an unknown AK or wrong (HTTP 401).
	CodeAuthFailed = "APIGW.0301"
	// CodeInjected: a failure injected by FailNext (the stand-in's own code).
	CodeInjected = "STANDIN.0001"
)

// maxBody bounds a request body.
const maxBody = 8 << 20

// Config configures a Server.
type Config struct {
	// Credentials maps each accepted AK to its SK.
	Credentials map[string]string
	// Orders are served besides the documented mock orders (and replace a
	// mock order with the same id), keyed by orderId; an Order's empty
	// OrderID takes the key.
	Orders map[string]Order
	// Clock is the gateway's clock for the signature skew; nil means
	// time.Now.
	Clock func() time.Time
}

// Recorded is one request as the stand-in received and answered it.
type Recorded struct {
	Time     time.Time
	Method   string
	Host     string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	// AK is the Access of the Authorization header, when it parsed.
	AK string
	// Verified reports that the signature was checked and valid.
	Verified bool
	// AuthError says why authentication failed.
	AuthError string
	// Status is the HTTP status answered.
	Status int
}

// Server is the stand-in; it implements http.Handler and is safe for
// concurrent use.
type Server struct {
	creds map[string]string
	clock func() time.Time
	mux   *http.ServeMux
	lic   *licenseState // License B codes and calls (license.go)
	up    *uploadState  // upload events and uploads (upload.go)

	mu         sync.Mutex
	orders     map[string]Order
	requests   []Recorded
	failN      int
	failStatus int
}

// New builds a stand-in.
func New(cfg Config) *Server {
	s := &Server{
		creds:  make(map[string]string, len(cfg.Credentials)),
		clock:  cfg.Clock,
		mux:    http.NewServeMux(),
		orders: map[string]Order{},
		lic:    newLicenseState(),
		up:     newUploadState(),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	for ak, sk := range cfg.Credentials {
		s.creds[ak] = sk
	}
	for _, o := range MockOrders() {
		s.orders[o.OrderID] = o
	}
	for id, o := range cfg.Orders {
		if o.OrderID == "" {
			o.OrderID = id
		}
		s.orders[id] = o.clone()
	}
	// One line per API; each API's file defines its handler.
	s.mux.HandleFunc("GET "+PathQueryOrder, s.queryOrder)
	s.mux.HandleFunc("POST "+PathUpload, s.upload)
	s.mux.HandleFunc(PathLicenseActivate, s.licenseActivate) // any method: 405 is the API's own answer (95000002)
	s.mux.HandleFunc(PathLicenseHeartbeat, s.licenseHeartbeat)
	s.mux.HandleFunc(PathLicenseUsage, s.licenseUsage)
	return s
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.requests))
	copy(out, s.requests)
	return out
}

// Reset forgets the recorded requests and pending injected failures.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.failN, s.failStatus = nil, 0, 0
}

// FailNext answers the next n requests, before routing and authentication,
// with HTTP status and a gateway-style error body (code CodeInjected), as
// an overloaded or failing gateway would. It replaces any failures still
// pending.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = max(n, 0), status
}

// AddOrder serves o (replacing an order with the same id).
func (s *Server) AddOrder(o Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.OrderID] = o.clone()
}

func (s *Server) order(id string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	return o.clone(), ok
}

// ServeHTTP answers like KooGallery's API gateway: injected failures first,
// then routing (404 for an unknown API), then AK/SK authentication (401),
// then the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Recorded{
		Time: s.clock(), Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(),
	}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		rec.Status = sw.status
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
	}()

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeGatewayError(sw, http.StatusRequestEntityTooLarge, "APIGW.0201", "request body unreadable or too large")
		return
	}
	rec.Body = body
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	inject := s.failN > 0
	status := s.failStatus
	if inject {
		s.failN--
	}
	s.mu.Unlock()
	if inject {
		writeGatewayError(sw, status, CodeInjected, "injected failure")
		return
	}

	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeGatewayError(sw, http.StatusNotFound, CodeAPINotFound, "The API does not exist or has not been published in the environment")
		return
	}

	ak, verr := s.authenticate(r, body)
	rec.AK = ak
	if verr != nil {
		rec.AuthError = verr.Error()
		writeGatewayError(sw, http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: "+verr.Error())
		return
	}
	rec.Verified = true
	s.mux.ServeHTTP(sw, r)
}

// authenticate checks the AK/SK signature; ak is the Access named in the
// header when it parsed.
func (s *Server) authenticate(r *http.Request, body []byte) (ak string, err error) {
	auth, err := koogallery.ParseAKSKAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "", errors.New("the Authorization header is missing or malformed")
	}
	sk, ok := s.creds[auth.Access]
	if !ok {
		return auth.Access, errors.New("unknown AK")
	}
	if _, err := koogallery.VerifyAKSK(sk, r, body, s.clock(), koogallery.DefaultAKSKSkew); err != nil {
		return auth.Access, errors.New(koogallery.MessageOf(err))
	}
	return auth.Access, nil
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// gatewayError is the API gateway's error body.
type gatewayError struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	RequestID string `json:"request_id"`
}

func writeGatewayError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, gatewayError{ErrorCode: code, ErrorMsg: msg, RequestID: requestID()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error_code":"APIGW.0000","error_msg":"stand-in could not encode its answer"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
