package effects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// pullHeartbeat is the idle heartbeat the runner asks of its pull requests
// (nats.go's default is half the 30 s expiry). nats.go sends a new pull
// only when the last one is used up or when no heartbeat came for twice
// this long; a pull that finds no responder (an R3 consumer electing a new
// leader) or that was held by a node that stopped is otherwise never
// answered, and the effect would stall for 30 s. With 1 s, the pull is
// re-sent within 2 s, and again every 2 s until the consumer answers. This
// is nats.go's own recovery, so it keeps the subscription, the events in
// flight and Stop's hand-back intact, which restarting the consumption from
// the error handler on ErrNoResponders would have to redo (and a pull lost
// with a stopping node reports no error at all). The cost is one heartbeat
// message a second from the server while the runner is idle.
const pullHeartbeat = time.Second

// Errors of the runner and of the operators' calls.
var (
	// ErrUnknownEffect: the call names an effect this runner does not run.
	ErrUnknownEffect = errors.New("effects: unknown effect")
	// ErrNotParked: a re-drive found nothing parked to re-drive.
	ErrNotParked = errors.New("effects: not parked")
	// ErrOutOfOrder: a re-drive of one event asked for an event behind an
	// earlier parked event of the same instance.
	ErrOutOfOrder = errors.New("effects: an earlier event of the instance is parked")
	// ErrStillParked: a re-drive tried an event again and it failed again:
	// it is parked anew (with the new reason), and so are the events behind
	// it.
	ErrStillParked = errors.New("effects: re-driven event failed again and is parked")
)

// maxConflicts bounds the reloads after concurrent appends to one progress
// stream (another replica, a re-drive) before an attempt is given up.
const maxConflicts = 16

// turnWaitBase is the first delay before an event is offered again while
// an earlier event of its instance is being handled.
const turnWaitBase = 25 * time.Millisecond

// maxReasonBytes bounds the reason stored with a parked event.
const maxReasonBytes = 2000

// Runner runs one effect: a durable JetStream pull consumer named
// "effect-<name>" on the instance subjects, shared by every replica, that
// hands each instance event the [Handler] wants to the handler with
// retries, in order per instance, and records the progress as events on
// the effect's progress streams ("<prefix>.effect.<name>.<instance id>",
// package domain/effect).
//
// Order: an instance event is handled only when every earlier event of the
// same instance that the handler wants is done; while an earlier one is in
// flight the later one is handed back with a short, growing delay; once an
// earlier one is parked the later one is parked too ("held back"), so that
// a re-drive replays them in order. Events of other instances never wait.
// Appends to a progress stream carry the expected sequence, which makes
// the turn-taking correct across replicas.
//
// Retries: a failed attempt is retried in this runner after a backoff with
// jitter (the message's AckWait is extended meanwhile and the concurrency
// slot is released); after MaxAttempts, or at once for a [Permanent]
// error, the event is parked with the error as reason.
//
// Attempts: each handler call runs as a watermill handler on a
// *message.Message of the event, through watermill's Recoverer (a panic is
// a retryable error), the middlewares added with [Runner.AddMiddleware]
// and watermill's Timeout (HandleTimeout); see [MessageFromContext] and
// [CorrelationID].
type Runner struct {
	js         jetstream.JetStream
	store      eventstore.Store
	streamName string
	prefix     string
	h          Handler
	first      FirstOfInstance   // h's, if it implements it
	quiet      SuccessUnrecorded // h's, if it implements it
	name       string
	durable    string
	filter     string
	cfg        RunnerConfig
	log        *slog.Logger
	jitter     func() float64
	newID      func() string
	now        func() time.Time

	// middlewares are the users' (AddMiddleware); chain is the handler
	// chain every attempt runs through (attempt.go).
	middlewares []message.HandlerMiddleware
	chain       atomic.Pointer[message.HandlerFunc]

	streamMu sync.Mutex
	stream   jetstream.Stream

	slots        chan struct{} // one token per handler call in flight
	stopping     chan struct{} // closed when Stop begins
	unsubscribed chan struct{} // closed once no message can arrive any more
	stopOnce     sync.Once
	inflight     sync.WaitGroup
	dispatching  sync.Mutex // held by the consume callback while it runs

	mu       sync.Mutex
	started  bool
	stopped  bool
	closed   bool // the consume callback runs no more
	cc       jetstream.ConsumeContext
	cons     jetstream.Consumer
	handBack []jetstream.Msg // received while stopping, not started
	runCtx   context.Context
}

