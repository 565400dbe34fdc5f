package eventstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// defaultRequestTimeout bounds a store call whose context has no deadline
// (the same default as the jetstream package's API calls).
const defaultRequestTimeout = 5 * time.Second

// JetStreamStore is the [Store] on a NATS JetStream stream. It is safe for
// concurrent use.
//
// Reads (Last, LastEvent, Load) use JetStream direct gets, which any
// replica of the stream may answer: on an R3 stream a follower can be a few
// milliseconds behind the leader, so a read may miss an event acknowledged
// an instant earlier. Writes stay correct regardless, because every Append
// carries the expected sequence and the leader checks it. Reads whose
// answer must reflect every acknowledged event go through [JetStreamStore.Leader].
type JetStreamStore struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    JetStreamConfig
	log    *slog.Logger

	// directGet is $JS.API.DIRECT.GET.<stream>; directLast the same plus
	// "." (append a subject to get its last message).
	directGet  string
	directLast string
	// msgGet is $JS.API.STREAM.MSG.GET.<stream>, answered by the leader.
	msgGet string
	// replicas is the stream's replica count when the store was opened.
	replicas int
	leader   *leaderStore
}

var _ Store = (*JetStreamStore)(nil)

// OpenJetStream opens the event store on nc. It creates the stream if it is
// missing (subjects <prefix>.>, limits retention without limits, no max
// age, discard old, direct gets allowed, the configured duplicate window),
// or validates an existing one and updates what can be updated; a mismatch
// that cannot be fixed returns an error wrapping [ErrStreamMismatch]. A nil
// log discards the store's log.
func OpenJetStream(ctx context.Context, nc *nats.Conn, cfg JetStreamConfig, log *slog.Logger) (*JetStreamStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "eventstore")
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventstore: jetstream: %w", err)
	}
	st, err := ensureStream(ctx, js, cfg, log)
	if err != nil {
		return nil, err
	}
	prefix := js.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	directGet := prefix + "DIRECT.GET." + cfg.Stream
	replicas := cfg.Replicas
	if info := st.CachedInfo(); info != nil {
		replicas = info.Config.Replicas // an existing stream keeps its own
	}
	s := &JetStreamStore{
		nc: nc, js: js, stream: st, cfg: cfg, log: log,
		directGet: directGet, directLast: directGet + ".",
		msgGet: prefix + "STREAM.MSG.GET." + cfg.Stream, replicas: replicas,
	}
	s.leader = &leaderStore{s: s}
	return s, nil
}

// Stream returns the JetStream stream (for consumers of the log).
func (s *JetStreamStore) Stream() jetstream.Stream { return s.stream }

// JetStream returns the JetStream handle the store uses.
func (s *JetStreamStore) JetStream() jetstream.JetStream { return s.js }

// Config returns the effective configuration (defaults applied).
func (s *JetStreamStore) Config() JetStreamConfig { return s.cfg }

// Subject returns the subject of stream id under the store's prefix.
func (s *JetStreamStore) Subject(id StreamID) (string, error) {
	return subjectOf(s.cfg.Prefix, id)
}

// withTimeout gives ctx the default deadline if it has none.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultRequestTimeout)
}
