package eventstore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// keyGen draws keys rich in the bytes that need encoding.
func keyGen() *rapid.Generator[string] {
	special := rapid.SampledFrom([]string{".", "*", ">", " ", "%", "%41", "\t", "\n", "\x00", "\xff", "ü", "订单", "🙂", "/", "\\", "-", "_", "a", "Z", "9"})
	return rapid.OneOf(
		rapid.StringN(1, 40, -1),
		rapid.Custom(func(t *rapid.T) string {
			parts := rapid.SliceOfN(special, 1, 12).Draw(t, "parts")
			return strings.Join(parts, "")
		}),
		rapid.Custom(func(t *rapid.T) string { // arbitrary bytes, not necessarily UTF-8
			return string(rapid.SliceOfN(rapid.Byte(), 1, 24).Draw(t, "bytes"))
		}),
	)
}

func isSafeToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '%') {
			return false
		}
	}
	return tok != ""
}

func TestTokenRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		key := keyGen().Draw(t, "key")
		tok, err := eventstore.EncodeToken(key)
		if err != nil {
			t.Fatalf("EncodeToken(%q): %v", key, err)
		}
		if !isSafeToken(tok) {
			t.Fatalf("EncodeToken(%q) = %q contains bytes outside [A-Za-z0-9_%%-]", key, tok)
		}
		back, err := eventstore.DecodeToken(tok)
		if err != nil {
			t.Fatalf("DecodeToken(%q): %v", tok, err)
		}
		if back != key {
			t.Fatalf("round trip %q → %q → %q", key, tok, back)
		}
	})
}

// TestTokenCanonical: whatever DecodeToken accepts re-encodes to itself, so
// no two tokens name the same key.
func TestTokenCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		alphabet := rapid.SampledFrom([]byte("aZ09_-%%%ABCDEFabcdef.* "))
		tok := string(rapid.SliceOfN(alphabet, 0, 16).Draw(t, "tok"))
		key, err := eventstore.DecodeToken(tok)
		if err != nil {
			if !errors.Is(err, eventstore.ErrInvalidKey) {
				t.Fatalf("DecodeToken(%q) error %v does not wrap ErrInvalidKey", tok, err)
			}
			return
		}
		again, err := eventstore.EncodeToken(key)
		if err != nil || again != tok {
			t.Fatalf("DecodeToken(%q) = %q re-encodes to %q, %v", tok, key, again, err)
		}
	})
}

func TestTokenExamples(t *testing.T) {
	cases := map[string]string{
		"abc-DEF_123": "abc-DEF_123",
		"a.b":         "a%2Eb",
		"*":           "%2A",
		">":           "%3E",
		"a b":         "a%20b",
		"%":           "%25",
		"ü":           "%C3%BC",
	}
	for in, want := range cases {
		got, err := eventstore.EncodeToken(in)
		if err != nil || got != want {
			t.Errorf("EncodeToken(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.b", "%2e", "%41", "%4", "%G0", "a b", "*", ">"} {
		if _, err := eventstore.DecodeToken(bad); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("DecodeToken(%q): %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, err := eventstore.EncodeToken(""); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("EncodeToken(\"\"): %v, want ErrInvalidKey", err)
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		prefix := rapid.SampledFrom([]string{"gallerist", "acme.gallerist", "g-1_x"}).Draw(t, "prefix")
		kind := rapid.StringMatching(`[A-Za-z0-9_-]{1,12}`).Draw(t, "kind")
		keys := rapid.SliceOfN(keyGen(), 1, 4).Draw(t, "keys")
		id := eventstore.StreamID{Kind: kind, Keys: keys}
		subj, err := eventstore.Subject(prefix, id)
		if err != nil {
			t.Fatalf("Subject(%q, %#v): %v", prefix, id, err)
		}
		if strings.ContainsAny(subj, " \t\r\n*>") || strings.Contains(subj, "..") {
			t.Fatalf("Subject = %q is not a literal NATS subject", subj)
		}
		if want := strings.Count(prefix, ".") + 2 + len(keys); len(strings.Split(subj, ".")) != want {
			t.Fatalf("Subject = %q has %d tokens, want %d", subj, len(strings.Split(subj, ".")), want)
		}
		back, err := eventstore.ParseSubject(prefix, subj)
		if err != nil {
			t.Fatalf("ParseSubject(%q): %v", subj, err)
		}
		if back.Kind != kind || !slices.Equal(back.Keys, keys) {
			t.Fatalf("round trip %#v → %q → %#v", id, subj, back)
		}
	})
}

func TestSubjectErrors(t *testing.T) {
	bad := []struct {
		prefix string
		id     eventstore.StreamID
	}{
		{"", eventstore.StreamID{Kind: "k", Keys: []string{"a"}}},
		{"a..b", eventstore.StreamID{Kind: "k", Keys: []string{"a"}}},
		{"a.*", eventstore.StreamID{Kind: "k", Keys: []string{"a"}}},
		{"g", eventstore.StreamID{Kind: "", Keys: []string{"a"}}},
		{"g", eventstore.StreamID{Kind: "k.x", Keys: []string{"a"}}},
		{"g", eventstore.StreamID{Kind: "k"}},
		{"g", eventstore.StreamID{Kind: "k", Keys: []string{"a", ""}}},
	}
	for _, c := range bad {
		if s, err := eventstore.Subject(c.prefix, c.id); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("Subject(%q, %#v) = %q, %v; want ErrInvalidKey", c.prefix, c.id, s, err)
		}
	}
	for _, s := range []string{"other.k.a", "gallerist.k", "gallerist.k.a%2", "gallerist.k..a", "gallerist.k.a b", "gallerist..a"} {
		if id, err := eventstore.ParseSubject("gallerist", s); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("ParseSubject(%q) = %#v, %v; want ErrInvalidKey", s, id, err)
		}
	}
}
