package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// pullHeartbeat is the idle heartbeat the worker asks of its pull requests
// (nats.go's default is half the 30 s expiry). nats.go sends a new pull
// only when the last one is used up or when no heartbeat came for twice
// this long; a pull that finds no responder (the consumer not answering
// yet after its create, or an R3 consumer electing a new leader) or that
// was held by a node that stopped is otherwise never answered, and the
// worker would wait 30 s before pulling again while newInstance answers
// 000004. With 1 s, the pull is re-sent within 2 s, and again every 2 s
// until the consumer answers. This is nats.go's own recovery, so it keeps
// the subscription, its messages in flight and Stop's hand-back intact;
// restarting the consumption from the error handler on ErrNoResponders
// would have to redo all that, and would still miss the pull lost with a
// stopping node, which reports no error at all. The cost is one heartbeat
// message a second from the server while the worker is idle.
const pullHeartbeat = time.Second

// Actor is the Causation.Actor of the events the worker records.
const Actor = "provisioner"

// Recorder reads instances and records provisioning outcomes; it is
// implemented by *instances.Service.
type Recorder interface {
	RecordProvisioning(ctx context.Context, id string, out instance.RecordProvisioning, cause event.Causation) (instance.State, error)
	// GetAt returns the instance's state reflecting at least the event at
	// stream sequence seq (the one being handled).
	GetAt(ctx context.Context, id string, seq uint64) (instance.State, error)
}

// WorkerConfig tunes a Worker. Zero fields take the defaults of
// DefaultWorkerConfig in NewWorker. Every replica sharing the durable
// consumer must use the same Durable, MaxAckPending and AckWait: each
// replica's Start writes them to the consumer.
type WorkerConfig struct {
	// Durable names the JetStream pull consumer shared by all replicas.
	Durable string
	// Concurrency bounds the InstanceCreated events handled at once by
	// this worker (provisioner calls in flight).
	Concurrency int
	// MaxAckPending bounds the messages delivered and not yet acked across
	// all replicas, including those waiting for a retry. It must be at
	// least Concurrency; keep it well above Concurrency × replicas so that
	// instances waiting for a retry do not hold back new ones.
	MaxAckPending int
	// AckWait is how long the server waits for an ack before redelivering.
	// It must be at least 2 × ProvisionTimeout: a message may wait in this
	// worker for a free slot before its attempt starts.
	AckWait time.Duration
	// RetryBase and RetryMax shape the exponential backoff of transient
	// failures: attempt n waits between d/2 and d, d = min(RetryBase·2ⁿ⁻¹,
	// RetryMax).
	RetryBase, RetryMax time.Duration
	// ProvisionTimeout bounds each provisioner call, and each store read
	// and write of an attempt.
	ProvisionTimeout time.Duration
}

// DefaultWorkerConfig returns the defaults.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{
		Durable: "provisioner", Concurrency: 16, MaxAckPending: 1000, AckWait: 30 * time.Second,
		RetryBase: 200 * time.Millisecond, RetryMax: 30 * time.Second, ProvisionTimeout: 10 * time.Second,
	}
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	d := DefaultWorkerConfig()
	if c.Durable == "" {
		c.Durable = d.Durable
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(d.MaxAckPending, c.Concurrency)
	}
	if c.AckWait == 0 {
		c.AckWait = max(d.AckWait, 2*c.ProvisionTimeout)
	}
	if c.RetryBase == 0 {
		c.RetryBase = d.RetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(d.RetryMax, c.RetryBase)
	}
	if c.ProvisionTimeout == 0 {
		c.ProvisionTimeout = min(d.ProvisionTimeout, c.AckWait/2)
	}
	return c
}

