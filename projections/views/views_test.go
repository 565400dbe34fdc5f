package views

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// checkViews compares every table with the test's fold of recs, and each
// instance's status with the domain's fold.
func checkViews(t tb, st *Store, prefix string, recs []eventstore.Record) {
	t.Helper()
	want := expectedViews(prefix, recs)
	got := dumpTables(t, st, "")
	if d := diffTables(want, got); d != "" {
		t.Fatalf("views differ from the fold of the log:\n%s", d)
	}
	ctx := context.Background()
	for id, status := range expectedStatuses(prefix, recs) {
		r, _, err := st.GetInstance(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if r.Status != status {
			t.Fatalf("instance %s: view status %q, instance.Fold says %q", id, r.Status, status)
		}
	}
	checkLicenseStatuses(t, st, prefix, recs)
}

func lastSeq(recs []eventstore.Record) uint64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

func genSmallLog(t *rapid.T) *logGen {
	g := newLogGen(func(label string, n int) int { return rapid.IntRange(0, n-1).Draw(t, label) },
		rapid.IntRange(1, 6).Draw(t, "instances"), 30, 0)
	steps := rapid.IntRange(1, 80).Draw(t, "steps")
	for range steps {
		g.step()
	}
	return g
}

// TestViewsEqualFoldOfLog is the property: for random valid logs, every
// view equals the fold of the log, whatever the batch size; applying the
// whole log again (a redelivery) changes nothing.
func TestViewsEqualFoldOfLog(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDBFactory(t, func(t *testing.T, newDSN func(tb) string) {
		rapid.Check(t, func(rt *rapid.T) {
			g := genSmallLog(rt)
			batch := rapid.IntRange(1, 25).Draw(rt, "batch")
			ts := newStream(rt, nc)
			recs := appendAll(rt, ts, g.out)
			st := openStore(rt, newDSN(rt))
			p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithBatchSize(batch))
			if err != nil {
				rt.Fatalf("projector: %v", err)
			}
			runProjector(rt, p, lastSeq(recs))
			checkViews(rt, st, ts.prefix, recs)

			// Redelivery: the whole log once more, as one batch.
			before := dumpTables(rt, st, "")
			b := batchOf(rt, ts.prefix, recs)
			for _, v := range ViewNames() {
				if _, err := st.applyBatch(context.Background(), v, p.appliers[v], b); err != nil {
					rt.Fatalf("redeliver: %v", err)
				}
			}
			if d := diffTables(before, dumpTables(rt, st, "")); d != "" {
				rt.Fatalf("a redelivered log changed the views:\n%s", d)
			}
		})
	})
}

// batchOf decodes records into one batch, as the reader would.
func batchOf(t tb, prefix string, recs []eventstore.Record) batch {
	t.Helper()
	var b batch
	for _, r := range recs {
		data, err := eventstore.EncodeEnvelope(r.Event)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		it, _, err := decodeEntry(prefix, r.Subject, r.Seq, data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(b.items) == 0 {
			b.first = r.Seq
		}
		b.items, b.last = append(b.items, it), r.Seq
	}
	return b
}

// genLog makes a log of about n entries with math/rand.
func genLog(n int, seed uint64) *logGen {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := newLogGen(func(_ string, n int) int { return r.IntN(n) }, 1<<30, 12, 64)
	for len(g.out) < n {
		g.step()
	}
	return g
}

// TestRedeliveredBatchChangesNothing applies batches that overlap what a
// view already holds: only the events after the checkpoint count.
func TestRedeliveredBatchChangesNothing(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDB(t, func(t *testing.T, dsn string) {
		ts := newStream(t, nc)
		recs := appendAll(t, ts, genLog(300, 1).out)
		st := openStore(t, dsn)
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		half := len(recs) / 2
		for _, v := range ViewNames() {
			if _, err := st.applyBatch(ctx, v, p.appliers[v], batchOf(t, ts.prefix, recs[:half])); err != nil {
				t.Fatal(err)
			}
			// The same batch again: a no-op.
			if c, err := st.applyBatch(ctx, v, p.appliers[v], batchOf(t, ts.prefix, recs[:half])); err != nil || c != recs[half-1].Seq {
				t.Fatalf("redelivery: checkpoint %d, %v", c, err)
			}
		}
		checkViews(t, st, ts.prefix, recs[:half])
		// An overlapping batch: the first part is skipped.
		for _, v := range ViewNames() {
			if _, err := st.applyBatch(ctx, v, p.appliers[v], batchOf(t, ts.prefix, recs[half/2:])); err != nil {
				t.Fatal(err)
			}
		}
		checkViews(t, st, ts.prefix, recs)
		// A batch after a gap is refused.
		if _, err := st.applyBatch(ctx, ViewFacts, p.appliers[ViewFacts], batch{first: lastSeq(recs) + 5, last: lastSeq(recs) + 6}); !errors.Is(err, errGap) {
			t.Fatalf("a batch after a gap: %v, want errGap", err)
		}
	})
}

// TestCrashBetweenBatches stops the projector after a few batches (and
// once in the middle of a transaction), restarts it, and checks that
// nothing is missing or counted twice; then two projectors project into
// one database at once (two replicas).
func TestCrashBetweenBatches(t *testing.T) {
	nc, _ := startNATS(t)
	forEachDB(t, func(t *testing.T, dsn string) {
		ts := newStream(t, nc)
		recs := appendAll(t, ts, genLog(600, 2).out)
		st := openStore(t, dsn)
		for round, stopAfter := range []int{3, 7, 1} {
			p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithBatchSize(17))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var n atomic.Int32
			p.afterBatch = func(string, uint64) {
				if int(n.Add(1)) == stopAfter {
					cancel() // the crash: between this batch and the next
				}
			}
			if round == 2 {
				// Mid-transaction: the context ends while a batch is being
				// written; the transaction rolls back.
				p.afterBatch = nil
				go func() { time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond); cancel() }()
			}
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			cps, err := st.Checkpoints(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d stopped at %v", round, cps)
			// What is in the views is exactly the fold up to each checkpoint.
			for _, v := range ViewNames() {
				if cps[v] >= lastSeq(recs) {
					t.Fatalf("round %d: view %s already complete; stop earlier", round, v)
				}
			}
		}
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithBatchSize(17))
		if err != nil {
			t.Fatal(err)
		}
		runProjector(t, p, lastSeq(recs))
		checkViews(t, st, ts.prefix, recs)

		// Two replicas into one fresh database, started together.
		st2 := openStore(t, dsnLike(t, dsn))
		var wg sync.WaitGroup
		for i := range 2 {
			st := st2
			if i == 1 {
				st = openStore(t, st2dsn(st2))
			}
			p, err := NewProjector(st, ts.js, ts.name, ts.prefix, testLogger(), WithBatchSize(5+i*8))
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { runProjector(t, p, lastSeq(recs)) })
		}
		wg.Wait()
		checkViews(t, st2, ts.prefix, recs)
	})
}

// dsnLike returns a fresh database of the same kind as dsn.
func dsnLike(t *testing.T, dsn string) string {
	if len(dsn) > 9 && dsn[:9] == "sqlite://" {
		return sqliteDSN(t.TempDir())
	}
	return postgresDSN(t)
}

var storeDSNs sync.Map // *Store → dsn, for opening a second handle

func st2dsn(st *Store) string {
	v, _ := storeDSNs.Load(st)
	return v.(string)
}
