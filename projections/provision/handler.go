package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
)

// Name is the provisioning effect's name: its durable consumer is
// "effect-provision" and its progress streams are
// "<prefix>.effect.provision.<instance id>".
const Name = "provision"

// LegacyDurable is the durable consumer of the provisioning worker that
// the effect runner replaced. [RemoveLegacyConsumer] deletes it.
const LegacyDurable = "provisioner"

// Actor is the Causation.Actor of the outcomes the handler records.
const Actor = "provisioner"

// Recorder reads instances and records provisioning outcomes; it is
// implemented by *instances.Service.
type Recorder interface {
	RecordProvisioning(ctx context.Context, id string, out instance.RecordProvisioning, cause event.Causation) (instance.State, error)
	// GetAt returns the instance's state reflecting at least the event at
	// stream sequence seq (the one being handled).
	GetAt(ctx context.Context, id string, seq uint64) (instance.State, error)
}

// Config tunes the provisioning effect. Zero fields take the values of
// [DefaultConfig] (see [Config.WithDefaults]).
type Config struct {
	// ProvisionTimeout bounds each provisioner call, and the instance read
	// and the outcome's append of each attempt. Default 10s.
	ProvisionTimeout time.Duration
	// Runner is the provisioning runner's own configuration. Its zero
	// fields take the values of [DefaultRunnerConfig], not those of
	// effects.DefaultRunnerConfig: provisioning retries sooner, and for
	// about KooGallery's retry window. Every replica must use the same
	// AckWait and MaxAckPending (each one's Start writes them to the
	// consumer).
	Runner effects.RunnerConfig
}

// Defaults of the provisioning runner (see [DefaultRunnerConfig]).
const (
	// DefaultProvisionTimeout bounds one provisioner call.
	DefaultProvisionTimeout = 10 * time.Second
	// DefaultRetryBase and DefaultRetryMax shape the backoff between the
	// attempts of one instance.
	DefaultRetryBase = 200 * time.Millisecond
	DefaultRetryMax  = 30 * time.Second
	// DefaultMaxAttempts sizes the retries to about KooGallery's retry
	// window of a creation, 3 hours (SaaS V1 newInstance; License C
	// auto-unsubscribes after 3 h; codes-and-rules.md §4). The wait after
	// attempt n is drawn from [d/2, d), d = min(200ms·2ⁿ⁻¹, 30s), so the
	// mean wait is 0.75·d: attempts 1–8 wait d = 0.2+0.4+…+25.6 = 51s in
	// all (mean 38s), every later one d = 30s (mean 22.5s). 480 attempts
	// make 479 waits: 38s + 471 × 22.5s ≈ 10,640s ≈ 2 h 57 min on average
	// (between 1 h 58 min and 3 h 56 min), plus the attempts' own time
	// (each at most ProvisionTimeout). Then the instance is parked (listed
	// by `gallerist effects parked`, re-drivable); newInstance and
	// queryInstance keep answering 000004 meanwhile.
	DefaultMaxAttempts = 480
)

// DefaultRunnerConfig returns the provisioning runner's defaults: RetryBase
// 200ms, RetryMax 30s, MaxAttempts 480 (≈ 3 h, see [DefaultMaxAttempts]),
// HandleTimeout 3 × ProvisionTimeout (a read, the call and an append), and
// effects.DefaultRunnerConfig's values for the rest (Concurrency 16, AckWait
// 30s, MaxAckPending 10000, TurnWaitMax 2s).
func DefaultRunnerConfig() effects.RunnerConfig {
	c := effects.DefaultRunnerConfig()
	c.RetryBase, c.RetryMax, c.MaxAttempts = DefaultRetryBase, DefaultRetryMax, DefaultMaxAttempts
	c.HandleTimeout = 3 * DefaultProvisionTimeout
	return c
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ProvisionTimeout: DefaultProvisionTimeout, Runner: DefaultRunnerConfig()}
}

