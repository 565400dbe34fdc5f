package effects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

// Every attempt of a handler call goes through a watermill handler chain:
// the event becomes a *message.Message and the Handler a
// message.HandlerFunc, wrapped by middlewares. The chain, outermost first:
//
//	recoverPanics (watermill's middleware.Recoverer: a panic is an error of
//	               the attempt, retried like any other)
//	the middlewares added with Runner.AddMiddleware, in the order added
//	middleware.Timeout(HandleTimeout) (the message context's deadline)
//	the Handler
//
// The runner keeps its own retry loop, parking and JetStream consumer
// around the chain (docs/decisions.md, "Effects: sequenced parking on
// progress streams, and watermill", says why).

// Metadata keys of the message of an attempt. The correlation id is under
// watermill's middleware.CorrelationIDMetadataKey (see [CorrelationID]).
const (
	// MetadataEffect is the effect's name.
	MetadataEffect = "effect"
	// MetadataEventType is the instance event's type.
	MetadataEventType = "event_type"
	// MetadataInstanceID is the instance's id.
	MetadataInstanceID = "instance_id"
	// MetadataStreamSeq is the instance event's stream sequence, decimal.
	MetadataStreamSeq = "stream_seq"
	// MetadataRoute is the production route of the event's causation ("" if none).
	MetadataRoute = "route"
	// MetadataAttempt is the attempt's number within this delivery (or
	// re-drive) of the event, from 1.
	MetadataAttempt = "attempt"
	// MetadataRedrivenBy names the operator when the attempt is a
	// re-drive's; it is absent for the consumer's attempts.
	MetadataRedrivenBy = "redriven_by"
)

// delivery is the instance event the attempts of one delivery (or one
// re-drive) are about.
type delivery struct {
	env      event.Envelope
	raw      []byte // the event as stored: the message payload
	seq      uint64
	inst     string
	operator string // the re-drive's operator; "" for the consumer
}

// Context keys: the delivery the chain's messages carry, and the message
// the handler is called with.
type (
	deliveryKey struct{}
	messageKey  struct{}
)

// newMessage builds the message of attempt n of d: UUID the event id,
// payload the stored event, the metadata above, and a context derived from
// ctx that carries d (so that the handler gets the decoded event).
func newMessage(ctx context.Context, effectName string, d *delivery, n int) *message.Message {
	msg := message.NewMessage(d.env.ID, d.raw)
	md := msg.Metadata
	md[MetadataEffect] = effectName
	md[MetadataEventType] = d.env.Type
	md[MetadataInstanceID] = d.inst
	md[MetadataStreamSeq] = strconv.FormatUint(d.seq, 10)
	md[MetadataRoute] = d.env.Causation.Route
	md[MetadataAttempt] = strconv.Itoa(n)
	if d.operator != "" {
		md[MetadataRedrivenBy] = d.operator
	}
	middleware.SetCorrelationID(correlationID(d.env), msg)
	msg.SetContext(context.WithValue(ctx, deliveryKey{}, d))
	return msg
}

// handlerFunc adapts h to watermill: it calls h.Handle with the message's
// context (which carries the Timeout deadline and, for [MessageFromContext]
// and [CorrelationID], the message itself) and produces no messages. The
// event is the one the runner decoded, carried by the context; a message
// that lost that context (a middleware passed on a Copy) is decoded from
// its payload and metadata.
func handlerFunc(h Handler) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		var env event.Envelope
		var seq uint64
		if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
			env, seq = d.env, d.seq
		} else {
			var err error
			if env, err = eventstore.DecodeEnvelope(msg.Payload); err != nil {
				return nil, Permanent(fmt.Errorf("effects: message %s: %w", msg.UUID, err))
			}
			if seq, err = strconv.ParseUint(msg.Metadata.Get(MetadataStreamSeq), 10, 64); err != nil {
				return nil, Permanent(fmt.Errorf("effects: message %s: metadata %s: %w", msg.UUID, MetadataStreamSeq, err))
			}
		}
		return nil, h.Handle(context.WithValue(ctx, messageKey{}, msg), env, seq)
	}
}

// MessageFromContext returns the watermill message of the attempt that ctx,
// a context given to [Handler.Handle] by a [Runner], belongs to, nil for
// any other context. Its metadata are described by the Metadata…
// constants; treat it as read-only.
func MessageFromContext(ctx context.Context) *message.Message {
	msg, _ := ctx.Value(messageKey{}).(*message.Message)
	return msg
}

// newChain builds the handler chain of h (see the top of this file).
func newChain(h Handler, name string, timeout time.Duration, log *slog.Logger, user []message.HandlerMiddleware) message.HandlerFunc {
	chain := middleware.Timeout(timeout)(handlerFunc(h))
	for i := len(user) - 1; i >= 0; i-- {
		chain = user[i](chain)
	}
	return recoverPanics(name, log)(chain)
}

// AddMiddleware adds watermill handler middlewares to the runner: every
// attempt of a handler call, by the consumer or by a re-drive, runs
// through them, the first added outermost. They run inside the panic
// recovery and outside the HandleTimeout deadline; they see the attempt's
// message (UUID the event id, payload the stored event, metadata the
// Metadata… constants and the correlation id) and its context.
//
// An error a middleware returns is the attempt's error: retried with
// backoff, or parked at once if wrapped by [Permanent]. Messages a
// middleware produces are not published: returning any fails the attempt
// permanently (message.ErrOutputInNoPublisherHandler). Acking or nacking
// the message has no effect: the runner settles the JetStream message once
// it has recorded the outcome. Do not add watermill's Retry (the runner
// retries, releasing its concurrency slot between attempts) nor
// PoisonQueue (the runner parks, in order).
//
// Add them before [Runner.Start]: after Start, AddMiddleware returns an
// error and adds nothing. (A re-drive running meanwhile may make some
// attempts without the new ones.)
func (r *Runner) AddMiddleware(m ...message.HandlerMiddleware) error {
	for i, mw := range m {
		if mw == nil {
			return fmt.Errorf("effects: AddMiddleware: middleware %d is nil", i)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("effects: AddMiddleware after Start")
	}
	r.middlewares = append(r.middlewares, m...)
	chain := newChain(r.h, r.name, r.cfg.HandleTimeout, r.log, r.middlewares)
	r.chain.Store(&chain)
	return nil
}

// call is attempt n of a handler call for d, through the chain.
func (r *Runner) call(ctx context.Context, d *delivery, n int) error {
	out, err := (*r.chain.Load())(newMessage(ctx, r.name, d, n))
	if err == nil && len(out) > 0 {
		err = Permanent(fmt.Errorf("effects: %d messages produced: %w", len(out), message.ErrOutputInNoPublisherHandler))
	}
	return err
}
