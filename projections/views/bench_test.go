package views

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// benchLogSize is the log the replay benchmarks fold each iteration.
const benchLogSize = 100_000

var benchLog struct {
	once sync.Once
	g    *logGen
}

func benchEvents() []genEvent {
	benchLog.once.Do(func() { benchLog.g = genLog(benchLogSize, 11) })
	return benchLog.g.out
}

// benchStream starts a server and publishes the benchmark log once.
func benchStream(b *testing.B) (*nats.Conn, *testStream, []eventstore.Record) {
	b.Helper()
	nc, _ := startNATS(b)
	ts := newStream(b, nc)
	recs := publishAll(b, ts, benchEvents())
	return nc, ts, recs
}

func benchDSN(b *testing.B, kind string) string {
	if kind == "sqlite" {
		return sqliteDSN(b.TempDir())
	}
	postgresOK(b)
	return postgresDSN(b)
}

// benchReplay replays every view of a 100k-entry log (about 15k
// instances, every kind of event) per iteration and reports events/s.
func benchReplay(b *testing.B, kind string) {
	_, ts, recs := benchStream(b)
	st := openStore(b, benchDSN(b, kind))
	p, err := NewProjector(st, ts.js, ts.name, ts.prefix, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var events uint64
	for b.Loop() {
		s, err := p.Replay(context.Background(), "", nil)
		if err != nil {
			b.Fatal(err)
		}
		events += s.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(recs)), "log_events")
}

// BenchmarkReplayView replays one view at a time (gallerist replay --view
// NAME) of the same log into each database and reports events/s.
func BenchmarkReplayView(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, view := range ViewNames() {
			b.Run(kind+"/"+view, func(b *testing.B) { benchReplayView(b, kind, view) })
		}
	}
}

func benchReplayView(b *testing.B, kind, view string) {
	_, ts, recs := benchStream(b)
	st := openStore(b, benchDSN(b, kind))
	p, err := NewProjector(st, ts.js, ts.name, ts.prefix, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var events uint64
	for b.Loop() {
		s, err := p.Replay(context.Background(), view, nil)
		if err != nil {
			b.Fatal(err)
		}
		events += s.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(recs)), "log_events")
}

// BenchmarkReplaySQLite: replay rate into SQLite (target ≥ 60k events/s).
func BenchmarkReplaySQLite(b *testing.B) { benchReplay(b, "sqlite") }

// BenchmarkReplayPostgres: replay rate into PostgreSQL (target ≥ 35k
// events/s).
func BenchmarkReplayPostgres(b *testing.B) { benchReplay(b, "postgres") }

// benchApply applies the first n entries of the log directly (no NATS
// in the loop) to every view, size entries per transaction, and reports
// events/s: one event per transaction against batches.
func benchApply(b *testing.B, size int) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			const n = 20_000
			ts := &testStream{prefix: "gbench"}
			var recs []eventstore.Record
			for i, ge := range benchEvents()[:n] {
				subj, _ := eventstore.Subject(ts.prefix, ge.stream)
				recs = append(recs, eventstore.Record{Seq: uint64(i + 1), Subject: subj, Event: ge.env})
			}
			var batches []batch
			for chunk := range slices.Chunk(recs, size) {
				batches = append(batches, batchOf(b, ts.prefix, chunk))
			}
			var events int
			for b.Loop() {
				b.StopTimer()
				st := openStore(b, benchDSN(b, kind))
				appliers := map[string]applier{}
				for _, v := range ViewNames() {
					appliers[v], _ = st.newApplier(v, "")
				}
				b.StartTimer()
				for _, bt := range batches {
					for _, v := range ViewNames() {
						if _, err := st.applyBatch(context.Background(), v, appliers[v], bt); err != nil {
							b.Fatal(err)
						}
					}
				}
				events += n
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkApplyOnePerTx applies each event in its own transaction (per
// view).
func BenchmarkApplyOnePerTx(b *testing.B) { benchApply(b, 1) }

// BenchmarkApplyBatched applies 100 events per transaction (per view).
func BenchmarkApplyBatched(b *testing.B) { benchApply(b, 100) }

// BenchmarkProjectionLag appends 30k entries of the benchmark log through
// the event store with 16 concurrent writers (the shape of the ingress
// under load) while the live projector runs, and reports the append rate
// reached and the projection lag: the time from an append's
// acknowledgement to every view's checkpoint covering it (p50, p99, max).
// rate=5000 paces the writers to 5000 appends/s (about the SaaS V2
// benchmark load of the core); rate=max appends as fast as possible.
func BenchmarkProjectionLag(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, rate := range []int{5000, 0} {
			name := kind + "/rate=max"
			if rate > 0 {
				name = fmt.Sprintf("%s/rate=%d", kind, rate)
			}
			b.Run(name, func(b *testing.B) { benchLag(b, kind, rate) })
		}
	}
}

func benchLag(b *testing.B, kind string, rate int) {
	const writers = 16
	nc, _ := startNATS(b)
	events := benchEvents()[:30_000]
	var lags []time.Duration
	var appendRate float64
	for b.Loop() {
		b.StopTimer()
		ts := newStream(b, nc)
		st := openStore(b, benchDSN(b, kind))
		p, err := NewProjector(st, ts.js, ts.name, ts.prefix, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		b.StartTimer()
		acks := make([]time.Time, len(events)+1)
		began := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		// Each writer owns a sixteenth of the aggregates, so that its
		// expected sequences are its own; with a rate, writer w sends its
		// k-th append at began + k·writers/rate.
		for w := range writers {
			wg.Go(func() {
				last := map[string]uint64{}
				k := 0
				for _, ge := range events {
					subj, _ := ts.store.Subject(ge.stream)
					if int(hash(subj))%writers != w {
						continue
					}
					if rate > 0 {
						time.Sleep(time.Until(began.Add(time.Duration(k) * writers * time.Second / time.Duration(rate))))
						k++
					}
					seq, err := ts.store.Append(ctx, ge.stream, last[subj], ge.env)
					if err != nil {
						b.Error(err)
						return
					}
					last[subj] = seq
					mu.Lock()
					acks[seq] = time.Now()
					mu.Unlock()
				}
			})
		}
		// Sample the checkpoints while appending.
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			next := uint64(1)
			for next <= uint64(len(events)) {
				c := uint64(len(events))
				for _, v := range ViewNames() {
					c = min(c, p.Checkpoint(v))
				}
				now := time.Now()
				mu.Lock()
				for ; next <= c; next++ {
					if !acks[next].IsZero() {
						lags = append(lags, now.Sub(acks[next]))
					}
				}
				mu.Unlock()
				time.Sleep(200 * time.Microsecond)
			}
		}()
		wg.Wait()
		appendRate = float64(len(events)) / time.Since(began).Seconds()
		<-sampled
		b.StopTimer()
		cancel()
		<-done
		b.StartTimer()
	}
	slices.Sort(lags)
	if len(lags) > 0 {
		b.ReportMetric(appendRate, "appends/s")
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag_p50_ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag_p99_ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag_max_ms")
	}
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}
