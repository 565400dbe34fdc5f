package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Names of the query decodings VerifyAuthTokenQuery tries (auth.md §3.2);
// the matched one is returned for logging.
const (
	// DecodingForm is form decoding ('+' is a space), with spaces in the
	// decoded authToken mapped back to '+'.
	DecodingForm = "form"
	// DecodingPercent is percent-decoding only: a raw '+' stays '+'.
	DecodingPercent = "percent"
)

// AuthTokenSortedString returns the string the V1 authToken covers (auth.md
// §3.1): every parameter except authToken, sorted by name (UTF-16 code
// units, i.e. byte order for ASCII), the first value of a repeated name,
// joined as name=value with '&', values not re-encoded, empty values kept as
// "name=".
func AuthTokenSortedString(params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		if name != "authToken" {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, compareUTF16)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		if vs := params[name]; len(vs) > 0 {
			b.WriteString(vs[0])
		}
	}
	return b.String()
}

// AuthToken returns the V1 authToken of a request (auth.md §3.1):
// Base64(HMAC-SHA256(key + timeStamp, AuthTokenSortedString(params))).
// timeStamp is the request's own `timeStamp` value, which is also part of
// params.
func AuthToken(key []byte, timeStamp string, params url.Values) string {
	return authTokenOf(key, timeStamp, AuthTokenSortedString(params))
}

// AuthTokenBody returns the authToken of the POST-body variant (auth.md
// §3.3): like AuthToken over the body members, but members with a blank
// value (empty or white space only) are skipped, and timeStamp is taken from
// body["timeStamp"]. A member named authToken is ignored. Values must
// already be URL-decoded where the sender encoded them.
func AuthTokenBody(key []byte, body map[string]string) string {
	params := make(url.Values, len(body))
	for name, v := range body {
		if strings.TrimSpace(v) == "" {
			continue
		}
		params[name] = []string{v}
	}
	return AuthToken(key, body["timeStamp"], params)
}

// VerifyAuthTokenBody checks the authToken header of the POST-body variant.
// One pair of surrounding double quotes on the header value is removed
// first. A missing timeStamp is CodeInvalidParam, a missing or wrong token
// CodeAuthFailed.
func VerifyAuthTokenBody(key []byte, body map[string]string, headerValue string) error {
	tok := strings.TrimSpace(headerValue)
	if len(tok) >= 2 && tok[0] == '"' && tok[len(tok)-1] == '"' {
		tok = tok[1 : len(tok)-1]
	}
	if strings.TrimSpace(body["timeStamp"]) == "" {
		return Invalid("timeStamp", "is missing")
	}
	if tok == "" {
		return AuthFailed("authToken is missing")
	}
	if !equalConstantTime(tok, AuthTokenBody(key, body)) {
		return AuthFailed("authToken does not match")
	}
	return nil
}

// VerifyAuthTokenQuery checks the authToken of a V1 GET request given its
// raw query string, with the two-pass decoding of auth.md §3.2:
//
//  1. form decoding (url.ParseQuery), every space in the decoded authToken
//     mapped back to '+';
//  2. if that does not match, percent-decoding only, so a raw '+' in any
//     value stays '+'.
//
// A query that form decoding cannot read (url.ParseQuery rejects a raw ';')
// gets the percent pass only. It returns DecodingForm or DecodingPercent for
// the pass that matched. The
// token is compared exactly (case-sensitive) in constant time. A query that
// neither decoding can read, or without timeStamp, is CodeInvalidParam; a
// missing or non-matching authToken is CodeAuthFailed. No freshness check
// is made on timeStamp (see ParseV1TimeStamp for the optional window).
func VerifyAuthTokenQuery(key []byte, rawQuery string) (matchedDecoding string, err error) {
	formQ, formErr := url.ParseQuery(rawQuery)
	pctQ, pctErr := parsePercentQuery(rawQuery)
	if formErr != nil && pctErr != nil {
		return "", Invalid("query", "cannot be decoded: %w", formErr)
	}
	ref := formQ
	if formErr != nil {
		ref = pctQ
	}
	if ref.Get("timeStamp") == "" {
		return "", Invalid("timeStamp", "is missing")
	}
	if ref.Get("authToken") == "" {
		return "", AuthFailed("authToken is missing")
	}
	if formErr == nil {
		tok := strings.ReplaceAll(formQ.Get("authToken"), " ", "+")
		if equalConstantTime(tok, AuthToken(key, formQ.Get("timeStamp"), formQ)) {
			return DecodingForm, nil
		}
	}
	if pctErr == nil {
		if equalConstantTime(pctQ.Get("authToken"), AuthToken(key, pctQ.Get("timeStamp"), pctQ)) {
			return DecodingPercent, nil
		}
	}
	return "", AuthFailed("authToken does not match")
}

// parsePercentQuery splits a raw query on '&' and '=' and percent-decodes
// names and values without turning '+' into a space.
func parsePercentQuery(rawQuery string) (url.Values, error) {
	q := make(url.Values)
	var firstErr error
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		n, err := url.PathUnescape(name)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		v, err := url.PathUnescape(value)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		q[n] = append(q[n], v)
	}
	return q, firstErr
}

func authTokenOf(key []byte, timeStamp, sorted string) string {
	hk := make([]byte, 0, len(key)+len(timeStamp))
	hk = append(hk, key...)
	hk = append(hk, timeStamp...)
	mac := hmac.New(sha256.New, hk)
	mac.Write([]byte(sorted))
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(mac.Sum(sum[:0]))
}

func equalConstantTime(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
