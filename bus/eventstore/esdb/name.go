package esdb

import (
	"fmt"
	"strings"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// kindDash is how a '-' inside a kind is written in a stream name, so that
// the first '-' of a name always ends the category (see [StreamName]).
const kindDash = "%2D"

// StreamName returns the EventStoreDB stream of Gallerist stream id under
// prefix:
//
//	<prefix>.<kind>-<enc(key1)>[.<enc(key2)>…]
//
// e.g. "gallerist.instance-0197c3a2-…" or
// "gallerist.order-CS0001.CS0001-000001". The keys are encoded with
// [eventstore.EncodeToken] (bytes outside [A-Za-z0-9_-] become %XX), so the
// key part is exactly the key part of the JetStream subject; a '-' inside
// the kind is written %2D. The first '-' of the name therefore separates
// "<prefix>.<kind>" from the keys, which makes it the category of
// EventStoreDB's $by_category projection: $ce-gallerist.instance holds
// (links to) every instance event. [ParseStreamName] inverts the mapping.
//
// The kind must be non-empty [A-Za-z0-9_-] and there must be at least one
// non-empty key, exactly as for the JetStream subject; the prefix must be
// valid for [eventstore.ValidatePrefix] and contain no '-' (see
// [ValidatePrefix]). Errors wrap [eventstore.ErrInvalidKey].
func StreamName(prefix string, id eventstore.StreamID) (string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return "", err
	}
	return streamName(prefix, id)
}

// streamName is StreamName for an already validated prefix.
func streamName(prefix string, id eventstore.StreamID) (string, error) {
	// eventstore.Subject checks the kind and the keys and encodes the keys;
	// its "<prefix>.<kind>." head is replaced by "<prefix>.<kind'>-".
	subj, err := eventstore.Subject(prefix, id)
	if err != nil {
		return "", err
	}
	keys := subj[len(prefix)+1+len(id.Kind)+1:]
	var b strings.Builder
	b.Grow(len(prefix) + 1 + len(id.Kind) + 2*strings.Count(id.Kind, "-") + 1 + len(keys))
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(strings.ReplaceAll(id.Kind, "-", kindDash))
	b.WriteByte('-')
	b.WriteString(keys)
	return b.String(), nil
}

// ParseStreamName inverts [StreamName]: it strips "<prefix>.", takes the
// kind up to the first '-' and decodes each '.'-separated token after it as
// a key. It accepts only the canonical form StreamName produces, so no two
// names parse to the same id. Errors wrap [eventstore.ErrInvalidKey].
func ParseStreamName(prefix, name string) (eventstore.StreamID, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return eventstore.StreamID{}, err
	}
	rest, ok := strings.CutPrefix(name, prefix+".")
	if !ok {
		return eventstore.StreamID{}, fmt.Errorf("%w: stream %q is not under prefix %q", eventstore.ErrInvalidKey, name, prefix)
	}
	kindTok, keys, ok := strings.Cut(rest, "-")
	if !ok {
		return eventstore.StreamID{}, fmt.Errorf("%w: stream %q has no '-' before its keys", eventstore.ErrInvalidKey, name)
	}
	kind, err := decodeKind(kindTok)
	if err != nil {
		return eventstore.StreamID{}, fmt.Errorf("stream %q: %w", name, err)
	}
	id := eventstore.StreamID{Kind: kind}
	for tok := range strings.SplitSeq(keys, ".") {
		k, err := eventstore.DecodeToken(tok)
		if err != nil {
			return eventstore.StreamID{}, fmt.Errorf("stream %q: %w", name, err)
		}
		id.Keys = append(id.Keys, k)
	}
	return id, nil
}

// decodeKind inverts the kind encoding of StreamName: tok is [A-Za-z0-9_]
// with every '-' written %2D, and nothing else.
func decodeKind(tok string) (string, error) {
	kind := strings.ReplaceAll(tok, kindDash, "-")
	if kind == "" {
		return "", fmt.Errorf("%w: empty kind", eventstore.ErrInvalidKey)
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return "", fmt.Errorf("%w: bad kind %q", eventstore.ErrInvalidKey, tok)
		}
	}
	return kind, nil
}

// ValidatePrefix checks a stream name prefix: what
// [eventstore.ValidatePrefix] accepts (dot-separated tokens of
// [A-Za-z0-9_-]) without '-', so that the first '-' of a stream name ends
// its category. Errors wrap [eventstore.ErrInvalidKey].
func ValidatePrefix(prefix string) error {
	if err := eventstore.ValidatePrefix(prefix); err != nil {
		return err
	}
	if strings.ContainsRune(prefix, '-') {
		return fmt.Errorf("%w: stream prefix %q must not contain '-' (it separates the category from the keys)", eventstore.ErrInvalidKey, prefix)
	}
	return nil
}
