package esdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// closedURL returns a connection string to a local port nothing listens
// on, with a discovery budget of one attempt.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "esdb://" + addr + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=10"
}

func sampleEnvelope() event.Envelope {
	return event.Envelope{
		ID: "evt-0001", Type: "InstanceCreated", Version: 2,
		AggregateKind: "instance", AggregateID: "i-1",
		OccurredAt: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
		Causation:  event.Causation{Activity: "newInstance", OrderID: "CS1", Nonce: "n1", TestFlag: true},
		Data:       json.RawMessage(`{ "name" : "Grüße <&>" }`),
	}
}

func TestEventData(t *testing.T) {
	ev := sampleEnvelope()
	ed, err := eventData(ev)
	if err != nil {
		t.Fatalf("eventData: %v", err)
	}
	want, _ := eventstore.EncodeEnvelope(ev)
	if ed.EventID != EventUUID(ev.ID) || ed.EventType != ev.Type || ed.ContentType != esdbc.ContentTypeJson || !bytes.Equal(ed.Data, want) {
		t.Fatalf("eventData = %+v", ed)
	}
	var meta map[string]any
	if err := json.Unmarshal(ed.Metadata, &meta); err != nil {
		t.Fatalf("metadata %s: %v", ed.Metadata, err)
	}
	if meta["id"] != "evt-0001" || meta["type"] != "InstanceCreated" || meta["v"] != 2.0 || meta["kind"] != "instance" ||
		meta["aggregateId"] != "i-1" || meta["occurredAt"] != "2025-03-14T15:09:26.535897932Z" || meta["data"] != nil {
		t.Fatalf("metadata = %s", ed.Metadata)
	}
	if c, _ := meta["causation"].(map[string]any); c["orderId"] != "CS1" || c["testFlag"] != true {
		t.Fatalf("metadata causation = %v", meta["causation"])
	}

	u := "0197c3a2-5a1e-7b4c-9d2e-3f4a5b6c7d8e"
	ev.ID = u
	if ed, err := eventData(ev); err != nil || ed.EventID.String() != u {
		t.Fatalf("eventData of a UUID id: %s, %v", ed.EventID, err)
	}
	ev.Data = nil
	if ed, err := eventData(ev); err != nil || !bytes.HasSuffix(ed.Data, []byte(`"data":null}`)) {
		t.Fatalf("eventData without Data: %s, %v", ed.Data, err)
	}
}

func TestEventDataRejects(t *testing.T) {
	for name, mutate := range map[string]func(*event.Envelope){
		"no id":        func(e *event.Envelope) { e.ID = "" },
		"no type":      func(e *event.Envelope) { e.Type = "" },
		"data no JSON": func(e *event.Envelope) { e.Data = json.RawMessage(`{"a":`) },
	} {
		ev := sampleEnvelope()
		mutate(&ev)
		if _, err := eventData(ev); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: %v, want ErrInvalidEvent", name, err)
		}
	}
}

func TestRecordOf(t *testing.T) {
	ev := sampleEnvelope()
	data, _ := eventstore.EncodeEnvelope(ev)
	rec, err := recordOf("gallerist.instance-i%2D1", &esdbc.RecordedEvent{EventNumber: 41, StreamID: "gallerist.instance-i%2D1", Data: data})
	if err != nil || rec.Seq != 42 || rec.Subject != "gallerist.instance-i%2D1" || rec.Event.ID != ev.ID ||
		!bytes.Equal(rec.Event.Data, ev.Data) || !rec.Event.OccurredAt.Equal(ev.OccurredAt) || rec.Event.Causation != ev.Causation {
		t.Fatalf("recordOf = %+v, %v", rec, err)
	}
	_, err = recordOf("s", &esdbc.RecordedEvent{EventNumber: 7, Data: []byte("not json")})
	if !errors.Is(err, eventstore.ErrCorrupt) || !strings.Contains(err.Error(), "revision 7") {
		t.Fatalf("recordOf of garbage: %v", err)
	}
}

