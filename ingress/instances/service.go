// Package instances is the application service for Instance aggregates:
// the idempotent create through the order index, commands, fresh reads,
// and waiting (bounded) for provisioning. Every family whose products are
// instances (SaaS V2, SaaS V1, License C) goes through it.
package instances

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// Repo is the repository type for instances.
type Repo = aggregate.Repository[instance.State, instance.Event, instance.Command]

// Definition is the aggregate definition of instances.
func Definition() aggregate.Definition[instance.State, instance.Event, instance.Command] {
	return aggregate.Definition[instance.State, instance.Event, instance.Command]{
		Kind: instance.Kind, Decide: instance.Decide, Evolve: instance.Evolve,
		Encode: instance.Encode, Decode: instance.Decode,
	}
}

// Config tunes the service.
type Config struct {
	// Prefix is the event store's subject prefix (for change notifications).
	Prefix string
	// Aggregate tunes the repository (cache size, retries).
	Aggregate aggregate.Config
}

// Service runs instance commands.
type Service struct {
	store eventstore.Store
	repo  *Repo
	nc    *nats.Conn
	cfg   Config
	log   *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	sub     *nats.Subscription
}

// New builds the service. nc may be nil, then waits poll instead of being
// woken by change notifications.
func New(store eventstore.Store, nc *nats.Conn, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "gallerist"
	}
	if cfg.Aggregate.CacheSize == 0 && cfg.Aggregate.MaxRetries == 0 {
		cfg.Aggregate = aggregate.DefaultConfig()
	}
	repo, err := aggregate.New(store, Definition(), cfg.Aggregate)
	if err != nil {
		return nil, err
	}
	s := &Service{store: store, repo: repo, nc: nc, cfg: cfg, log: log, waiters: map[string]map[chan struct{}]struct{}{}}
	if nc != nil {
		// Provisioning outcomes are announced on a core NATS subject outside
		// the stream, so that a replica waiting in newInstance wakes as soon
		// as any replica recorded the outcome. Announcements are hints:
		// waits re-read the store and also poll, so a lost one only delays.
		sub, err := nc.Subscribe(s.outcomeSubject("*"), s.onOutcome)
		if err != nil {
			return nil, fmt.Errorf("instances: subscribe %s: %w", s.outcomeSubject("*"), err)
		}
		s.sub = sub
	}
	return s, nil
}

// Close stops the change subscription.
func (s *Service) Close() {
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
}

// Repo exposes the repository (for effects and tests).
func (s *Service) Repo() *Repo { return s.repo }

// outcomeSubject is where the outcome for instance token tok is announced.
func (s *Service) outcomeSubject(tok string) string {
	return "_" + s.cfg.Prefix + ".outcome." + tok
}

func (s *Service) onOutcome(m *nats.Msg) {
	tok := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if id, err := eventstore.DecodeToken(tok); err == nil {
		s.wake(id)
	}
}

// announce tells every replica's waiters that instance id has an outcome.
func (s *Service) announce(id string) {
	s.wake(id)
	if s.nc == nil {
		return
	}
	tok, err := eventstore.EncodeToken(id)
	if err != nil {
		return
	}
	if err := s.nc.Publish(s.outcomeSubject(tok), nil); err != nil {
		s.log.Debug("announcing a provisioning outcome", "instanceId", id, "err", err)
	}
}

func (s *Service) wake(id string) {
	s.mu.Lock()
	for ch := range s.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

func (s *Service) watch(id string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.waiters[id] == nil {
		s.waiters[id] = map[chan struct{}]struct{}{}
	}
	s.waiters[id][ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.waiters[id], ch)
		if len(s.waiters[id]) == 0 {
			delete(s.waiters, id)
		}
		s.mu.Unlock()
	}
}

// Create is newInstance: it binds the order line to an instance id (the
// first request's businessId) exactly once across all replicas, creates the
// instance, and waits up to budget for provisioning. It returns the state
// to answer from: provisioning (answer 000004), active, frozen, released,
// or a *instance.RefusedError for a refused provisioning.
func (s *Service) Create(ctx context.Context, orderID, orderLineID, businessID string, cause event.Causation, budget time.Duration) (instance.State, error) {
	idx := eventstore.StreamID{Kind: instance.IndexKind, Keys: []string{orderID, orderLineID}}
	return s.create(ctx, idx, instance.Create{OrderID: orderID, OrderLineID: orderLineID, BusinessID: businessID}, cause, budget)
}

