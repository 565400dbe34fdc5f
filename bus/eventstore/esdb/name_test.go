package esdb

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
	special := rapid.SampledFrom([]string{".", "-", "%", "%2D", "%41", "*", ">", " ", "\t", "\n", "\x00", "\xff", "ü", "订单", "🙂", "/", "\\", "$", "_", "a", "Z", "9"})
	return rapid.OneOf(
		rapid.StringN(1, 40, -1),
		rapid.Custom(func(t *rapid.T) string {
			return strings.Join(rapid.SliceOfN(special, 1, 12).Draw(t, "parts"), "")
		}),
		rapid.Custom(func(t *rapid.T) string { // arbitrary bytes, not necessarily UTF-8
			return string(rapid.SliceOfN(rapid.Byte(), 1, 24).Draw(t, "bytes"))
		}),
	)
}

// kindGen draws valid kinds, dashes included.
func kindGen() *rapid.Generator[string] {
	return rapid.StringMatching(`[A-Za-z0-9_-]{1,12}`)
}

// prefixGen draws valid prefixes: dot-separated [A-Za-z0-9_] tokens.
func prefixGen() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.Just(DefaultPrefix),
		rapid.StringMatching(`[A-Za-z0-9_]{1,8}(\.[A-Za-z0-9_]{1,8}){0,2}`),
	)
}

func idGen() *rapid.Generator[eventstore.StreamID] {
	return rapid.Custom(func(t *rapid.T) eventstore.StreamID {
		return eventstore.StreamID{
			Kind: kindGen().Draw(t, "kind"),
			Keys: rapid.SliceOfN(keyGen(), 1, 4).Draw(t, "keys"),
		}
	})
}

// nameByte reports whether c may appear in a stream name.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '%' || c == '.'
}

func TestStreamNameExamples(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		id     eventstore.StreamID
		want   string
	}{
		{"gallerist", eventstore.StreamID{Kind: "instance", Keys: []string{"0197c3a2-5a1e-7b4c-9d2e-3f4a5b6c7d8e"}},
			"gallerist.instance-0197c3a2-5a1e-7b4c-9d2e-3f4a5b6c7d8e"},
		{"gallerist", eventstore.StreamID{Kind: "order", Keys: []string{"CS1906666666ABCDE", "CS1906666666ABCDE-000001"}},
			"gallerist.order-CS1906666666ABCDE.CS1906666666ABCDE-000001"},
		{"gallerist", eventstore.StreamID{Kind: "effect", Keys: []string{"provision", "abc"}},
			"gallerist.effect-provision.abc"},
		{"gallerist", eventstore.StreamID{Kind: "my-kind", Keys: []string{"a"}},
			"gallerist.my%2Dkind-a"},
		{"gallerist", eventstore.StreamID{Kind: "-", Keys: []string{"-"}},
			"gallerist.%2D--"},
		{"acme.prod", eventstore.StreamID{Kind: "instance", Keys: []string{"a.b c/ü%"}},
			"acme.prod.instance-a%2Eb%20c%2F%C3%BC%25"},
	} {
		got, err := StreamName(tc.prefix, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("StreamName(%q, %#v) = %q, %v; want %q", tc.prefix, tc.id, got, err, tc.want)
			continue
		}
		back, err := ParseStreamName(tc.prefix, got)
		if err != nil || back.Kind != tc.id.Kind || !slices.Equal(back.Keys, tc.id.Keys) {
			t.Errorf("ParseStreamName(%q, %q) = %#v, %v; want %#v", tc.prefix, got, back, err, tc.id)
		}
	}
}

// TestStreamNameRoundTrip: ParseStreamName inverts StreamName; the key part
// is the JetStream subject's; the first '-' ends the category
// "<prefix>.<kind>".
func TestStreamNameRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		prefix := prefixGen().Draw(t, "prefix")
		id := idGen().Draw(t, "id")
		name, err := StreamName(prefix, id)
		if err != nil {
			t.Fatalf("StreamName(%q, %#v): %v", prefix, id, err)
		}
		for i := 0; i < len(name); i++ {
			if !nameByte(name[i]) {
				t.Fatalf("StreamName = %q: byte %q at %d", name, name[i], i)
			}
		}
		back, err := ParseStreamName(prefix, name)
		if err != nil {
			t.Fatalf("ParseStreamName(%q, %q): %v", prefix, name, err)
		}
		if back.Kind != id.Kind || !slices.Equal(back.Keys, id.Keys) {
			t.Fatalf("round trip %#v → %q → %#v", id, name, back)
		}
		category, keys, ok := strings.Cut(name, "-")
		if !ok || category != prefix+"."+strings.ReplaceAll(id.Kind, "-", "%2D") {
			t.Fatalf("StreamName = %q: category %q", name, category)
		}
		subj, err := eventstore.Subject(prefix, id)
		if err != nil || !strings.HasSuffix(subj, "."+keys) || len(subj) != len(prefix)+1+len(id.Kind)+1+len(keys) {
			t.Fatalf("key part %q of %q differs from subject %q (%v)", keys, name, subj, err)
		}
	})
}

// TestStreamNameInjective: different ids never share a name.
func TestStreamNameInjective(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := idGen().Draw(t, "a"), idGen().Draw(t, "b")
		if rapid.Bool().Draw(t, "related") {
			// Shift a boundary: move a dash or a key between kind and keys.
			b = eventstore.StreamID{Kind: a.Kind + "-" + b.Kind, Keys: a.Keys}
		}
		na, err1 := StreamName(DefaultPrefix, a)
		nb, err2 := StreamName(DefaultPrefix, b)
		if err1 != nil || err2 != nil {
			t.Fatalf("StreamName: %v, %v", err1, err2)
		}
		same := a.Kind == b.Kind && slices.Equal(a.Keys, b.Keys)
		if (na == nb) != same {
			t.Fatalf("%#v → %q and %#v → %q", a, na, b, nb)
		}
	})
}