// WithDefaults fills the zero fields: ProvisionTimeout 10s, the runner's
// from [DefaultRunnerConfig] (HandleTimeout 3 × ProvisionTimeout, RetryMax
// at least RetryBase, MaxAckPending at least Concurrency).
func (c Config) WithDefaults() Config {
	d := DefaultRunnerConfig()
	if c.ProvisionTimeout == 0 {
		c.ProvisionTimeout = DefaultProvisionTimeout
	}
	r := &c.Runner
	if r.RetryBase == 0 {
		r.RetryBase = d.RetryBase
	}
	if r.RetryMax == 0 {
		r.RetryMax = max(d.RetryMax, r.RetryBase)
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = d.MaxAttempts
	}
	if r.Concurrency == 0 {
		r.Concurrency = d.Concurrency
	}
	if r.AckWait == 0 {
		r.AckWait = d.AckWait
	}
	if r.MaxAckPending == 0 {
		r.MaxAckPending = max(d.MaxAckPending, r.Concurrency)
	}
	if r.HandleTimeout == 0 {
		r.HandleTimeout = 3 * c.ProvisionTimeout
	}
	if r.TurnWaitMax == 0 {
		r.TurnWaitMax = d.TurnWaitMax
	}
	return c
}

// Validate checks the config as given (the constructors apply the defaults
// first).
func (c Config) Validate() error {
	if c.ProvisionTimeout <= 0 {
		return fmt.Errorf("provision: ProvisionTimeout must be > 0, got %s", c.ProvisionTimeout)
	}
	if err := c.Runner.Validate(); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// Handler is the provisioning effect as an effects.Handler: for every
// InstanceCreated it resolves the route's provisioner, calls it, and
// records the outcome (InstanceProvisioned with the app info, or
// InstanceProvisioningFailed for a refusal) through the Recorder. An
// effects.Runner drives it (see [NewRunner]): durable consumer
// "effect-provision", retries with backoff and jitter, parking after
// MaxAttempts, operators' re-drives.
//
// Delivery is at least once and Handle is idempotent: an instance that is
// no longer provisioning (provisioned, failed or released) is not
// provisioned again, and a provisioner gets the event id as idempotency key.
type Handler struct {
	rec     Recorder
	resolve Resolver
	def     Provisioner
	timeout time.Duration
	log     *slog.Logger
}

var _ effects.Handler = (*Handler)(nil)

// NewHandler builds the handler. resolve may be nil (always def); def must
// not be nil. timeout bounds each provisioner call and each store read and
// write (0: DefaultProvisionTimeout). log nil means slog.Default().
func NewHandler(rec Recorder, resolve Resolver, def Provisioner, timeout time.Duration, log *slog.Logger) (*Handler, error) {
	if rec == nil || def == nil {
		return nil, errors.New("provision: NewHandler needs a recorder and a default provisioner")
	}
	if timeout == 0 {
		timeout = DefaultProvisionTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("provision: ProvisionTimeout must be > 0, got %s", timeout)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{rec: rec, resolve: resolve, def: def, timeout: timeout, log: log.With("component", "provisioner")}, nil
}

// Name implements effects.Handler: "provision".
func (h *Handler) Name() string { return Name }

// Wants implements effects.Handler: InstanceCreated only.
func (h *Handler) Wants(eventType string) bool { return eventType == instance.TypeCreated }

// FirstOfInstance implements effects.FirstOfInstance: InstanceCreated opens
// its instance's stream, so no earlier event of the instance can be
// waiting (the runner's turn check then skips reading the instance).
func (h *Handler) FirstOfInstance(eventType string) bool { return eventType == instance.TypeCreated }

// SuccessUnrecorded implements effects.SuccessUnrecorded: a provisioned
// (or refused) instance is its own record, and Handle skips an instance
// that is no longer provisioning, so a successful provisioning needs no
// EffectDone (one read and one write fewer before newInstance's answer). A
// provisioning that fails for good is parked as usual.
func (h *Handler) SuccessUnrecorded(eventType string) bool { return eventType == instance.TypeCreated }

// ProvisionTimeout is the bound of one provisioner call.
func (h *Handler) ProvisionTimeout() time.Duration { return h.timeout }

// Handle implements effects.Handler: it provisions the instance ev creates
// (ev is at stream sequence seq). It returns nil when the outcome is
// recorded (a refusal included) or nothing is to be done (a debug
// request's instance, an instance no longer provisioning), an error wrapped
// by effects.Permanent for an event that cannot be decoded, and any other
// error (the instance unreadable, the provisioner failing or answering
// what KooGallery cannot take, the outcome not recorded) to be retried.
func (h *Handler) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	if ev.Type != instance.TypeCreated {
		return nil
	}
	e, err := instance.Decode(ev.Type, ev.Version, ev.Data)
	if err != nil {
		return effects.Permanent(err)
	}
	c, ok := e.(instance.Created)
	if !ok {
		return effects.Permanent(fmt.Errorf("decode %s: got %T", ev.Type, e))
	}
	id := ev.AggregateID
	if id == "" {
		id = c.InstanceID
	}
	if id == "" {
		return effects.Permanent(fmt.Errorf("%s %s names no instance", ev.Type, ev.ID))
	}
	if ev.Causation.TestFlag {
		return nil // a debug request changes nothing
	}
	log := h.log.With("instanceId", id, "eventId", ev.ID, "route", ev.Causation.Route)

	gctx, cancel := context.WithTimeout(ctx, h.timeout)
	st, err := h.rec.GetAt(gctx, id, seq)
	cancel()
	// Not found is retried too: the event is in the log, so a read that
	// misses it is behind (a direct get answered by a lagging replica).
	switch {
	case err != nil:
		return fmt.Errorf("reading instance %s: %w", id, err)
	case st.Provisioned || st.Status == instance.StatusReleased || st.Status == instance.StatusFailed:
		log.Debug("already settled, not provisioning again", "status", st.Status)
		return nil
	}

	req := Request{
		EventID: ev.ID, InstanceID: id, OrderID: c.OrderID, OrderLineID: c.OrderLineID,
		BusinessID: c.BusinessID, Route: ev.Causation.Route, TestFlag: ev.Causation.TestFlag,
	}
	app, err := h.provision(ctx, req)
	var out instance.RecordProvisioning
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		if verr := refused.validate(); verr != nil {
			log.Error("provisioner refused with an answer KooGallery cannot take; fix the provisioner", "err", verr)
			return fmt.Errorf("provisioning: %w", verr)
		}
		out.Failure = &instance.Failure{Code: refused.Code, Message: refused.Message}
	case err != nil:
		return fmt.Errorf("provisioning: %w", err)
	default:
		if verr := ValidateAppInfo(app); verr != nil {
			log.Error("provisioner returned app info KooGallery cannot take; fix the provisioner", "err", verr)
			return fmt.Errorf("provisioning: %w", verr)
		}
		out.AppInfo = &app
	}

	rctx, cancel := context.WithTimeout(ctx, h.timeout)
	st, err = h.rec.RecordProvisioning(rctx, id, out, event.Causation{Actor: Actor, Route: ev.Causation.Route})
	cancel()
	switch {
	case err != nil:
		return fmt.Errorf("recording the provisioning outcome: %w", err)
	case out.Failure != nil:
		log.Info("provisioning refused", "code", out.Failure.Code, "message", out.Failure.Message, "status", st.Status)
	default:
		log.Info("instance provisioned", "status", st.Status)
	}
	return nil
}