// V1IndexKey is the marker key of SaaS V1 bindings in the order index: a
// V1 order is bound at (orderId, "saas-v1"), a pay-per-use one at
// (orderId, "saas-v1", productId). No V2 binding has this shape (V2 order
// line ids are KooGallery's "<orderId>-NNNNNN").
const V1IndexKey = "saas-v1"

// V1Index returns the order-index stream of a SaaS V1 newInstance
// (codes-and-rules.md §3): keyed on orderId, or on orderId + productId for
// pay-per-use, where one order may yield several instances.
func V1Index(orderID string, o *instance.V1Order) eventstore.StreamID {
	if o.PayPerUse() {
		return eventstore.StreamID{Kind: instance.IndexKind, Keys: []string{orderID, V1IndexKey, o.ProductID}}
	}
	return eventstore.StreamID{Kind: instance.IndexKind, Keys: []string{orderID, V1IndexKey}}
}

// CreateV1 is SaaS V1 newInstance, with the same guarantees as Create: the
// order (pay-per-use: order and product) is bound to an instance id exactly
// once, so a retry and the re-call KooGallery makes when the buyer opens the
// resource details answer the same instance and never create a second one.
func (s *Service) CreateV1(ctx context.Context, orderID, businessID string, order instance.V1Order, cause event.Causation, budget time.Duration) (instance.State, error) {
	return s.create(ctx, V1Index(orderID, &order), instance.Create{OrderID: orderID, BusinessID: businessID, V1: &order}, cause, budget)
}

// create binds idx to the request's businessId (or reads the binding) and
// creates the instance. cmd carries the order; its ids are filled in here.
func (s *Service) create(ctx context.Context, idx eventstore.StreamID, cmd instance.Create, cause event.Causation, budget time.Duration) (instance.State, error) {
	id, seq, bound, err := s.bind(ctx, idx, 0, cmd.BusinessID, cause)
	if err != nil {
		return instance.State{}, err
	}
	st, err := s.createAndWait(ctx, id, bound, cmd, cause, budget)
	if errors.Is(err, instance.ErrIDInUse) {
		// The bound id is already another order's instance (a businessId
		// reused by the caller): bind a fresh id instead, once. Concurrent
		// duplicates race on the index's expected sequence as before.
		s.log.Warn("businessId already names another order's instance; binding a generated instanceId",
			"businessId", id, "orderId", cmd.OrderID, "orderLine", strings.Join(idx.Keys[1:], "/"))
		if id, _, bound, err = s.bind(ctx, idx, seq, uuid.Must(uuid.NewV7()).String(), cause); err != nil {
			return instance.State{}, err
		}
		st, err = s.createAndWait(ctx, id, bound, cmd, cause, budget)
	}
	return st, err
}

func (s *Service) createAndWait(ctx context.Context, id string, bound bool, cmd instance.Create, cause event.Causation, budget time.Duration) (instance.State, error) {
	if bound {
		// This request reserved the id: the instance should not exist yet
		// (if it does, the append conflicts and the repository reloads).
		s.repo.AssumeNew(id)
	}
	wake, stop := s.watch(id)
	defer stop()
	cmd.InstanceID, cmd.BusinessID = id, id
	st, _, err := s.repo.Execute(ctx, id, cmd, cause)
	if err != nil {
		return st, err
	}
	return s.wait(ctx, id, st, wake, budget)
}

// bind returns the instance id bound to the order line idx, binding
// candidate if the line's last binding is at sequence expected (0: the line
// is new). bound reports that this call made the binding; seq is the
// sequence of the binding returned. The append comes first: a new order is
// the common case, and the append with an expected sequence is the one
// decision point across all replicas.
func (s *Service) bind(ctx context.Context, idx eventstore.StreamID, expected uint64, candidate string, cause event.Causation) (id string, seq uint64, bound bool, err error) {
	line := strings.Join(idx.Keys, "/")
	typ, ver, data, err := instance.Encode(instance.Bound{InstanceID: candidate})
	if err != nil {
		return "", 0, false, err
	}
	env := event.Envelope{
		ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Version: ver, AggregateKind: instance.IndexKind,
		AggregateID: line, OccurredAt: time.Now().UTC(), Causation: cause, Data: data,
	}
	seq, err = s.store.Append(ctx, idx, expected, env)
	if err == nil {
		return candidate, seq, true, nil
	}
	if !errors.Is(err, eventstore.ErrConflict) {
		return "", 0, false, fmt.Errorf("bind order line %s: %w", line, err)
	}
	// Bound before (a retry, or a concurrent duplicate): read the binding
	// from the stream leader (a lagging replica may not have it yet).
	rec, err := s.store.Leader().LastEvent(ctx, idx)
	if err != nil {
		return "", 0, false, fmt.Errorf("order index %s: %w", line, err)
	}
	b, err := instance.DecodeBound(rec.Event.Type, rec.Event.Version, rec.Event.Data)
	if err != nil {
		return "", 0, false, fmt.Errorf("order index %s: %w", line, err)
	}
	return b.InstanceID, rec.Seq, false, nil
}

