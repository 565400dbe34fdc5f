package effects_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
)

// scripted is an effect on InstanceCreated whose attempts do what do says;
// attempt counts the calls per event id, from 1.
type scripted struct {
	do func(ctx context.Context, ev event.Envelope, attempt int) error

	mu    sync.Mutex
	calls map[string]int
}

func newScripted(do func(ctx context.Context, ev event.Envelope, attempt int) error) *scripted {
	return &scripted{do: do, calls: map[string]int{}}
}

func (*scripted) Name() string        { return "scripted" }
func (*scripted) Wants(t string) bool { return t == instance.TypeCreated }

func (s *scripted) Handle(ctx context.Context, ev event.Envelope, _ uint64) error {
	s.mu.Lock()
	s.calls[ev.ID]++
	n := s.calls[ev.ID]
	do := s.do
	s.mu.Unlock()
	return do(ctx, ev, n)
}

func (s *scripted) setDo(do func(ctx context.Context, ev event.Envelope, attempt int) error) {
	s.mu.Lock()
	s.do = do
	s.mu.Unlock()
}

// doneRecord returns the one EffectDone of the effect for id.
func (r *rig) doneRecord(t *testing.T, name, id string) effect.Done {
	t.Helper()
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: effect.Kind, Keys: []string{name, id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var done effect.Done
	if len(recs) != 1 || recs[0].Event.Type != effect.TypeDone || json.Unmarshal(recs[0].Event.Data, &done) != nil {
		t.Fatalf("progress of %s = %+v, want one %s", id, recs, effect.TypeDone)
	}
	return done
}

// TestPanicIsARetryableError: watermill's Recoverer turns a panic into an
// error of the attempt; it is retried, and parked after the last attempt
// with a short reason.
func TestPanicIsARetryableError(t *testing.T) {
	r := newRig(t)
	h := newScripted(func(_ context.Context, ev event.Envelope, attempt int) error {
		if ev.AggregateID == "biz-always" || attempt <= 2 {
			panic("boom")
		}
		return nil
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 3
	run := r.runner(t, h, cfg)
	twice := r.create(t, "twice")
	always := r.create(t, "always")

	progress(t, run, twice, "done", doneThrough(r.events(t, twice)[0].Seq))
	if d := r.doneRecord(t, h.Name(), twice); d.Attempts != 3 {
		t.Fatalf("done after %d attempts, want 3", d.Attempts)
	}
	p := progress(t, run, always, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	if got := p.Parked[0]; got.Attempts != 3 || got.Reason != "effect scripted panicked: boom" {
		t.Fatalf("parked = %+v", got)
	}
}

// TestTimeoutFailsTheAttempt: HandleTimeout is watermill's Timeout, the
// deadline of the handler's context; an attempt that runs into it fails
// and is retried.
func TestTimeoutFailsTheAttempt(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var first error
	h := newScripted(func(ctx context.Context, _ event.Envelope, attempt int) error {
		if _, ok := ctx.Deadline(); !ok {
			return effects.Permanent(errors.New("no deadline"))
		}
		if attempt > 1 {
			return nil
		}
		<-ctx.Done()
		mu.Lock()
		first = ctx.Err()
		mu.Unlock()
		return ctx.Err()
	})
	cfg := fastConfig()
	cfg.HandleTimeout = 50 * time.Millisecond
	run := r.runner(t, h, cfg)
	id := r.create(t, "1")

	progress(t, run, id, "done", doneThrough(r.events(t, id)[0].Seq))
	if d := r.doneRecord(t, h.Name(), id); d.Attempts != 2 {
		t.Fatalf("done after %d attempts, want 2", d.Attempts)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(first, context.DeadlineExceeded) {
		t.Fatalf("first attempt ended with %v, want the deadline", first)
	}
}

// seen is what a handler saw of its attempt's message.
type seen struct {
	correlationID string
	uuid          string
	metadata      map[string]string
	payload       []byte
}

// TestTheHandlerSeesTheAttemptsMessage: the correlation id (the request's
// nonce, else the event id) and the message's metadata reach the handler.
func TestTheHandlerSeesTheAttemptsMessage(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	got := map[string]seen{} // by instance id
	h := newScripted(func(ctx context.Context, ev event.Envelope, _ int) error {
		msg := effects.MessageFromContext(ctx)
		if msg == nil {
			return effects.Permanent(errors.New("no message in the context"))
		}
		mu.Lock()
		got[ev.AggregateID] = seen{effects.CorrelationID(ctx), msg.UUID, maps.Clone(map[string]string(msg.Metadata)), msg.Payload}
		mu.Unlock()
		return nil
	})
	run := r.runner(t, h, fastConfig())
	plain := r.create(t, "plain")
	cause := event.Causation{Activity: "newInstance", OrderID: "o-n", OrderLineID: "l-n", BusinessID: "biz-n", Nonce: "nonce-123", Route: route}
	if _, err := r.svc.Create(testContext(t), "o-n", "l-n", "biz-n", cause, 0); err != nil {
		t.Fatal(err)
	}
	progress(t, run, plain, "done", doneThrough(r.events(t, plain)[0].Seq))
	progress(t, run, "biz-n", "done", doneThrough(r.events(t, "biz-n")[0].Seq))

	mu.Lock()
	defer mu.Unlock()
	for id, wantCorr := range map[string]string{plain: r.events(t, plain)[0].Event.ID, "biz-n": "nonce-123"} {
		created := r.events(t, id)[0]
		s := got[id]
		if s.correlationID != wantCorr || s.metadata[middleware.CorrelationIDMetadataKey] != wantCorr {
			t.Errorf("%s: correlation id %q (metadata %q), want %q", id, s.correlationID, s.metadata[middleware.CorrelationIDMetadataKey], wantCorr)
		}
		want := map[string]string{
			effects.MetadataEffect: "scripted", effects.MetadataEventType: instance.TypeCreated,
			effects.MetadataInstanceID: id, effects.MetadataStreamSeq: strconv.FormatUint(created.Seq, 10),
			effects.MetadataRoute: route, effects.MetadataAttempt: "1", middleware.CorrelationIDMetadataKey: wantCorr,
		}
		if s.uuid != created.Event.ID || !maps.Equal(s.metadata, want) {
			t.Errorf("%s: message %s %v, want %s %v", id, s.uuid, s.metadata, created.Event.ID, want)
		}
		if env, err := eventstore.DecodeEnvelope(s.payload); err != nil || env.ID != created.Event.ID {
			t.Errorf("%s: payload %q: %v", id, s.payload, err)
		}
	}
	if effects.CorrelationID(context.Background()) != "" || effects.MessageFromContext(context.Background()) != nil {
		t.Error("a context outside an attempt has a message")
	}
}

// TestUserMiddlewaresRunOnEveryAttempt: middlewares added to a runner wrap
// every attempt, the consumer's and a re-drive's, first added outermost;
// one that panics is recovered like the handler.
func TestUserMiddlewaresRunOnEveryAttempt(t *testing.T) {
	r := newRig(t)
	h := newScripted(func(_ context.Context, ev event.Envelope, attempt int) error {
		if ev.AggregateID == "biz-parked" || attempt <= 2 {
			return errors.New("unavailable")
		}
		return nil
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 4
	run := r.newRunner(t, h, cfg)

	var mu sync.Mutex
	var trace []string // "<instance> <mw> <attempt> <operator>"
	mw := func(name string) message.HandlerMiddleware {
		return func(next message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				mu.Lock()
				trace = append(trace, fmt.Sprintf("%s %s %s %s", msg.Metadata.Get(effects.MetadataInstanceID), name,
					msg.Metadata.Get(effects.MetadataAttempt), msg.Metadata.Get(effects.MetadataRedrivenBy)))
				mu.Unlock()
				return next(msg)
			}
		}
	}
	panicked := false
	panicky := func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			mu.Lock()
			first := msg.Metadata.Get(effects.MetadataInstanceID) == "biz-ok" && !panicked
			panicked = panicked || first
			mu.Unlock()
			if first {
				panic("middleware bug")
			}
			return next(msg)
		}
	}
	if err := run.AddMiddleware(mw("outer"), mw("inner")); err != nil {
		t.Fatal(err)
	}
	if err := run.AddMiddleware(panicky); err != nil {
		t.Fatal(err)
	}
	if err := run.AddMiddleware(nil); err == nil {
		t.Fatal("a nil middleware was accepted")
	}
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	if err := run.AddMiddleware(mw("late")); err == nil {
		t.Fatal("AddMiddleware after Start was accepted")
	}

	ok := r.create(t, "ok")
	parked := r.create(t, "parked")
	progress(t, run, ok, "done", doneThrough(r.events(t, ok)[0].Seq))
	progress(t, run, parked, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	// The panicking middleware failed the first attempt without calling
	// the handler: the handler's third call was the fourth attempt.
	if d := r.doneRecord(t, h.Name(), ok); d.Attempts != 4 {
		t.Fatalf("done after %d attempts, want 4", d.Attempts)
	}

	h.setDo(func(context.Context, event.Envelope, int) error { return nil })
	if err := run.Redrive(testContext(t), "", parked, "alice"); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	of := func(id string) []string {
		var out []string
		for _, s := range trace {
			if rest, ok := strings.CutPrefix(s, id+" "); ok {
				out = append(out, rest)
			}
		}
		return out
	}
	wantOK := []string{"outer 1 ", "inner 1 ", "outer 2 ", "inner 2 ", "outer 3 ", "inner 3 ", "outer 4 ", "inner 4 "}
	if got := of(ok); !slices.Equal(got, wantOK) {
		t.Errorf("%s: middlewares ran %q, want %q", ok, got, wantOK)
	}
	wantParked := []string{"outer 1 ", "inner 1 ", "outer 2 ", "inner 2 ", "outer 3 ", "inner 3 ", "outer 4 ", "inner 4 ",
		"outer 1 alice", "inner 1 alice"}
	if got := of(parked); !slices.Equal(got, wantParked) {
		t.Errorf("%s: middlewares ran %q, want %q", parked, got, wantParked)
	}
}
