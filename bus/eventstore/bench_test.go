package eventstore_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/bus/internal/bustest"
	"github.com/gallerist/gallerist/domain/event"
)

func benchEvent(i int) event.Envelope {
	return event.Envelope{
		ID: "bench-" + strconv.Itoa(i), Type: "InstanceChanged", Version: 1, AggregateKind: "instance",
		AggregateID: "bench", OccurredAt: time.Now().UTC(),
		Causation: event.Causation{Activity: "refreshInstance", OrderID: "CS1906666666ABCDE", Nonce: "375A8C7D2F8F4F7B"},
		Data:      json.RawMessage(`{"expireTime":"20260101000000","chargingMode":1}`),
	}
}

// BenchmarkAppend appends to one aggregate on the embedded server (file
// store, sync interval, in-process connection), each append expecting the
// previous one's sequence.
func BenchmarkAppend(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	ctx := benchContext(b)
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"bench"}}
	var last uint64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		seq, err := s.Append(ctx, id, last, benchEvent(i))
		if err != nil {
			b.Fatal(err)
		}
		last = seq
		i++
	}
}

// BenchmarkLast reads the last sequence of one of 1000 aggregates (the
// fresh-read check of the aggregate repository).
func BenchmarkLast(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	ctx := benchContext(b)
	ids := seed(b, s, 1000, 3)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Last(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLastParallel is BenchmarkLast from GOMAXPROCS goroutines.
func BenchmarkLastParallel(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	ids := seed(b, s, 1000, 3)
	b.ReportAllocs()
	ctx := benchContext(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Last(ctx, ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkLoad loads a 10-event aggregate.
func BenchmarkLoad(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	ctx := benchContext(b)
	ids := seed(b, s, 100, 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		recs, err := s.Load(ctx, ids[i%len(ids)], 0)
		if err != nil || len(recs) != 10 {
			b.Fatal(len(recs), err)
		}
		i++
	}
}

// benchContext has a deadline, like a request's context in production (a
// context without one costs a timer per call).
func benchContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	b.Cleanup(cancel)
	return ctx
}

func seed(b *testing.B, s *eventstore.JetStreamStore, n, events int) []eventstore.StreamID {
	b.Helper()
	ctx := benchContext(b)
	ids := make([]eventstore.StreamID, n)
	k := 0
	for i := range ids {
		ids[i] = eventstore.StreamID{Kind: "instance", Keys: []string{"agg-" + strconv.Itoa(i)}}
		var last uint64
		for range events {
			seq, err := s.Append(ctx, ids[i], last, benchEvent(k))
			if err != nil {
				b.Fatal(err)
			}
			last = seq
			k++
		}
	}
	return ids
}

// BenchmarkLastViaGetLastMsgForSubject is the jetstream package's direct
// get, for comparison with Last.
func BenchmarkLastViaGetLastMsgForSubject(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	ctx := benchContext(b)
	ids := seed(b, s, 1000, 3)
	subjects := make([]string, len(ids))
	for i, id := range ids {
		subjects[i], _ = s.Subject(id)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Stream().GetLastMsgForSubject(ctx, subjects[i%len(subjects)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLastLeader is BenchmarkLast through the leader read mode
// ($JS.API.STREAM.MSG.GET with last_by_subj, a JSON response), which
// JetStreamStore.Leader uses on a replicated stream only.
func BenchmarkLastLeader(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	l := eventstore.LeaderReads(s)
	ctx := benchContext(b)
	ids := seed(b, s, 1000, 3)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Last(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLastLeaderParallel is BenchmarkLastLeader from GOMAXPROCS
// goroutines.
func BenchmarkLastLeaderParallel(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	l := eventstore.LeaderReads(s)
	ids := seed(b, s, 1000, 3)
	b.ReportAllocs()
	ctx := benchContext(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := l.Last(ctx, ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkLoadLeader is BenchmarkLoad through the leader read mode: one
// leader get of the last sequence, then the direct gets.
func BenchmarkLoadLeader(b *testing.B) {
	s := open(b, bustest.Embedded(b), eventstore.JetStreamConfig{})
	l := eventstore.LeaderReads(s)
	ctx := benchContext(b)
	ids := seed(b, s, 100, 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		recs, err := l.Load(ctx, ids[i%len(ids)], 0)
		if err != nil || len(recs) != 10 {
			b.Fatal(len(recs), err)
		}
		i++
	}
}
