package esdb

import "github.com/google/uuid"

// eventIDNamespace is the UUIDv5 namespace of derived event ids:
// uuid.NewSHA1(uuid.NameSpaceURL,
// "https://github.com/gallerist/gallerist/bus/eventstore/esdb#event-id"),
// i.e. 525f7900-e849-5980-b39f-655c23764cde (a test checks the derivation).
// It must never change: the ids of stored events depend on it.
func eventIDNamespace() uuid.UUID {
	return uuid.UUID{0x52, 0x5f, 0x79, 0x00, 0xe8, 0x49, 0x59, 0x80, 0xb3, 0x9f, 0x65, 0x5c, 0x23, 0x76, 0x4c, 0xde}
}

// EventUUID returns the EventStoreDB event id of the Gallerist event id id.
// Gallerist mints its ids as UUIDv7 strings (uuid.NewV7().String()): an id
// that is a UUID in canonical form (lower-case, hyphenated, 36 characters)
// and not the nil UUID is used as is, so the id on EventStoreDB is the
// Gallerist id. Any other id (upper-case or braced UUIDs, "evt-…" test ids,
// anything) maps to the UUIDv5 of id in a fixed namespace: deterministic,
// so a retried append carries the same id, and never the nil UUID, which
// EventStoreDB does not accept. The original id is always in the stored
// envelope (and in the event metadata), so the mapping need not be
// inverted. The caller rejects empty ids.
func EventUUID(id string) uuid.UUID {
	if len(id) == 36 {
		if u, err := uuid.Parse(id); err == nil && u != uuid.Nil && u.String() == id {
			return u
		}
	}
	return uuid.NewSHA1(eventIDNamespace(), []byte(id))
}