// NewRunner builds the runner of effect h on the event stream streamName,
// whose instance events are on "<prefix>.instance.<id>". store must address
// the same stream (it reads the instance and progress streams and appends
// progress). Zero fields of cfg take their defaults. log nil means
// slog.Default().
func NewRunner(js jetstream.JetStream, store eventstore.Store, streamName, prefix string, h Handler, cfg RunnerConfig, log *slog.Logger) (*Runner, error) {
	if js == nil || store == nil || h == nil {
		return nil, errors.New("effects: NewRunner needs a JetStream handle, a store and a handler")
	}
	if streamName == "" || strings.ContainsAny(streamName, " \t\r\n.*>/\\") {
		return nil, fmt.Errorf("effects: invalid stream name %q", streamName)
	}
	if err := eventstore.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("effects: %w", err)
	}
	name := h.Name()
	if !validName(name) {
		return nil, fmt.Errorf("effects: effect name %q must be non-empty [A-Za-z0-9_-]", name)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{
		js: js, store: store, streamName: streamName, prefix: prefix, h: h, name: name,
		durable: "effect-" + name, filter: prefix + "." + instance.Kind + ".>",
		cfg: cfg, log: log.With("component", "effects", "effect", name),
		jitter: rand.Float64, newID: func() string { return uuid.Must(uuid.NewV7()).String() }, now: time.Now,
		slots: make(chan struct{}, cfg.Concurrency), stopping: make(chan struct{}), unsubscribed: make(chan struct{}),
		runCtx: context.Background(),
	}
	r.first, _ = h.(FirstOfInstance)
	r.quiet, _ = h.(SuccessUnrecorded)
	chain := newChain(h, name, cfg.HandleTimeout, r.log, nil)
	r.chain.Store(&chain)
	return r, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the effect's name (the handler's).
func (r *Runner) Name() string { return r.name }

// Durable returns the name of the effect's durable consumer.
func (r *Runner) Durable() string { return r.durable }

// Config returns the effective configuration (defaults applied).
func (r *Runner) Config() RunnerConfig { return r.cfg }

// getStream returns the JetStream stream, looked up once.
func (r *Runner) getStream(ctx context.Context) (jetstream.Stream, error) {
	r.streamMu.Lock()
	defer r.streamMu.Unlock()
	if r.stream != nil {
		return r.stream, nil
	}
	st, err := r.js.Stream(ctx, r.streamName)
	if err != nil {
		return nil, fmt.Errorf("effects: stream %s: %w", r.streamName, err)
	}
	r.stream = st
	return st, nil
}

// Start creates or updates the durable consumer and starts consuming. ctx
// governs the runner's life: cancelling it stops the runner like Stop and
// also cancels the handler calls in flight. A Runner is started at most
// once. ListParked and the re-drives work without Start (an operator's
// command line needs no consumer).
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.stopped {
		r.mu.Unlock()
		return errors.New("effects: runner already started or stopped")
	}
	r.started = true
	r.runCtx = ctx
	r.mu.Unlock()

	st, err := r.getStream(ctx)
	if err != nil {
		return err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       r.durable,
		Description:   "Gallerist effect " + r.name + " (per-instance order, progress on " + r.prefix + "." + effect.Kind + "." + r.name + ".*)",
		FilterSubject: r.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		AckWait:       r.cfg.AckWait,
		MaxDeliver:    -1, // parking, not MaxDeliver, ends the retries
		MaxAckPending: r.cfg.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("effects: create consumer %s: %w", r.durable, err)
	}
	r.mu.Lock()
	r.cons = cons
	r.mu.Unlock()
	cc, err := cons.Consume(r.dispatch,
		jetstream.PullMaxMessages(r.cfg.Concurrency),
		// A short idle heartbeat re-sends a lost pull promptly (see
		// pullHeartbeat).
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Warn("consuming", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("effects: consume %s: %w", r.durable, err)
	}
	r.mu.Lock()
	r.cc = cc
	stopped := r.stopped
	r.mu.Unlock()
	if stopped { // Stop ran while we were starting
		r.closeConsumer(cc)
		return nil
	}
	go func() {
		select {
		case <-ctx.Done():
			r.Stop()
		case <-r.stopping:
		}
	}()
	r.log.Info("effect runner started", "durable", r.durable, "filter", r.filter,
		"concurrency", r.cfg.Concurrency, "maxAttempts", r.cfg.MaxAttempts)
	return nil
}

