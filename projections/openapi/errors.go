package openapi

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrTransport marks a call that got no usable answer from any host: DNS,
// connect, TLS, timeout, a broken connection. Retrying later can help.
var ErrTransport = errors.New("openapi: transport failure")

// ErrMalformedAnswer is the cause (APIError.Err) of an answer whose body
// is not the JSON expected (e.g. an HTML page from a proxy).
var ErrMalformedAnswer = errors.New("openapi: malformed answer")

// ErrUnexpectedAnswer is the cause (APIError.Err) of a well-formed success
// answer that cannot be used, e.g. one about another order than the one
// asked for.
var ErrUnexpectedAnswer = errors.New("openapi: unexpected answer")

// APIError is an answer from KooGallery (or its API gateway) that is not a
// success. ResultCode and ResultMsg come from resultCode/resultMsg, or from
// the gateway's error_code/error_msg.
type APIError struct {
	// API is the API called.
	API API
	// HTTPStatus is the answer's status code.
	HTTPStatus int
	// ResultCode and ResultMsg are the answer's code and message, empty
	// when the body carried none.
	ResultCode string
	ResultMsg  string
	// Raw is the answer's body (at most maxBody bytes).
	Raw []byte
	// Err is an optional cause, e.g. ErrUnexpectedAnswer.
	Err error
}

// temporaryCodes are result codes that mean "try again later" whatever the
// HTTP status: documented internal errors (outgoing.md §9).
var temporaryCodes = map[string]bool{
	"MKT.0999": true, // system internal error (usage push table; assumed shared)
	"CBC.0999": true, // internal error (upload table)
	"91381036": true, // inner error (upload table, HTTP 200)
	"92020001": true, // other internal error (License B table); with HTTP 403 it is an authentication failure
}

// Temporary reports whether retrying later can help: HTTP 5xx or 429, a
// documented internal-error code (unless HTTP 403), or HTTP 200 with a
// malformed body (a gateway hiccup is likelier than a schema change, which
// tolerant decoding absorbs).
func (e *APIError) Temporary() bool {
	if e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests ||
		(temporaryCodes[e.ResultCode] && e.HTTPStatus != http.StatusForbidden) {
		return true
	}
	return e.HTTPStatus == http.StatusOK && errors.Is(e.Err, ErrMalformedAnswer)
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("openapi: %s: HTTP %d", e.API, e.HTTPStatus)
	if e.ResultCode != "" {
		msg += " " + e.ResultCode
	}
	if e.ResultMsg != "" {
		msg += ": " + truncate(e.ResultMsg, 200)
	}
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap returns Err.
func (e *APIError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is worth retrying later: a transport
// failure or a temporary APIError. Other errors (a permanent APIError, an
// invalid argument) are not.
func IsTemporary(err error) bool {
	if errors.Is(err, ErrTransport) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
