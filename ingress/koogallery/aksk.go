package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// API Gateway SDK-HMAC-SHA256 signing (auth.md §8).
const (
	// AKSKAlgorithm is the signing algorithm name.
	AKSKAlgorithm = "SDK-HMAC-SHA256"
	// SDKDateHeader carries the signing time.
	SDKDateHeader = "X-Sdk-Date"
	// SDKDateFormat is the layout of X-Sdk-Date, yyyyMMdd'T'HHmmss'Z' in UTC.
	SDKDateFormat = "20060102T150405Z"
	// SDKContentSHA256Header may carry UNSIGNED-PAYLOAD.
	SDKContentSHA256Header = "X-Sdk-Content-Sha256"
	// UnsignedPayload replaces the body hash when SDKContentSHA256Header says so.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// DefaultAKSKSkew is the gateway's tolerance for X-Sdk-Date.
	DefaultAKSKSkew = 15 * time.Minute
)

// CanonicalRequest returns the API Gateway canonical request of r (auth.md
// §8 step 2), lines joined by "\n" without a trailing newline:
//
//	Method, CanonicalURI, CanonicalQueryString, CanonicalHeaders (one
//	"name:value\n" line per signed header, so a blank line follows),
//	SignedHeaders, lowercase(hex(SHA-256(body)))
//
// The URI is r.URL.Path with every segment URI-encoded and a '/' appended
// when missing; the query is r.URL's query with names and values
// URI-encoded (only A–Z a–z 0–9 - _ . ~ kept, %XY upper-case), sorted by
// name then value. signedHeaders are header names (any case; they are
// lower-cased and sorted); "host" takes r.Host, or r.URL.Host when r.Host is
// empty; repeated values give one line each, sorted. body is the exact body
// sent; when the request carries X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD that
// literal replaces the hash, as the gateway allows.
func CanonicalRequest(r *http.Request, signedHeaders []string, body []byte) string {
	names := normalizeHeaderNames(signedHeaders)
	var b strings.Builder
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r))
	b.WriteByte('\n')
	for _, name := range names {
		var values []string
		if name == "host" {
			values = []string{hostOf(r)}
		} else {
			values = slices.Clone(r.Header.Values(name))
			slices.Sort(values)
		}
		for _, v := range values {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')
	if r.Header.Get(SDKContentSHA256Header) == UnsignedPayload {
		b.WriteString(UnsignedPayload)
	} else {
		sum := sha256.Sum256(body)
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}

// StringToSign returns "SDK-HMAC-SHA256\n" + sdkDate + "\n" +
// lowercase(hex(SHA-256(canonicalRequest))) (auth.md §8 step 3).
func StringToSign(sdkDate, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return AKSKAlgorithm + "\n" + sdkDate + "\n" + hex.EncodeToString(sum[:])
}

// AKSKSignature returns lowercase(hex(HMAC-SHA256(sk, stringToSign)))
// (auth.md §8 step 4).
func AKSKSignature(sk, stringToSign string) string {
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(stringToSign))
	return hex.EncodeToString(mac.Sum(nil))
}

// AKSKAuthorization formats the Authorization header (auth.md §8 step 5):
// "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<a;b;c>, Signature=<hex>".
// signedHeaders must already be lower-case and sorted.
func AKSKAuthorization(ak string, signedHeaders []string, signature string) string {
	return AKSKAlgorithm + " Access=" + ak + ", SignedHeaders=" + strings.Join(signedHeaders, ";") + ", Signature=" + signature
}

// SignAKSK signs r for API Gateway with the account's AK/SK: it sets
// X-Sdk-Date to now (UTC) and Authorization. The signed headers are every
// header present in r.Header (except Authorization) plus host and
// x-sdk-date, so set Content-Type and any other header before signing and
// do not change them afterwards. body must be the exact bytes that will be
// sent.
func SignAKSK(ak, sk string, r *http.Request, body []byte, now time.Time) error {
	if ak == "" || sk == "" {
		return errors.New("koogallery: sign AK/SK: empty AK or SK")
	}
	if r == nil || r.URL == nil {
		return errors.New("koogallery: sign AK/SK: request has no URL")
	}
	if hostOf(r) == "" {
		return errors.New("koogallery: sign AK/SK: request has no host")
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Del("Authorization")
	date := now.UTC().Format(SDKDateFormat)
	r.Header.Set(SDKDateHeader, date)
	names := make([]string, 0, len(r.Header)+1)
	names = append(names, "host")
	for name := range r.Header {
		names = append(names, name)
	}
	names = normalizeHeaderNames(names)
	sig := AKSKSignature(sk, StringToSign(date, CanonicalRequest(r, names, body)))
	r.Header.Set("Authorization", AKSKAuthorization(ak, names, sig))
	return nil
}

// AKSKAuth is a parsed SDK-HMAC-SHA256 Authorization header.
type AKSKAuth struct {
	// Access is the AK.
	Access string
	// SignedHeaders are the lower-case signed header names, in header order.
	SignedHeaders []string
	// Signature is the hex signature.
	Signature string
}

// ParseAKSKAuthorization parses an Authorization header of the form
// "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<a;b>, Signature=<hex>", so a
// verifier can look up the SK by AK before calling VerifyAKSK.
func ParseAKSKAuthorization(v string) (AKSKAuth, error) {
	var a AKSKAuth
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), AKSKAlgorithm+" ")
	if !ok {
		return a, errors.New("koogallery: AK/SK Authorization: not " + AKSKAlgorithm)
	}
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, errors.New("koogallery: AK/SK Authorization: malformed pair")
		}
		var i int
		switch name {
		case "Access":
			i, a.Access = 0, value
		case "SignedHeaders":
			i = 1
			a.SignedHeaders = strings.Split(value, ";")
		case "Signature":
			i, a.Signature = 2, value
		default:
			return a, errors.New("koogallery: AK/SK Authorization: unknown pair " + name)
		}
		if seen[i] {
			return a, errors.New("koogallery: AK/SK Authorization: repeated " + name)
		}
		seen[i] = true
	}
	if a.Access == "" || a.Signature == "" || len(a.SignedHeaders) == 0 {
		return a, errors.New("koogallery: AK/SK Authorization: Access, SignedHeaders and Signature are required")
	}
	return a, nil
}