// Stop stops consuming and waits for the handler calls in flight to finish
// and be recorded. Events waiting for a retry or not started yet are
// handed back for redelivery (to another replica or the next start).
// Stop may be called more than once and from several goroutines; all
// return after the work is done.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		cc := r.cc
		r.mu.Unlock()
		close(r.stopping)
		if cc != nil {
			r.closeConsumer(cc)
		}
		close(r.unsubscribed)
		r.inflight.Wait()
		r.log.Info("effect runner stopped")
	})
}

// closeConsumer stops cc, waits until its subscription is gone and its
// callback has returned for good, then hands back what was received but
// not started. Only then are messages handed back, or the server could
// redeliver them at once to this runner's pull request, still open.
func (r *Runner) closeConsumer(cc jetstream.ConsumeContext) {
	cc.Stop()
	<-cc.Closed()
	r.dispatching.Lock()
	r.mu.Lock()
	r.closed = true
	back := r.handBack
	r.handBack = nil
	r.mu.Unlock()
	r.dispatching.Unlock()
	for _, m := range back {
		r.settle(m.Nak(), "nak")
	}
}

func (r *Runner) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

// dispatch runs on the consumer's delivery goroutine: it acks what the
// handler does not want without decoding it, and hands the rest to a free
// slot, blocking (so pulling no more) while every slot is busy.
func (r *Runner) dispatch(m jetstream.Msg) {
	r.dispatching.Lock()
	defer r.dispatching.Unlock()
	if typ := m.Headers().Get(eventstore.TypeHeader); typ != "" && !r.h.Wants(typ) {
		r.settle(m.Ack(), "ack")
		return
	}
	select {
	case r.slots <- struct{}{}:
	case <-r.stopping:
		r.giveBack(m)
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		<-r.slots
		r.giveBack(m)
		return
	}
	r.inflight.Add(1)
	ctx := r.runCtx
	r.mu.Unlock()
	go r.process(ctx, m)
}

// giveBack queues m to be handed back once the subscription is closed.
func (r *Runner) giveBack(m jetstream.Msg) {
	r.mu.Lock()
	closed := r.closed
	if !closed {
		r.handBack = append(r.handBack, m)
	}
	r.mu.Unlock()
	if closed {
		r.settle(m.Nak(), "nak")
	}
}

// handBackNow returns m for immediate redelivery once this runner can no
// longer receive it.
func (r *Runner) handBackNow(m jetstream.Msg) {
	<-r.unsubscribed
	r.settle(m.Nak(), "nak")
}

// verdict is whose turn it is for one instance event.
type verdict int

const (
	vRun     verdict = iota // handle it now
	vHandled                // already done or parked: nothing to do
	vWait                   // an earlier wanted event of the instance is not handled yet
	vHold                   // an earlier event is parked: park this one behind it
)

