package esdb

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"pgregory.net/rapid"
)

func TestEventIDNamespace(t *testing.T) {
	want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/gallerist/gallerist/bus/eventstore/esdb#event-id"))
	if got := eventIDNamespace(); got != want {
		t.Fatalf("eventIDNamespace() = %s, want %s", got, want)
	}
	if got := eventIDNamespace().String(); got != "525f7900-e849-5980-b39f-655c23764cde" {
		t.Fatalf("namespace %s changed: stored event ids depend on it", got)
	}
}

// TestEventUUIDKnownValues pins the derivation (values computed
// independently with Python's uuid.uuid5): stored events depend on it.
func TestEventUUIDKnownValues(t *testing.T) {
	for id, want := range map[string]string{
		"evt-1":                                "a2cc2830-f5b4-5639-95ef-bd76e5594d5e",
		"01JZ0000000000000000000000":           "c5a7154e-3e51-5fac-af01-ae5d8325020e", // a ULID
		"0197c3a2-5a1e-7b4c-9d2e-3f4a5b6c7d8e": "0197c3a2-5a1e-7b4c-9d2e-3f4a5b6c7d8e", // kept
		"0197C3A2-5A1E-7B4C-9D2E-3F4A5B6C7D8E": "fb7060d0-a4f6-531f-824c-edd34b89a96d", // upper case: derived
	} {
		if got := EventUUID(id).String(); got != want {
			t.Errorf("EventUUID(%q) = %s, want %s", id, got, want)
		}
	}
}

func TestEventUUIDKeepsCanonicalUUIDs(t *testing.T) {
	for range 100 {
		for _, u := range []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.New()} {
			if got := EventUUID(u.String()); got != u {
				t.Fatalf("EventUUID(%s) = %s, want the id itself", u, got)
			}
		}
	}
}

func TestEventUUIDDerivesOtherIDs(t *testing.T) {
	u := uuid.Must(uuid.NewV7())
	for _, id := range []string{
		"evt-0123456789abcdef",
		strings.ToUpper(u.String()),
		"{" + u.String() + "}",
		"urn:uuid:" + u.String(),
		strings.ReplaceAll(u.String(), "-", ""),
		uuid.Nil.String(),
		" " + u.String()[1:],
		"x",
		"ünï-cødé",
		"\x00\xff",
	} {
		got := EventUUID(id)
		if got.Version() != 5 || got.Variant() != uuid.RFC4122 {
			t.Errorf("EventUUID(%q) = %s: version %d variant %s, want a UUIDv5", id, got, got.Version(), got.Variant())
		}
		if got == uuid.Nil || got == u {
			t.Errorf("EventUUID(%q) = %s", id, got)
		}
		if again := EventUUID(id); again != got {
			t.Errorf("EventUUID(%q) not deterministic: %s then %s", id, got, again)
		}
	}
}

// TestEventUUIDDistinct: different ids get different UUIDs, whether kept or
// derived.
func TestEventUUIDDistinct(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.OneOf(
			rapid.StringN(1, 40, -1),
			rapid.Custom(func(t *rapid.T) string {
				b := rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "uuid")
				return uuid.UUID(b).String()
			}),
		)
		a, b := gen.Draw(t, "a"), gen.Draw(t, "b")
		if (EventUUID(a) == EventUUID(b)) != (a == b) {
			t.Fatalf("EventUUID(%q) = %s, EventUUID(%q) = %s", a, EventUUID(a), b, EventUUID(b))
		}
	})
}