// TestParseStreamNameCanonical: whatever ParseStreamName accepts maps back
// to itself, so no two names denote one stream.
func TestParseStreamNameCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		alphabet := rapid.SampledFrom([]string{"a", "Z", "0", "_", "-", ".", "%", "2", "D", "d", "%2D", "%2E", "%41", "%C3", "%bc", "x"})
		name := DefaultPrefix + "." + strings.Join(rapid.SliceOfN(alphabet, 0, 16).Draw(t, "parts"), "")
		checkCanonical(t, name)
	})
}

func checkCanonical(t interface{ Fatalf(string, ...any) }, name string) {
	id, err := ParseStreamName(DefaultPrefix, name)
	if err != nil {
		if !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Fatalf("ParseStreamName(%q): %v does not wrap ErrInvalidKey", name, err)
		}
		return
	}
	again, err := StreamName(DefaultPrefix, id)
	if err != nil || again != name {
		t.Fatalf("ParseStreamName(%q) = %#v, which maps to %q, %v", name, id, again, err)
	}
}

func FuzzParseStreamName(f *testing.F) {
	for _, s := range []string{
		"gallerist.instance-abc", "gallerist.order-a.b", "gallerist.my%2Dkind-x%2E", "gallerist.-x",
		"gallerist.a%2d-x", "gallerist.a-", "gallerist.a-b..c", "gallerist.a-%41", "gallerist.a-%C3%BC",
		"gallerist.instance", "other.instance-a", "gallerist.%2D--",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkCanonical(t, name)
	})
}

func FuzzStreamName(f *testing.F) {
	f.Add("instance", "abc", "")
	f.Add("order", "CS1", "CS1-000001")
	f.Add("my-kind", "a.b", "-")
	f.Add("-", "%2D", "ü")
	f.Fuzz(func(t *testing.T, kind, k1, k2 string) {
		id := eventstore.StreamID{Kind: kind, Keys: []string{k1}}
		if k2 != "" {
			id.Keys = append(id.Keys, k2)
		}
		name, err := StreamName(DefaultPrefix, id)
		_, subjErr := eventstore.Subject(DefaultPrefix, id)
		if (err == nil) != (subjErr == nil) {
			t.Fatalf("StreamName error %v but Subject error %v: the backends must accept the same ids", err, subjErr)
		}
		if err != nil {
			if !errors.Is(err, eventstore.ErrInvalidKey) {
				t.Fatalf("StreamName(%#v): %v does not wrap ErrInvalidKey", id, err)
			}
			return
		}
		back, err := ParseStreamName(DefaultPrefix, name)
		if err != nil || back.Kind != id.Kind || !slices.Equal(back.Keys, id.Keys) {
			t.Fatalf("round trip %#v → %q → %#v, %v", id, name, back, err)
		}
	})
}

func TestStreamNameInvalid(t *testing.T) {
	bad := []eventstore.StreamID{
		{Kind: "", Keys: []string{"a"}},
		{Kind: "instance", Keys: nil},
		{Kind: "instance", Keys: []string{""}},
		{Kind: "instance", Keys: []string{"a", ""}},
		{Kind: "inst.ance", Keys: []string{"a"}},
		{Kind: "inst>", Keys: []string{"a"}},
		{Kind: "inst%2D", Keys: []string{"a"}},
		{Kind: "ü", Keys: []string{"a"}},
	}
	for _, id := range bad {
		if name, err := StreamName(DefaultPrefix, id); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("StreamName(%#v) = %q, %v; want ErrInvalidKey", id, name, err)
		}
	}
	ok := eventstore.StreamID{Kind: "instance", Keys: []string{"a"}}
	for _, prefix := range []string{"", "a-b", "a..b", ".a", "a.", "$all", "a b", "a%2D"} {
		if name, err := StreamName(prefix, ok); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("StreamName(prefix %q) = %q, %v; want ErrInvalidKey", prefix, name, err)
		}
		if _, err := ParseStreamName(prefix, prefix+".instance-a"); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("ParseStreamName(prefix %q): %v; want ErrInvalidKey", prefix, err)
		}
	}
}

func TestParseStreamNameRejects(t *testing.T) {
	for _, name := range []string{
		"",
		"gallerist",
		"gallerist.",
		"gallerist.instance",        // no keys
		"gallerist.instance.a",      // the JetStream subject, not a stream name
		"other.instance-a",          // another prefix
		"galleristx.instance-a",     // prefix must end at a dot
		"gallerist.-a",              // empty kind
		"gallerist.instance-",       // empty key
		"gallerist.instance-a.",     // empty last key
		"gallerist.instance-a..b",   // empty middle key
		"gallerist.inst%2dance-a",   // lower-case escape
		"gallerist.inst%41nce-a",    // escape other than %2D in the kind
		"gallerist.inst.ance-a",     // '.' in the kind
		"gallerist.instance-%41",    // needless escape in a key
		"gallerist.instance-a b",    // raw space
		"gallerist.instance-%2",     // truncated escape
		"gallerist.instance-a%zz",   // bad escape
		"$ce-gallerist.instance",    // a system stream
		"gallerist.instance-a/b",    // raw slash
		"gallerist.instance-a\x00b", // raw NUL
	} {
		if id, err := ParseStreamName(DefaultPrefix, name); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("ParseStreamName(%q) = %#v, %v; want ErrInvalidKey", name, id, err)
		}
	}
}