// turn decides what to do with the instance event at seq, of type typ.
// ackFloor, when not nil, returns the consumer's ack floor (see below).
func (r *Runner) turn(ctx context.Context, instanceID string, seq uint64, typ string, ackFloor func(context.Context) (uint64, error)) (Progress, verdict, error) {
	if r.first != nil && r.first.FirstOfInstance(typ) {
		return r.firstTurn(ctx, instanceID, seq)
	}
	p, err := r.Progress(ctx, instanceID)
	if err != nil {
		return p, 0, err
	}
	if seq <= p.Cursor {
		return p, vHandled, nil
	}
	recs, err := r.store.Load(ctx, instanceStream(instanceID), p.Cursor)
	if err != nil {
		return p, 0, fmt.Errorf("load instance %s after %d: %w", instanceID, p.Cursor, err)
	}
	found := false
	floor := uint64(0)
	for _, rec := range recs {
		if rec.Seq >= seq {
			found = rec.Seq == seq
			break
		}
		if !r.h.Wants(rec.Event.Type) {
			continue
		}
		// An earlier wanted event is not recorded: it is in flight, unless
		// the consumer acked it without a record, which happens only to an
		// event an older version of the handler did not want (or to an
		// undecodable one): it will never come again, so it must not hold
		// the instance up. Acked for sure is what lies at or below the
		// consumer's ack floor.
		if ackFloor == nil {
			return p, vWait, nil
		}
		if floor < rec.Seq {
			if floor, err = ackFloor(ctx); err != nil || floor < rec.Seq {
				return p, vWait, nil
			}
		}
		r.log.Warn("skipping an earlier event that was acknowledged without being handled (not wanted when it was delivered)",
			"instanceId", instanceID, "seq", rec.Seq, "eventType", rec.Event.Type)
	}
	if !found {
		// The read missed the very event being handled, so it may have
		// missed earlier ones too (a lagging replica answered): try later.
		return p, 0, fmt.Errorf("instance %s: event %d not in the log read after %d", instanceID, seq, p.Cursor)
	}
	if len(p.Parked) > 0 {
		return p, vHold, nil
	}
	return p, vRun, nil
}

// firstTurn is turn for an event that comes first among the events the
// handler wants of its instance ([FirstOfInstance]): no earlier one can be
// in flight or parked, so only the effect's progress is read, and only its
// last sequence when it is empty (the common case: one direct get, no
// subscription). Whether the event itself is already handled or parked
// (a redelivery, a re-created consumer) still shows in the progress.
func (r *Runner) firstTurn(ctx context.Context, instanceID string, seq uint64) (Progress, verdict, error) {
	p := Progress{Effect: r.name, InstanceID: instanceID}
	last, err := r.store.Last(ctx, progressStream(r.name, instanceID))
	if err != nil {
		return p, 0, fmt.Errorf("effects: last progress of %s: %w", instanceID, err)
	}
	if last != 0 {
		if p, err = r.Progress(ctx, instanceID); err != nil {
			return p, 0, err
		}
	}
	switch {
	case seq <= p.Cursor:
		return p, vHandled, nil
	case len(p.Parked) > 0:
		return p, vHold, nil
	}
	return p, vRun, nil
}

// ackFloor returns the consumer's ack floor lookup for a turn check of a
// message delivered that many times, nil for the first few deliveries (an
// earlier event is then almost always simply in flight: no need to ask).
func (r *Runner) ackFloor(delivered uint64) func(context.Context) (uint64, error) {
	r.mu.Lock()
	cons := r.cons
	r.mu.Unlock()
	if cons == nil || delivered < 4 {
		return nil
	}
	return func(ctx context.Context) (uint64, error) {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.AckFloor.Stream, nil
	}
}