// VerifyAKSK checks an API Gateway signature the way the gateway does, for
// a local stand-in of KooGallery's APIs: it parses Authorization, requires
// x-sdk-date among the signed headers and within skew of now (zero or
// negative skew means DefaultAKSKSkew), rebuilds the canonical request from
// r and body, and compares signatures in constant time. It returns the AK
// on success; every failure is CodeAuthFailed.
func VerifyAKSK(sk string, r *http.Request, body []byte, now time.Time, skew time.Duration) (ak string, err error) {
	auth, err := ParseAKSKAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		e := AuthFailed("Authorization header is malformed")
		e.Err = err
		return "", e
	}
	for _, h := range auth.SignedHeaders {
		if h != strings.ToLower(h) || h == "" {
			return "", AuthFailed("SignedHeaders must be lower-case names")
		}
	}
	if !slices.Contains(auth.SignedHeaders, "x-sdk-date") {
		return "", AuthFailed("x-sdk-date is not a signed header")
	}
	date := r.Header.Get(SDKDateHeader)
	t, err := time.ParseInLocation(SDKDateFormat, date, time.UTC)
	if err != nil {
		e := AuthFailed("X-Sdk-Date is malformed")
		e.Err = err
		return "", e
	}
	if skew <= 0 {
		skew = DefaultAKSKSkew
	}
	if d := now.Sub(t); d > skew || d < -skew {
		return "", AuthFailed("X-Sdk-Date is outside the allowed skew")
	}
	want := AKSKSignature(sk, StringToSign(date, CanonicalRequest(r, auth.SignedHeaders, body)))
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(auth.Signature)), []byte(want)) != 1 {
		return "", AuthFailed("AK/SK signature does not match")
	}
	return auth.Access, nil
}

// normalizeHeaderNames lower-cases, sorts and de-duplicates header names,
// dropping "authorization".
func normalizeHeaderNames(in []string) []string {
	out := make([]string, 0, len(in))
	for _, n := range in {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || n == "authorization" {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hostOf(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	if r.URL != nil {
		return r.URL.Host
	}
	return ""
}

// canonicalURI URI-encodes each path segment and appends '/' when missing.
func canonicalURI(r *http.Request) string {
	p := r.URL.Path
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = uriEncode(s)
	}
	u := strings.Join(segs, "/")
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	return u
}

// canonicalQuery encodes and sorts the query parameters.
func canonicalQuery(r *http.Request) string {
	q := r.URL.Query()
	if len(q) == 0 {
		return ""
	}
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	slices.Sort(names)
	var parts []string
	for _, n := range names {
		vs := slices.Clone(q[n])
		slices.Sort(vs)
		en := uriEncode(n)
		for _, v := range vs {
			parts = append(parts, en+"="+uriEncode(v))
		}
	}
	return strings.Join(parts, "&")
}

// uriEncode keeps A–Z a–z 0–9 - _ . ~ and writes every other byte as %XY
// with upper-case hex.
func uriEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', upperHex[c>>4], upperHex[c&0xF])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
