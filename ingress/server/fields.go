package server

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// body is a request body as received: member name → raw JSON value. Field
// rules (mandatory, type, maximum length, enumeration) are checked per
// activity; every failure is 000002 naming the field.
type body map[string]json.RawMessage

func parseBody(raw []byte) (body, error) {
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil || b == nil {
		return nil, koogallery.Invalid("body", "must be a JSON object")
	}
	if dec.More() {
		return nil, koogallery.Invalid("body", "must be a single JSON object")
	}
	return b, nil
}

// present reports whether a member is there and not JSON null.
func (b body) present(field string) bool {
	raw, ok := b[field]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str reads a string member. mandatory: absent, null or "" is an error.
func (b body) str(field string, mandatory bool, maxLen int) (string, error) {
	return b.strAs(field, field, mandatory, maxLen)
}

// strAs is str with the name used in messages (e.g. productInfo.skuCode).
func (b body) strAs(field, name string, mandatory bool, maxLen int) (string, error) {
	if !b.present(field) {
		if mandatory {
			return "", koogallery.Invalid(name, "%s is mandatory", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(b[field], &s); err != nil {
		return "", koogallery.Invalid(name, "%s must be a string", name)
	}
	if mandatory && s == "" {
		return "", koogallery.Invalid(name, "%s is mandatory", name)
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return "", koogallery.Invalid(name, "%s is %d characters, at most %d allowed", name, n, maxLen)
	}
	return s, nil
}

// testFlag reads the debug marker: "1" (string) or 1 (number) is a debug
// request; absent, "", "0", 0 or anything else is a real one
// (codes-and-rules.md §7). Its length (String, 2) is still checked.
func (b body) testFlag() (bool, error) {
	if !b.present("testFlag") {
		return false, nil
	}
	raw := bytes.TrimSpace(b["testFlag"])
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, koogallery.Invalid("testFlag", "testFlag must be a string")
		}
		if utf8.RuneCountInString(s) > 2 {
			return false, koogallery.Invalid("testFlag", "testFlag is %d characters, at most 2 allowed", utf8.RuneCountInString(s))
		}
		return s == "1", nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return false, koogallery.Invalid("testFlag", "testFlag must be a string or a number")
	}
	return n.String() == "1", nil
}
