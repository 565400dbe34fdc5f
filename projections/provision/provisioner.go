// Package provision is the provisioning effect: an effects.Handler (driven
// by an effects.Runner, durable consumer "effect-provision") that, for
// every InstanceCreated event, asks a Provisioner to create the tenant at
// the vendor, then records the outcome through the instance service as an
// InstanceProvisioned event (with the buyer's app info) or an
// InstanceProvisioningFailed event (for a refusal). The ingress waits,
// bounded, for that event to answer newInstance 000000 (else 000004). The
// runner retries transient failures with backoff for about KooGallery's
// retry window, then parks the instance for an operator's re-drive.
//
// The Provisioner interface is the plug-in point: the Builtin provisioner
// (URLs from templates, credentials generated locally) makes the embedded
// default work with zero vendor code; a vendor webhook provisioner implements
// the same interface. A Resolver picks a provisioner per production route.
//
// Delivery is at least once. A provisioner is called with an idempotency key
// (Request.EventID) and may be called again for the same instance after a
// crash, a lost ack or a transient error; the first recorded outcome wins.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"unicode/utf8"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Request is what a provisioner is asked to create.
type Request struct {
	// EventID is the id of the InstanceCreated event: the same on every
	// attempt for this instance, so vendors can use it as idempotency key.
	EventID     string
	InstanceID  string
	OrderID     string
	OrderLineID string
	BusinessID  string
	// Route is the production path the newInstance arrived on.
	Route string
	// TestFlag is set for a debug request. The handler never provisions
	// those (a debug call changes nothing), so it is always false today.
	TestFlag bool
}

// Provisioner creates the tenant for an instance at the vendor.
//
// Provision returns the app info the buyer receives (plain text; the
// ingress encrypts userName and password). A *RefusedError (see Refuse) is a
// permanent refusal that is recorded and answered to KooGallery; any other
// error is transient and the request is retried with backoff. Provision
// must honour ctx (each attempt has a deadline), be safe for concurrent use,
// and be idempotent per Request.EventID.
type Provisioner interface {
	Provision(ctx context.Context, req Request) (instance.AppInfo, error)
}

// Resolver picks the provisioner for the production route a create arrived
// on (the envelope's Causation.Route). A nil result means the default.
type Resolver func(route string) Provisioner

// RefusedError is a permanent refusal to provision. Code is one of
// KooGallery's creation codes 000100–000107 (codes-and-rules.md §2.2);
// Message is the buyer-facing resultMsg (empty: the code's default text).
type RefusedError struct {
	Code    string
	Message string
}

// Refuse returns a *RefusedError: the buyer's newInstance is answered with
// code and msg, and the instance is failed.
func Refuse(code, msg string) error { return &RefusedError{Code: code, Message: msg} }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("provisioning refused (%s): %s", e.Code, e.Message)
}

// creationCodes are the codes a refusal may carry.
var creationCodes = []koogallery.Code{
	koogallery.CodeNoResource, koogallery.CodeMobileInvalid, koogallery.CodeEmailInvalid,
	koogallery.CodeAlreadyPurchased, koogallery.CodeProductInternal, koogallery.CodeBenefitSubscribed,
	koogallery.CodeSoldOut, koogallery.CodeEmailDomainExists,
}

