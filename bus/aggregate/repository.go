// Package aggregate runs commands against event-sourced aggregates stored in
// an eventstore.Store: load (from a bounded in-memory cache when possible),
// decide, append with optimistic concurrency, evolve. It is generic over the
// aggregate so that every aggregate kind shares one correct implementation.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// Definition describes one aggregate kind to the repository.
type Definition[S, E, C any] struct {
	// Kind is the aggregate kind, the subject token after the prefix.
	Kind   string
	Decide func(S, C) ([]E, error)
	Evolve func(S, E) S
	Encode func(E) (typ string, version int, data []byte, err error)
	Decode func(typ string, version int, data []byte) (E, error)
}

// Config tunes a repository.
type Config struct {
	// CacheSize bounds the number of aggregates kept in memory (LRU).
	CacheSize int
	// MaxRetries bounds the attempts of one command: it is decided and
	// appended at most MaxRetries times (1 means no retry after a conflict).
	MaxRetries int
	// SingleWriter declares that this repository is the only writer of the
	// kind's streams (e.g. an embedded NATS server that accepts no outside
	// connections). The cache is then authoritative: fresh reads and the
	// re-check of refusals skip the store. Never set it when another
	// process can append.
	SingleWriter bool
	// Now and NewID are clocks and id sources; nil means time.Now and UUIDv7.
	Now   func() time.Time
	NewID func() string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{CacheSize: 100_000, MaxRetries: 8} }

// Validate checks the config.
func (c Config) Validate() error {
	if c.CacheSize < 1 {
		return fmt.Errorf("aggregate: CacheSize must be ≥ 1, got %d", c.CacheSize)
	}
	if c.MaxRetries < 1 {
		return fmt.Errorf("aggregate: MaxRetries must be ≥ 1, got %d", c.MaxRetries)
	}
	return nil
}

// ErrTooManyConflicts is returned when a command kept conflicting.
var ErrTooManyConflicts = errors.New("aggregate: too many concurrent modifications")

type entry[S any] struct {
	state S
	seq   uint64
}

// Repository loads, caches and changes aggregates of one kind.
type Repository[S, E, C any] struct {
	store eventstore.Store
	def   Definition[S, E, C]
	cfg   Config
	cache *lru.Cache[string, entry[S]]
	seed  maphash.Seed
	locks [256]stripe
}

// stripe is one of the per-aggregate locks: a channel holding one token
// while it is held, so that a waiter can give up when its context ends (a
// sync.Mutex cannot), e.g. an ingress call behind a command whose append
// was lost with a stopping NATS node and that holds the stripe until its
// own, longer deadline.
type stripe chan struct{}

// unlock releases the stripe.
func (l stripe) unlock() { <-l }

// New builds a repository.
func New[S, E, C any](store eventstore.Store, def Definition[S, E, C], cfg Config) (*Repository[S, E, C], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	cache, err := lru.New[string, entry[S]](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("aggregate: cache: %w", err)
	}
	r := &Repository[S, E, C]{store: store, def: def, cfg: cfg, cache: cache, seed: maphash.MakeSeed()}
	for i := range r.locks {
		r.locks[i] = make(stripe, 1)
	}
	return r, nil
}

func (r *Repository[S, E, C]) streamID(id string) eventstore.StreamID {
	return eventstore.StreamID{Kind: r.def.Kind, Keys: []string{id}}
}

// lock serialises commands on one aggregate inside this process, so that
// concurrent duplicates queue instead of conflicting; other processes are
// kept consistent by the expected-sequence check of the append. Aggregates
// share 256 stripes. A caller whose ctx ends while it waits gets an error
// wrapping ctx.Err() at once; the holder keeps the stripe.
func (r *Repository[S, E, C]) lock(ctx context.Context, id string) (stripe, error) {
	l := r.locks[maphash.String(r.seed, id)%uint64(len(r.locks))]
	select {
	case l <- struct{}{}:
		return l, nil
	default:
	}
	select {
	case l <- struct{}{}:
		return l, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("aggregate: waiting for %s %s: %w", r.def.Kind, id, ctx.Err())
	}
}

