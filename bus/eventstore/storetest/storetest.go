// Package storetest is the conformance suite every eventstore.Store backend
// must pass (in the spirit of hallgren/eventsourcing's core/testsuite):
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventstore.Store { return newMyStore(t) })
//	}
//
// newStore is called once per sub-test; it may return a fresh or a shared
// store, since every sub-test uses stream ids of its own.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// Run runs the conformance suite against the stores newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"AppendToNewStream", testAppendToNewStream},
		{"AppendExpectedZeroOnNonEmptyConflicts", testAppendExpectedZeroConflicts},
		{"AppendSequence", testAppendSequence},
		{"AppendStaleExpectedConflicts", testAppendStaleConflicts},
		{"AppendAheadExpectedConflicts", testAppendAheadConflicts},
		{"AppendRetryOfStoredEventIsIdempotent", testAppendRetryIdempotent},
		{"AppendRejectsEmptyEventID", testAppendEmptyID},
		{"Load", testLoad},
		{"LoadAcrossBatches", testLoadMany},
		{"LastAndLastEvent", testLast},
		{"UnknownStream", testUnknownStream},
		{"InvalidStreamID", testInvalidStreamID},
		{"KeysNeedingEncoding", testEncodedKeys},
		{"StreamsAreIsolated", testIsolation},
		{"MultiKeyStreams", testMultiKey},
		{"ConcurrentAppendsOneWinner", testConcurrentAppends},
		{"EnvelopeRoundTrip", testRoundTrip},
		{"LeaderReads", testLeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func unique(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// newStream returns a stream id no other test uses.
func newStream(kind string) eventstore.StreamID {
	return eventstore.StreamID{Kind: kind, Keys: []string{unique("agg")}}
}

// newEvent returns a complete envelope with a fresh id.
func newEvent(s eventstore.StreamID, typ string, n int) event.Envelope {
	return event.Envelope{
		ID:            unique("evt"),
		Type:          typ,
		Version:       1,
		AggregateKind: s.Kind,
		AggregateID:   s.Keys[0],
		OccurredAt:    time.Now().UTC().Truncate(time.Millisecond),
		Causation:     event.Causation{Activity: "newInstance", OrderID: "CS0001", Nonce: unique("n")},
		Data:          json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

func mustAppend(t *testing.T, s eventstore.Store, id eventstore.StreamID, expected uint64, ev event.Envelope) uint64 {
	t.Helper()
	seq, err := s.Append(ctxOf(t), id, expected, ev)
	if err != nil {
		t.Fatalf("Append(%v, expected %d): %v", id, expected, err)
	}
	if seq == 0 {
		t.Fatalf("Append(%v, expected %d) returned sequence 0", id, expected)
	}
	return seq
}

// appendN appends n events to a new stream and returns the id, events and
// their sequences.
func appendN(t *testing.T, s eventstore.Store, n int) (eventstore.StreamID, []event.Envelope, []uint64) {
	t.Helper()
	id := newStream("instance")
	var evs []event.Envelope
	var seqs []uint64
	var last uint64
	for i := range n {
		ev := newEvent(id, "Step", i)
		last = mustAppend(t, s, id, last, ev)
		evs = append(evs, ev)
		seqs = append(seqs, last)
	}
	return id, evs, seqs
}

func expectConflict(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want ErrConflict", what)
	}
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("%s: error %v does not wrap ErrConflict", what, err)
	}
}

func testAppendToNewStream(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	seq := mustAppend(t, s, id, 0, newEvent(id, "Created", 0))
	last, err := s.Last(ctxOf(t), id)
	if err != nil || last != seq {
		t.Fatalf("Last = %d, %v; want %d", last, err, seq)
	}
}

func testAppendExpectedZeroConflicts(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	mustAppend(t, s, id, 0, newEvent(id, "Created", 0))
	_, err := s.Append(ctxOf(t), id, 0, newEvent(id, "Created", 1))
	expectConflict(t, err, "second append expecting an empty stream")
}

func testAppendSequence(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	s1 := mustAppend(t, s, id, 0, newEvent(id, "Created", 0))
	s2 := mustAppend(t, s, id, s1, newEvent(id, "Changed", 1))
	s3 := mustAppend(t, s, id, s2, newEvent(id, "Changed", 2))
	if s1 >= s2 || s2 >= s3 {
		t.Fatalf("sequences not increasing: %d, %d, %d", s1, s2, s3)
	}
}

func testAppendStaleConflicts(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	s1 := mustAppend(t, s, id, 0, newEvent(id, "Created", 0))
	s2 := mustAppend(t, s, id, s1, newEvent(id, "Changed", 1))
	_, err := s.Append(ctxOf(t), id, s1, newEvent(id, "Changed", 2))
	expectConflict(t, err, "append with a stale expected sequence")
	if last, err := s.Last(ctxOf(t), id); err != nil || last != s2 {
		t.Fatalf("after conflict Last = %d, %v; want %d", last, err, s2)
	}
}

func testAppendAheadConflicts(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	s1 := mustAppend(t, s, id, 0, newEvent(id, "Created", 0))
	_, err := s.Append(ctxOf(t), id, s1+1000, newEvent(id, "Changed", 1))
	expectConflict(t, err, "append with an expected sequence ahead of the stream")
	_, err = s.Append(ctxOf(t), newStream("instance"), 7, newEvent(id, "Changed", 1))
	expectConflict(t, err, "append to an empty stream expecting sequence 7")
}

// testAppendRetryIdempotent: a retried append (same event, same expected
// sequence) after a lost acknowledgement returns the stored sequence.
func testAppendRetryIdempotent(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	ev := newEvent(id, "Created", 0)
	s1 := mustAppend(t, s, id, 0, ev)
	s2, err := s.Append(ctxOf(t), id, 0, ev)
	if err != nil || s2 != s1 {
		t.Fatalf("retry of a stored append = %d, %v; want %d, nil", s2, err, s1)
	}
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("after retry Load = %d records, %v; want 1", len(recs), err)
	}
}

func testAppendEmptyID(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	ev := newEvent(id, "Created", 0)
	ev.ID = ""
	if _, err := s.Append(ctxOf(t), id, 0, ev); err == nil {
		t.Fatal("append of an event without ID succeeded")
	}
}

func testLoad(t *testing.T, s eventstore.Store) {
	id, evs, seqs := appendN(t, s, 5)
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil {
		t.Fatalf("Load all: %v", err)
	}
	checkRecords(t, recs, evs, seqs)
	recs, err = s.Load(ctxOf(t), id, seqs[1])
	if err != nil {
		t.Fatalf("Load after %d: %v", seqs[1], err)
	}
	checkRecords(t, recs, evs[2:], seqs[2:])
	recs, err = s.Load(ctxOf(t), id, seqs[4])
	if err != nil || len(recs) != 0 {
		t.Fatalf("Load after the last event = %d records, %v; want none", len(recs), err)
	}
}

// testLoadMany crosses backend batch boundaries.
func testLoadMany(t *testing.T, s eventstore.Store) {
	id, evs, seqs := appendN(t, s, 600)
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil {
		t.Fatalf("Load all: %v", err)
	}
	checkRecords(t, recs, evs, seqs)
	recs, err = s.Load(ctxOf(t), id, seqs[299])
	if err != nil {
		t.Fatalf("Load after %d: %v", seqs[299], err)
	}
	checkRecords(t, recs, evs[300:], seqs[300:])
}

func checkRecords(t *testing.T, recs []eventstore.Record, evs []event.Envelope, seqs []uint64) {
	t.Helper()
	if len(recs) != len(evs) {
		t.Fatalf("got %d records, want %d", len(recs), len(evs))
	}
	for i, r := range recs {
		if r.Seq != seqs[i] {
			t.Fatalf("record %d: seq %d, want %d", i, r.Seq, seqs[i])
		}
		if r.Subject == "" {
			t.Fatalf("record %d: empty subject", i)
		}
		sameEnvelope(t, r.Event, evs[i])
	}
}

func testLast(t *testing.T, s eventstore.Store) {
	id, evs, seqs := appendN(t, s, 3)
	last, err := s.Last(ctxOf(t), id)
	if err != nil || last != seqs[2] {
		t.Fatalf("Last = %d, %v; want %d", last, err, seqs[2])
	}
	rec, err := s.LastEvent(ctxOf(t), id)
	if err != nil {
		t.Fatalf("LastEvent: %v", err)
	}
	if rec.Seq != seqs[2] {
		t.Fatalf("LastEvent seq %d, want %d", rec.Seq, seqs[2])
	}
	sameEnvelope(t, rec.Event, evs[2])
}

func testUnknownStream(t *testing.T, s eventstore.Store) {
	id := newStream("instance")
	last, err := s.Last(ctxOf(t), id)
	if err != nil || last != 0 {
		t.Fatalf("Last of unknown stream = %d, %v; want 0, nil", last, err)
	}
	if _, err := s.LastEvent(ctxOf(t), id); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("LastEvent of unknown stream: %v, want ErrNotFound", err)
	}
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Load of unknown stream = %d records, %v; want none", len(recs), err)
	}
	recs, err = s.Load(ctxOf(t), id, 12345)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Load of unknown stream after 12345 = %d records, %v; want none", len(recs), err)
	}
}

