// Package eventstore is the event store of the event-sourced core: an
// append-only log of [event.Envelope]s partitioned into one stream per
// aggregate, with optimistic concurrency on the per-stream sequence.
//
// [Store] is the interface the domain layer uses; [JetStreamStore] is its
// NATS JetStream implementation (design.md §3): one JetStream stream holds
// every aggregate, each aggregate is one subject
// <prefix>.<kind>.<key1>[.<key2>…] (see [Subject]), and sequences are
// stream-wide. Other backends prove themselves with the conformance suite
// in package eventstore/storetest.
package eventstore

import (
	"context"
	"errors"

	"github.com/gallerist/gallerist/domain/event"
)

// TypeHeader carries the event type on every stored message, so that a
// consumer interested in a few types can skip the others without decoding
// the body. The body's type stays authoritative.
const TypeHeader = "Gallerist-Event-Type"

// StreamID addresses one aggregate's event stream, e.g.
// {Kind:"instance", Keys:[]string{"abc"}} or the order index
// {Kind:"order", Keys:[]string{orderId, orderLineId}}.
type StreamID struct {
	Kind string
	Keys []string
}

// Record is one stored event.
type Record struct {
	// Seq is the stream-wide sequence of the event; it is the value to pass
	// as expected to [Store.Append] after this event.
	Seq uint64
	// Subject is the backend's address of the aggregate stream.
	Subject string
	Event   event.Envelope
}

var (
	// ErrConflict means the stream was not at the expected sequence (someone
	// else appended first): reload, decide again, retry.
	ErrConflict = errors.New("eventstore: concurrency conflict")
	// ErrNotFound means the stream has no events.
	ErrNotFound = errors.New("eventstore: not found")
	// ErrInvalidKey means a stream id (kind or key) cannot be addressed.
	ErrInvalidKey = errors.New("eventstore: invalid stream key")
	// ErrInvalidEvent means an envelope cannot be stored (no ID, Data not
	// JSON).
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrCorrupt means a stored message is not a decodable envelope.
	ErrCorrupt = errors.New("eventstore: corrupt event")
	// ErrInvalidConfig wraps configuration validation errors.
	ErrInvalidConfig = errors.New("eventstore: invalid config")
	// ErrStreamMismatch means an existing JetStream stream is configured in
	// a way the store cannot use and cannot safely fix.
	ErrStreamMismatch = errors.New("eventstore: stream configuration mismatch")
)

// Store is an event store with optimistic concurrency per stream.
type Store interface {
	// Append publishes ev as the next event of stream s, only if the last
	// sequence of s is expected (0 = the stream must be empty). ev.ID
	// deduplicates (Nats-Msg-Id on JetStream). It returns the sequence of
	// the appended event. A mismatch returns an error wrapping
	// [ErrConflict]. Retrying an append whose acknowledgement was lost
	// returns the sequence of the stored event instead of a conflict.
	Append(ctx context.Context, s StreamID, expected uint64, ev event.Envelope) (uint64, error)
	// Load returns the events of s with sequence > after, oldest first; an
	// unknown stream has none.
	Load(ctx context.Context, s StreamID, after uint64) ([]Record, error)
	// Last returns the sequence of the last event of s, 0 if none.
	Last(ctx context.Context, s StreamID) (uint64, error)
	// LastEvent returns the last record of s, an error wrapping
	// [ErrNotFound] if none.
	LastEvent(ctx context.Context, s StreamID) (Record, error)
	// Leader returns the store's read mode for freshness-critical reads:
	// its Load, Last and LastEvent reflect every event acknowledged before
	// the read began, even where the ordinary reads may be answered by a
	// replica that lags behind (JetStream direct gets on a replicated
	// stream; the leader read mode asks the stream leader). Its Append is
	// the store's. A store whose reads are always that fresh returns
	// itself; a wrapper that forwards reads forwards Leader too. Use it
	// where a stale read gives a wrong answer: the re-check of a refusal or
	// a no-op, the read of what won a race after a conflict.
	Leader() Store
}
