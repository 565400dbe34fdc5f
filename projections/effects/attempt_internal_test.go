package effects

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/gallerist/gallerist/domain/event"
)

// These tests exercise the attempt chain alone, without NATS; the runner's
// tests (attempt_test.go) run it end to end.

type funcHandler func(ctx context.Context, ev event.Envelope, seq uint64) error

func (funcHandler) Name() string      { return "unit" }
func (funcHandler) Wants(string) bool { return true }
func (f funcHandler) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	return f(ctx, ev, seq)
}

// chainRunner is a Runner with just what call needs.
func chainRunner(h Handler) *Runner {
	r := &Runner{h: h, name: h.Name(), cfg: DefaultRunnerConfig(), log: slog.New(slog.DiscardHandler)}
	chain := newChain(h, r.name, r.cfg.HandleTimeout, r.log, nil)
	r.chain.Store(&chain)
	return r
}

func testDelivery(tb testing.TB) *delivery {
	tb.Helper()
	env := event.Envelope{
		ID: "0190b7a2-7d2c-7cc1-9c1e-1f0d5e7d4a11", Type: "InstanceCreated", Version: 1,
		AggregateKind: "instance", AggregateID: "biz-1", OccurredAt: time.Unix(1700000000, 0).UTC(),
		Causation: event.Causation{Activity: "newInstance", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "biz-1", Route: "/koogallery/test"},
		Data:      json.RawMessage(`{"orderId":"o-1","orderLineId":"l-1","businessId":"biz-1"}`),
	}
	raw, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return &delivery{env: env, raw: raw, seq: 42, inst: "biz-1"}
}

func TestPanicsBecomeShortRetryableErrors(t *testing.T) {
	r := chainRunner(funcHandler(func(context.Context, event.Envelope, uint64) error { panic("boom") }))
	err := r.call(context.Background(), testDelivery(t), 1)
	if err == nil || err.Error() != "effect unit panicked: boom" || IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
	var rp middleware.RecoveredPanicError
	if !errors.As(err, &rp) || rp.V != "boom" || rp.Stacktrace == "" {
		t.Fatalf("err does not wrap watermill's RecoveredPanicError: %#v", err)
	}
}

func TestProducedMessagesFailTheAttemptPermanently(t *testing.T) {
	r := chainRunner(funcHandler(func(context.Context, event.Envelope, uint64) error { return nil }))
	err := r.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if _, err := h(msg); err != nil {
				return nil, err
			}
			return []*message.Message{msg.Copy()}, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.call(context.Background(), testDelivery(t), 1)
	if !IsPermanent(err) || !errors.Is(err, message.ErrOutputInNoPublisherHandler) {
		t.Fatalf("err = %v", err)
	}
}

// A middleware that passes on a copy of the message (which has no context)
// still gets the event to the handler, decoded from the payload.
func TestACopiedMessageIsDecoded(t *testing.T) {
	d := testDelivery(t)
	var got event.Envelope
	var gotSeq uint64
	var corr string
	r := chainRunner(funcHandler(func(ctx context.Context, ev event.Envelope, seq uint64) error {
		got, gotSeq, corr = ev, seq, CorrelationID(ctx)
		return nil
	}))
	if err := r.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) { return h(msg.Copy()) }
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.call(context.Background(), d, 1); err != nil {
		t.Fatal(err)
	}
	if got.ID != d.env.ID || got.Type != d.env.Type || string(got.Data) != string(d.env.Data) || gotSeq != d.seq || corr != d.env.ID {
		t.Fatalf("handler got %+v at %d (correlation %q)", got, gotSeq, corr)
	}
}

// BenchmarkAttemptChain is the cost of one attempt through the chain
// (message, metadata, Recoverer, Timeout, adapter) around a handler that
// does nothing; BenchmarkDirectCall is what the runner did before (the
// handler called with a timeout context).
func BenchmarkAttemptChain(b *testing.B) {
	r := chainRunner(funcHandler(func(context.Context, event.Envelope, uint64) error { return nil }))
	d := testDelivery(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.call(ctx, d, i); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDirectCall(b *testing.B) {
	h := funcHandler(func(context.Context, event.Envelope, uint64) error { return nil })
	d := testDelivery(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := h.Handle(cctx, d.env, d.seq)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}
