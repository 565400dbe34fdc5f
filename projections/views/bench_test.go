package views

import (
	"context"
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

// BenchmarkProjectionLag appends the benchmark log through the event
// store as fast as 16 concurrent writers can (the shape of the ingress
// under load) while the live projector runs, and reports the sustained
// append rate and the projection lag: the time from an append's
// acknowledgement to the checkpoint covering it (p50, p99, max), per
// database.
func BenchmarkProjectionLag(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
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
				seqs := make([]uint64, len(events))
				began := time.Now()
				var wg sync.WaitGroup
				var mu sync.Mutex
				// Each writer owns the instances whose index ≡ w (mod 16),
				// so expected sequences are per writer.
				for w := range 16 {
					wg.Go(func() {
						last := map[string]uint64{}
						for i, ge := range events {
							subj, _ := ts.store.Subject(ge.stream)
							if int(hash(subj))%16 != w {
								continue
							}
							seq, err := ts.store.Append(ctx, ge.stream, last[subj], ge.env)
							if err != nil {
								b.Error(err)
								return
							}
							last[subj] = seq
							mu.Lock()
							acks[seq], seqs[i] = time.Now(), seq
							mu.Unlock()
						}
					})
				}
				// Sample the checkpoint while appending.
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
		})
	}
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}
