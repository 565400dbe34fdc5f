// Package esdb is an [eventstore.Store] on EventStoreDB (KurrentDB), the
// optional second backend of the event log (design: "the store sits behind
// one small Go interface so that an EventStoreDB backend can implement it;
// the same conformance test suite runs against every backend"). It passes
// the suite of package eventstore/storetest when a server is available.
//
// Mapping:
//
//   - one EventStoreDB stream per Gallerist stream id, named
//     "<prefix>.<kind>-<key1>[.<key2>…]" with the keys encoded as in the
//     JetStream subject ([StreamName], [ParseStreamName]); the category of
//     $by_category is "<prefix>.<kind>";
//   - one event per envelope: event type = the Gallerist event type, data =
//     the envelope JSON exactly as the JetStream store stores it
//     ([eventstore.EncodeEnvelope]; content type application/json), event
//     id = the Gallerist id if it is a canonical UUID, else a deterministic
//     UUIDv5 of it ([EventUUID]), metadata = a JSON copy of the envelope
//     header (everything but data, including the original id);
//   - Seq = stream revision + 1. EventStoreDB numbers the events of each
//     stream 0, 1, 2…; the store's sequences start at 1 so that 0 keeps
//     meaning "empty stream". Append(expected 0) sends expected revision
//     NoStream, Append(expected n) sends expected revision n-1, and the
//     returned, loaded and last sequences are revision+1, so the Seq of a
//     record is what Append expects next. Unlike JetStream's, these
//     sequences are per stream, not global: comparing sequences of
//     different streams, or with a JetStream consumer position, is
//     meaningless.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// Store is the [eventstore.Store] on EventStoreDB. It is safe for
// concurrent use.
//
// Reads go to the node the connection string selects (nodePreference,
// leader by default); reads from a follower may miss an event acknowledged
// an instant earlier. Appends stay correct regardless: every append carries
// the expected revision and the leader checks it.
type Store struct {
	cfg  Config
	conf *esdbc.Configuration
	log  *slog.Logger

	mu     sync.Mutex
	client *esdbc.Client
	closed bool
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the EventStoreDB of cfg.URL and checks that it answers
// (one read of a stream that no Gallerist id maps to). The client library
// connects lazily and its node discovery does not watch ctx: a call made
// while the server is unreachable can block for the discovery budget of
// the connection string (maxDiscoverAttempts × discoveryInterval, plus
// gossipTimeout per seed on a cluster) before ctx applies.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// newStore validates cfg and creates the client without contacting the
// server.
func newStore(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "eventstore", "backend", "esdb")
	conf, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	conf.Logger = clientLogger(log)
	client, err := esdbc.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("%w: esdb: %w", eventstore.ErrInvalidConfig, err)
	}
	return &Store{cfg: cfg, conf: conf, log: log, client: client}, nil
}

// ping reads the last event of the stream named <prefix> (which no stream
// id maps to, as it has no '-'); "not found" is an answer too.
func (s *Store) ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	opts := esdbc.ReadStreamOptions{Direction: esdbc.Backwards, From: esdbc.End{}}
	if _, err := s.read(ctx, s.cfg.Prefix, opts, 1, func(*esdbc.RecordedEvent) error { return nil }); err != nil {
		return fmt.Errorf("esdb: open: server does not answer: %w", withCtxErr(ctx, err))
	}
	return nil
}

// Close closes the client. Calls after Close fail with [ErrClosed].
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.client.Close()
}

// Client returns the client library's handle (e.g. for subscriptions).
// The store replaces it when the library's client has closed itself after
// a failed node discovery, so do not keep it for long.
func (s *Store) Client() *esdbc.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// Config returns the effective configuration (defaults applied).
func (s *Store) Config() Config { return s.cfg }

// StreamName returns the EventStoreDB stream of id under the store's
// prefix (see [StreamName]).
func (s *Store) StreamName(id eventstore.StreamID) (string, error) {
	return streamName(s.cfg.Prefix, id)
}

// current returns the client, or ErrClosed.
func (s *Store) current() (*esdbc.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.client, nil
}