// Validate checks the config (after defaults are applied).
func (c WorkerConfig) Validate() error {
	switch {
	case c.Durable == "" || strings.ContainsAny(c.Durable, " \t\r\n.*>/\\"):
		return fmt.Errorf("provision: Durable %q must be a non-empty name without whitespace, '.', '*', '>', '/' or '\\'", c.Durable)
	case c.Concurrency < 1:
		return fmt.Errorf("provision: Concurrency must be ≥ 1, got %d", c.Concurrency)
	case c.MaxAckPending < c.Concurrency:
		return fmt.Errorf("provision: MaxAckPending (%d) must be ≥ Concurrency (%d)", c.MaxAckPending, c.Concurrency)
	case c.ProvisionTimeout <= 0:
		return fmt.Errorf("provision: ProvisionTimeout must be > 0, got %s", c.ProvisionTimeout)
	case c.AckWait < 2*c.ProvisionTimeout:
		return fmt.Errorf("provision: AckWait (%s) must be ≥ 2 × ProvisionTimeout (%s)", c.AckWait, c.ProvisionTimeout)
	case c.RetryBase <= 0:
		return fmt.Errorf("provision: RetryBase must be > 0, got %s", c.RetryBase)
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("provision: RetryMax (%s) must be ≥ RetryBase (%s)", c.RetryMax, c.RetryBase)
	}
	return nil
}

// Worker is the provisioning effect: a durable JetStream pull consumer on
// the instance subjects. Replicas sharing the durable load-balance.
type Worker struct {
	stream  jetstream.Stream
	filter  string
	rec     Recorder
	resolve Resolver
	def     Provisioner
	cfg     WorkerConfig
	log     *slog.Logger
	jitter  func() float64

	slots    chan struct{} // one token per message in flight
	stopping chan struct{} // closed when Stop begins
	// unsubscribed is closed once the consumer's subscription is gone:
	// only then are messages handed back (Nak), or the server could
	// redeliver them at once to this worker's pull request, still open.
	unsubscribed chan struct{}
	stopOnce     sync.Once
	inflight     sync.WaitGroup
	// dispatching is held by the consume callback while it runs.
	dispatching sync.Mutex

	mu       sync.Mutex
	started  bool
	stopped  bool
	cc       jetstream.ConsumeContext
	handBack []jetstream.Msg // received while stopping, not started
	closed   bool            // the consume callback runs no more
}

// NewWorker builds a worker on stream, whose instance events are on
// "<prefix>.instance.<id>". resolve may be nil (always def); def must not
// be nil. log nil means slog.Default().
func NewWorker(stream jetstream.Stream, prefix string, rec Recorder, resolve Resolver, def Provisioner, cfg WorkerConfig, log *slog.Logger) (*Worker, error) {
	if stream == nil || rec == nil || def == nil {
		return nil, errors.New("provision: NewWorker needs a stream, a recorder and a default provisioner")
	}
	if err := eventstore.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Worker{
		stream: stream, filter: prefix + "." + instance.Kind + ".>", rec: rec, resolve: resolve, def: def,
		cfg: cfg, log: log.With("component", "provisioner", "durable", cfg.Durable), jitter: rand.Float64,
		slots: make(chan struct{}, cfg.Concurrency), stopping: make(chan struct{}), unsubscribed: make(chan struct{}),
	}, nil
}

// Config returns the effective configuration (defaults applied).
func (w *Worker) Config() WorkerConfig { return w.cfg }

// Start creates or updates the durable consumer and starts consuming. ctx
// governs the worker's life: cancelling it stops the worker like Stop, and
// also aborts the attempts in flight (their messages are redelivered at
// once). A Worker is started at most once.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started || w.stopped {
		w.mu.Unlock()
		return errors.New("provision: worker already started or stopped")
	}
	w.started = true
	w.mu.Unlock()

	cons, err := w.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       w.cfg.Durable,
		Description:   "Gallerist provisioning effect: InstanceCreated → InstanceProvisioned / InstanceProvisioningFailed",
		FilterSubject: w.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    -1, // retried until it works; parking comes with the retry policy
		MaxAckPending: w.cfg.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("provision: create consumer %s: %w", w.cfg.Durable, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { w.dispatch(ctx, m) },
		// Pull no more than can start soon: a message's AckWait runs while
		// it waits here for a slot.
		jetstream.PullMaxMessages(w.cfg.Concurrency),
		// A short idle heartbeat re-sends a lost pull promptly (see
		// pullHeartbeat).
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			w.log.Warn("consuming", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("provision: consume %s: %w", w.cfg.Durable, err)
	}
	w.mu.Lock()
	w.cc = cc
	stopped := w.stopped
	w.mu.Unlock()
	if stopped { // Stop ran while we were starting
		w.closeConsumer(cc)
		return nil
	}
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.stopping:
		}
	}()
	w.log.Info("provisioning worker started", "filter", w.filter, "concurrency", w.cfg.Concurrency)
	return nil
}