// Execute decides cmd against aggregate id and appends the resulting
// events. It returns the state after the command (unchanged for an
// idempotent repeat), the events appended and the domain error, if any.
func (r *Repository[S, E, C]) Execute(ctx context.Context, id string, cmd C, cause event.Causation) (S, []E, error) {
	l, err := r.lock(ctx, id)
	if err != nil {
		var zero S
		return zero, nil, err
	}
	defer l.unlock()

	cur, err := r.cached(ctx, id)
	if err != nil {
		var zero S
		return zero, nil, err
	}
	verified := false
	for attempt := 0; ; attempt++ {
		events, derr := r.def.Decide(cur.state, cmd)
		if derr != nil || len(events) == 0 {
			// A refusal or a no-op decided on a cached state may be stale
			// (another replica wrote since): confirm against the stream
			// leader once before answering (a lagging replica could
			// confirm the stale state).
			if !verified && !r.cfg.SingleWriter {
				verified = true
				fresh, changed, err := r.refresh(ctx, id, cur)
				if err != nil {
					return cur.state, nil, err
				}
				if changed {
					cur = fresh
					r.cache.Add(id, cur)
					continue
				}
			}
			return cur.state, nil, derr
		}
		next, aerr := r.append(ctx, id, cur, events, cause)
		if aerr == nil {
			r.cache.Add(id, next)
			return next.state, events, nil
		}
		if !errors.Is(aerr, eventstore.ErrConflict) || attempt+1 >= r.cfg.MaxRetries {
			r.cache.Remove(id)
			if errors.Is(aerr, eventstore.ErrConflict) {
				return cur.state, nil, fmt.Errorf("%w: %s %s", ErrTooManyConflicts, r.def.Kind, id)
			}
			return cur.state, nil, aerr
		}
		// Someone else wrote first: catch up from the leader (a lagging
		// replica may not have the winning event yet) and decide again.
		if cur, err = r.catchUpFrom(ctx, r.store.Leader(), id, cur); err != nil {
			r.cache.Remove(id)
			return cur.state, nil, err
		}
	}
}

func (r *Repository[S, E, C]) append(ctx context.Context, id string, cur entry[S], events []E, cause event.Causation) (entry[S], error) {
	for _, e := range events {
		typ, ver, data, err := r.def.Encode(e)
		if err != nil {
			return cur, err
		}
		env := event.Envelope{
			ID: r.cfg.NewID(), Type: typ, Version: ver, AggregateKind: r.def.Kind, AggregateID: id,
			OccurredAt: r.cfg.Now().UTC(), Causation: cause, Data: data,
		}
		seq, err := r.store.Append(ctx, r.streamID(id), cur.seq, env)
		if err != nil {
			return cur, fmt.Errorf("append %s to %s %s: %w", typ, r.def.Kind, id, err)
		}
		cur = entry[S]{state: r.def.Evolve(cur.state, e), seq: seq}
	}
	return cur, nil
}

// refresh compares cur with the last sequence the stream leader has (one
// leader read; on a single replica the ordinary read) and catches up from
// the leader when the stream moved on.
func (r *Repository[S, E, C]) refresh(ctx context.Context, id string, cur entry[S]) (entry[S], bool, error) {
	leader := r.store.Leader()
	last, err := leader.Last(ctx, r.streamID(id))
	if err != nil {
		return cur, false, fmt.Errorf("last sequence of %s %s: %w", r.def.Kind, id, err)
	}
	if last <= cur.seq {
		return cur, false, nil // lower cannot come from the leader; never go back in time
	}
	next, err := r.catchUpFrom(ctx, leader, id, cur)
	return next, true, err
}

// cached returns the cached entry or loads the aggregate.
func (r *Repository[S, E, C]) cached(ctx context.Context, id string) (entry[S], error) {
	if e, ok := r.cache.Get(id); ok {
		return e, nil
	}
	e, err := r.catchUp(ctx, id, entry[S]{})
	if err != nil {
		return e, err
	}
	r.cache.Add(id, e)
	return e, nil
}

// catchUp folds the events after from.seq into from.
func (r *Repository[S, E, C]) catchUp(ctx context.Context, id string, from entry[S]) (entry[S], error) {
	return r.catchUpFrom(ctx, r.store, id, from)
}