func testInvalidStreamID(t *testing.T, s eventstore.Store) {
	bad := []eventstore.StreamID{
		{Kind: "", Keys: []string{"a"}},
		{Kind: "instance", Keys: nil},
		{Kind: "instance", Keys: []string{""}},
		{Kind: "inst.ance", Keys: []string{"a"}},
		{Kind: "inst>", Keys: []string{"a"}},
	}
	for _, id := range bad {
		ev := newEvent(eventstore.StreamID{Kind: "x", Keys: []string{"x"}}, "Created", 0)
		if _, err := s.Append(ctxOf(t), id, 0, ev); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("Append(%#v): %v, want ErrInvalidKey", id, err)
		}
		if _, err := s.Last(ctxOf(t), id); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("Last(%#v): %v, want ErrInvalidKey", id, err)
		}
		if _, err := s.Load(ctxOf(t), id, 0); !errors.Is(err, eventstore.ErrInvalidKey) {
			t.Errorf("Load(%#v): %v, want ErrInvalidKey", id, err)
		}
	}
}

func testEncodedKeys(t *testing.T, s eventstore.Store) {
	u := unique("k")
	keys := []string{
		"a.b." + u, "with space " + u, ">" + u, "*" + u, u + ".>", "%41" + u, "ünï-cødé 订单 " + u,
		"tab\tnew\nline" + u, "slash/back\\" + u,
	}
	var ids []eventstore.StreamID
	var seqs []uint64
	for _, k := range keys {
		id := eventstore.StreamID{Kind: "instance", Keys: []string{k}}
		ids = append(ids, id)
		seqs = append(seqs, mustAppend(t, s, id, 0, newEvent(id, "Created", 0)))
	}
	for i, id := range ids {
		recs, err := s.Load(ctxOf(t), id, 0)
		if err != nil || len(recs) != 1 || recs[0].Seq != seqs[i] {
			t.Fatalf("Load(%q) = %v, %v; want exactly its own event %d", id.Keys[0], recs, err, seqs[i])
		}
		if last, err := s.Last(ctxOf(t), id); err != nil || last != seqs[i] {
			t.Fatalf("Last(%q) = %d, %v; want %d", id.Keys[0], last, err, seqs[i])
		}
	}
	// The "a.b.<u>" key must not be confused with a two-key stream a / b.<u>.
	split := eventstore.StreamID{Kind: "instance", Keys: []string{"a", "b." + u}}
	if last, err := s.Last(ctxOf(t), split); err != nil || last != 0 {
		t.Fatalf("Last of a different multi-key stream = %d, %v; want 0", last, err)
	}
}