// renew replaces dead, a client that closed itself, by a new one (unless
// another call did already) and returns the client to use.
//
// The library's client closes itself for good when a node discovery fails
// (for instance the server restarted and stayed down for the whole
// discovery budget): every later call answers ErrorCodeConnectionClosed
// from its connection lookup, before sending anything. The dead client is
// not closed again: its connection goroutine has ended and closed its gRPC
// connection, and closing its request channel could panic a call still
// trying to send on it.
func (s *Store) renew(dead *esdbc.Client) (*esdbc.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.client != dead {
		return s.client, nil
	}
	c, err := esdbc.NewClient(s.conf)
	if err != nil {
		return nil, err
	}
	s.log.Warn("esdb client had closed itself after a failed node discovery; replaced it")
	s.client = c
	return c, nil
}

// call runs op with the client. If the client had closed itself
// (ErrorCodeConnectionClosed, which the library returns only before
// sending a request, so op had no effect) and the store is open, op runs
// once more on a new client.
func (s *Store) call(op func(*esdbc.Client) error) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	err = op(c)
	if !hasCode(err, esdbc.ErrorCodeConnectionClosed) {
		return err
	}
	c, rerr := s.renew(c)
	if rerr != nil {
		if errors.Is(rerr, ErrClosed) {
			return rerr
		}
		return err
	}
	return op(c)
}

// withTimeout gives ctx the configured deadline if it has none.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// metadata is the event metadata: the envelope header, so that tools that
// read metadata only (projections, the web UI) see the Gallerist id, kind,
// aggregate, schema version, time and causation. The data stays
// authoritative.
type metadata struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"v"`
	AggregateKind string          `json:"kind"`
	AggregateID   string          `json:"aggregateId"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Causation     event.Causation `json:"causation"`
}

// eventData returns the EventStoreDB event of ev.
func eventData(ev event.Envelope) (esdbc.EventData, error) {
	if ev.ID == "" {
		return esdbc.EventData{}, fmt.Errorf("%w: empty event ID", eventstore.ErrInvalidEvent)
	}
	if ev.Type == "" {
		// EventStoreDB needs an event type (its server and clients refuse an
		// empty one), although the JetStream store would accept it.
		return esdbc.EventData{}, fmt.Errorf("%w: event %s: empty event type", eventstore.ErrInvalidEvent, ev.ID)
	}
	data, err := eventstore.EncodeEnvelope(ev)
	if err != nil {
		return esdbc.EventData{}, err
	}
	meta, err := json.Marshal(metadata{
		ID: ev.ID, Type: ev.Type, Version: ev.Version,
		AggregateKind: ev.AggregateKind, AggregateID: ev.AggregateID,
		OccurredAt: ev.OccurredAt, Causation: ev.Causation,
	})
	if err != nil {
		return esdbc.EventData{}, fmt.Errorf("%w: event %s: metadata: %w", eventstore.ErrInvalidEvent, ev.ID, err)
	}
	return esdbc.EventData{
		EventID:     EventUUID(ev.ID),
		EventType:   ev.Type,
		ContentType: esdbc.ContentTypeJson,
		Data:        data,
		Metadata:    meta,
	}, nil
}