// validate reports a refusal that KooGallery could not be answered with.
func (e *RefusedError) validate() error {
	for _, c := range creationCodes {
		if string(c) == e.Code {
			if n := utf8.RuneCountInString(e.Message); n > koogallery.MaxResultMsgLen {
				return fmt.Errorf("%w: refusal message has %d characters, at most %d", ErrAppInfoInvalid, n, koogallery.MaxResultMsgLen)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: refusal code %q is not a creation code (000100–000107)", ErrAppInfoInvalid, e.Code)
}

// Limits of AppInfo (saas-v2.md §10.1, auth.md §5.4 and §6).
const (
	// MaxURLLen bounds frontEndUrl and adminUrl, in characters.
	MaxURLLen = 512
	// MaxSecretBytes bounds the plaintext of userName and password in UTF-8
	// bytes: 79 bytes are the most whose AES-CBC ciphertext, Base64 plus the
	// 16-character IV, fits KooGallery's 128 characters.
	MaxSecretBytes = 79
	// MaxMemoLen bounds memo in characters after \uXXXX escaping.
	MaxMemoLen = 1024
)

var (
	// ErrAppInfoTooLong: a provisioner's app info exceeds a KooGallery
	// length limit. It is a vendor configuration error, never a refusal of
	// the buyer: the instance stays provisioning and the attempt is retried.
	ErrAppInfoTooLong = errors.New("provision: app info exceeds a KooGallery length limit")
	// ErrAppInfoInvalid: a provisioner's outcome is malformed (no or a
	// non-http(s) frontEndUrl, a refusal with an unknown code, ...). Like
	// ErrAppInfoTooLong it is a vendor error and is retried.
	ErrAppInfoInvalid = errors.New("provision: invalid provisioning outcome")
)

// ValidateAppInfo checks app info against KooGallery's rules: frontEndUrl
// present, frontEndUrl and adminUrl absolute http(s) URLs in ASCII of at
// most MaxURLLen characters, userName and password at most MaxSecretBytes
// UTF-8 bytes, memo at most MaxMemoLen characters once escaped. Errors wrap
// ErrAppInfoTooLong or ErrAppInfoInvalid.
func ValidateAppInfo(a instance.AppInfo) error {
	if a.FrontEndURL == "" {
		return fmt.Errorf("%w: frontEndUrl is mandatory", ErrAppInfoInvalid)
	}
	if err := checkURL("frontEndUrl", a.FrontEndURL); err != nil {
		return err
	}
	if a.AdminURL != "" {
		if err := checkURL("adminUrl", a.AdminURL); err != nil {
			return err
		}
	}
	if n := len(a.UserName); n > MaxSecretBytes {
		return fmt.Errorf("%w: userName is %d UTF-8 bytes, at most %d fit the 128-character ciphertext", ErrAppInfoTooLong, n, MaxSecretBytes)
	}
	if n := len(a.Password); n > MaxSecretBytes {
		return fmt.Errorf("%w: password is %d UTF-8 bytes, at most %d fit the 128-character ciphertext", ErrAppInfoTooLong, n, MaxSecretBytes)
	}
	if !utf8.ValidString(a.UserName) || !utf8.ValidString(a.Password) || !utf8.ValidString(a.Memo) {
		return fmt.Errorf("%w: userName, password and memo must be valid UTF-8", ErrAppInfoInvalid)
	}
	if n := escapedLen(a.Memo); n > MaxMemoLen {
		return fmt.Errorf("%w: memo is %d characters escaped, at most %d", ErrAppInfoTooLong, n, MaxMemoLen)
	}
	return nil
}

func checkURL(field, s string) error {
	if n := len(s); n > MaxURLLen {
		return fmt.Errorf("%w: %s is %d characters, at most %d", ErrAppInfoTooLong, field, n, MaxURLLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%w: %s %q must be printable ASCII without spaces", ErrAppInfoInvalid, field, s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAppInfoInvalid, field, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %s %q is not an absolute http(s) URL", ErrAppInfoInvalid, field, s)
	}
	return nil
}

// escapedLen is the length of s as a JSON string value (without quotes)
// after every non-ASCII character is written as \uXXXX (auth.md §6). It
// counts encoding/json's escapes, so it never underestimates.
func escapedLen(s string) int {
	b, _ := json.Marshal(s) // a valid string always marshals
	n := 0
	for _, r := range string(b[1 : len(b)-1]) {
		switch {
		case r < utf8.RuneSelf:
			n++
		case r > 0xffff:
			n += 12 // a surrogate pair
		default:
			n += 6
		}
	}
	return n
}