// provision resolves the provisioner and calls it with the attempt's
// deadline. (A panic in vendor code is caught by the runner: an error of
// the attempt.)
func (h *Handler) provision(ctx context.Context, req Request) (instance.AppInfo, error) {
	p := h.def
	if h.resolve != nil {
		if q := h.resolve(req.Route); q != nil {
			p = q
		}
	}
	pctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	return p.Provision(pctx, req)
}

// NewRunner builds the provisioning effect: a [Handler] driven by an
// effects.Runner on the event stream streamName (instance events on
// "<prefix>.instance.<id>"), with cfg's defaults applied. store must address
// the same stream (the runner reads and appends the progress streams
// there). Start the runner to provision; add it to an effects.Admin to list
// and re-drive parked provisioning. log nil means slog.Default().
func NewRunner(js jetstream.JetStream, store eventstore.Store, streamName, prefix string, rec Recorder, resolve Resolver, def Provisioner, cfg Config, log *slog.Logger) (*effects.Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := NewHandler(rec, resolve, def, cfg.ProvisionTimeout, log)
	if err != nil {
		return nil, err
	}
	return effects.NewRunner(js, store, streamName, prefix, h, cfg.Runner, log)
}

// RemoveLegacyConsumer deletes the durable consumer of the provisioning
// worker that came before the effect runner ([LegacyDurable]) from the
// stream, so that it does not keep InstanceCreated events pending for
// ever. It reports whether there was one. The runner's own consumer
// delivers every InstanceCreated from the start of the log, so instances
// created before the upgrade and not provisioned yet are provisioned by it
// (those already provisioned are skipped). A replica of the earlier
// version still running loses its consumer (its pulls fail until it is
// upgraded); what it provisions meanwhile is skipped by the runner.
func RemoveLegacyConsumer(ctx context.Context, js jetstream.JetStream, streamName string) (bool, error) {
	err := js.DeleteConsumer(ctx, streamName, LegacyDurable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("provision: delete the legacy consumer %s: %w", LegacyDurable, err)
	}
	return true, nil
}
