package openapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// object is a JSON object read loosely: each field is decoded on its own,
// so that an unexpected type in one field never fails the others, unknown
// fields are ignored, and scalars are accepted as strings or numbers.
type object map[string]json.RawMessage

// parseObject reads b as a JSON object; ok is false for anything else
// (null included).
func parseObject(b []byte) (object, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, false
	}
	return o, true
}

// has reports whether key is present with a non-null value.
func (o object) has(key string) bool {
	v, ok := o[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// str returns the first of keys whose value is a non-empty string or a
// number (as written), trimmed.
func (o object) str(keys ...string) string {
	for _, k := range keys {
		if s, ok := scalar(o[k]); ok && s != "" {
			return s
		}
	}
	return ""
}

// int returns the first of keys whose value is an integer, written as a
// number or a string.
func (o object) int(keys ...string) (int, bool) {
	for _, k := range keys {
		s, ok := scalar(o[k])
		if !ok || s == "" {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
			return int(f), true
		}
	}
	return 0, false
}

// obj returns the first of keys whose value is an object (or an array whose
// first object element is taken).
func (o object) obj(keys ...string) object {
	for _, k := range keys {
		if l := o.objs(k); len(l) > 0 {
			return l[0]
		}
	}
	return nil
}

// objs returns the object elements of the first of keys that holds an
// array of objects, or a single object as a one-element list.
func (o object) objs(keys ...string) []object {
	for _, k := range keys {
		v := bytes.TrimSpace(o[k])
		if len(v) == 0 {
			continue
		}
		switch v[0] {
		case '{':
			if x, ok := parseObject(v); ok {
				return []object{x}
			}
		case '[':
			var raws []json.RawMessage
			if json.Unmarshal(v, &raws) != nil {
				continue
			}
			var out []object
			for _, r := range raws {
				if x, ok := parseObject(r); ok {
					out = append(out, x)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
	}
	return nil
}

// scalar reads a JSON string or number; ok is false for other values.
func scalar(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	case c == '-' || ('0' <= c && c <= '9'):
		var n json.Number
		if json.Unmarshal(v, &n) != nil {
			return "", false
		}
		return n.String(), true
	}
	return "", false
}

// parseTime reads a KooGallery time: yyyyMMddHHmmss or yyyyMMddHHmmssSSS
// in UTC (codes-and-rules.md §8), tolerating RFC 3339. ok is false for an
// empty or unreadable value.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := koogallery.ParseExpireTime(s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}