// TestCallsThatNeedNoServer: invalid input is rejected before any request
// (the store points at a closed port, so a request would fail otherwise).
func TestCallsThatNeedNoServer(t *testing.T) {
	s, err := newStore(Config{URL: closedURL(t)})
	if err != nil {
		t.Fatalf("newStore: %v", err)
	}
	defer func() { _ = s.Close() }()
	ctx := t.Context()
	ok := eventstore.StreamID{Kind: "instance", Keys: []string{"a"}}
	bad := eventstore.StreamID{Kind: "inst.ance", Keys: []string{"a"}}
	ev := sampleEnvelope()

	if _, err := s.Append(ctx, bad, 0, ev); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Append(bad id): %v", err)
	}
	if _, err := s.Load(ctx, bad, 0); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Load(bad id): %v", err)
	}
	if _, err := s.Last(ctx, bad); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("Last(bad id): %v", err)
	}
	if _, err := s.LastEvent(ctx, bad); !errors.Is(err, eventstore.ErrInvalidKey) {
		t.Errorf("LastEvent(bad id): %v", err)
	}
	noID := ev
	noID.ID = ""
	if _, err := s.Append(ctx, ok, 0, noID); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("Append(no id): %v", err)
	}
	for _, expected := range []uint64{math.MaxInt64 + 1, math.MaxUint64 - 1, math.MaxUint64} {
		if _, err := s.Append(ctx, ok, expected, ev); !errors.Is(err, eventstore.ErrConflict) {
			t.Errorf("Append(expected %d): %v, want ErrConflict", expected, err)
		}
	}
	for _, after := range []uint64{math.MaxInt64, math.MaxUint64} {
		if recs, err := s.Load(ctx, ok, after); err != nil || len(recs) != 0 {
			t.Errorf("Load(after %d) = %v, %v; want nothing", after, recs, err)
		}
	}
	if name, err := s.StreamName(ok); err != nil || name != "gallerist.instance-a" {
		t.Errorf("StreamName = %q, %v", name, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, Config{URL: closedURL(t)})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if errors.Is(err, eventstore.ErrInvalidConfig) {
		t.Fatalf("Open: %v, not a configuration error", err)
	}
	t.Logf("Open failed after %s: %v", time.Since(start).Round(time.Millisecond), err)

	if _, err := Open(ctx, Config{URL: "esdb://localhost:2113?tsl=false"}); !errors.Is(err, eventstore.ErrInvalidConfig) {
		t.Fatalf("Open with a typo: %v, want ErrInvalidConfig", err)
	}
}

// TestClientRenewedAfterGivingUp: the library's client closes itself for
// good after a failed discovery; the store replaces it instead of failing
// forever.
func TestClientRenewedAfterGivingUp(t *testing.T) {
	s, err := newStore(Config{URL: closedURL(t), RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("newStore: %v", err)
	}
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"a"}}
	first := s.Client()
	if _, err := s.Last(t.Context(), id); err == nil {
		t.Fatal("Last against a closed port succeeded")
	}
	// The first client has given up: without renewal every later call
	// would fail at once with ErrorCodeConnectionClosed.
	_, err = first.ReadStream(t.Context(), "x", esdbc.ReadStreamOptions{}, 1)
	if !hasCode(err, esdbc.ErrorCodeConnectionClosed) {
		t.Fatalf("first client after a failed discovery: %v, want ErrorCodeConnectionClosed", err)
	}
	_, err = s.Last(t.Context(), id)
	if err == nil || hasCode(err, esdbc.ErrorCodeConnectionClosed) {
		t.Fatalf("Last after the client gave up: %v, want a fresh discovery failure", err)
	}
	if s.Client() == first {
		t.Fatal("client not replaced")
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Last(t.Context(), id); !errors.Is(err, ErrClosed) {
		t.Fatalf("Last after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Append(t.Context(), id, 0, sampleEnvelope()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestClientLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := clientLogger(log)
	f(esdbc.LogInfo, "discovery attempt %v/%v", 1, 10)
	f(esdbc.LogDebug, "trying candidate '%s'...", "x")
	if buf.Len() != 0 {
		t.Fatalf("debug/info lines logged at warn level: %s", buf.String())
	}
	f(esdbc.LogError, "unexpected exception: %v", errors.New("boom"))
	f(esdbc.LogWarn, "warned %d", 7)
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "esdb client: unexpected exception: boom") ||
		!strings.Contains(out, "clientLevel=error") || !strings.Contains(out, "warned 7") {
		t.Fatalf("log = %s", out)
	}
}
