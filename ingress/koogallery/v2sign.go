package koogallery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"
	"net/url"
	"strings"
	"time"
)

// DefaultV2Window is the default V2 freshness window: a request is accepted
// when its timestamp is within ±60 s of the server clock (auth.md §2.4).
const DefaultV2Window = 60 * time.Second

// V2Inner returns the keyed inner hash of the V2 signature:
// lowercase(hex(HMAC-SHA256(key, payload))) (auth.md §2.2).
func V2Inner(key, payload []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	return hex.EncodeToString(mac.Sum(nil))
}

// V2InnerPlainSHA256 returns the inner hash of form d:
// lowercase(hex(SHA-256(payload))).
func V2InnerPlainSHA256(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// V2CanonicalRequest returns key + nonce + timestamp + inner, the string the
// outer HMAC of the V2 signature covers (auth.md §2.2). It contains the key:
// never log it.
func V2CanonicalRequest(key []byte, nonce, timestamp, inner string) string {
	return string(key) + nonce + timestamp + inner
}

// SignV2 returns the V2 signature, lower-case hex of
// HMAC-SHA256(key, key + nonce + timestamp + lowercase(hex(HMAC-SHA256(key, payload)))),
// for a RequestPayload built by CanonicalPayload (auth.md §2.2). timestamp
// and nonce are the literal query values.
func SignV2(key []byte, nonce, timestamp string, payload []byte) string {
	mac := hmac.New(sha256.New, key)
	var inner [2 * sha256.Size]byte
	var sum [sha256.Size]byte
	mac.Write(payload)
	hex.Encode(inner[:], mac.Sum(sum[:0]))
	return hex.EncodeToString(v2Outer(mac, key, nonce, timestamp, inner[:], sum[:0]))
}

// SignV2PlainSHA256 is SignV2 with the plain SHA-256 inner hash of form d:
// HMAC-SHA256(key, key + nonce + timestamp + lowercase(hex(SHA-256(payload)))).
func SignV2PlainSHA256(key []byte, nonce, timestamp string, payload []byte) string {
	mac := hmac.New(sha256.New, key)
	var inner [2 * sha256.Size]byte
	sum := sha256.Sum256(payload)
	hex.Encode(inner[:], sum[:])
	return hex.EncodeToString(v2Outer(mac, key, nonce, timestamp, inner[:], sum[:0]))
}

// v2Outer computes HMAC(key, key+nonce+timestamp+inner) with mac (an HMAC
// keyed with key) and appends it to out.
func v2Outer(mac hash.Hash, key []byte, nonce, timestamp string, inner, out []byte) []byte {
	var buf [256]byte // nonce + timestamp + inner, usually on the stack
	tail := append(append(append(buf[:0], nonce...), timestamp...), inner...)
	mac.Reset()
	mac.Write(key)
	mac.Write(tail)
	return mac.Sum(out)
}

// SignV2Request signs body as KooGallery does and returns the query
// parameters to send: `signature` (64 upper-case hex characters, like the
// documented examples), `timestamp` (ts as Unix milliseconds) and `nonce`.
// The payload is form (a). A body that is not a JSON object (which a
// verifier rejects with 000002 before looking at the signature) is signed
// over its raw bytes. Used by the `gallerist sign` command, the emulator and
// tests.
func SignV2Request(key []byte, body []byte, ts time.Time, nonce string) url.Values {
	q, err := SignV2RequestForm(key, body, ts, nonce, FormA)
	if err != nil {
		tsText := FormatV2Timestamp(ts)
		return v2Query(strings.ToUpper(SignV2(key, nonce, tsText, body)), tsText, nonce)
	}
	return q
}

// SignV2RequestForm is SignV2Request with an explicit canonical form, for
// emulating signers that use form (b), (c) or (d). It fails when body is not
// a JSON object or f is unknown.
func SignV2RequestForm(key []byte, body []byte, ts time.Time, nonce string, f Form) (url.Values, error) {
	if !f.Valid() {
		return nil, errors.New("koogallery: sign V2 request: unknown form " + string(f))
	}
	payload, err := CanonicalPayload(body, f)
	if err != nil {
		return nil, err
	}
	tsText := FormatV2Timestamp(ts)
	var sig string
	if f.PlainSHA256() {
		sig = SignV2PlainSHA256(key, nonce, tsText, payload)
	} else {
		sig = SignV2(key, nonce, tsText, payload)
	}
	return v2Query(strings.ToUpper(sig), tsText, nonce), nil
}

func v2Query(sig, ts, nonce string) url.Values {
	return url.Values{"signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
}

// NewNonce returns a fresh V2 nonce: 64 upper-case hex characters from
// crypto/rand, the format of KooGallery's examples.
func NewNonce() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// V2Verifier checks the V2 request signature of SaaS V2, License B and
// License C requests (auth.md §2). A V2Verifier is safe for concurrent use
// as long as its fields are not changed.
type V2Verifier struct {
	// Keys are the access keys accepted for the endpoint, current key first;
	// a second entry lets a rotated key keep working. Keys are the decoded
	// bytes (after the optional Base64 decoding of auth.md §1).
	Keys [][]byte
	// Window is the allowed distance between the request timestamp and Now,
	// in both directions. Zero or negative means DefaultV2Window (60 s).
	Window time.Duration
	// AllowPlainSHA256 enables the forms d-a, d-b and d-c (plain SHA-256
	// inner hash). Off by default.
	AllowPlainSHA256 bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// V2Verified describes a request that passed Verify.
type V2Verified struct {
	// KeyIndex is the index in Keys of the key that matched.
	KeyIndex int
	// Form is the canonical form that matched (log field and metric label).
	Form Form
	// Timestamp is the parsed request timestamp.
	Timestamp time.Time
	// Nonce is the request nonce, for the replay check.
	Nonce string
}

// errNoKeys is the cause of the CodeInternal error of a verifier without
// keys.
var errNoKeys = errors.New("koogallery: V2Verifier has no keys configured")

// v2Forms is the order in which forms are tried.
var v2Forms = [...]Form{FormA, FormB, FormC, FormDA, FormDB, FormDC}

// Verify checks the V2 signature of a request, following steps 1–6 of the
// validation order of auth.md §2.5:
//
//  1. `timestamp` missing or not a decimal integer: CodeInvalidParam ("timestamp");
//  2. `timestamp` outside ±Window of Now: CodeAuthFailed;
//  3. `nonce` missing: CodeInvalidParam ("nonce");
//  4. `signature` missing: CodeAuthFailed;
//  5. body not a JSON object: CodeInvalidParam ("body");
//  6. no form matches with any key: CodeAuthFailed.
//
// In step 6 the forms are tried in the order a, b, c, then (only when
// AllowPlainSHA256) d-a, d-b, d-c, and for each form every key, Keys[0]
// first; the first match wins. The received hex is compared with the
// expected MAC case-insensitively and in constant time. Only `signature`,
// `timestamp` and `nonce` are read from query; other parameters are ignored.
//
// Step 7 is NOT done here: the caller must reject a nonce that was already
// accepted within at least 2×Window (CodeAuthFailed), and must record the
// nonce only after Verify succeeded, so forged requests cannot use up
// nonces. A verifier without keys is a configuration error (CodeInternal).
func (v *V2Verifier) Verify(query url.Values, body []byte) (V2Verified, error) {
	if len(v.Keys) == 0 {
		return V2Verified{}, &Error{Code: CodeInternal, Err: errNoKeys}
	}
	// Step 1.
	tsText := query.Get("timestamp")
	ts, err := ParseV2Timestamp(tsText)
	if err != nil {
		return V2Verified{}, err
	}
	// Step 2.
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	window := v.Window
	if window <= 0 {
		window = DefaultV2Window
	}
	if d := now().Sub(ts); d > window || d < -window {
		return V2Verified{}, AuthFailed("timestamp is outside the allowed window")
	}
	// Step 3.
	nonce := query.Get("nonce")
	if nonce == "" {
		return V2Verified{}, Invalid("nonce", "is missing")
	}
	// Step 4.
	sigText := query.Get("signature")
	if sigText == "" {
		return V2Verified{}, AuthFailed("signature is missing")
	}
	// Step 5.
	cb, err := parseCanonBody(body)
	if err != nil {
		return V2Verified{}, err
	}
	// Step 6.
	var want [sha256.Size]byte
	if !decodeHex32(want[:], sigText) {
		return V2Verified{}, AuthFailed("signature does not match")
	}
	forms := v2Forms[:3]
	if v.AllowPlainSHA256 {
		forms = v2Forms[:]
	}
	var payloads [3][]byte
	var macs [4]hash.Hash
	macSlice := macs[:0]
	if len(v.Keys) > len(macs) {
		macSlice = make([]hash.Hash, 0, len(v.Keys))
	}
	for _, key := range v.Keys {
		macSlice = append(macSlice, hmac.New(sha256.New, key))
	}
	var inner [2 * sha256.Size]byte
	var sum [sha256.Size]byte
	for _, f := range forms {
		pf := f.Payload()
		idx := int(pf[0] - 'a')
		if payloads[idx] == nil {
			var p []byte
			switch pf {
			case FormA:
				p, err = cb.formA()
			case FormB:
				p, err = cb.formB()
			default:
				p, err = compactObject(body)
			}
			if err != nil {
				return V2Verified{}, err
			}
			payloads[idx] = p
		}
		payload := payloads[idx]
		if f.PlainSHA256() {
			s := sha256.Sum256(payload)
			hex.Encode(inner[:], s[:])
		}
		for ki, key := range v.Keys {
			mac := macSlice[ki]
			if !f.PlainSHA256() {
				mac.Reset()
				mac.Write(payload)
				hex.Encode(inner[:], mac.Sum(sum[:0]))
			}
			got := v2Outer(mac, key, nonce, tsText, inner[:], sum[:0])
			if subtle.ConstantTimeCompare(got, want[:]) == 1 {
				return V2Verified{KeyIndex: ki, Form: f, Timestamp: ts, Nonce: nonce}, nil
			}
		}
	}
	return V2Verified{}, AuthFailed("signature does not match")
}

// decodeHex32 decodes exactly 64 hex digits of either case into dst (32
// bytes) and reports whether s had that shape.
func decodeHex32(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
