package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/bus/eventstore/storetest"
	"github.com/gallerist/gallerist/bus/internal/bustest"
	"github.com/gallerist/gallerist/domain/event"
)

func open(t testing.TB, nc *nats.Conn, cfg eventstore.JetStreamConfig) *eventstore.JetStreamStore {
	t.Helper()
	s, err := eventstore.OpenJetStream(bustest.Context(t), nc, cfg, bustest.Logger())
	if err != nil {
		t.Fatalf("OpenJetStream: %v", err)
	}
	return s
}

// openMachine opens a store on the machine's NATS with a stream and prefix
// of its own, deleted at cleanup.
func openMachine(t testing.TB, nc *nats.Conn) *eventstore.JetStreamStore {
	t.Helper()
	name := bustest.Unique("GALLERIST_TEST")
	cfg := eventstore.JetStreamConfig{Stream: name, Prefix: "gtest." + name}
	s := open(t, nc, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.JetStream().DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	return s
}

func TestConformanceEmbedded(t *testing.T) {
	nc := bustest.Embedded(t)
	s := open(t, nc, eventstore.JetStreamConfig{})
	storetest.Run(t, func(*testing.T) eventstore.Store { return s })
}

// TestConformanceEmbeddedLeaderReads runs the suite on the leader read
// mode itself (on one replica JetStreamStore.Leader is the store).
func TestConformanceEmbeddedLeaderReads(t *testing.T) {
	nc := bustest.Embedded(t)
	s := open(t, nc, eventstore.JetStreamConfig{})
	if s.Leader() != eventstore.Store(s) {
		t.Errorf("Leader() of a single-replica store is not the store itself")
	}
	storetest.Run(t, func(*testing.T) eventstore.Store { return eventstore.LeaderReads(s) })
}

func TestConformanceEmbeddedSyncAlways(t *testing.T) {
	nc := bustest.Conn(t, bustest.StartEmbedded(t, bus.ServerConfig{Sync: bus.SyncAlways}))
	s := open(t, nc, eventstore.JetStreamConfig{})
	storetest.Run(t, func(*testing.T) eventstore.Store { return s })
}

func TestConformanceEmbeddedMemory(t *testing.T) {
	nc := bustest.Embedded(t)
	s := open(t, nc, eventstore.JetStreamConfig{Storage: jetstream.MemoryStorage, Stream: "MEM", Prefix: "mem"})
	storetest.Run(t, func(*testing.T) eventstore.Store { return s })
}

func TestConformanceMachineNATS(t *testing.T) {
	nc := bustest.Machine(t)
	s := openMachine(t, nc)
	storetest.Run(t, func(*testing.T) eventstore.Store { return s })
}

// TestRestart appends, restarts the embedded server on the same data
// directory and checks that everything is still there and that the stream
// was validated, not recreated.
func TestRestart(t *testing.T) {
	ctx := bustest.Context(t)
	dir := t.TempDir()
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"restart me"}}

	e1 := bustest.StartEmbedded(t, bus.ServerConfig{DataDir: dir})
	nc1 := bustest.Conn(t, e1)
	s1 := open(t, nc1, eventstore.JetStreamConfig{})
	info1, err := s1.Stream().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	var last uint64
	for i := range 10 {
		ev := event.Envelope{ID: bustest.Unique("evt"), Type: "Step", Version: 1, AggregateKind: "instance",
			AggregateID: "restart me", OccurredAt: time.Now().UTC(), Data: []byte(`{"i":` + itoa(uint64(i)) + `}`)}
		if last, err = s1.Append(ctx, id, last, ev); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, last)
	}
	nc1.Close()
	e1.Shutdown()

	e2 := bustest.StartEmbedded(t, bus.ServerConfig{DataDir: dir})
	nc2 := bustest.Conn(t, e2)
	// Before opening the store: the stream must exist on disk already.
	js, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, eventstore.DefaultStream); err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	s2 := open(t, nc2, eventstore.JetStreamConfig{})
	info2, err := s2.Stream().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info2.Created.Equal(info1.Created) {
		t.Fatalf("stream recreated: created %s, before restart %s", info2.Created, info1.Created)
	}
	recs, err := s2.Load(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want) {
		t.Fatalf("after restart %d events, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if r.Seq != want[i] {
			t.Fatalf("event %d at %d, want %d", i, r.Seq, want[i])
		}
	}
	if got, err := s2.Last(ctx, id); err != nil || got != last {
		t.Fatalf("Last after restart = %d, %v; want %d", got, err, last)
	}
	// Appending continues where it left off.
	ev := event.Envelope{ID: bustest.Unique("evt"), Type: "Step", OccurredAt: time.Now()}
	if _, err := s2.Append(ctx, id, last, ev); err != nil {
		t.Fatalf("append after restart: %v", err)
	}
}