// Stop stops consuming and waits for the attempts in flight to finish
// (each is bounded by ProvisionTimeout per step). Messages received but not
// started are handed back for immediate redelivery. Stop may be called more
// than once and from several goroutines; all return after the work is done.
func (w *Worker) Stop() {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.stopped = true
		cc := w.cc
		w.mu.Unlock()
		close(w.stopping)
		if cc != nil {
			w.closeConsumer(cc)
		}
		close(w.unsubscribed)
		w.inflight.Wait()
		w.log.Info("provisioning worker stopped")
	})
}

// closeConsumer stops cc, waits until its subscription is gone and its
// callback has returned for good, then hands back what was received but
// not started.
func (w *Worker) closeConsumer(cc jetstream.ConsumeContext) {
	cc.Stop()
	<-cc.Closed()
	w.dispatching.Lock()
	w.mu.Lock()
	w.closed = true
	back := w.handBack
	w.handBack = nil
	w.mu.Unlock()
	w.dispatching.Unlock()
	for _, m := range back {
		w.settle(m.Nak(), "nak")
	}
}

// dispatch runs on the consumer's delivery goroutine: it answers what needs
// no provisioner at once and hands InstanceCreated events to a free slot,
// blocking (so pulling no more) while all slots are busy.
func (w *Worker) dispatch(ctx context.Context, m jetstream.Msg) {
	w.dispatching.Lock()
	defer w.dispatching.Unlock()
	if typ := m.Headers().Get(eventstore.TypeHeader); typ != "" && typ != instance.TypeCreated {
		w.settle(m.Ack(), "ack") // not a create: no need to decode it
		return
	}
	env, created, err := decodeCreated(m.Data())
	if err != nil {
		// Poison: retrying cannot help; Term stops its redelivery.
		w.log.Error("undecodable event, terminated", "subject", m.Subject(), "seq", seqOf(m), "err", err)
		w.settle(m.Term(), "term")
		return
	}
	if created == nil || env.Causation.TestFlag {
		w.settle(m.Ack(), "ack")
		return
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.stopping:
		w.giveBack(m)
		return
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		<-w.slots
		w.giveBack(m)
		return
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.inflight.Done()
		defer func() { <-w.slots }()
		w.handle(ctx, m, env, *created)
	}()
}

// giveBack queues m to be handed back once the subscription is closed.
func (w *Worker) giveBack(m jetstream.Msg) {
	w.mu.Lock()
	closed := w.closed
	if !closed {
		w.handBack = append(w.handBack, m)
	}
	w.mu.Unlock()
	if closed {
		w.settle(m.Nak(), "nak")
	}
}

// decodeCreated decodes the envelope; created is nil for any other event.
func decodeCreated(data []byte) (event.Envelope, *instance.Created, error) {
	env, err := eventstore.DecodeEnvelope(data)
	if err != nil {
		return env, nil, err
	}
	if env.Type != instance.TypeCreated {
		return env, nil, nil
	}
	e, err := instance.Decode(env.Type, env.Version, env.Data)
	if err != nil {
		return env, nil, err
	}
	c, ok := e.(instance.Created)
	if !ok {
		return env, nil, fmt.Errorf("decode %s: got %T", env.Type, e)
	}
	if env.AggregateID == "" {
		env.AggregateID = c.InstanceID
	}
	if env.AggregateID == "" {
		return env, nil, fmt.Errorf("%s %s names no instance", env.Type, env.ID)
	}
	return env, &c, nil
}