// pollMax bounds how long a wait relies on announcements alone (they are
// core NATS messages and may be lost); after one, the store is re-read at
// once and then quickly (from pollMin, doubling).
const (
	pollMin = time.Millisecond
	pollMax = 50 * time.Millisecond
)

// wait returns as soon as the instance is no longer waiting for its
// provisioning outcome, or when budget runs out.
func (s *Service) wait(ctx context.Context, id string, st instance.State, wake <-chan struct{}, budget time.Duration) (instance.State, error) {
	if !pending(st) || budget <= 0 {
		return outcome(st)
	}
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	every := pollMax
	poll := time.NewTimer(every)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return st, nil // answer from what we know: 000004
		case <-deadline.C:
			return st, nil
		case <-wake:
			every = pollMin
		case <-poll.C:
			every = min(every*2, pollMax)
		}
		next, _, err := s.repo.Get(ctx, id, true)
		if err != nil {
			s.log.Warn("re-reading instance while waiting for provisioning", "instanceId", id, "err", err)
		} else if st = next; !pending(st) {
			return outcome(st)
		}
		poll.Reset(every)
	}
}

func pending(st instance.State) bool {
	return st.Status == instance.StatusProvisioning && !st.Provisioned
}

func outcome(st instance.State) (instance.State, error) {
	if st.Status == instance.StatusFailed && st.Failure != nil {
		return st, &instance.RefusedError{Failure: *st.Failure}
	}
	return st, nil
}

// Execute runs one command on an existing instance.
func (s *Service) Execute(ctx context.Context, id string, cmd instance.Command, cause event.Causation) (instance.State, error) {
	st, events, err := s.repo.Execute(ctx, id, cmd, cause)
	for _, e := range events {
		switch e.(type) {
		case instance.Provisioned, instance.ProvisioningFailed, instance.Released:
			s.announce(id) // ends a newInstance wait
			return st, err
		}
	}
	return st, err
}

// Settle runs cmd on an existing instance until it decides nothing (at most
// instance.MaxSettleSteps appends, one event each): a SaaS V1 renewal of a
// frozen instance is the renewal, then the reactivation. Each append is
// atomic on its own; a crash between two leaves a state from which the
// same command (KooGallery's retry) goes on.
func (s *Service) Settle(ctx context.Context, id string, cmd instance.Command, cause event.Causation) (instance.State, error) {
	var st instance.State
	for range instance.MaxSettleSteps {
		var events []instance.Event
		var err error
		if st, events, err = s.repo.Execute(ctx, id, cmd, cause); err != nil || len(events) == 0 {
			return st, err
		}
	}
	return st, nil
}

// Get returns the instance's state, reflecting every event acknowledged
// before the call. An instance that never existed is instance.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (instance.State, error) {
	st, _, err := s.repo.Get(ctx, id, true)
	if err != nil {
		return st, err
	}
	if !st.Status.Exists() {
		return st, instance.ErrNotFound
	}
	return st, nil
}

// GetAt returns the instance's state reflecting at least stream sequence
// seq; an instance that never existed is instance.ErrNotFound.
func (s *Service) GetAt(ctx context.Context, id string, seq uint64) (instance.State, error) {
	st, _, err := s.repo.GetAt(ctx, id, seq)
	if err != nil {
		return st, err
	}
	if !st.Status.Exists() {
		return st, instance.ErrNotFound
	}
	return st, nil
}

// RecordProvisioning records a provisioner's outcome; it is what effects call.
func (s *Service) RecordProvisioning(ctx context.Context, id string, out instance.RecordProvisioning, cause event.Causation) (instance.State, error) {
	return s.Execute(ctx, id, out, cause)
}
