package api

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Redacted replaces a secret in event data.
const Redacted = "[redacted]"

// Redact returns event data with the value of every object member whose
// name contains "password" or "secret" (in any case, at any depth; e.g.
// InstanceProvisioned's appInfo.password) replaced by "[redacted]".
// The API always redacts: the log holds the buyers' initial passwords
// (docs/decisions.md). Data without such a member is returned as stored;
// data that is not JSON (the store refuses it, so it would be a corrupt
// entry) becomes the JSON string "[redacted]", since it cannot be checked.
func Redact(data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		return json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep numbers exactly as stored
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	if !redactValue(v) {
		return data
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// redactValue redacts v in place and reports whether it changed anything.
func redactValue(v any) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if secretName(k) {
				if val != nil && val != "" {
					v[k] = Redacted
					changed = true
				}
				continue
			}
			changed = redactValue(val) || changed
		}
	case []any:
		for _, val := range v {
			changed = redactValue(val) || changed
		}
	}
	return changed
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || strings.Contains(k, "secret")
}
