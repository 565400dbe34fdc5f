package koogallery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Form names a canonical payload form of the V2 signature (auth.md §2.3). The
// value is the label that is logged and used as a metric label.
type Form string

// The V2 canonical payload forms, in the order V2Verifier tries them.
const (
	// FormA is Huawei's sample form: top-level members sorted, top-level
	// nulls dropped, top-level numbers and booleans as strings, nested values
	// compact in received order.
	FormA Form = "a"
	// FormB sorts members at every level; scalars keep their JSON type.
	FormB Form = "b"
	// FormC is the raw body compacted.
	FormC Form = "c"
	// FormDA is payload (a) with a plain SHA-256 inner hash.
	FormDA Form = "d-a"
	// FormDB is payload (b) with a plain SHA-256 inner hash.
	FormDB Form = "d-b"
	// FormDC is payload (c) with a plain SHA-256 inner hash.
	FormDC Form = "d-c"
)

// Valid reports whether f is one of the six forms.
func (f Form) Valid() bool {
	switch f {
	case FormA, FormB, FormC, FormDA, FormDB, FormDC:
		return true
	}
	return false
}

// PlainSHA256 reports whether f uses the plain SHA-256 inner hash (form d).
func (f Form) PlainSHA256() bool {
	return f == FormDA || f == FormDB || f == FormDC
}

// Payload returns the form whose payload f uses: FormA for FormDA, FormB
// for FormDB, FormC for FormDC, and f itself otherwise.
func (f Form) Payload() Form {
	switch f {
	case FormDA:
		return FormA
	case FormDB:
		return FormB
	case FormDC:
		return FormC
	}
	return f
}

// CanonicalPayload returns the RequestPayload of body in form f (auth.md
// §2.3). The d forms return the payload of their a/b/c counterpart. The body
// must be a single JSON object; anything else is a CodeInvalidParam error
// naming "body".
//
// Form (a): top-level members with a null value are dropped; the rest are
// sorted by UTF-16 code units (Java's String.compareTo); a string is written
// as a JSON string, a number or boolean as a JSON string holding its literal
// text as received ("1.50" stays "1.50"), and an object or array compactly
// with its members in the order received. Form (b): members sorted at every
// level, numbers keep their literal text and type, booleans and nested
// nulls stay as they are. Form (c): the received body with insignificant
// whitespace removed (json.Compact), escapes untouched.
//
// Strings in (a) and (b) — member names and values, nested ones included —
// are decoded and re-written with Jackson's default escaping: only '"', '\\'
// and control characters are escaped (\b \t \n \f \r short, others as
// \u00XX), non-ASCII is raw UTF-8, and '/', '<', '>', '&' are not escaped.
// So a received "\u4e2d" or "\/" appears as "中" or "/" in (a) and (b) and
// only (c) keeps the received spelling. This is what a Jackson-based signer
// (Huawei's sample code) produces when it parses the body and serialises it
// again. Invalid UTF-8 and unpaired surrogate escapes are read as U+FFFD, as
// encoding/json does; a repeated member name keeps its last value in the
// top level of (a) and everywhere in (b), while nested objects of (a) are
// copied member by member, repeats included.
func CanonicalPayload(body []byte, f Form) ([]byte, error) {
	switch f.Payload() {
	case FormA:
		cb, err := parseCanonBody(body)
		if err != nil {
			return nil, err
		}
		return cb.formA()
	case FormB:
		cb, err := parseCanonBody(body)
		if err != nil {
			return nil, err
		}
		return cb.formB()
	case FormC:
		return compactObject(body)
	}
	return nil, fmt.Errorf("koogallery: unknown canonical form %q", string(f))
}

// canonBody is a parsed request body from which payloads (a) and (b) are
// built; it lets V2Verifier parse once and build each form lazily.
type canonBody struct {
	body    []byte
	members []member // top level: last of repeated names, nulls dropped, UTF-16 sorted
}

// member is one top-level member: its decoded name and its raw value (a
// sub-slice of the body, without surrounding whitespace).
type member struct {
	name string
	raw  []byte
}

func notObject(err error) *Error {
	if err == nil {
		return Invalid("body", "is not a JSON object")
	}
	return Invalid("body", "is not a JSON object: %w", err)
}

// parseCanonBody checks that body is one JSON object and indexes its
// top-level members. A repeated name keeps its last value (as
// encoding/json and Jackson do), then null members are dropped.
func parseCanonBody(body []byte) (*canonBody, error) {
	if firstNonSpace(body) != '{' {
		return nil, notObject(nil)
	}
	if !json.Valid(body) {
		var v any
		return nil, notObject(json.Unmarshal(body, &v)) // for the syntax error text
	}
	members := make([]member, 0, 16)
	i := skipSpace(body, 0) + 1 // after '{'
	for {
		i = skipSpace(body, i)
		if body[i] == '}' {
			break
		}
		end := stringTokenEnd(body, i)
		name, err := decodeStringToken(body[i:end])
		if err != nil {
			return nil, notObject(err)
		}
		i = skipSpace(body, end) + 1 // after ':'
		i = skipSpace(body, i)
		vend := valueEnd(body, i)
		members = append(members, member{name: name, raw: body[i:vend]})
		i = skipSpace(body, vend)
		if body[i] == ',' {
			i++
			continue
		}
		break // '}'
	}
	slices.SortStableFunc(members, func(a, b member) int { return compareUTF16(a.name, b.name) })
	out := members[:0]
	for j, m := range members {
		if j+1 < len(members) && members[j+1].name == m.name {
			continue // a later member has the same name
		}
		if string(m.raw) == "null" {
			continue
		}
		out = append(out, m)
	}
	return &canonBody{body: body, members: out}, nil
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	return i
}

