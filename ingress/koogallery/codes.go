package koogallery

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a KooGallery result code, the six-digit resultCode of every answer
// (codes-and-rules.md §2).
type Code string

// Common result codes (codes-and-rules.md §2.1).
const (
	// CodeSuccess: done, or an idempotent repeat.
	CodeSuccess Code = "000000"
	// CodeAuthFailed: signature or authToken mismatch or missing, V2 timestamp
	// outside the window, V2 nonce replayed.
	CodeAuthFailed Code = "000001"
	// CodeInvalidParam: missing or malformed field, unknown activity, body not
	// JSON, and a changeInstanceCheck refusal.
	CodeInvalidParam Code = "000002"
	// CodeNotFound: unknown instanceId (License B: unknown license).
	CodeNotFound Code = "000003"
	// CodeProcessing: the request is being processed asynchronously.
	CodeProcessing Code = "000004"
	// CodeInternal: any other internal error.
	CodeInternal Code = "000005"
)

// Creation codes of SaaS V2 (and the newer SaaS V1 table), codes-and-rules.md
// §2.2 and §2.3.
const (
	// CodeNoResource: no instance resource available (also used for upgrades).
	CodeNoResource Code = "000100"
	// CodeMobileInvalid: the mobile number is empty or already exists.
	CodeMobileInvalid Code = "000101"
	// CodeEmailInvalid: the e-mail address is empty or already exists.
	CodeEmailInvalid Code = "000102"
	// CodeAlreadyPurchased: the product cannot be purchased twice.
	CodeAlreadyPurchased Code = "000103"
	// CodeProductInternal: the product's internal service failed.
	CodeProductInternal Code = "000104"
	// CodeBenefitSubscribed: the account already holds the entitlement.
	CodeBenefitSubscribed Code = "000105"
	// CodeSoldOut: the product's resources are sold out.
	CodeSoldOut Code = "000106"
	// CodeEmailDomainExists: the SaaS e-mail domain already exists.
	CodeEmailDomainExists Code = "000107"
)

// getLicenseAsync codes of License C (codes-and-rules.md §2.6).
const (
	// CodeLicenseQuota: the instance's currently effective order has
	// insufficient License quota.
	CodeLicenseQuota Code = "000900"
	// CodeLicenseOutsideValidity: the application is outside the validity
	// period of the current order.
	CodeLicenseOutsideValidity Code = "000901"
	// CodeLicenseExpiryRequired: a period-billed License must carry an expiry
	// date.
	CodeLicenseExpiryRequired Code = "000902"
	// CodeLicenseDeviceRequired: the application must carry a device
	// fingerprint or hardware ID.
	CodeLicenseDeviceRequired Code = "000903"
)

// MaxResultMsgLen is the documented maximum length of resultMsg in
// characters (String, 255).
const MaxResultMsgLen = 255

// defaultMessages is the one table of result codes and their default
// resultMsg texts (codes-and-rules.md §2.7). It is never modified.
var defaultMessages = map[Code]string{
	CodeSuccess:                "success.",
	CodeAuthFailed:             "token is invalid",
	CodeInvalidParam:           "param is invalid",
	CodeNotFound:               "instance is invalid",
	CodeProcessing:             "request is processing",
	CodeInternal:               "other inner error",
	CodeNoResource:             "no available resource",
	CodeMobileInvalid:          "Mobile number not specified or already exists",
	CodeEmailInvalid:           "Email address is not specified or already exists",
	CodeAlreadyPurchased:       "Product already purchased",
	CodeProductInternal:        "Internal service error",
	CodeBenefitSubscribed:      "Account has already subscribed to benefits",
	CodeSoldOut:                "Product resources sold out.",
	CodeEmailDomainExists:      "SaaS email domain already exists.",
	CodeLicenseQuota:           "The currently effective order of the instance has insufficient License quota",
	CodeLicenseOutsideValidity: "The application must fall within the validity period of the current order",
	CodeLicenseExpiryRequired:  "A period-billed License must carry an expiry date",
	CodeLicenseDeviceRequired:  "The application must carry a device fingerprint or hardware ID",
}

// Known reports whether c is one of the result codes of codes-and-rules.md §2.
func (c Code) Known() bool {
	_, ok := defaultMessages[c]
	return ok
}

// DefaultMessage returns the default resultMsg for c (codes-and-rules.md
// §2.7), or "unknown result code" for a code not in the table.
func (c Code) DefaultMessage() string {
	if m, ok := defaultMessages[c]; ok {
		return m
	}
	return "unknown result code"
}

// String returns the code's six digits.
func (c Code) String() string { return string(c) }