func testIsolation(t *testing.T, s eventstore.Store) {
	a, b := newStream("instance"), newStream("instance")
	sa := mustAppend(t, s, a, 0, newEvent(a, "Created", 0))
	sb := mustAppend(t, s, b, 0, newEvent(b, "Created", 0))
	sa2 := mustAppend(t, s, a, sa, newEvent(a, "Changed", 1))
	if _, err := s.Append(ctxOf(t), b, sa2, newEvent(b, "Changed", 1)); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("append to b with a's sequence: %v, want ErrConflict", err)
	}
	recsA, err := s.Load(ctxOf(t), a, 0)
	if err != nil || len(recsA) != 2 {
		t.Fatalf("Load(a) = %d records, %v; want 2", len(recsA), err)
	}
	recsB, err := s.Load(ctxOf(t), b, 0)
	if err != nil || len(recsB) != 1 || recsB[0].Seq != sb {
		t.Fatalf("Load(b) = %v, %v; want one event at %d", recsB, err, sb)
	}
	// Same key, different kind: a different stream.
	other := eventstore.StreamID{Kind: "license", Keys: a.Keys}
	if last, err := s.Last(ctxOf(t), other); err != nil || last != 0 {
		t.Fatalf("Last of same key under another kind = %d, %v; want 0", last, err)
	}
}