// TestReconcileFixesStream: an existing stream with a max age, no direct
// gets, a message limit and a narrower subject set is updated in place.
func TestReconcileFixesStream(t *testing.T) {
	ctx := bustest.Context(t)
	nc := bustest.Embedded(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "FIXME", Subjects: []string{"other.>"}, MaxAge: time.Hour, MaxMsgs: 1000,
		Duplicates: time.Minute, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	s := open(t, nc, eventstore.JetStreamConfig{Stream: "FIXME", Prefix: "fix"})
	info, err := s.Stream().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.MaxAge != 0 || !c.AllowDirect || c.MaxMsgs != -1 || c.Duplicates != eventstore.DefaultDuplicateWindow {
		t.Fatalf("stream not fixed: %+v", c)
	}
	if len(c.Subjects) != 2 || c.Subjects[0] != "other.>" || c.Subjects[1] != "fix.>" {
		t.Fatalf("subjects %v, want [other.> fix.>]", c.Subjects)
	}
	// Opening again changes nothing and works.
	open(t, nc, eventstore.JetStreamConfig{Stream: "FIXME", Prefix: "fix"})
}

// TestReconcileRefusesStream: what cannot be changed is an error.
func TestReconcileRefusesStream(t *testing.T) {
	ctx := bustest.Context(t)
	nc := bustest.Embedded(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []jetstream.StreamConfig{
		{Name: "WORKQ", Subjects: []string{"wq.>"}, Retention: jetstream.WorkQueuePolicy},
		{Name: "MEMORY", Subjects: []string{"mm.>"}, Storage: jetstream.MemoryStorage},
	}
	for _, sc := range cases {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
		_, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{Stream: sc.Name, Prefix: "x" + sc.Subjects[0][:2]}, nil)
		if !errors.Is(err, eventstore.ErrStreamMismatch) {
			t.Errorf("%s: %v, want ErrStreamMismatch", sc.Name, err)
		}
	}
}

// TestConcurrentOpen: replicas starting together agree on one stream.
func TestConcurrentOpen(t *testing.T) {
	nc := bustest.Embedded(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := eventstore.OpenJetStream(bustest.Context(t), nc, eventstore.JetStreamConfig{}, nil)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptEvent: a message on an event subject that is not an envelope
// is an error naming its sequence.
func TestCorruptEvent(t *testing.T) {
	ctx := bustest.Context(t)
	nc := bustest.Embedded(t)
	s := open(t, nc, eventstore.JetStreamConfig{})
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"bad"}}
	subj, _ := s.Subject(id)
	ack, err := s.JetStream().Publish(ctx, subj, []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Load":      func() error { _, err := s.Load(ctx, id, 0); return err },
		"LastEvent": func() error { _, err := s.LastEvent(ctx, id); return err },
	} {
		err := call()
		if !errors.Is(err, eventstore.ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
		if want := "sequence " + itoa(ack.Sequence); !contains(err.Error(), want) {
			t.Fatalf("%s: %q does not name %q", name, err, want)
		}
	}
	// Last only needs the sequence.
	if last, err := s.Last(ctx, id); err != nil || last != ack.Sequence {
		t.Fatalf("Last = %d, %v; want %d", last, err, ack.Sequence)
	}
}

// TestDuplicateIDOnOtherStream: reusing an event id on another stream
// within the duplicate window is a conflict, not a silent success.
func TestDuplicateIDOnOtherStream(t *testing.T) {
	ctx := bustest.Context(t)
	s := open(t, bustest.Embedded(t), eventstore.JetStreamConfig{})
	a := eventstore.StreamID{Kind: "instance", Keys: []string{"a"}}
	b := eventstore.StreamID{Kind: "instance", Keys: []string{"b"}}
	ev := event.Envelope{ID: "same-id", Type: "Created", OccurredAt: time.Now()}
	if _, err := s.Append(ctx, a, 0, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, b, 0, ev); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("duplicate id on another stream: %v, want ErrConflict", err)
	}
	if recs, err := s.Load(ctx, b, 0); err != nil || len(recs) != 0 {
		t.Fatalf("stream b has %d events, %v; want none", len(recs), err)
	}
}

// TestInvalidData: Data that is not JSON is refused before publishing.
func TestInvalidData(t *testing.T) {
	s := open(t, bustest.Embedded(t), eventstore.JetStreamConfig{})
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"x"}}
	_, err := s.Append(bustest.Context(t), id, 0, event.Envelope{ID: "e1", Data: []byte("{oops")})
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("append with invalid Data: %v, want ErrInvalidEvent", err)
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, bustest.Embedded(t), eventstore.JetStreamConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id := eventstore.StreamID{Kind: "instance", Keys: []string{"x"}}
	if _, err := s.Load(ctx, id, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with canceled ctx: %v", err)
	}
	if _, err := s.Last(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("Last with canceled ctx: %v", err)
	}
	if _, err := s.Append(ctx, id, 0, event.Envelope{ID: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with canceled ctx: %v", err)
	}
}
