package eventstore

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the first subject token(s) of every event subject.
const DefaultPrefix = "gallerist"

const upperHex = "0123456789ABCDEF"

// safeByte reports whether b is kept as is in a subject token.
func safeByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}

// EncodeToken makes s a single subject token, reversibly: bytes in
// [A-Za-z0-9_-] are kept, every other byte (including '%', '.', '*', '>',
// whitespace and each byte of a multi-byte UTF-8 sequence) becomes %XX with
// upper-case hex. The encoding is injective and canonical: [DecodeToken]
// inverts it and accepts nothing else. An empty s is an error wrapping
// [ErrInvalidKey].
func EncodeToken(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalidKey)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeByte(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', upperHex[c>>4], upperHex[c&0xF])
	}
	return string(b), nil
}

// DecodeToken inverts [EncodeToken]. It rejects empty tokens, bytes outside
// [A-Za-z0-9_%-], malformed or lower-case escapes and escapes of bytes that
// need none, so that every string has exactly one token.
func DecodeToken(tok string) (string, error) {
	if tok == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalidKey)
	}
	if !strings.Contains(tok, "%") {
		for i := 0; i < len(tok); i++ {
			if !safeByte(tok[i]) {
				return "", fmt.Errorf("%w: token %q: byte %q at %d is not allowed", ErrInvalidKey, tok, tok[i], i)
			}
		}
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case safeByte(c):
			b = append(b, c)
		case c == '%':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("%w: token %q: truncated escape at %d", ErrInvalidKey, tok, i)
			}
			hi, ok1 := unhex(tok[i+1])
			lo, ok2 := unhex(tok[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%w: token %q: bad escape %q at %d", ErrInvalidKey, tok, tok[i:i+3], i)
			}
			d := hi<<4 | lo
			if safeByte(d) {
				return "", fmt.Errorf("%w: token %q: needless escape %q at %d", ErrInvalidKey, tok, tok[i:i+3], i)
			}
			b = append(b, d)
			i += 2
		default:
			return "", fmt.Errorf("%w: token %q: byte %q at %d is not allowed", ErrInvalidKey, tok, c, i)
		}
	}
	return string(b), nil
}

// unhex decodes one upper-case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// validKind reports whether kind is usable verbatim as a subject token.
func validKind(kind string) bool {
	if kind == "" {
		return false
	}
	for i := 0; i < len(kind); i++ {
		if !safeByte(kind[i]) {
			return false
		}
	}
	return true
}

// ValidatePrefix checks a subject prefix: one or more dot-separated tokens
// of [A-Za-z0-9_-].
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: empty subject prefix", ErrInvalidKey)
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if !validKind(tok) {
			return fmt.Errorf("%w: subject prefix %q: token %q must be non-empty [A-Za-z0-9_-]", ErrInvalidKey, prefix, tok)
		}
	}
	return nil
}

// Subject returns the subject of stream s: <prefix>.<kind>.<enc(key1)>[.<enc(key2)>…].
// The kind must be non-empty [A-Za-z0-9_-] and there must be at least one
// key; keys are encoded with [EncodeToken]. Errors wrap [ErrInvalidKey].
func Subject(prefix string, s StreamID) (string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return "", err
	}
	return subjectOf(prefix, s)
}

// subjectOf is Subject for an already validated prefix.
func subjectOf(prefix string, s StreamID) (string, error) {
	if !validKind(s.Kind) {
		return "", fmt.Errorf("%w: kind %q must be non-empty [A-Za-z0-9_-]", ErrInvalidKey, s.Kind)
	}
	if len(s.Keys) == 0 {
		return "", fmt.Errorf("%w: stream %q has no keys", ErrInvalidKey, s.Kind)
	}
	var b strings.Builder
	n := len(prefix) + 1 + len(s.Kind)
	for _, k := range s.Keys {
		n += 1 + len(k)
	}
	b.Grow(n)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(s.Kind)
	for i, k := range s.Keys {
		tok, err := EncodeToken(k)
		if err != nil {
			return "", fmt.Errorf("%w: %s key %d: empty", ErrInvalidKey, s.Kind, i)
		}
		b.WriteByte('.')
		b.WriteString(tok)
	}
	return b.String(), nil
}

// ParseSubject inverts [Subject]: it strips prefix, takes the kind and
// decodes every further token as a key. Errors wrap [ErrInvalidKey].
func ParseSubject(prefix, subject string) (StreamID, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return StreamID{}, err
	}
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return StreamID{}, fmt.Errorf("%w: subject %q is not under prefix %q", ErrInvalidKey, subject, prefix)
	}
	toks := strings.Split(rest, ".")
	if len(toks) < 2 {
		return StreamID{}, fmt.Errorf("%w: subject %q has no key", ErrInvalidKey, subject)
	}
	if !validKind(toks[0]) {
		return StreamID{}, fmt.Errorf("%w: subject %q: bad kind %q", ErrInvalidKey, subject, toks[0])
	}
	id := StreamID{Kind: toks[0], Keys: make([]string, len(toks)-1)}
	for i, tok := range toks[1:] {
		k, err := DecodeToken(tok)
		if err != nil {
			return StreamID{}, fmt.Errorf("subject %q: %w", subject, err)
		}
		id.Keys[i] = k
	}
	return id, nil
}
