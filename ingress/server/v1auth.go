package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Decodings of the POST-body variant (auth.md §3.3), next to the query
// decodings of the kit (koogallery.DecodingForm, DecodingPercent).
const (
	decodingBody        = "body"
	decodingBodyPercent = "body-percent"
)

// v1Auth is a SaaS V1 request after its authToken verified.
type v1Auth struct {
	// params holds the first value of every parameter but authToken,
	// exactly as signed.
	params v1params
	// token is the authToken that verified.
	token string
	// keyIdx is the route key that verified it.
	keyIdx int
	// decoding names the decoding that matched (logged).
	decoding string
}

// parseV1Query authenticates a SaaS V1 GET request (auth.md §3.1, §3.2) with
// the route's keys in order and returns its parameters exactly as signed:
// with the decoding that verified (form decoding with the token's spaces
// read as '+', else percent-decoding only). A query that cannot be decoded
// or has no timeStamp is 000002; a missing or non-matching authToken 000001.
func parseV1Query(keys [][]byte, rawQuery string) (v1Auth, error) {
	authErr := error(koogallery.AuthFailed("no key configured"))
	for i, k := range keys {
		dec, err := koogallery.VerifyAuthTokenQuery(k, rawQuery)
		if err != nil {
			if !errors.Is(err, koogallery.ErrAuthFailed) {
				return v1Auth{}, err // the same for every key
			}
			authErr = err
			continue
		}
		var q url.Values
		if dec == koogallery.DecodingForm {
			q, err = url.ParseQuery(rawQuery)
		} else {
			q, err = koogallery.ParsePercentQuery(rawQuery)
		}
		if err != nil { // cannot happen: the pass that verified decoded it
			return v1Auth{}, koogallery.Invalid("query", "cannot be decoded: %w", err)
		}
		a := v1Auth{params: make(v1params, len(q)), keyIdx: i, decoding: dec}
		for name, vs := range q {
			if len(vs) == 0 {
				continue
			}
			if name == "authToken" {
				a.token = vs[0]
				continue
			}
			a.params[name] = vs[0]
		}
		if dec == koogallery.DecodingForm {
			a.token = strings.ReplaceAll(a.token, " ", "+")
		}
		return a, nil
	}
	return v1Auth{}, authErr
}

// parseV1Body authenticates the POST-body variant (auth.md §3.3): a JSON
// object whose members are the parameters, the token in the authToken
// header (one pair of surrounding double quotes removed). Members with a
// blank value are not signed. Values are tried as received and then, if
// some carry %XX escapes, percent-decoded ("URL-decoding values where they
// are encoded"); the values that verified are returned. Numbers and
// booleans are taken as their literal text, null as blank.
func parseV1Body(keys [][]byte, raw []byte, header string) (v1Auth, error) {
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&members); err != nil || members == nil {
		return v1Auth{}, koogallery.Invalid("body", "must be a JSON object")
	}
	if dec.More() {
		return v1Auth{}, koogallery.Invalid("body", "must be a single JSON object")
	}
	asReceived := make(map[string]string, len(members))
	for name, v := range members {
		s, err := memberText(v)
		if err != nil {
			return v1Auth{}, koogallery.Invalid(name, "%s has an unreadable value", name)
		}
		asReceived[name] = s
	}
	variants := []struct {
		name   string
		values map[string]string
	}{{decodingBody, asReceived}}
	if decoded, changed := percentDecoded(asReceived); changed {
		variants = append(variants, struct {
			name   string
			values map[string]string
		}{decodingBodyPercent, decoded})
	}
	authErr := error(koogallery.AuthFailed("no key configured"))
	for _, v := range variants {
		for i, k := range keys {
			err := koogallery.VerifyAuthTokenBody(k, v.values, header)
			if err == nil {
				a := v1Auth{params: make(v1params, len(v.values)), keyIdx: i, decoding: v.name, token: unquote(header)}
				for name, val := range v.values {
					if name != "authToken" {
						a.params[name] = val
					}
				}
				return a, nil
			}
			if !errors.Is(err, koogallery.ErrAuthFailed) {
				return v1Auth{}, err
			}
			authErr = err
		}
	}
	return v1Auth{}, authErr
}

// memberText is a body member's value as text: a string as is, a number or
// a boolean as its literal, null as blank, an object or array compacted.
func memberText(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return "", nil
	case v[0] == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case v[0] == '{' || v[0] == '[':
		var buf bytes.Buffer
		err := json.Compact(&buf, v)
		return buf.String(), err
	}
	return string(v), nil
}

// percentDecoded returns the values with %XX escapes decoded (a '+' stays
// '+'); changed reports whether any value differs.
func percentDecoded(in map[string]string) (map[string]string, bool) {
	out := make(map[string]string, len(in))
	changed := false
	for name, v := range in {
		if strings.Contains(v, "%") {
			if d, err := url.PathUnescape(v); err == nil && d != v {
				out[name], changed = d, true
				continue
			}
		}
		out[name] = v
	}
	return out, changed
}

func unquote(h string) string {
	h = strings.TrimSpace(h)
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		return h[1 : len(h)-1]
	}
	return h
}