func testMultiKey(t *testing.T, s eventstore.Store) {
	order := unique("order")
	l1 := eventstore.StreamID{Kind: "order", Keys: []string{order, "line-1"}}
	l2 := eventstore.StreamID{Kind: "order", Keys: []string{order, "line-2"}}
	one := eventstore.StreamID{Kind: "order", Keys: []string{order}}
	s1 := mustAppend(t, s, l1, 0, newEvent(l1, "Indexed", 0))
	s2 := mustAppend(t, s, l2, 0, newEvent(l2, "Indexed", 0))
	if last, err := s.Last(ctxOf(t), l1); err != nil || last != s1 {
		t.Fatalf("Last(l1) = %d, %v; want %d", last, err, s1)
	}
	if last, err := s.Last(ctxOf(t), l2); err != nil || last != s2 {
		t.Fatalf("Last(l2) = %d, %v; want %d", last, err, s2)
	}
	if recs, err := s.Load(ctxOf(t), one, 0); err != nil || len(recs) != 0 {
		t.Fatalf("Load of the single-key prefix stream = %d records, %v; want none", len(recs), err)
	}
}

func testConcurrentAppends(t *testing.T, s eventstore.Store) {
	const writers = 20
	id := newStream("instance")
	base := mustAppend(t, s, id, 0, newEvent(id, "Created", 0))

	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins []uint64
	var conflicts int
	var others []error
	for i := range writers {
		ev := newEvent(id, "Changed", i+1)
		wg.Go(func() {
			<-start
			seq, err := s.Append(ctxOf(t), id, base, ev)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, seq)
			case errors.Is(err, eventstore.ErrConflict):
				conflicts++
			default:
				others = append(others, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if len(wins) != 1 || conflicts != writers-1 {
		t.Fatalf("%d winners %v and %d conflicts; want 1 and %d", len(wins), wins, conflicts, writers-1)
	}
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil || len(recs) != 2 || recs[1].Seq != wins[0] {
		t.Fatalf("Load after the race = %d records, %v; want 2 ending at %d", len(recs), err, wins[0])
	}
}

func testRoundTrip(t *testing.T, s eventstore.Store) {
	id := eventstore.StreamID{Kind: "instance", Keys: []string{unique("rt")}}
	full := event.Envelope{
		ID:            unique("evt"),
		Type:          "InstanceCreated",
		Version:       3,
		AggregateKind: "instance",
		AggregateID:   id.Keys[0],
		OccurredAt:    time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CST", 8*3600)),
		Causation: event.Causation{
			Activity: "newInstance", OrderID: "CS1906666666ABCDE", OrderLineID: "CS1906666666ABCDE-000001",
			BusinessID: "61e834ba-7b97-4418-b8f7-e5345137278c", Nonce: "375A8C7D2F8F4F7B", TestFlag: true,
			Route: "/produce/saas", Actor: "marketplace",
		},
		// Not compact, with HTML-ish characters, escapes and non-ASCII: the
		// bytes must come back exactly as given.
		Data: json.RawMessage("{ \"name\" : \"Grüße <&> \\\"x\\\" \\u00e9\",\n  \"n\": 1.50, \"list\": [1, 2, {\"a\": null}] }"),
	}
	bare := event.Envelope{ID: unique("evt"), Type: "Bare", OccurredAt: time.Unix(0, 0).UTC()}
	s1 := mustAppend(t, s, id, 0, full)
	s2 := mustAppend(t, s, id, s1, bare)
	recs, err := s.Load(ctxOf(t), id, 0)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Load = %d records, %v; want 2", len(recs), err)
	}
	sameEnvelope(t, recs[0].Event, full)
	sameEnvelope(t, recs[1].Event, bare)
	if recs[1].Seq != s2 {
		t.Fatalf("seq %d, want %d", recs[1].Seq, s2)
	}
	rec, err := s.LastEvent(ctxOf(t), id)
	if err != nil {
		t.Fatalf("LastEvent: %v", err)
	}
	sameEnvelope(t, rec.Event, bare)
}

// sameEnvelope compares every field; OccurredAt to the millisecond at least
// (as an instant: the zone may change), Data byte for byte (nil and empty
// are the same).
func sameEnvelope(t *testing.T, got, want event.Envelope) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Version != want.Version ||
		got.AggregateKind != want.AggregateKind || got.AggregateID != want.AggregateID {
		t.Fatalf("envelope header mismatch:\n got %+v\nwant %+v", got, want)
	}
	if got.Causation != want.Causation {
		t.Fatalf("causation mismatch:\n got %+v\nwant %+v", got.Causation, want.Causation)
	}
	if d := got.OccurredAt.Sub(want.OccurredAt); d >= time.Millisecond || d <= -time.Millisecond {
		t.Fatalf("OccurredAt %s, want %s", got.OccurredAt, want.OccurredAt)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("Data mismatch:\n got %q\nwant %q", got.Data, want.Data)
	}
}

// testLeader: the leader read mode reads what the store appended, through
// the view and through the view's own Leader; its Append is the store's;
// unknown streams and bad keys are answered as by the store.
func testLeader(t *testing.T, s eventstore.Store) {
	id, evs, seqs := appendN(t, s, 3)
	for name, l := range map[string]eventstore.Store{
		"Leader()": s.Leader(), "Leader().Leader()": s.Leader().Leader(),
	} {
		last, err := l.Last(ctxOf(t), id)
		if err != nil || last != seqs[2] {
			t.Fatalf("%s.Last = %d, %v; want %d", name, last, err, seqs[2])
		}
		rec, err := l.LastEvent(ctxOf(t), id)
		if err != nil || rec.Seq != seqs[2] {
			t.Fatalf("%s.LastEvent = seq %d, %v; want %d", name, rec.Seq, err, seqs[2])
		}
		sameEnvelope(t, rec.Event, evs[2])
		for after := range 4 {
			from := uint64(0)
			if after > 0 {
				from = seqs[after-1]
			}
			recs, err := l.Load(ctxOf(t), id, from)
			if err != nil || len(recs) != 3-after {
				t.Fatalf("%s.Load after %d = %d records, %v; want %d", name, from, len(recs), err, 3-after)
			}
			for i, rec := range recs {
				if rec.Seq != seqs[after+i] {
					t.Fatalf("%s.Load after %d: record %d at %d, want %d", name, from, i, rec.Seq, seqs[after+i])
				}
				sameEnvelope(t, rec.Event, evs[after+i])
			}
		}
	}

	// Appends through the view are the store's, with the same checks.
	l := s.Leader()
	ev := newEvent(id, "Step", 3)
	seq, err := l.Append(ctxOf(t), id, seqs[2], ev)
	if err != nil || seq <= seqs[2] {
		t.Fatalf("Leader().Append = %d, %v", seq, err)
	}
	if last, err := s.Last(ctxOf(t), id); err != nil || last < seq {
		t.Fatalf("Last after Leader().Append = %d, %v; want ≥ %d", last, err, seq)
	}
	_, err = l.Append(ctxOf(t), id, seqs[2], newEvent(id, "Step", 4))
	expectConflict(t, err, "Leader().Append with a stale expected sequence")

	unknown := newStream("instance")
	if last, err := l.Last(ctxOf(t), unknown); err != nil || last != 0 {
		t.Errorf("Leader().Last of an unknown stream = %d, %v; want 0, nil", last, err)
	}
	if _, err := l.LastEvent(ctxOf(t), unknown); !errors.Is(err, eventstore.ErrNotFound) {
		t.Errorf("Leader().LastEvent of an unknown stream: %v, want ErrNotFound", err)
	}
	if recs, err := l.Load(ctxOf(t), unknown, 0); err != nil || len(recs) != 0 {
		t.Errorf("Leader().Load of an unknown stream = %d records, %v; want none", len(recs), err)
	}
	bad := eventstore.StreamID{Kind: "inst.ance", Keys: []string{"a"}}
	if _, err := l.Last(ctxOf(t), bad); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Leader().Last(%#v): %v, want ErrInvalidKey", bad, err)
	}
	if _, err := l.LastEvent(ctxOf(t), bad); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Leader().LastEvent(%#v): %v, want ErrInvalidKey", bad, err)
	}
	if _, err := l.Load(ctxOf(t), bad, 0); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Leader().Load(%#v): %v, want ErrInvalidKey", bad, err)
	}
}