// valueEnd returns the index just after the valid JSON value starting at i.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringTokenEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringTokenEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// decodeStringToken decodes one JSON string token; invalid UTF-8 and unpaired
// surrogates become U+FFFD, as in encoding/json.
func decodeStringToken(tok []byte) (string, error) {
	if bytes.IndexByte(tok, '\\') < 0 && utf8.Valid(tok) {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", fmt.Errorf("bad JSON string: %w", err)
	}
	return s, nil
}

// formA builds payload (a).
func (c *canonBody) formA() ([]byte, error) {
	dst := make([]byte, 0, len(c.body)+8*len(c.members)+2)
	dst = append(dst, '{')
	for i, m := range c.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJacksonString(dst, m.name)
		dst = append(dst, ':')
		raw := m.raw
		var err error
		switch raw[0] {
		case '"':
			dst, err = appendStringToken(dst, raw)
		case '{', '[':
			dst, err = appendOrdered(dst, raw)
		default: // number, true, false: literal text as a string
			dst = append(dst, '"')
			dst = append(dst, raw...)
			dst = append(dst, '"')
		}
		if err != nil {
			return nil, fmt.Errorf("koogallery: form a of member %q: %w", m.name, err)
		}
	}
	return append(dst, '}'), nil
}

// formB builds payload (b).
func (c *canonBody) formB() ([]byte, error) {
	dst := make([]byte, 0, len(c.body)+2)
	dst = append(dst, '{')
	for i, m := range c.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJacksonString(dst, m.name)
		dst = append(dst, ':')
		dec := json.NewDecoder(bytes.NewReader(m.raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("koogallery: form b of member %q: %w", m.name, err)
		}
		var err error
		if dst, err = appendSorted(dst, v); err != nil {
			return nil, fmt.Errorf("koogallery: form b of member %q: %w", m.name, err)
		}
	}
	return append(dst, '}'), nil
}

// compactObject builds payload (c).
func compactObject(body []byte) ([]byte, error) {
	if firstNonSpace(body) != '{' {
		return nil, notObject(nil)
	}
	var buf bytes.Buffer
	buf.Grow(len(body))
	if err := json.Compact(&buf, body); err != nil {
		return nil, notObject(err)
	}
	return buf.Bytes(), nil
}

// appendSorted writes a decoded JSON value (UseNumber) compactly with object
// members sorted by UTF-16 code units at every level.
func appendSorted(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case json.Number:
		return append(dst, v...), nil
	case string:
		return appendJacksonString(dst, v), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendSorted(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJacksonString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendSorted(dst, v[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("unexpected JSON value of type %T", v)
}

// appendOrdered writes a valid JSON value compactly in received order,
// re-escaping every string the Jackson way. raw must be valid JSON.
func appendOrdered(dst, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r':
			i++
		case '"':
			end := stringTokenEnd(raw, i)
			var err error
			if dst, err = appendStringToken(dst, raw[i:end]); err != nil {
				return nil, err
			}
			i = end
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst, nil
}

// stringTokenEnd returns the index just after the JSON string token that
// starts at raw[start] == '"'.
func stringTokenEnd(raw []byte, start int) int {
	for j := start + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(raw)
}

// appendStringToken re-writes one JSON string token with Jackson escaping.
// A token without escapes that is valid UTF-8 is already in that form.
func appendStringToken(dst, tok []byte) ([]byte, error) {
	if bytes.IndexByte(tok, '\\') < 0 && utf8.Valid(tok) {
		return append(dst, tok...), nil
	}
	s, err := decodeStringToken(tok)
	if err != nil {
		return nil, err
	}
	return appendJacksonString(dst, s), nil
}

const upperHex = "0123456789ABCDEF"

// appendJacksonString appends s as a JSON string with Jackson's default
// escaping: '"' and '\\', \b \t \n \f \r, other control characters as
// \u00XX (upper-case hex, as Jackson writes them); everything else raw.
func appendJacksonString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// compareUTF16 orders strings by UTF-16 code units, like Java's
// String.compareTo. It differs from byte order only between characters
// above U+FFFF and characters U+E000…U+FFFF. Invalid UTF-8 bytes compare as
// U+FFFD; strings that are equal under that reading but differ in bytes are
// ordered by bytes, so the order is total (sorting is deterministic).
func compareUTF16(a, b string) int {
	if c := compareUTF16Units(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func compareUTF16Units(a, b string) int {
	for len(a) > 0 && len(b) > 0 {
		if a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			if a[0] != b[0] {
				return int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if utf16Order(ra) < utf16Order(rb) {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16Order maps a rune to a number whose order is the order of the
// rune's UTF-16 encoding: supplementary characters (high surrogate
// 0xD800…0xDBFF first) sort between U+D7FF and U+E000.
func utf16Order(r rune) int {
	switch {
	case r < 0xD800:
		return int(r)
	case r >= 0x10000:
		return 0xD800 + int(r-0x10000)
	default: // U+E000…U+FFFF (surrogates are not valid runes)
		return int(r) + 0x100000
	}
}

// firstNonSpace returns the first byte of b that is not JSON whitespace, or
// 0 when there is none.
func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