// process handles one delivered instance event; it owns one slot.
func (r *Runner) process(ctx context.Context, m jetstream.Msg) {
	defer r.inflight.Done()
	held := true
	defer func() {
		if held {
			<-r.slots
		}
	}()
	stopBeat := r.keepAlive(m)
	defer stopBeat()

	md, err := m.Metadata()
	if err != nil {
		r.log.Error("message without JetStream metadata, terminated", "subject", m.Subject(), "err", err)
		r.settle(m.Term(), "term")
		return
	}
	seq, delivered := md.Sequence.Stream, md.NumDelivered
	env, err := eventstore.DecodeEnvelope(m.Data())
	if err != nil {
		r.log.Error("undecodable event, terminated", "subject", m.Subject(), "seq", seq, "err", err)
		r.settle(m.Term(), "term")
		return
	}
	if !r.h.Wants(env.Type) {
		r.settle(m.Ack(), "ack")
		return
	}
	sid, err := eventstore.ParseSubject(r.prefix, m.Subject())
	if err != nil || sid.Kind != instance.Kind || len(sid.Keys) != 1 {
		r.log.Error("event on an unexpected subject, terminated", "subject", m.Subject(), "seq", seq, "err", err)
		r.settle(m.Term(), "term")
		return
	}
	inst := sid.Keys[0]
	log := r.log.With("instanceId", inst, "seq", seq, "eventId", env.ID, "eventType", env.Type)

	var p Progress
	quiet := r.quiet != nil && r.quiet.SuccessUnrecorded(env.Type)
	for conflicts := 0; !quiet; conflicts++ {
		var v verdict
		p, v, err = r.turn(ctx, inst, seq, env.Type, r.ackFloor(delivered))
		if err != nil {
			log.Warn("cannot tell whose turn it is; will try again", "err", err)
			r.settle(m.NakWithDelay(r.turnDelay(delivered)), "nak")
			return
		}
		switch v {
		case vHandled:
			log.Debug("already handled")
			r.settle(m.Ack(), "ack")
			return
		case vWait:
			d := r.turnDelay(delivered)
			log.Debug("an earlier event of the instance is in flight; waiting", "retryIn", d)
			r.settle(m.NakWithDelay(d), "nak")
			return
		case vHold:
			reason := fmt.Sprintf("held back behind parked event %d", p.Parked[0].EventSeq)
			err := r.appendProgress(ctx, p, env.Causation.Route, effect.TypeParked, effect.Parked{
				Effect: r.name, InstanceID: inst, EventID: env.ID, EventSeq: seq, EventType: env.Type, Reason: reason,
			})
			if errors.Is(err, eventstore.ErrConflict) && conflicts < maxConflicts {
				continue
			}
			if err != nil {
				log.Warn("recording a held-back event failed; will try again", "err", err)
				r.settle(m.NakWithDelay(r.turnDelay(delivered)), "nak")
				return
			}
			log.Info("event held back behind a parked event", "behind", p.Parked[0].EventSeq)
			r.settle(m.Ack(), "ack")
			return
		}
		break
	}
	if r.isStopping() || ctx.Err() != nil {
		r.handBackNow(m)
		return
	}

	wait := func(d time.Duration) bool {
		<-r.slots
		held = false
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.stopping:
			return false
		case <-ctx.Done():
			return false
		}
		select {
		case r.slots <- struct{}{}:
			held = true
			return true
		case <-r.stopping:
			return false
		case <-ctx.Done():
			return false
		}
	}
	attempts, herr, abandoned := r.try(ctx, &delivery{env: env, raw: m.Data(), seq: seq, inst: inst}, log, wait)
	if abandoned {
		log.Info("retries abandoned: runner stopping; handing the event back", "attempts", attempts, "err", herr)
		r.handBackNow(m)
		return
	}
	if quiet {
		if herr == nil {
			r.settle(m.Ack(), "ack") // nothing to record (SuccessUnrecorded)
			return
		}
		if p, err = r.Progress(ctx, inst); err != nil { // parking appends to the progress stream
			log.Warn("reading the progress to park the event failed; the event will be handled again", "err", err)
			r.settle(m.NakWithDelay(r.turnDelay(delivered)), "nak")
			return
		}
	}
	err = r.record(ctx, p, env, inst, seq, attempts, herr, func(p Progress) bool { return seq > p.Cursor })
	if err != nil {
		log.Warn("recording the outcome failed; the event will be handled again", "err", err)
		r.settle(m.NakWithDelay(r.turnDelay(delivered)), "nak")
		return
	}
	r.settle(m.Ack(), "ack")
}

// try calls the handler (through the chain) until it succeeds, fails
// permanently, or MaxAttempts calls failed. wait sleeps between attempts;
// false abandons the event (the runner is stopping), reported by
// abandoned.
func (r *Runner) try(ctx context.Context, d *delivery, log *slog.Logger, wait func(time.Duration) bool) (attempts int, err error, abandoned bool) {
	for {
		attempts++
		err = r.call(ctx, d, attempts)
		switch {
		case err == nil:
			log.Info("effect done", "attempts", attempts)
			return attempts, nil, false
		case ctx.Err() != nil:
			return attempts, err, true // cancelled: not the handler's failure
		case IsPermanent(err):
			log.Warn("effect failed permanently; parking", "attempts", attempts, "err", err)
			return attempts, err, false
		case attempts >= r.cfg.MaxAttempts:
			log.Warn("effect failed on its last attempt; parking", "attempts", attempts, "err", err)
			return attempts, err, false
		}
		d := backoff(attempts, r.cfg.RetryBase, r.cfg.RetryMax, r.jitter())
		log.Warn("effect attempt failed; will retry", "attempt", attempts, "retryIn", d, "err", err)
		if !wait(d) {
			return attempts, err, true
		}
	}
}