// Append implements [eventstore.Store.Append]: one AppendToStream with the
// expected revision of expected (NoStream for 0, revision expected-1
// otherwise); it returns the sequence (revision+1) of the stored event.
//
// A wrong expected version is an error wrapping [eventstore.ErrConflict],
// unless the event at sequence expected+1 already is ev (same event id):
// then an earlier attempt of this append succeeded and its sequence is
// returned, as when JetStream drops a duplicate Nats-Msg-Id. (The server
// itself answers such a retry as an idempotent success.) Unlike JetStream,
// EventStoreDB does not reject an event id that another stream holds.
func (s *Store) Append(ctx context.Context, id eventstore.StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	name, err := s.StreamName(id)
	if err != nil {
		return 0, err
	}
	ed, err := eventData(ev)
	if err != nil {
		return 0, fmt.Errorf("esdb: append to %s: %w", name, err)
	}
	want, ok := expectedRevision(expected)
	if !ok {
		return 0, fmt.Errorf("esdb: append %s to %s: %w: expected sequence %d is beyond any stream revision",
			ev.ID, name, eventstore.ErrConflict, expected)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()

	var res *esdbc.WriteResult
	err = s.call(func(c *esdbc.Client) error {
		var err error
		res, err = c.AppendToStream(ctx, name, esdbc.AppendToStreamOptions{ExpectedRevision: want}, ed)
		return err
	})
	if err != nil {
		if isWrongExpectedVersion(err) && s.storedAt(ctx, name, expected, ed.EventID) {
			s.log.Debug("append retry found its event already stored", "stream", name, "eventId", ev.ID, "seq", expected+1)
			return expected + 1, nil
		}
		return 0, conflictError(withCtxErr(ctx, err), ev.ID, name, expected)
	}
	if res.NextExpectedVersion == expected {
		return expected + 1, nil
	}
	// The new event must be at revision expected. Any other answer is not
	// one the server gives for a single event; trust only what can be read.
	if s.storedAt(ctx, name, expected, ed.EventID) {
		return expected + 1, nil
	}
	return 0, fmt.Errorf("esdb: append %s to %s expecting sequence %d: server reported revision %d, and the event is not at revision %d",
		ev.ID, name, expected, res.NextExpectedVersion, expected)
}

// storedAt reports whether the event at revision rev (sequence rev+1) of
// stream name has event id eid. Read errors count as "no".
func (s *Store) storedAt(ctx context.Context, name string, rev uint64, eid uuid.UUID) bool {
	if rev > maxRevision {
		return false
	}
	var found bool
	opts := esdbc.ReadStreamOptions{Direction: esdbc.Forwards, From: esdbc.Revision(rev)}
	_, err := s.read(ctx, name, opts, 1, func(e *esdbc.RecordedEvent) error {
		found = e.EventNumber == rev && e.EventID == eid
		return nil
	})
	if err != nil {
		s.log.Debug("reading the event at the expected revision failed", "stream", name, "revision", rev, "error", err)
		return false
	}
	return found
}

// Load implements [eventstore.Store.Load]: forward reads from revision
// after (the first event with sequence > after), ReadBatch events per
// request, until a read returns fewer. An unknown stream has no events.
func (s *Store) Load(ctx context.Context, id eventstore.StreamID, after uint64) ([]eventstore.Record, error) {
	name, err := s.StreamName(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	batch := uint64(s.cfg.ReadBatch)
	var out []eventstore.Record
	from := after // revision of sequence after+1
	for from <= maxRevision {
		var n uint64
		opts := esdbc.ReadStreamOptions{Direction: esdbc.Forwards, From: esdbc.Revision(from)}
		found, err := s.read(ctx, name, opts, batch, func(e *esdbc.RecordedEvent) error {
			if e.StreamID != name || e.EventNumber < from {
				return fmt.Errorf("esdb: read from revision %d of %s returned revision %d of %s", from, name, e.EventNumber, e.StreamID)
			}
			rec, err := recordOf(name, e)
			if err != nil {
				return err
			}
			out = append(out, rec)
			from = e.EventNumber + 1
			n++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("esdb: load %s after %d: %w", name, after, withCtxErr(ctx, err))
		}
		if !found || n < batch {
			break
		}
	}
	return out, nil
}

// Last implements [eventstore.Store.Last] with a backward read of one
// event from the end.
func (s *Store) Last(ctx context.Context, id eventstore.StreamID) (uint64, error) {
	name, err := s.StreamName(id)
	if err != nil {
		return 0, err
	}
	e, err := s.last(ctx, name)
	if err != nil || e == nil {
		return 0, err
	}
	return e.EventNumber + 1, nil
}

// Leader implements [eventstore.Store.Leader] with the store itself: its
// reads go to the leader with the default nodePreference=leader (a
// connection string that prefers followers gives up that freshness).
func (s *Store) Leader() eventstore.Store { return s }

// LastEvent implements [eventstore.Store.LastEvent] with the same read as
// Last.
func (s *Store) LastEvent(ctx context.Context, id eventstore.StreamID) (eventstore.Record, error) {
	name, err := s.StreamName(id)
	if err != nil {
		return eventstore.Record{}, err
	}
	e, err := s.last(ctx, name)
	if err != nil {
		return eventstore.Record{}, err
	}
	if e == nil {
		return eventstore.Record{}, fmt.Errorf("esdb: last event of %s: %w", name, eventstore.ErrNotFound)
	}
	return recordOf(name, e)
}

// last reads the last event of stream name; nil, nil if there is none.
func (s *Store) last(ctx context.Context, name string) (*esdbc.RecordedEvent, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var last *esdbc.RecordedEvent
	opts := esdbc.ReadStreamOptions{Direction: esdbc.Backwards, From: esdbc.End{}}
	_, err := s.read(ctx, name, opts, 1, func(e *esdbc.RecordedEvent) error {
		if e.StreamID != name {
			return fmt.Errorf("esdb: read of %s returned an event of %s", name, e.StreamID)
		}
		last = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("esdb: last of %s: %w", name, withCtxErr(ctx, err))
	}
	return last, nil
}

// read runs one read request and calls each for every event. found is
// false if the stream does not exist. Links are not resolved: the store's
// streams hold no links, and a foreign one fails to decode.
func (s *Store) read(ctx context.Context, name string, opts esdbc.ReadStreamOptions, count uint64, each func(*esdbc.RecordedEvent) error) (found bool, err error) {
	var rs *esdbc.ReadStream
	err = s.call(func(c *esdbc.Client) error {
		var err error
		rs, err = c.ReadStream(ctx, name, opts, count)
		return err
	})
	if err != nil {
		if isStreamNotFound(err) {
			return false, nil
		}
		return false, err
	}
	defer rs.Close()
	for {
		re, err := recv(rs)
		switch {
		case errors.Is(err, io.EOF):
			return true, nil
		case isStreamNotFound(err):
			return false, nil
		case err != nil:
			return false, err
		case re == nil || re.Event == nil:
			return false, fmt.Errorf("esdb: read of %s returned an empty event", name)
		}
		if err := each(re.Event); err != nil {
			return true, err
		}
	}
}

// recv is rs.Recv, with the library's panic on a response it does not know
// ("unreachable code") turned into an error.
func recv(rs *esdbc.ReadStream) (re *esdbc.ResolvedEvent, err error) {
	defer func() {
		if p := recover(); p != nil {
			re, err = nil, fmt.Errorf("esdb: client library failed on a read response: %v", p)
		}
	}()
	return rs.Recv()
}

// recordOf decodes a stored event. An event that is not an envelope is an
// error naming its revision and wrapping [eventstore.ErrCorrupt].
func recordOf(name string, e *esdbc.RecordedEvent) (eventstore.Record, error) {
	ev, err := eventstore.DecodeEnvelope(e.Data)
	if err != nil {
		return eventstore.Record{}, fmt.Errorf("esdb: event at revision %d of %s: %w", e.EventNumber, name, err)
	}
	return eventstore.Record{Seq: e.EventNumber + 1, Subject: name, Event: ev}, nil
}

// clientLogger routes the client library's log to log: its debug and info
// lines (discovery attempts, reconnections) at debug level, its warnings
// and errors (which include every failed call, e.g. a cancelled context)
// at warn level.
func clientLogger(log *slog.Logger) esdbc.LoggingFunc {
	return func(level esdbc.LogLevel, format string, args ...any) {
		l := slog.LevelDebug
		if level == esdbc.LogWarn || level == esdbc.LogError {
			l = slog.LevelWarn
		}
		ctx := context.Background()
		if !log.Enabled(ctx, l) {
			return
		}
		log.Log(ctx, l, "esdb client: "+fmt.Sprintf(format, args...), "clientLevel", level)
	}
}
