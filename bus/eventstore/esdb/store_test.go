package esdb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/bus/eventstore/esdb"
	"github.com/gallerist/gallerist/bus/eventstore/storetest"
	"github.com/gallerist/gallerist/domain/event"
)

// URLEnv names the EventStoreDB the server tests run against.
const URLEnv = "GALLERIST_TEST_ESDB_URL"

// openServer opens a store on the EventStoreDB of $GALLERIST_TEST_ESDB_URL
// under a prefix of its own, or skips the test if the variable is unset.
func openServer(t *testing.T) *esdb.Store {
	t.Helper()
	url := os.Getenv(URLEnv)
	if url == "" {
		t.Skipf("%s is not set: no EventStoreDB to test against. Start one with\n"+
			"\tdocker run --rm -p 2113:2113 eventstore/eventstore:latest --insecure --run-projections=All\n"+
			"and run\n\t%s='esdb://localhost:2113?tls=false' go test ./bus/eventstore/esdb/", URLEnv, URLEnv)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := esdb.Open(ctx, esdb.Config{
		URL:    url,
		Prefix: "gtest_" + hex.EncodeToString(b[:]),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", URLEnv, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	s := openServer(t)
	storetest.Run(t, func(*testing.T) eventstore.Store { return s })
}

// TestConformanceSmallBatches reads in batches of 7, so that the suite's
// loads cross many batch boundaries, some exactly at the end.
func TestConformanceSmallBatches(t *testing.T) {
	s := openServer(t)
	cfg := s.Config()
	cfg.ReadBatch = 7
	small, err := esdb.Open(ctxOf(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = small.Close() })
	storetest.Run(t, func(*testing.T) eventstore.Store { return small })
}

func newID(kind string) eventstore.StreamID {
	return eventstore.StreamID{Kind: kind, Keys: []string{uuid.NewString(), "line-1"}}
}

func newEvent(typ, id string) event.Envelope {
	return event.Envelope{
		ID: id, Type: typ, Version: 1, AggregateKind: "instance", AggregateID: "a",
		OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
		Causation:  event.Causation{OrderID: "CS1", Actor: "test"},
		Data:       json.RawMessage(`{"n": 1}`),
	}
}

// TestStoredLayout reads the stored events with the client library: stream
// name, revision, type, id, content type, data and metadata.
func TestStoredLayout(t *testing.T) {
	s := openServer(t)
	id := newID("order-index")
	name, err := s.StreamName(id)
	if err != nil {
		t.Fatalf("StreamName: %v", err)
	}
	if back, err := esdb.ParseStreamName(s.Config().Prefix, name); err != nil || back.Kind != id.Kind || !slices.Equal(back.Keys, id.Keys) {
		t.Fatalf("ParseStreamName(%q) = %#v, %v", name, back, err)
	}
	evs := []event.Envelope{newEvent("Indexed", uuid.Must(uuid.NewV7()).String()), newEvent("Bound", "evt-"+uuid.NewString())}
	var seqs []uint64
	var last uint64
	for _, ev := range evs {
		seq, err := s.Append(ctxOf(t), id, last, ev)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		seqs, last = append(seqs, seq), seq
	}
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("sequences %v, want [1 2] (revision+1)", seqs)
	}

	rs, err := s.Client().ReadStream(ctxOf(t), name, esdbc.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", name, err)
	}
	defer rs.Close()
	for i := 0; ; i++ {
		re, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			if i != len(evs) {
				t.Fatalf("read %d events, want %d", i, len(evs))
			}
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		e, ev := re.Event, evs[i]
		data, _ := eventstore.EncodeEnvelope(ev)
		if e.StreamID != name || e.EventNumber != uint64(i) || e.EventType != ev.Type || e.EventID != esdb.EventUUID(ev.ID) ||
			e.ContentType != "application/json" || !bytes.Equal(e.Data, data) {
			t.Fatalf("event %d = %+v", i, e)
		}
		var meta struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(e.UserMetadata, &meta); err != nil || meta.ID != ev.ID || meta.Kind != ev.AggregateKind {
			t.Fatalf("event %d metadata %s: %v", i, e.UserMetadata, err)
		}
	}
	if got := esdb.EventUUID(evs[0].ID).String(); got != evs[0].ID {
		t.Fatalf("a UUIDv7 id was not kept: %s", got)
	}
}

// TestAppendRetryAfterLaterAppends: a retry whose acknowledgement was lost
// still succeeds after the stream moved on.
func TestAppendRetryAfterLaterAppends(t *testing.T) {
	s := openServer(t)
	id := newID("instance")
	e1, e2, e3 := newEvent("A", "evt-"+uuid.NewString()), newEvent("B", uuid.Must(uuid.NewV7()).String()), newEvent("C", "evt-"+uuid.NewString())
	s1, err := s.Append(ctxOf(t), id, 0, e1)
	if err != nil {
		t.Fatalf("Append e1: %v", err)
	}
	s2, err := s.Append(ctxOf(t), id, s1, e2)
	if err != nil {
		t.Fatalf("Append e2: %v", err)
	}
	if _, err := s.Append(ctxOf(t), id, s2, e3); err != nil {
		t.Fatalf("Append e3: %v", err)
	}
	if got, err := s.Append(ctxOf(t), id, 0, e1); err != nil || got != s1 {
		t.Fatalf("retry of e1 = %d, %v; want %d", got, err, s1)
	}
	if got, err := s.Append(ctxOf(t), id, s1, e2); err != nil || got != s2 {
		t.Fatalf("retry of e2 = %d, %v; want %d", got, err, s2)
	}
	// The same event at another position is not a retry.
	if _, err := s.Append(ctxOf(t), id, s2, e1); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("e1 expecting %d: %v, want ErrConflict", s2, err)
	}
	if recs, err := s.Load(ctxOf(t), id, 0); err != nil || len(recs) != 3 {
		t.Fatalf("Load = %d records, %v; want 3", len(recs), err)
	}
}

func TestAppendHugeExpectedConflicts(t *testing.T) {
	s := openServer(t)
	id := newID("instance")
	for _, expected := range []uint64{math.MaxInt64 - 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64 - 1, math.MaxUint64} {
		if _, err := s.Append(ctxOf(t), id, expected, newEvent("A", uuid.NewString())); !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("Append expecting %d: %v, want ErrConflict", expected, err)
		}
	}
	if last, err := s.Last(ctxOf(t), id); err != nil || last != 0 {
		t.Fatalf("Last = %d, %v; want 0", last, err)
	}
}

func TestAppendRejectsEmptyType(t *testing.T) {
	s := openServer(t)
	if _, err := s.Append(ctxOf(t), newID("instance"), 0, newEvent("", uuid.NewString())); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("Append without type: %v, want ErrInvalidEvent", err)
	}
}

func TestDeadline(t *testing.T) {
	s := openServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Last(ctx, newID("instance")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Last with a cancelled context: %v, want context.Canceled", err)
	}
}
