// Package licensetoken is Gallerist's built-in license format: a JSON
// license signed with Ed25519, in a self-contained text form that a
// vendor's software verifies offline with the vendor's public key.
//
// The package uses the standard library only and imports nothing else from
// Gallerist, so that vendors can import it into their own software.
//
// # Text form
//
// A license text is two base64url segments (RFC 4648 §5, no padding)
// joined by one ".":
//
//	<payload>.<signature>
//
// The payload segment is the base64url encoding of the license JSON
// (below). The signature segment is the base64url encoding of the 64-byte
// Ed25519 signature (RFC 8032) of the ASCII bytes SigningContext + payload
// segment, that is of "gallerist-license-v1." followed by the payload
// segment exactly as it appears in the text. A verifier checks the
// signature before it decodes the payload.
//
// Only the characters A–Z a–z 0–9 - _ and the one "." may appear; leading
// and trailing white space (e.g. the newline at the end of a license file)
// is ignored. A text is at most MaxTextLen bytes.
//
// # Payload
//
// A JSON object, UTF-8, with these members (absent when empty, except the
// required ones):
//
//	v           number  format version, 1 (required)
//	licenseId   string  the license's id (required)
//	instanceId  string  the KooGallery instance (or authorization code)
//	orderId     string  the KooGallery order
//	productId   string  the product
//	skuCode     string  the specification
//	customerId  string  the buyer's Huawei Cloud account id
//	issuedAt    string  issue time (required)
//	notBefore   string  start of validity (optional; none = from any time)
//	notAfter    string  end of validity, exclusive (required)
//	features    object  string → string, the vendor's own entitlements
//
// Times are RFC 3339 in UTC to the second, exactly "2006-01-02T15:04:05Z".
// A license is valid at t when notBefore ≤ t (if set) and t < notAfter.
// Members this version does not know make the license malformed: an old
// verifier never silently ignores a restriction added later.
//
// Sign is deterministic: the same License and key always give the same text.
package licensetoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the payload format version this package writes and reads.
const Version = 1

// SigningContext prefixes the payload segment in the signed message, so that
// a signature made for another purpose with the same key never verifies as
// a license.
const SigningContext = "gallerist-license-v1."

// MaxTextLen is the longest license text Verify reads.
const MaxTextLen = 64 << 10

// timeLayout is the one time form of the payload.
const timeLayout = "2006-01-02T15:04:05Z"

// Errors. Verify and Sign wrap them with details; test with errors.Is.
var (
	// ErrMalformed: the text is not a license of this format.
	ErrMalformed = errors.New("licensetoken: malformed license")
	// ErrBadSignature: the signature does not verify with the key: the
	// license was changed, or signed with another key.
	ErrBadSignature = errors.New("licensetoken: signature does not verify")
	// ErrExpired: the license is authentic but its notAfter has passed.
	ErrExpired = errors.New("licensetoken: license expired")
	// ErrNotYetValid: the license is authentic but its notBefore is ahead.
	ErrNotYetValid = errors.New("licensetoken: license not yet valid")
	// ErrBadKey: the key has the wrong size.
	ErrBadKey = errors.New("licensetoken: invalid key")
	// ErrInvalidLicense: Sign was given a license it cannot encode.
	ErrInvalidLicense = errors.New("licensetoken: invalid license")
)

// License is what a license grants. Times are kept to the second in UTC.
type License struct {
	ID         string
	InstanceID string
	OrderID    string
	ProductID  string
	SKUCode    string
	CustomerID string
	IssuedAt   time.Time
	// NotBefore is optional: the zero time means no start restriction.
	NotBefore time.Time
	// NotAfter is the end of validity, exclusive; required.
	NotAfter time.Time
	Features map[string]string
}

// CheckTime reports whether the license is valid at now: nil, or an error
// wrapping ErrNotYetValid or ErrExpired.
func (l License) CheckTime(now time.Time) error {
	if !l.NotBefore.IsZero() && now.Before(l.NotBefore) {
		return fmt.Errorf("%w: valid from %s, now %s", ErrNotYetValid, l.NotBefore.Format(timeLayout), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(l.NotAfter) {
		return fmt.Errorf("%w: valid until %s, now %s", ErrExpired, l.NotAfter.Format(timeLayout), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// payload is the wire form; field order is the JSON member order.
type payload struct {
	V          int               `json:"v"`
	ID         string            `json:"licenseId"`
	InstanceID string            `json:"instanceId,omitempty"`
	OrderID    string            `json:"orderId,omitempty"`
	ProductID  string            `json:"productId,omitempty"`
	SKUCode    string            `json:"skuCode,omitempty"`
	CustomerID string            `json:"customerId,omitempty"`
	IssuedAt   string            `json:"issuedAt"`
	NotBefore  string            `json:"notBefore,omitempty"`
	NotAfter   string            `json:"notAfter"`
	Features   map[string]string `json:"features,omitempty"`
}

var enc = base64.RawURLEncoding

// Sign returns the text form of l signed with priv. Times are truncated to
// the second and converted to UTC. It fails with ErrBadKey for a key of the
// wrong size and ErrInvalidLicense for a license without ID, IssuedAt or
// NotAfter, with NotAfter not after IssuedAt and NotBefore, with a time
// outside the years 1–9999, or with a string that is not valid UTF-8.
func Sign(priv ed25519.PrivateKey, l License) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(priv), ed25519.PrivateKeySize)
	}
	p, err := toPayload(l)
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidLicense, err)
	}
	seg := enc.EncodeToString(js)
	sig := ed25519.Sign(priv, []byte(SigningContext+seg))
	out := make([]byte, 0, len(seg)+1+enc.EncodedLen(len(sig)))
	out = append(out, seg...)
	out = append(out, '.')
	return enc.AppendEncode(out, sig), nil
}

