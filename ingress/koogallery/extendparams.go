package koogallery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// DecodeExtendParams decodes a URL-decoded `saasExtendParams` value
// (codes-and-rules.md §10): standard Base64 of a JSON array of
// {"name": …, "value": …}. The map holds the first value of every name.
// A value that is not a JSON string (it should be) is kept as its compact
// JSON text; entries without a name are skipped. As a guard against the '+'
// pitfall, spaces are read as '+', and missing padding is tolerated.
func DecodeExtendParams(s string) (map[string]string, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "+")
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if raw, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 != nil {
			return nil, fmt.Errorf("koogallery: saasExtendParams: bad Base64: %w", err)
		}
	}
	var entries []struct {
		Name  string          `json:"name"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("koogallery: saasExtendParams: not a JSON array of {name, value}: %w", err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.Name == "" {
			continue
		}
		if _, dup := out[e.Name]; dup {
			continue
		}
		out[e.Name] = extendValue(e.Value)
	}
	return out, nil
}

func extendValue(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
