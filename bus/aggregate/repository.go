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
	"sync"
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
	locks [256]sync.Mutex
}

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
	return &Repository[S, E, C]{store: store, def: def, cfg: cfg, cache: cache, seed: maphash.MakeSeed()}, nil
}

func (r *Repository[S, E, C]) streamID(id string) eventstore.StreamID {
	return eventstore.StreamID{Kind: r.def.Kind, Keys: []string{id}}
}

// lock serialises commands on one aggregate inside this process, so that
// concurrent duplicates queue instead of conflicting; other processes are
// kept consistent by the expected-sequence check of the append.
func (r *Repository[S, E, C]) lock(id string) *sync.Mutex {
	return &r.locks[maphash.String(r.seed, id)%uint64(len(r.locks))]
}

// Execute decides cmd against aggregate id and appends the resulting
// events. It returns the state after the command (unchanged for an
// idempotent repeat), the events appended and the domain error, if any.
func (r *Repository[S, E, C]) Execute(ctx context.Context, id string, cmd C, cause event.Causation) (S, []E, error) {
	mu := r.lock(id)
	mu.Lock()
	defer mu.Unlock()

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
			// (another replica wrote since): confirm against the store's
			// last sequence once before answering.
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
		// Someone else wrote first: catch up and decide again.
		if cur, err = r.catchUp(ctx, id, cur); err != nil {
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

// refresh compares cur with the store's last sequence and catches up when
// the stream moved on.
func (r *Repository[S, E, C]) refresh(ctx context.Context, id string, cur entry[S]) (entry[S], bool, error) {
	last, err := r.store.Last(ctx, r.streamID(id))
	if err != nil {
		return cur, false, fmt.Errorf("last sequence of %s %s: %w", r.def.Kind, id, err)
	}
	if last <= cur.seq {
		// Equal: nothing new. Lower: the read was answered by a replica
		// behind what this process already saw acknowledged (R3 direct
		// gets); never go back in time.
		return cur, false, nil
	}
	next, err := r.catchUp(ctx, id, cur)
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
	recs, err := r.store.Load(ctx, r.streamID(id), from.seq)
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
// result reflects every event acknowledged before the call began.
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
	mu := r.lock(id)
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		e = entry[S]{}
	}
	e, err := r.catchUp(ctx, id, e)
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
	mu := r.lock(id)
	mu.Lock()
	defer mu.Unlock()
	e, ok := r.cache.Get(id)
	if !ok {
		e = entry[S]{}
	}
	if e.seq >= seq {
		return e.state, e.seq, nil // updated while we waited for the lock
	}
	e, err := r.catchUp(ctx, id, e)
	if err != nil {
		return e.state, e.seq, err
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