// Error is a protocol failure that maps to a result code. The HTTP layer
// answers Code with Message(); Err carries internal detail for logs only and
// is never sent to KooGallery.
type Error struct {
	// Code is the resultCode to answer.
	Code Code
	// Field names the offending request field for CodeInvalidParam, if any.
	Field string
	// Msg is the resultMsg; empty means Code.DefaultMessage().
	Msg string
	// Err is the underlying cause, if any (for logs and errors.Is/As).
	Err error
}

// Sentinels for errors.Is. An *Error matches a sentinel when the codes are
// equal, whatever its Field, Msg and Err: errors.Is(err, ErrAuthFailed) is
// true for every authentication failure, wrapped or not.
var (
	ErrAuthFailed   = &Error{Code: CodeAuthFailed}
	ErrInvalidParam = &Error{Code: CodeInvalidParam}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrProcessing   = &Error{Code: CodeProcessing}
	ErrInternal     = &Error{Code: CodeInternal}
	ErrNoResource   = &Error{Code: CodeNoResource}
)

// Message returns the resultMsg to send: Msg, or the code's default message
// when Msg is empty, cut to MaxResultMsgLen characters.
func (e *Error) Message() string {
	m := e.Msg
	if m == "" {
		m = e.Code.DefaultMessage()
	}
	return truncateRunes(m, MaxResultMsgLen)
}

// Error implements error: "koogallery: <code> <message>[: <cause>]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("koogallery: ")
	b.WriteString(string(e.Code))
	b.WriteByte(' ')
	m := e.Msg
	if m == "" {
		m = e.Code.DefaultMessage()
	}
	b.WriteString(m)
	if e.Err != nil {
		if c := e.Err.Error(); !strings.Contains(m, c) {
			b.WriteString(": ")
			b.WriteString(c)
		}
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// Invalid returns a CodeInvalidParam error for field. The message names the
// field: "param is invalid: <field> <detail>", where detail is
// fmt.Sprintf(format, args...); when detail already contains the field name
// it is used as is ("param is invalid: <detail>"). A %w verb in format wraps
// its argument as Err.
//
//	Invalid("orderId", "is mandatory")            // param is invalid: orderId is mandatory
//	Invalid("status", "status %q is unknown", s)  // param is invalid: status "X" is unknown
func Invalid(field, format string, args ...any) *Error {
	detailErr := fmt.Errorf(format, args...)
	detail := detailErr.Error()
	var msg string
	switch {
	case field == "" && detail == "":
		msg = CodeInvalidParam.DefaultMessage()
	case field == "":
		msg = CodeInvalidParam.DefaultMessage() + ": " + detail
	case detail == "":
		msg = CodeInvalidParam.DefaultMessage() + ": " + field
	case strings.Contains(detail, field):
		msg = CodeInvalidParam.DefaultMessage() + ": " + detail
	default:
		msg = CodeInvalidParam.DefaultMessage() + ": " + field + " " + detail
	}
	return &Error{Code: CodeInvalidParam, Field: field, Msg: msg, Err: errors.Unwrap(detailErr)}
}

// AuthFailed returns a CodeAuthFailed error. A non-empty reason is appended
// to the default message ("token is invalid: <reason>"); it must not contain
// key material.
func AuthFailed(reason string) *Error {
	msg := CodeAuthFailed.DefaultMessage()
	if reason != "" {
		msg += ": " + reason
	}
	return &Error{Code: CodeAuthFailed, Msg: msg}
}

// NotFound returns a CodeNotFound error with msg as resultMsg (the default
// "instance is invalid" when msg is empty).
func NotFound(msg string) *Error {
	return &Error{Code: CodeNotFound, Msg: msg}
}

// Refused returns an error with an explicit code and resultMsg, e.g. a
// creation code such as CodeSoldOut, or CodeInvalidParam for a
// changeInstanceCheck refusal. An empty msg means the code's default message.
func Refused(code Code, msg string) *Error {
	return &Error{Code: code, Msg: msg}
}

// CodeOf maps an error to its result code: nil is CodeSuccess, an *Error
// anywhere in the chain gives its Code, and anything else is CodeInternal.
func CodeOf(err error) Code {
	if err == nil {
		return CodeSuccess
	}
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Code
	}
	return CodeInternal
}

// MessageOf returns the resultMsg for err: the success text for nil, the
// *Error's Message(), or the CodeInternal default text for any other error
// (internal error text is never sent to KooGallery).
func MessageOf(err error) string {
	if err == nil {
		return CodeSuccess.DefaultMessage()
	}
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Message()
	}
	return CodeInternal.DefaultMessage()
}

// truncateRunes cuts s to at most n characters.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
