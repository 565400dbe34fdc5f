package koogallery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

const lowerHex = "0123456789abcdef"

// EscapeNonASCII rewrites every non-ASCII character of the JSON text b as a
// \uXXXX escape (four lower-case hex digits of the UTF-16 code unit, a
// surrogate pair above U+FFFF), auth.md §6: "中文" becomes \u4e2d\u6587 and
// U+1F600 becomes \ud83d\ude00. In valid JSON, non-ASCII bytes only occur
// inside strings, so the result is the same JSON value spelled in ASCII. An
// invalid UTF-8 byte is written as \ufffd. When b is already ASCII it is
// returned as is (not copied); otherwise a new slice is returned.
func EscapeNonASCII(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/2+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if r >= 0x10000 {
			r -= 0x10000
			out = appendU4(out, 0xD800+(r>>10))
			out = appendU4(out, 0xDC00+(r&0x3FF))
			continue
		}
		out = appendU4(out, r)
	}
	return out
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', lowerHex[r>>12&0xF], lowerHex[r>>8&0xF], lowerHex[r>>4&0xF], lowerHex[r&0xF])
}

// MarshalResponse serialises a response body: encoding/json with HTML
// escaping off (so '<', '>' and '&' stay raw), no trailing newline, then
// EscapeNonASCII. The result is what gets signed (BodySignature) and
// written, byte for byte; never re-marshal after signing.
func MarshalResponse(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("koogallery: marshal response: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	return EscapeNonASCII(out), nil
}