func toPayload(l License) (payload, error) {
	p := payload{V: Version, ID: l.ID, InstanceID: l.InstanceID, OrderID: l.OrderID, ProductID: l.ProductID,
		SKUCode: l.SKUCode, CustomerID: l.CustomerID}
	if l.ID == "" {
		return p, fmt.Errorf("%w: no license id", ErrInvalidLicense)
	}
	if l.IssuedAt.IsZero() || l.NotAfter.IsZero() {
		return p, fmt.Errorf("%w: issuedAt and notAfter are required", ErrInvalidLicense)
	}
	iat, nbf, exp := norm(l.IssuedAt), norm(l.NotBefore), norm(l.NotAfter)
	for _, t := range []time.Time{iat, nbf, exp} {
		if !t.IsZero() && (t.Year() < 1 || t.Year() > 9999) {
			return p, fmt.Errorf("%w: time %v outside the years 1-9999", ErrInvalidLicense, t)
		}
	}
	if !exp.After(iat) || (!nbf.IsZero() && !exp.After(nbf)) {
		return p, fmt.Errorf("%w: notAfter must be after issuedAt and notBefore", ErrInvalidLicense)
	}
	p.IssuedAt, p.NotAfter = iat.Format(timeLayout), exp.Format(timeLayout)
	if !nbf.IsZero() {
		p.NotBefore = nbf.Format(timeLayout)
	}
	strs := []string{p.ID, p.InstanceID, p.OrderID, p.ProductID, p.SKUCode, p.CustomerID}
	if len(l.Features) > 0 {
		p.Features = make(map[string]string, len(l.Features))
		for k, v := range l.Features {
			p.Features[k] = v
			strs = append(strs, k, v)
		}
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			return p, fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidLicense, s)
		}
	}
	return p, nil
}

func norm(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

// Verify checks text with the public key pub and returns the license it
// carries, valid at now.
//
// The errors wrap ErrBadKey (pub has the wrong size), ErrMalformed,
// ErrBadSignature, ErrNotYetValid or ErrExpired, checked in that order. For
// ErrNotYetValid and ErrExpired the license is authentic and is returned
// with the error, e.g. to tell the user when it expired; for every other
// error the License is zero.
func Verify(pub ed25519.PublicKey, text []byte, now time.Time) (License, error) {
	if len(pub) != ed25519.PublicKeySize {
		return License{}, fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadKey, len(pub), ed25519.PublicKeySize)
	}
	if len(text) > MaxTextLen {
		return License{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(text), MaxTextLen)
	}
	text = bytes.TrimSpace(text)
	seg, sigSeg, found := bytes.Cut(text, []byte{'.'})
	if !found || len(seg) == 0 || !alphabet(seg) || !alphabet(sigSeg) {
		return License{}, fmt.Errorf("%w: not <payload>.<signature> in base64url", ErrMalformed)
	}
	sig, err := enc.Strict().DecodeString(string(sigSeg))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return License{}, fmt.Errorf("%w: the signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	js, err := enc.Strict().DecodeString(string(seg))
	if err != nil {
		return License{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	msg := make([]byte, 0, len(SigningContext)+len(seg))
	msg = append(append(msg, SigningContext...), seg...)
	if !ed25519.Verify(pub, msg, sig) {
		return License{}, ErrBadSignature
	}
	l, err := parsePayload(js)
	if err != nil {
		return License{}, err
	}
	if err := l.CheckTime(now); err != nil {
		return l, err
	}
	return l, nil
}

// alphabet reports whether b holds only base64url characters.
func alphabet(b []byte) bool {
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func parsePayload(js []byte) (License, error) {
	if !utf8.Valid(js) {
		return License{}, fmt.Errorf("%w: payload is not UTF-8", ErrMalformed)
	}
	var p payload
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return License{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return License{}, fmt.Errorf("%w: data after the payload object", ErrMalformed)
	}
	if p.V != Version {
		return License{}, fmt.Errorf("%w: format version %d, this verifier reads %d", ErrMalformed, p.V, Version)
	}
	if p.ID == "" {
		return License{}, fmt.Errorf("%w: no licenseId", ErrMalformed)
	}
	l := License{ID: p.ID, InstanceID: p.InstanceID, OrderID: p.OrderID, ProductID: p.ProductID,
		SKUCode: p.SKUCode, CustomerID: p.CustomerID}
	var err error
	if l.IssuedAt, err = parseTime("issuedAt", p.IssuedAt, true); err != nil {
		return License{}, err
	}
	if l.NotBefore, err = parseTime("notBefore", p.NotBefore, false); err != nil {
		return License{}, err
	}
	if l.NotAfter, err = parseTime("notAfter", p.NotAfter, true); err != nil {
		return License{}, err
	}
	if !l.NotAfter.After(l.IssuedAt) || (!l.NotBefore.IsZero() && !l.NotAfter.After(l.NotBefore)) {
		return License{}, fmt.Errorf("%w: notAfter is not after issuedAt and notBefore", ErrMalformed)
	}
	if len(p.Features) > 0 {
		l.Features = p.Features
	}
	return l, nil
}

func parseTime(name, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, fmt.Errorf("%w: no %s", ErrMalformed, name)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("%w: %s %q is not YYYY-MM-DDTHH:MM:SSZ", ErrMalformed, name, truncate(s))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// EncodePublicKey returns pub in base64url without padding (43 characters),
// a form easy to embed in a vendor's software.
func EncodePublicKey(pub ed25519.PublicKey) string { return enc.EncodeToString(pub) }

// ParsePublicKey reads a key written by EncodePublicKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	b, err := enc.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize || !alphabet([]byte(s)) {
		return nil, fmt.Errorf("%w: not %d bytes of base64url", ErrBadKey, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