// catchUpFrom is catchUp reading from st (the store or its leader reads).
func (r *Repository[S, E, C]) catchUpFrom(ctx context.Context, st eventstore.Store, id string, from entry[S]) (entry[S], error) {
	recs, err := st.Load(ctx, r.streamID(id), from.seq)
	if err != nil {
		return from, fmt.Errorf("load %s %s: %w", r.def.Kind, id, err)
	}
	for _, rec := range recs {
		e, err := r.def.Decode(rec.Event.Type, rec.Event.Version, rec.Event.Data)
		if err != nil {
			return from, fmt.Errorf("load %s %s at sequence %d: %w", r.def.Kind, id, rec.Seq, err)
		}
		from = entry[S]{state: r.def.Evolve(from.state, e), seq: rec.Seq}
	}
	return from, nil
}

// Get returns the aggregate's state and the stream sequence it reflects.
// With fresh set, it first asks the store for the stream's last sequence
// (one direct read) and catches up if another process wrote since, so the
// result reflects every event acknowledged before the call began (on a
// replicated stream, every event the replica that answers has applied: a
// follower may be a few milliseconds behind; decisions re-check refusals
// and no-ops with the store's Leader reads, Get does not pay for that).
func (r *Repository[S, E, C]) Get(ctx context.Context, id string, fresh bool) (S, uint64, error) {
	e, ok := r.cache.Get(id)
	if ok && (!fresh || r.cfg.SingleWriter) {
		return e.state, e.seq, nil
	}
	if ok {
		last, err := r.store.Last(ctx, r.streamID(id))
		if err != nil {
			return e.state, e.seq, fmt.Errorf("last sequence of %s %s: %w", r.def.Kind, id, err)
		}
		if last <= e.seq {
			// Lower means a replica behind what this process already saw
			// acknowledged answered the read: keep the newer cached state.
			return e.state, e.seq, nil
		}
	}
	l, err := r.lock(ctx, id)
	if err != nil {
		return e.state, e.seq, err
	}
	defer l.unlock()
	if !ok {
		e = entry[S]{}
	}
	e, err = r.catchUp(ctx, id, e)
	if err != nil {
		return e.state, e.seq, err
	}
	r.cache.Add(id, e)
	return e.state, e.seq, nil
}

// GetAt returns the aggregate's state reflecting at least stream sequence
// seq, e.g. the sequence of an event a consumer is handling: the cache
// answers when it is that far, else the store. This is what a consumer of
// the stream needs even with SingleWriter, because the cache is updated a
// moment after the append is acknowledged (and so after consumers see it).
func (r *Repository[S, E, C]) GetAt(ctx context.Context, id string, seq uint64) (S, uint64, error) {
	if e, ok := r.cache.Get(id); ok && e.seq >= seq {
		return e.state, e.seq, nil
	}
	l, err := r.lock(ctx, id)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	defer l.unlock()
	e, ok := r.cache.Get(id)
	if !ok {
		e = entry[S]{}
	}
	if e.seq >= seq {
		return e.state, e.seq, nil // updated while we waited for the lock
	}
	if e, err = r.catchUp(ctx, id, e); err != nil {
		return e.state, e.seq, err
	}
	if e.seq < seq {
		// The replica that answered has not applied seq yet (R3 direct
		// gets): the rest from the leader.
		if e, err = r.catchUpFrom(ctx, r.store.Leader(), id, e); err != nil {
			return e.state, e.seq, err
		}
	}
	r.cache.Add(id, e)
	return e.state, e.seq, nil
}

// AssumeNew tells the repository that aggregate id has no events yet (for
// example because its id was reserved a moment ago), saving the read that
// would confirm it. If the assumption is wrong, the next append conflicts
// and the repository reloads: correctness never depends on it.
func (r *Repository[S, E, C]) AssumeNew(id string) {
	r.cache.ContainsOrAdd(id, entry[S]{})
}

// Forget drops an aggregate from the cache.
func (r *Repository[S, E, C]) Forget(id string) { r.cache.Remove(id) }

// CacheLen reports how many aggregates are cached.
func (r *Repository[S, E, C]) CacheLen() int { return r.cache.Len() }
