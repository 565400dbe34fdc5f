package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// ---------------------------------------------------------------------------
// A tiny test aggregate: a counter that must be created before it counts, and
// carries a label (for idempotent no-ops).

type counter struct {
	Exists bool
	Count  int
	Label  string
	Events int
}

type createCmd struct{}
type addCmd struct{ N int }
type markCmd struct{ Label string }

type counterEvent struct {
	Type  string `json:"-"`
	N     int    `json:"n,omitempty"`
	Label string `json:"label,omitempty"`
}

var errNoCounter = errors.New("counter does not exist")

const counterKind = "counter"

func decideCounter(s counter, c any) ([]counterEvent, error) {
	switch c := c.(type) {
	case createCmd:
		if s.Exists {
			return nil, nil // idempotent repeat
		}
		return []counterEvent{{Type: "Created"}}, nil
	case addCmd:
		if !s.Exists {
			return nil, errNoCounter
		}
		return []counterEvent{{Type: "Added", N: c.N}}, nil
	case markCmd:
		if !s.Exists {
			return nil, errNoCounter
		}
		if s.Label == c.Label {
			return nil, nil // already marked: no-op
		}
		return []counterEvent{{Type: "Marked", Label: c.Label}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", c)
}

func evolveCounter(s counter, e counterEvent) counter {
	s.Events++
	switch e.Type {
	case "Created":
		s.Exists = true
	case "Added":
		s.Count += e.N
	case "Marked":
		s.Label = e.Label
	}
	return s
}

func encodeCounter(e counterEvent) (string, int, []byte, error) {
	b, err := json.Marshal(e)
	return e.Type, 1, b, err
}

func decodeCounter(typ string, version int, data []byte) (counterEvent, error) {
	if version != 1 {
		return counterEvent{}, fmt.Errorf("unknown version %d", version)
	}
	var e counterEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return e, err
	}
	e.Type = typ
	return e, nil
}

// counterDef returns the definition; decides (if not nil) counts Decide calls.
func counterDef(decides *atomic.Int64) Definition[counter, counterEvent, any] {
	return Definition[counter, counterEvent, any]{
		Kind: counterKind,
		Decide: func(s counter, c any) ([]counterEvent, error) {
			if decides != nil {
				decides.Add(1)
			}
			return decideCounter(s, c)
		},
		Evolve: evolveCounter,
		Encode: encodeCounter,
		Decode: decodeCounter,
	}
}

type counterRepo = Repository[counter, counterEvent, any]

// ---------------------------------------------------------------------------
// A real JetStream store on an embedded server, and a spy around it.

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// embedded starts an embedded nats-server with JetStream on a temporary
// directory (shut down at cleanup).
func embedded(t *testing.T) *bus.Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir()}, testLogger())
	if err != nil {
		t.Fatalf("start embedded nats-server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// openStore opens the event store on a connection of its own to e, so that
// two stores on one server behave like two replicas.
func openStore(t *testing.T, e *bus.Embedded) *eventstore.JetStreamStore {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	s, err := eventstore.OpenJetStream(testContext(t), nc, eventstore.JetStreamConfig{Stream: "AGGTEST", Prefix: "aggtest"}, testLogger())
	if err != nil {
		t.Fatalf("OpenJetStream: %v", err)
	}
	return s
}

// spyStore counts calls to the real store underneath, and can run a hook
// (e.g. a competing append) right before an Append is forwarded.
type spyStore struct {
	eventstore.Store
	appends, conflicts, loads, lasts atomic.Int64
	beforeAppend                     func(ctx context.Context, s eventstore.StreamID) error
}

func (s *spyStore) Append(ctx context.Context, id eventstore.StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	if s.beforeAppend != nil {
		if err := s.beforeAppend(ctx, id); err != nil {
			return 0, fmt.Errorf("test hook: %w", err)
		}
	}
	s.appends.Add(1)
	seq, err := s.Store.Append(ctx, id, expected, ev)
	if errors.Is(err, eventstore.ErrConflict) {
		s.conflicts.Add(1)
	}
	return seq, err
}

func (s *spyStore) Load(ctx context.Context, id eventstore.StreamID, after uint64) ([]eventstore.Record, error) {
	s.loads.Add(1)
	return s.Store.Load(ctx, id, after)
}

func (s *spyStore) Last(ctx context.Context, id eventstore.StreamID) (uint64, error) {
	s.lasts.Add(1)
	return s.Store.Last(ctx, id)
}

func newRepo(t *testing.T, store eventstore.Store, cfg Config) *counterRepo {
	t.Helper()
	r, err := New(store, counterDef(nil), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func sid(id string) eventstore.StreamID {
	return eventstore.StreamID{Kind: counterKind, Keys: []string{id}}
}

// stored returns the events of id in the store.
func stored(t *testing.T, store eventstore.Store, id string) []eventstore.Record {
	t.Helper()
	recs, err := store.Load(testContext(t), sid(id), 0)
	if err != nil {
		t.Fatalf("Load %s: %v", id, err)
	}
	return recs
}

// appendForeign appends an Added{n} event to id directly, as another writer
// that bypasses every repository would.
func appendForeign(ctx context.Context, store eventstore.Store, id string, n int) error {
	last, err := store.Last(ctx, sid(id))
	if err != nil {
		return err
	}
	typ, ver, data, err := encodeCounter(counterEvent{Type: "Added", N: n})
	if err != nil {
		return err
	}
	_, err = store.Append(ctx, sid(id), last, event.Envelope{
		ID: uuid.NewString(), Type: typ, Version: ver, AggregateKind: counterKind, AggregateID: id,
		OccurredAt: time.Now().UTC(), Causation: event.Causation{Actor: "foreign"}, Data: data,
	})
	return err
}

// ---------------------------------------------------------------------------

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{CacheSize: 0, MaxRetries: 1}, "CacheSize"},
		{Config{CacheSize: -5, MaxRetries: 1}, "CacheSize"},
		{Config{CacheSize: 1, MaxRetries: 0}, "MaxRetries"},
		{Config{CacheSize: 1, MaxRetries: -1}, "MaxRetries"},
		{Config{}, "CacheSize"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Config%+v.Validate() = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
		r, err := New[counter, counterEvent, any](nil, counterDef(nil), tc.cfg)
		if err == nil || r != nil {
			t.Errorf("New with Config%+v = %v, %v; want nil and an error", tc.cfg, r, err)
		}
	}
	if err := (Config{CacheSize: 1, MaxRetries: 1}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// TestExecuteAppendsAndCaches: a command's event lands in the store with a
// complete envelope; the state is cached, so that a later command needs no
// load and a non-fresh Get no store access at all.
func TestExecuteAppendsAndCaches(t *testing.T) {
	ctx := testContext(t)
	spy := &spyStore{Store: openStore(t, embedded(t))}
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	var ids atomic.Int64
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return now }
	cfg.NewID = func() string { return fmt.Sprintf("ev-%d", ids.Add(1)) }
	r := newRepo(t, spy, cfg)
	cause := event.Causation{Activity: "test", OrderID: "o1", Nonce: "n1"}

	st, evs, err := r.Execute(ctx, "c1", createCmd{}, cause)
	if err != nil || !st.Exists || st.Events != 1 || len(evs) != 1 || evs[0].Type != "Created" {
		t.Fatalf("create = %+v, %+v, %v", st, evs, err)
	}
	if r.CacheLen() != 1 {
		t.Fatalf("CacheLen after one create = %d, want 1", r.CacheLen())
	}
	recs := stored(t, spy.Store, "c1")
	if len(recs) != 1 {
		t.Fatalf("stored %d events, want 1", len(recs))
	}
	env := recs[0].Event
	if env.ID != "ev-1" || env.Type != "Created" || env.Version != 1 || env.AggregateKind != counterKind ||
		env.AggregateID != "c1" || !env.OccurredAt.Equal(now) || env.OccurredAt.Location() != time.UTC || env.Causation != cause {
		t.Errorf("stored envelope = %+v", env)
	}

	// The next command is decided on the cached state: an append, no load.
	loads := spy.loads.Load()
	st, evs, err = r.Execute(ctx, "c1", addCmd{N: 5}, cause)
	if err != nil || st.Count != 5 || st.Events != 2 || len(evs) != 1 {
		t.Fatalf("add = %+v, %+v, %v", st, evs, err)
	}
	if got := spy.loads.Load(); got != loads {
		t.Errorf("a command on a cached aggregate loaded from the store (%d loads, was %d)", got, loads)
	}
	recs = stored(t, spy.Store, "c1")
	if len(recs) != 2 || recs[1].Event.ID != "ev-2" {
		t.Fatalf("stored %+v, want two events, the second ev-2", recs)
	}

	// A non-fresh Get is served from the cache alone.
	loads, lasts := spy.loads.Load(), spy.lasts.Load()
	st, seq, err := r.Get(ctx, "c1", false)
	if err != nil || st.Count != 5 || seq != recs[1].Seq {
		t.Fatalf("Get = %+v, %d, %v; want count 5 at sequence %d", st, seq, err, recs[1].Seq)
	}
	if spy.loads.Load() != loads || spy.lasts.Load() != lasts {
		t.Errorf("Get(fresh=false) of a cached aggregate touched the store")
	}
	// A fresh Get of an unchanged aggregate costs one Last and no Load.
	st, seq, err = r.Get(ctx, "c1", true)
	if err != nil || st.Count != 5 || seq != recs[1].Seq {
		t.Fatalf("Get(fresh) = %+v, %d, %v", st, seq, err)
	}
	if spy.loads.Load() != loads || spy.lasts.Load() != lasts+1 {
		t.Errorf("Get(fresh=true) of an up-to-date aggregate: %d loads (want %d), %d lasts (want %d)",
			spy.loads.Load(), loads, spy.lasts.Load(), lasts+1)
	}

	// A domain refusal is returned as is, nothing appended.
	_, evs, err = r.Execute(ctx, "nope", addCmd{N: 1}, cause)
	if !errors.Is(err, errNoCounter) || len(evs) != 0 {
		t.Errorf("add to a missing counter = %v, %v; want errNoCounter", evs, err)
	}
	if n := len(stored(t, spy.Store, "nope")); n != 0 {
		t.Errorf("a refused command stored %d events", n)
	}
	// An unaddressable id is a store error, not a panic.
	if _, _, err := r.Execute(ctx, "", createCmd{}, cause); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Execute with an empty id = %v, want ErrInvalidKey", err)
	}

	r.Forget("c1")
	if _, ok := r.cache.Get("c1"); ok {
		t.Error("Forget left the aggregate in the cache")
	}
	st, _, err = r.Get(ctx, "c1", false)
	if err != nil || st.Count != 5 || st.Events != 2 {
		t.Errorf("Get after Forget = %+v, %v", st, err)
	}
}

// TestTwoReplicasNoLostUpdate: B decides on a stale cache, conflicts,
// reloads and decides again; the final state has both updates.
func TestTwoReplicasNoLostUpdate(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	spyB := &spyStore{Store: openStore(t, e)}
	a := newRepo(t, openStore(t, e), DefaultConfig())
	b := newRepo(t, spyB, DefaultConfig())

	if _, _, err := a.Execute(ctx, "x", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if st, _, err := b.Get(ctx, "x", true); err != nil || !st.Exists {
		t.Fatalf("B Get = %+v, %v", st, err)
	}
	if _, _, err := a.Execute(ctx, "x", addCmd{N: 1}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	// B's cache says count 0 at the create's sequence.
	st, evs, err := b.Execute(ctx, "x", addCmd{N: 2}, event.Causation{})
	if err != nil {
		t.Fatalf("B add on a stale cache: %v", err)
	}
	if st.Count != 3 || st.Events != 3 || len(evs) != 1 {
		t.Errorf("B add = %+v, %+v; want count 3 after 3 events", st, evs)
	}
	if spyB.conflicts.Load() != 1 {
		t.Errorf("B saw %d conflicts, want exactly 1 (the stale cache)", spyB.conflicts.Load())
	}
	for name, r := range map[string]*counterRepo{"A": a, "B": b} {
		if st, _, err := r.Get(ctx, "x", true); err != nil || st.Count != 3 || st.Events != 3 {
			t.Errorf("%s Get(fresh) = %+v, %v; want count 3", name, st, err)
		}
	}
	if n := len(stored(t, spyB.Store, "x")); n != 3 {
		t.Errorf("stored %d events, want 3", n)
	}
}

// TestTwoReplicasConcurrentAdds: many adds racing on two replicas; none is
// lost.
func TestTwoReplicasConcurrentAdds(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	cfg := DefaultConfig()
	cfg.MaxRetries = 100 // every conflict means the other replica progressed
	a := newRepo(t, openStore(t, e), cfg)
	b := newRepo(t, openStore(t, e), cfg)
	if _, _, err := a.Execute(ctx, "race", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	const each = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for _, r := range []*counterRepo{a, b} {
		for range each {
			wg.Go(func() {
				if _, _, err := r.Execute(ctx, "race", addCmd{N: 1}, event.Causation{}); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent add: %v", err)
	}
	for name, r := range map[string]*counterRepo{"A": a, "B": b} {
		if st, _, err := r.Get(ctx, "race", true); err != nil || st.Count != 2*each {
			t.Errorf("%s sees count %d (%v), want %d", name, st.Count, err, 2*each)
		}
	}
}

// TestStaleRefusalIsRechecked: A caches "does not exist"; B creates; A's
// command must not be refused on A's stale knowledge.
func TestStaleRefusalIsRechecked(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	a := newRepo(t, openStore(t, e), DefaultConfig())
	b := newRepo(t, openStore(t, e), DefaultConfig())

	if _, _, err := a.Execute(ctx, "late", addCmd{N: 1}, event.Causation{}); !errors.Is(err, errNoCounter) {
		t.Fatalf("A add before create = %v, want errNoCounter", err)
	}
	if a.CacheLen() != 1 {
		t.Fatalf("A did not cache the missing aggregate (CacheLen %d); the test would not test a stale cache", a.CacheLen())
	}
	if _, _, err := b.Execute(ctx, "late", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	st, evs, err := a.Execute(ctx, "late", addCmd{N: 7}, event.Causation{})
	if err != nil {
		t.Fatalf("A add after B created: %v (refused on a stale cache)", err)
	}
	if st.Count != 7 || st.Events != 2 || len(evs) != 1 {
		t.Errorf("A add = %+v, %+v", st, evs)
	}
	if st, _, err := b.Get(ctx, "late", true); err != nil || st.Count != 7 {
		t.Errorf("B sees %+v, %v", st, err)
	}
	// A refusal that holds in the store as well is still a refusal.
	if _, _, err := a.Execute(ctx, "never", addCmd{N: 1}, event.Causation{}); !errors.Is(err, errNoCounter) {
		t.Errorf("A add to a counter nobody created = %v, want errNoCounter", err)
	}
}

// TestStaleNoOpIsRechecked: an idempotent no-op decided on a stale cache
// must be re-checked: A thinks the label is already "x", B changed it.
func TestStaleNoOpIsRechecked(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	a := newRepo(t, openStore(t, e), DefaultConfig())
	b := newRepo(t, openStore(t, e), DefaultConfig())

	if _, _, err := a.Execute(ctx, "m", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Execute(ctx, "m", markCmd{Label: "x"}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Execute(ctx, "m", markCmd{Label: "y"}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	st, evs, err := a.Execute(ctx, "m", markCmd{Label: "x"}, event.Causation{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Label != "x" || len(evs) != 1 || st.Events != 4 {
		t.Errorf("A mark x on a stale cache = %+v, %+v; want a new Marked{x} event (4 events)", st, evs)
	}
	if st, _, err := b.Get(ctx, "m", true); err != nil || st.Label != "x" {
		t.Errorf("B sees label %q (%v), want x", st.Label, err)
	}
	// A real repeat stays a no-op.
	st, evs, err = a.Execute(ctx, "m", markCmd{Label: "x"}, event.Causation{})
	if err != nil || len(evs) != 0 || st.Events != 4 {
		t.Errorf("repeat = %+v, %+v, %v; want a no-op", st, evs, err)
	}
	if n := len(stored(t, b.store, "m")); n != 4 {
		t.Errorf("stored %d events, want 4", n)
	}
}

// TestGetFresh: a fresh Get reflects another replica's writes.
func TestGetFresh(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	a := newRepo(t, openStore(t, e), DefaultConfig())
	b := newRepo(t, openStore(t, e), DefaultConfig())

	if _, _, err := a.Execute(ctx, "g", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if st, _, err := a.Get(ctx, "g", false); err != nil || st.Count != 0 {
		t.Fatal(st, err)
	}
	// Unknown to B until now: B loads it (fresh or not) from the store.
	if _, _, err := b.Execute(ctx, "g", addCmd{N: 4}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Execute(ctx, "g", markCmd{Label: "b"}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	last, err := b.store.Last(ctx, sid("g"))
	if err != nil {
		t.Fatal(err)
	}
	st, seq, err := a.Get(ctx, "g", true)
	if err != nil || st.Count != 4 || st.Label != "b" || st.Events != 3 || seq != last {
		t.Fatalf("A Get(fresh) = %+v at %d, %v; want B's writes (count 4, label b) at sequence %d", st, seq, err, last)
	}
	// The fresh read refreshed the cache.
	if st, seq2, err := a.Get(ctx, "g", false); err != nil || st.Count != 4 || seq2 != last {
		t.Errorf("A Get after the fresh read = %+v at %d, %v", st, seq2, err)
	}
	// A fresh Get of a never-written aggregate is the zero state at 0.
	if st, seq, err := a.Get(ctx, "nothing", true); err != nil || st.Exists || seq != 0 {
		t.Errorf("Get(fresh) of a missing aggregate = %+v at %d, %v", st, seq, err)
	}
}

// TestConcurrentCreatesOneEvent: 50 concurrent identical creates on one
// repository append exactly one event; the same across two repositories.
func TestConcurrentCreatesOneEvent(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	store := openStore(t, e)
	a := newRepo(t, store, DefaultConfig())
	b := newRepo(t, openStore(t, e), DefaultConfig())

	run := func(id string, repos ...*counterRepo) {
		t.Helper()
		const n = 50
		var appended atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			r := repos[i%len(repos)]
			wg.Go(func() {
				st, evs, err := r.Execute(ctx, id, createCmd{}, event.Causation{})
				if err != nil {
					errs <- err
					return
				}
				if !st.Exists {
					errs <- fmt.Errorf("create returned %+v", st)
				}
				appended.Add(int64(len(evs)))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", id, err)
		}
		if appended.Load() != 1 {
			t.Errorf("%s: the creates reported %d appended events, want 1", id, appended.Load())
		}
		if recs := stored(t, store, id); len(recs) != 1 {
			t.Errorf("%s: %d events stored, want exactly 1", id, len(recs))
		}
	}
	run("one-repo", a)
	run("two-repos", a, b)
}

// TestCacheBounded: the cache never holds more than CacheSize aggregates,
// and evicted ones load correctly again.
func TestCacheBounded(t *testing.T) {
	ctx := testContext(t)
	spy := &spyStore{Store: openStore(t, embedded(t))}
	r := newRepo(t, spy, Config{CacheSize: 10, MaxRetries: 3})
	const n = 50
	for i := range n {
		id := fmt.Sprintf("agg-%02d", i)
		if _, _, err := r.Execute(ctx, id, createCmd{}, event.Causation{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Execute(ctx, id, addCmd{N: i}, event.Causation{}); err != nil {
			t.Fatal(err)
		}
		if r.CacheLen() > 10 {
			t.Fatalf("CacheLen %d after %d aggregates, want ≤ 10", r.CacheLen(), i+1)
		}
	}
	if r.CacheLen() != 10 {
		t.Errorf("CacheLen = %d, want 10 (full)", r.CacheLen())
	}
	loads := spy.loads.Load()
	for i := range n {
		id := fmt.Sprintf("agg-%02d", i)
		st, _, err := r.Get(ctx, id, false)
		if err != nil || !st.Exists || st.Count != i || st.Events != 2 {
			t.Errorf("Get %s = %+v, %v; want count %d after 2 events", id, st, err, i)
		}
	}
	if spy.loads.Load() == loads {
		t.Error("no Get loaded from the store: nothing was evicted?")
	}
	for i := range n {
		id := fmt.Sprintf("agg-%02d", i)
		st, _, err := r.Execute(ctx, id, addCmd{N: 1}, event.Causation{})
		if err != nil || st.Count != i+1 || st.Events != 3 {
			t.Errorf("Execute on %s = %+v, %v; want count %d", id, st, err, i+1)
		}
	}
	if r.CacheLen() > 10 {
		t.Errorf("CacheLen = %d, want ≤ 10", r.CacheLen())
	}
}

// TestTooManyConflicts forces a conflict on every append by appending to
// the same stream, directly, right before the repository's append.
func TestTooManyConflicts(t *testing.T) {
	ctx := testContext(t)
	store := openStore(t, embedded(t))
	var decides atomic.Int64
	var remaining atomic.Int64 // competing appends still to inject
	spy := &spyStore{Store: store}
	spy.beforeAppend = func(ctx context.Context, id eventstore.StreamID) error {
		if remaining.Add(-1) < 0 {
			return nil
		}
		return appendForeign(ctx, store, id.Keys[0], 100)
	}
	newR := func(maxRetries int) *counterRepo {
		r, err := New(spy, counterDef(&decides), Config{CacheSize: 100, MaxRetries: maxRetries})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := newR(1)
	if _, _, err := r.Execute(ctx, "hot", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	decides.Store(0)
	remaining.Store(1 << 30) // every append conflicts
	st, evs, err := r.Execute(ctx, "hot", addCmd{N: 1}, event.Causation{})
	if !errors.Is(err, ErrTooManyConflicts) {
		t.Fatalf("Execute with a conflict forced and MaxRetries 1 = %+v, %v, %v; want ErrTooManyConflicts", st, evs, err)
	}
	if !strings.Contains(err.Error(), counterKind) || !strings.Contains(err.Error(), "hot") {
		t.Errorf("error %q does not name the aggregate", err)
	}
	if len(evs) != 0 {
		t.Errorf("events reported on failure: %+v", evs)
	}
	if d := decides.Load(); d < 1 || d > 2 {
		t.Errorf("Decide ran %d times with MaxRetries 1, want 1 or 2 (bounded)", d)
	}
	if _, ok := r.cache.Get("hot"); ok {
		t.Error("the aggregate stays cached after giving up (its cached state is known stale)")
	}

	// With the competition gone the command goes through on the real state:
	// the foreign events count, ours is not lost.
	remaining.Store(0)
	before := stored(t, store, "hot")
	foreign := 0
	for _, rec := range before {
		if rec.Event.Causation.Actor == "foreign" {
			foreign++
		}
	}
	st, _, err = r.Execute(ctx, "hot", addCmd{N: 1}, event.Causation{})
	if err != nil || st.Count != 100*foreign+1 || st.Events != len(before)+1 {
		t.Errorf("Execute after the competition stopped = %+v, %v; want count %d", st, err, 100*foreign+1)
	}

	// Conflicts fewer than the attempts allowed are ridden out by reloading
	// and deciding again.
	r = newR(4)
	if _, _, err := r.Execute(ctx, "warm", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	decides.Store(0)
	conflicts := spy.conflicts.Load()
	remaining.Store(2)
	st, evs, err = r.Execute(ctx, "warm", addCmd{N: 1}, event.Causation{})
	if err != nil || len(evs) != 1 || st.Count != 201 {
		t.Fatalf("Execute through 2 conflicts with MaxRetries 4 = %+v, %+v, %v; want count 201", st, evs, err)
	}
	if got := spy.conflicts.Load() - conflicts; got != 2 {
		t.Errorf("%d conflicts, want 2", got)
	}
	if decides.Load() != 3 {
		t.Errorf("Decide ran %d times, want 3 (once, then after each conflict)", decides.Load())
	}
}

var _ eventstore.Store = (*spyStore)(nil)

func TestSingleWriterTrustsTheCacheButGetAtCatchesUp(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	store := openStore(t, e)
	cfg := DefaultConfig()
	cfg.SingleWriter = true
	a := newRepo(t, store, cfg)
	if _, _, err := a.Execute(ctx, "sw", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	// An append the repository does not know about (in production only a
	// consumer racing the cache update sees this).
	if err := appendForeign(ctx, store, "sw", 1); err != nil {
		t.Fatal(err)
	}
	last, err := store.Last(ctx, sid("sw"))
	if err != nil {
		t.Fatal(err)
	}
	// SingleWriter: a fresh Get answers from the cache, without the store.
	if _, seq, err := a.Get(ctx, "sw", true); err != nil || seq == last {
		t.Fatalf("SingleWriter Get(fresh) went to the store: seq %d (last %d), %v", seq, last, err)
	}
	// GetAt the foreign event's sequence must reflect it.
	st, seq, err := a.GetAt(ctx, "sw", last)
	if err != nil || seq != last || st.Events != 2 {
		t.Fatalf("GetAt(%d) = %+v at %d, %v; want both events", last, st, seq, err)
	}
	// And a GetAt the cache already covers does not regress.
	if _, seq, err := a.GetAt(ctx, "sw", 1); err != nil || seq != last {
		t.Fatalf("GetAt(1) = %d, %v; want the cached %d", seq, err, last)
	}
}

// TestLockWaiterGivesUpWithItsContext: while a command holds an aggregate's
// lock (its append stuck), callers waiting for the same lock return with
// their context's error as soon as it ends, and the holder keeps the lock
// and finishes; a caller that keeps waiting gets the lock afterwards.
func TestLockWaiterGivesUpWithItsContext(t *testing.T) {
	ctx := testContext(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var hold atomic.Bool
	spy := &spyStore{Store: openStore(t, embedded(t))}
	spy.beforeAppend = func(context.Context, eventstore.StreamID) error {
		if hold.CompareAndSwap(true, false) {
			close(entered)
			<-release // the append is stuck until the test lets it go
		}
		return nil
	}
	r := newRepo(t, spy, DefaultConfig())
	if _, _, err := r.Execute(ctx, "held", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	hold.Store(true)
	holder := make(chan error, 1)
	go func() {
		_, _, err := r.Execute(ctx, "held", addCmd{N: 1}, event.Causation{})
		holder <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the holder never reached its append")
	}

	waiters := map[string]func(context.Context) error{
		"Execute": func(c context.Context) error {
			_, _, err := r.Execute(c, "held", addCmd{N: 10}, event.Causation{})
			return err
		},
		"Get of an uncached aggregate": func(c context.Context) error {
			r.Forget("held")
			_, _, err := r.Get(c, "held", false)
			return err
		},
		"GetAt beyond the cache": func(c context.Context) error {
			_, _, err := r.GetAt(c, "held", 1<<40)
			return err
		},
	}
	for name, wait := range waiters {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- wait(wctx) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s waiting for the lock, its context cancelled: %v, want context.Canceled", name, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s waiting for the lock did not return when its context ended", name)
		}
		select {
		case err := <-holder:
			t.Fatalf("the holder returned (%v) before its append was released", err)
		default:
		}
	}
	expired, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	if _, _, err := r.Execute(expired, "held", addCmd{N: 10}, event.Causation{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Execute with an expired context on a held lock = %v, want context.DeadlineExceeded", err)
	}

	// A waiter whose context lives on gets the lock once the holder is done.
	queued := make(chan error, 1)
	go func() {
		_, _, err := r.Execute(ctx, "held", addCmd{N: 2}, event.Causation{})
		queued <- err
	}()
	close(release)
	if err := <-holder; err != nil {
		t.Fatalf("the holder: %v", err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the queued command: %v", err)
	}
	if st, _, err := r.Get(ctx, "held", true); err != nil || st.Count != 3 || st.Events != 3 {
		t.Errorf("after the holder and the queued command: %+v, %v; want count 3 after 3 events (the given-up ones not applied)", st, err)
	}
}

// laggingStore's ordinary reads see the stream only up to sequence upTo
// (0: everything), like an R3 follower behind the leader; its Leader reads
// are the embedded store's and never behind.
type laggingStore struct {
	eventstore.Store
	upTo atomic.Uint64
}

func (l *laggingStore) Load(ctx context.Context, id eventstore.StreamID, after uint64) ([]eventstore.Record, error) {
	recs, err := l.Store.Load(ctx, id, after)
	if h := l.upTo.Load(); h != 0 {
		for i, r := range recs {
			if r.Seq > h {
				return recs[:i], err
			}
		}
	}
	return recs, err
}

func (l *laggingStore) Last(ctx context.Context, id eventstore.StreamID) (uint64, error) {
	recs, err := l.Load(ctx, id, 0)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	return recs[len(recs)-1].Seq, nil
}

// TestLaggingReadsAfterAConflictAndInARecheck: with ordinary reads answered
// by a replica behind the leader, a conflict is caught up from the leader
// (not retried on the same stale state until ErrTooManyConflicts), and a
// no-op decided on a stale cache is re-checked against the leader (not
// confirmed by the lagging replica).
func TestLaggingReadsAfterAConflictAndInARecheck(t *testing.T) {
	ctx := testContext(t)
	e := embedded(t)
	store := openStore(t, e)
	lag := &laggingStore{Store: store}
	a := newRepo(t, lag, DefaultConfig())
	b := newRepo(t, store, DefaultConfig())
	if _, _, err := a.Execute(ctx, "lag", createCmd{}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	seen, err := store.Last(ctx, sid("lag"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Execute(ctx, "lag", addCmd{N: 1}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	lag.upTo.Store(seen) // A's replica has not applied B's add
	st, evs, err := a.Execute(ctx, "lag", addCmd{N: 2}, event.Causation{})
	if err != nil || len(evs) != 1 || st.Count != 3 {
		t.Fatalf("A add after B's, reads lagging = %+v, %+v, %v; want count 3 (caught up from the leader after the conflict)", st, evs, err)
	}

	// A caches label "x"; B marks "y"; A's replica misses it; A marks "x".
	if _, _, err := a.Execute(ctx, "lag", markCmd{Label: "x"}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	if seen, err = store.Last(ctx, sid("lag")); err != nil {
		t.Fatal(err)
	}
	lag.upTo.Store(0)
	if _, _, err := b.Execute(ctx, "lag", markCmd{Label: "y"}, event.Causation{}); err != nil {
		t.Fatal(err)
	}
	lag.upTo.Store(seen)
	st, evs, err = a.Execute(ctx, "lag", markCmd{Label: "x"}, event.Causation{})
	if err != nil || len(evs) != 1 || st.Label != "x" {
		t.Fatalf("A mark x after B's y, reads lagging = %+v, %+v, %v; want a new Marked{x} (the no-op re-checked with the leader)", st, evs, err)
	}
	lag.upTo.Store(0)
	if st, _, err := b.Get(ctx, "lag", true); err != nil || st.Label != "x" || st.Count != 3 {
		t.Errorf("the log says %+v (%v); want label x, count 3", st, err)
	}
}