// handle is one attempt for one InstanceCreated event.
func (w *Worker) handle(ctx context.Context, m jetstream.Msg, env event.Envelope, c instance.Created) {
	id := env.AggregateID
	attempt := uint64(1)
	if md, err := m.Metadata(); err == nil {
		attempt = md.NumDelivered
	}
	log := w.log.With("instanceId", id, "eventId", env.ID, "attempt", attempt, "route", env.Causation.Route)
	w.settle(m.InProgress(), "in progress") // the attempt gets a full AckWait

	gctx, cancel := context.WithTimeout(ctx, w.cfg.ProvisionTimeout)
	st, err := w.rec.GetAt(gctx, id, seqOf(m))
	cancel()
	// Not found is retried too: the event is in the log, so a read that
	// misses it is behind (a direct get answered by a lagging replica).
	switch {
	case err != nil:
		w.retry(ctx, m, attempt, log, "reading instance", err)
		return
	case st.Provisioned || st.Status == instance.StatusReleased || st.Status == instance.StatusFailed:
		log.Debug("already settled, not provisioning again", "status", st.Status)
		w.settle(m.Ack(), "ack")
		return
	}

	req := Request{
		EventID: env.ID, InstanceID: id, OrderID: c.OrderID, OrderLineID: c.OrderLineID,
		BusinessID: c.BusinessID, Route: env.Causation.Route, TestFlag: env.Causation.TestFlag,
	}
	app, err := w.provision(ctx, req)
	var out instance.RecordProvisioning
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		if verr := refused.validate(); verr != nil {
			log.Error("provisioner refused with an answer KooGallery cannot take; fix the provisioner", "err", verr)
			w.retry(ctx, m, attempt, log, "provisioning", verr)
			return
		}
		out.Failure = &instance.Failure{Code: refused.Code, Message: refused.Message}
	case err != nil:
		w.retry(ctx, m, attempt, log, "provisioning", err)
		return
	default:
		if verr := ValidateAppInfo(app); verr != nil {
			log.Error("provisioner returned app info KooGallery cannot take; fix the provisioner", "err", verr)
			w.retry(ctx, m, attempt, log, "provisioning", verr)
			return
		}
		out.AppInfo = &app
	}

	w.settle(m.InProgress(), "in progress")
	rctx, cancel := context.WithTimeout(ctx, w.cfg.ProvisionTimeout)
	st, err = w.rec.RecordProvisioning(rctx, id, out, event.Causation{Actor: Actor, Route: env.Causation.Route})
	cancel()
	switch {
	case err != nil:
		w.retry(ctx, m, attempt, log, "recording the provisioning outcome", err)
		return
	case out.Failure != nil:
		log.Info("provisioning refused", "code", out.Failure.Code, "message", out.Failure.Message, "status", st.Status)
	default:
		log.Info("instance provisioned", "status", st.Status)
	}
	w.settle(m.Ack(), "ack")
}

// provision resolves the provisioner and calls it with the attempt's
// deadline. A panic in vendor code is an error of this attempt.
func (w *Worker) provision(ctx context.Context, req Request) (app instance.AppInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("provisioner panicked: %v", r)
		}
	}()
	p := w.def
	if w.resolve != nil {
		if q := w.resolve(req.Route); q != nil {
			p = q
		}
	}
	pctx, cancel := context.WithTimeout(ctx, w.cfg.ProvisionTimeout)
	defer cancel()
	return p.Provision(pctx, req)
}

// retry hands the message back: at once when the worker is shutting down
// (another replica takes it), else after the backoff of this attempt.
func (w *Worker) retry(ctx context.Context, m jetstream.Msg, attempt uint64, log *slog.Logger, what string, err error) {
	if ctx.Err() != nil {
		log.Info("attempt abandoned: worker shutting down", "step", what, "err", err)
		<-w.unsubscribed // Stop runs: ctx is Start's
		w.settle(m.Nak(), "nak")
		return
	}
	d := backoff(attempt, w.cfg.RetryBase, w.cfg.RetryMax, w.jitter())
	log.Warn("attempt failed; will retry", "step", what, "err", err, "retryIn", d)
	w.settle(m.NakWithDelay(d), "nak")
}

func (w *Worker) settle(err error, what string) {
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		// Harmless: the server redelivers after AckWait, and handling is
		// idempotent.
		w.log.Warn("could not "+what+" message", "err", err)
	}
}

// backoff is the delay before attempt+1: d = min(base·2^(attempt-1), ceil),
// jittered uniformly into [d/2, d) with j in [0, 1).
func backoff(attempt uint64, base, ceil time.Duration, j float64) time.Duration {
	d := ceil
	if attempt < 1 {
		attempt = 1
	}
	if n := attempt - 1; n < 63 && base <= ceil>>n {
		d = base << n
	}
	half := d / 2
	return half + time.Duration(j*float64(d-half))
}

func seqOf(m jetstream.Msg) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}
