package views

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// replayEventsEnv sets the size of TestReplayEqualsLive's log.
const replayEventsEnv = "GALLERIST_VIEWS_REPLAY_EVENTS"

// replayEqualsLiveSize is the log of TestReplayEqualsLive: 100k entries
// (about 15k instances), which takes ~15 s without the race detector. With
// -short, or under the race detector (where it takes minutes: the pure-Go
// SQLite is instrumented too), 10k; GALLERIST_VIEWS_REPLAY_EVENTS=N sets
// it explicitly.
func replayEqualsLiveSize() int {
	if v, err := strconv.Atoi(os.Getenv(replayEventsEnv)); err == nil && v > 0 {
		return v
	}
	if testing.Short() || raceEnabled {
		return 10_000
	}
	return 100_000
}

// TestReplayEqualsLive projects a large log live (batches of 100), then
// replays every view and compares the swapped-in tables with the live
// ones row for row, and both with the fold of the log.
func TestReplayEqualsLive(t *testing.T) {
	nc, _ := startNATS(t)
	ts := newStream(t, nc)
	began := time.Now()
	g := genLog(replayEqualsLiveSize(), 7)
	recs := publishAll(t, ts, g.out)
	want := expectedViews(ts.prefix, recs)
	t.Logf("log: %s, generated and published in %s", g, time.Since(began).Round(time.Millisecond))
	forEachDB(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		runProjector(t, p, lastSeq(recs))
		t.Logf("live: %d events in %s", len(recs), time.Since(began).Round(time.Millisecond))
		live := dumpTables(t, st, "")
		if d := diffTables(want, live); d != "" {
			t.Fatalf("live views differ from the fold:\n%s", d)
		}
		var calls atomic.Int64
		stats, err := p.Replay(context.Background(), "", func(done, total uint64) {
			calls.Add(1)
			if done > total {
				t.Errorf("progress %d of %d", done, total)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("replay: %+v (%d progress calls)", stats, calls.Load())
		if stats.Seq != lastSeq(recs) || calls.Load() < 2 {
			t.Fatalf("replay reached %d with %d progress calls; want %d", stats.Seq, calls.Load(), lastSeq(recs))
		}
		if d := diffTables(live, dumpTables(t, st, "")); d != "" {
			t.Fatalf("replayed views differ from the live ones:\n%s", d)
		}
		cps, err := st.Checkpoints(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range ViewNames() {
			if cps[v] != lastSeq(recs) {
				t.Fatalf("checkpoint of %s after replay: %d, want %d", v, cps[v], lastSeq(recs))
			}
		}
		checkIndexes(t, st)
	})
}

// checkIndexes verifies that every index of the migrations exists under
// its name, on the live table, and no rebuild table is left.
func checkIndexes(t *testing.T, st *Store) {
	t.Helper()
	ctx := context.Background()
	for _, m := range migrations {
		for _, s := range m.steps {
			if s.index == "" {
				continue
			}
			var q string
			if st.d.name == "sqlite" {
				q = "SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name = ?"
			} else {
				q = "SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
			}
			var table string
			if err := st.db.QueryRowContext(ctx, st.d.q(q), indexName(s.table, s.index)).Scan(&table); err != nil || table != s.table {
				t.Fatalf("index %s: on %q, %v", indexName(s.table, s.index), table, err)
			}
		}
	}
	for _, v := range ViewNames() {
		for _, table := range viewTables[v] {
			if ok, err := st.d.tableExists(ctx, st.db, table+rebuildSuffix); err != nil || ok {
				t.Fatalf("%s%s left behind (%v)", table, rebuildSuffix, err)
			}
		}
	}
}

// TestReplayIsExclusiveAndQueriesKeepAnswering holds a replay in the
// middle of its rebuild and checks that a second replay of the view is
// refused, that queries keep answering from the old tables, and that the
// live projector keeps projecting; then the replay finishes and swaps.
func TestReplayIsExclusiveAndQueriesKeepAnswering(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		ts := newStream(t, nc)
		n := raceScaled(3000)
		g := genLog(n, 3)
		recs := appendAll(t, ts, g.out[:n*2/3])
		st := openStore(t, dsn)
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithReplayBatchSize(100))
		if err != nil {
			t.Fatal(err)
		}
		runProjector(t, p, lastSeq(recs))
		liveSeq := lastSeq(recs)

		held := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		replayDone := make(chan error, 1)
		go func() {
			_, err := p.Replay(ctx, ViewInstances, func(done, total uint64) {
				if done > 0 {
					once.Do(func() { close(held); <-release })
				}
			})
			replayDone <- err
		}()
		select {
		case <-held:
		case err := <-replayDone:
			t.Fatalf("replay ended early: %v", err)
		}

		// A second replay of the view, or of every view, is refused.
		for _, v := range []string{ViewInstances, ""} {
			if _, err := p.Replay(ctx, v, nil); !errors.Is(err, ErrReplayRunning) {
				t.Fatalf("second replay of %q: %v, want ErrReplayRunning", v, err)
			}
		}
		locks, err := st.ReplayLocks(ctx)
		if err != nil || len(locks) != 1 || locks[0].View != ViewInstances || locks[0].Owner == "" {
			t.Fatalf("replay locks: %+v, %v", locks, err)
		}
		// Another view can be replayed meanwhile.
		if _, err := p.Replay(ctx, ViewEffects, nil); err != nil {
			t.Fatalf("replay of another view: %v", err)
		}

		// Queries answer from the old tables.
		page, err := st.ListInstances(ctx, InstanceFilter{}, Page{Limit: 10})
		if err != nil || len(page.Instances) != 10 || page.Seq != liveSeq {
			t.Fatalf("list during replay: %d rows at %d, %v; want 10 at %d", len(page.Instances), page.Seq, err, liveSeq)
		}
		if _, seq, err := st.GetInstance(ctx, page.Instances[0].InstanceID); err != nil || seq != liveSeq {
			t.Fatalf("get during replay: seq %d, %v", seq, err)
		}
		// The live projector keeps going.
		more := appendAllFrom(t, ts, g.out[n*2/3:], recs)
		runProjector(t, p, lastSeq(more))

		close(release)
		if err := <-replayDone; err != nil {
			t.Fatalf("replay: %v", err)
		}
		if locks, err := st.ReplayLocks(ctx); err != nil || len(locks) != 0 {
			t.Fatalf("locks after the replay: %+v, %v", locks, err)
		}
		checkViews(t, st, ts.prefix, more)
		// Again (the indexes and constraints of the swapped tables have
		// their plain names, so a second swap works too).
		if _, err := p.Replay(ctx, "", nil); err != nil {
			t.Fatalf("second replay: %v", err)
		}
		checkViews(t, st, ts.prefix, more)
		checkIndexes(t, st)

		// A lock whose holder stopped heart-beating is taken over.
		q := st.d.q("INSERT INTO view_locks (view, owner, started_at, heartbeat_at) VALUES (?, ?, ?, ?)")
		old := time.Now().Add(-time.Hour)
		if _, err := st.wdb.ExecContext(ctx, q, ViewFacts, "crashed", st.d.ts(at(old)), st.d.ts(at(old))); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Replay(ctx, ViewFacts, nil); err != nil {
			t.Fatalf("replay over a stale lock: %v", err)
		}
	})
}