// record appends the outcome of handling the event at seq (Done when herr
// is nil, else Parked with herr as reason), starting from p and reloading
// after a conflict. pending says whether the outcome is still to be
// recorded; when another replica or a re-drive recorded it meanwhile,
// record does nothing.
func (r *Runner) record(ctx context.Context, p Progress, env event.Envelope, inst string, seq uint64, attempts int, herr error, pending func(Progress) bool) error {
	for conflicts := 0; ; conflicts++ {
		if !pending(p) {
			return nil
		}
		var err error
		if herr == nil {
			err = r.appendProgress(ctx, p, env.Causation.Route, effect.TypeDone, effect.Done{
				Effect: r.name, InstanceID: inst, EventID: env.ID, EventSeq: seq, EventType: env.Type, Attempts: attempts,
			})
		} else {
			err = r.appendProgress(ctx, p, env.Causation.Route, effect.TypeParked, effect.Parked{
				Effect: r.name, InstanceID: inst, EventID: env.ID, EventSeq: seq, EventType: env.Type, Attempts: attempts,
				Reason: reason(herr),
			})
		}
		if !errors.Is(err, eventstore.ErrConflict) || conflicts >= maxConflicts {
			return err
		}
		if p, err = r.Progress(ctx, inst); err != nil {
			return err
		}
	}
}

// appendProgress appends one progress event to p's stream, expecting p.Seq.
func (r *Runner) appendProgress(ctx context.Context, p Progress, route, typ string, data any) error {
	cause := event.Causation{Actor: "effect:" + r.name, Route: route}
	if typ == effect.TypeRedriven {
		cause = event.Causation{Actor: "operator"}
	}
	env, err := progressEnvelope(r.newID(), r.name, p.InstanceID, typ, data, cause, r.now())
	if err != nil {
		return err
	}
	if _, err := r.store.Append(ctx, progressStream(r.name, p.InstanceID), p.Seq, env); err != nil {
		return fmt.Errorf("effects: record %s for %s: %w", typ, p.InstanceID, err)
	}
	return nil
}

// Progress folds the effect's progress stream of one instance.
func (r *Runner) Progress(ctx context.Context, instanceID string) (Progress, error) {
	p := Progress{Effect: r.name, InstanceID: instanceID}
	if instanceID == "" {
		return p, fmt.Errorf("%w: empty instance id", eventstore.ErrInvalidKey)
	}
	recs, err := r.store.Load(ctx, progressStream(r.name, instanceID), 0)
	if err != nil {
		return p, fmt.Errorf("effects: load progress of %s: %w", instanceID, err)
	}
	for _, rec := range recs {
		if err := p.apply(rec); err != nil {
			return p, err
		}
	}
	return p, nil
}

// turnDelay is the delay before an event that is not its instance's turn
// is offered again: 25ms doubling per delivery, capped by TurnWaitMax,
// jittered into [d/2, d).
func (r *Runner) turnDelay(delivered uint64) time.Duration {
	n := int(min(delivered, 62))
	return backoff(n, min(turnWaitBase, r.cfg.TurnWaitMax), r.cfg.TurnWaitMax, r.jitter())
}

// keepAlive extends m's AckWait every AckWait/3 until the returned stop is
// called.
func (r *Runner) keepAlive(m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.settle(m.InProgress(), "extend")
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (r *Runner) settle(err error, what string) {
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		// Harmless: the server redelivers after AckWait, and handling is
		// idempotent.
		r.log.Warn("could not "+what+" message", "err", err)
	}
}

func instanceStream(id string) eventstore.StreamID {
	return eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}
}

// reason is err's text, bounded to maxReasonBytes (cut at a rune boundary).
func reason(err error) string {
	s := err.Error()
	if len(s) <= maxReasonBytes {
		return s
	}
	cut := maxReasonBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