// appendAllFrom appends events after the records recs (continuing each
// subject's expected sequence) and returns all records.
func appendAllFrom(t tb, ts *testStream, events []genEvent, recs []eventstore.Record) []eventstore.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	last := map[string]uint64{}
	for _, r := range recs {
		last[r.Subject] = r.Seq
	}
	out := append([]eventstore.Record(nil), recs...)
	for _, ge := range events {
		subj, _ := ts.store.Subject(ge.stream)
		seq, err := ts.store.Append(ctx, ge.stream, last[subj], ge.env)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last[subj] = seq
		out = append(out, eventstore.Record{Seq: seq, Subject: subj, Event: ge.env})
	}
	return out
}

// TestReplayWhileLiveProjecting replays every view while events keep
// arriving and the live projector keeps applying them: after the swap the
// live projector continues from the swapped-in checkpoint, with no gap and
// nothing counted twice.
func TestReplayWhileLiveProjecting(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		ts := newStream(t, nc)
		n := raceScaled(4000)
		g := genLog(n, 4)
		recs := appendAll(t, ts, g.out[:n*3/8])
		st := openStore(t, dsn)
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithBatchSize(10), WithReplayBatchSize(200))
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		runDone := make(chan error, 1)
		go func() { runDone <- p.Run(runCtx) }()

		appended := make(chan []eventstore.Record, 1)
		go func() {
			out := recs
			for i := n * 3 / 8; i < len(g.out); i += 50 {
				out = appendAllFrom(t, ts, g.out[i:min(i+50, len(g.out))], out)
				time.Sleep(time.Millisecond)
			}
			appended <- out
		}()
		for range 2 {
			if _, err := p.Replay(ctx, "", nil); err != nil {
				t.Fatalf("replay: %v", err)
			}
		}
		all := <-appended
		for !caughtUp(p, lastSeq(all)) {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if err := <-runDone; err != nil {
			t.Fatal(err)
		}
		checkViews(t, st, ts.prefix, all)
	})
}
