// Package licenses is the application service of the License families A
// and B (license.md §2, §3): licenses (domain/license) and authorization
// codes (domain/licensecode) on the same event store and generic aggregate
// repository as the instances. getLicense is idempotent on the order
// through the LicenseOrderBound index, and the license text, produced once
// by the route's issuer, is stored in the LicenseIssued event, so that every
// retry answers the same instance and the same text.
package licenses

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/config"
)

// ErrInProgress: the issuer did not finish within the budget; the license
// is still being generated in the background and the next getLicense
// answers it (license.md §2.1: 000005 "license generation in progress").
var ErrInProgress = errors.New("license generation in progress")

// ErrNoIssuer: a getLicense on a route without an issuer (a configuration
// error; 000005).
var ErrNoIssuer = errors.New("no license issuer configured for the route")

// LicenseRepo is the repository type of licenses (family A).
type LicenseRepo = aggregate.Repository[license.State, license.Event, license.Command]

// CodeRepo is the repository type of authorization codes (family B).
type CodeRepo = aggregate.Repository[licensecode.State, licensecode.Event, licensecode.Command]

// LicenseDefinition is the aggregate definition of licenses.
func LicenseDefinition() aggregate.Definition[license.State, license.Event, license.Command] {
	return aggregate.Definition[license.State, license.Event, license.Command]{
		Kind: license.Kind, Decide: license.Decide, Evolve: license.Evolve,
		Encode: license.Encode, Decode: license.Decode,
	}
}

// CodeDefinition is the aggregate definition of authorization codes.
func CodeDefinition() aggregate.Definition[licensecode.State, licensecode.Event, licensecode.Command] {
	return aggregate.Definition[licensecode.State, licensecode.Event, licensecode.Command]{
		Kind: licensecode.Kind, Decide: licensecode.Decide, Evolve: licensecode.Evolve,
		Encode: licensecode.Encode, Decode: licensecode.Decode,
	}
}

// Config tunes the service.
type Config struct {
	// Aggregate tunes both repositories (cache size, retries, single writer).
	Aggregate aggregate.Config
	// Issuers overrides or adds issuers by route path (tests, or an issuer
	// built outside the configuration).
	Issuers map[string]Issuer
	// GenerationTimeout bounds one issuer call, also when it goes on in the
	// background after the request was answered. Default 1 minute.
	GenerationTimeout time.Duration
	// Now is the clock of the built-in issuers and of the outgoing calls'
	// verdicts; nil means time.Now.
	Now func() time.Time
	// KooGallery makes the outgoing License B calls (outgoing.go); nil
	// answers them ErrNoKooGallery.
	KooGallery KooGallery
}

// Service runs the commands of licenses and authorization codes.
type Service struct {
	store   eventstore.Store
	lic     *LicenseRepo
	codes   *CodeRepo
	issuers map[string]Issuer
	cfg     Config
	log     *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight
	bg       sync.WaitGroup

	activating codeLocks // activations in progress, by code (outgoing.go)
}

// flight is one issuer call and the recording of its text.
type flight struct {
	done chan struct{}
	st   license.State
	err  error
}

// New builds the service. Every license-a route of routes gets its
// configured issuer (the built-in issuer reads its private key from the
// environment now); cfg.Issuers add to or replace them.
func New(store eventstore.Store, cfg Config, routes []config.Route, log *slog.Logger) (*Service, error) {
	if cfg.Aggregate.CacheSize == 0 && cfg.Aggregate.MaxRetries == 0 {
		cfg.Aggregate = aggregate.DefaultConfig()
	}
	if cfg.GenerationTimeout <= 0 {
		cfg.GenerationTimeout = time.Minute
	}
	lic, err := aggregate.New(store, LicenseDefinition(), cfg.Aggregate)
	if err != nil {
		return nil, err
	}
	codes, err := aggregate.New(store, CodeDefinition(), cfg.Aggregate)
	if err != nil {
		return nil, err
	}
	s := &Service{store: store, lic: lic, codes: codes, issuers: map[string]Issuer{}, cfg: cfg, log: log,
		inflight: map[string]*flight{}}
	for _, r := range routes {
		if r.Family != config.FamilyLicenseA || cfg.Issuers[r.Path] != nil {
			continue
		}
		if r.Issuer == nil || r.Issuer.Builtin == nil {
			return nil, fmt.Errorf("licenses: route %s: no issuer configured", r.Path)
		}
		b, err := BuiltinFromConfig(*r.Issuer.Builtin, cfg.Now)
		if err != nil {
			return nil, fmt.Errorf("licenses: route %s: %w", r.Path, err)
		}
		s.issuers[r.Path] = b
	}
	for path, is := range cfg.Issuers {
		s.issuers[path] = is
	}
	return s, nil
}

// Close waits for the license generations still running in the background
// (each bounded by the generation timeout).
func (s *Service) Close() { s.bg.Wait() }

// Licenses exposes the license repository (effects, views and tests).
func (s *Service) Licenses() *LicenseRepo { return s.lic }

// Codes exposes the authorization-code repository.
func (s *Service) Codes() *CodeRepo { return s.codes }

// GetLicense is a getLicense without its debug marker (license.md §2.1).
type GetLicense struct {
	OrderID    string
	BusinessID string
	Customer   license.Customer
	Purchase   license.Purchase
}

// Issue is getLicense: it binds the order to an instance id (the first
// request's businessId) exactly once across all replicas, has the route's
// issuer produce the license if the order has none yet, and records it.
// A repeat answers the first instance and the first text. An issuer slower
// than budget gives ErrInProgress while it goes on in the background.
func (s *Service) Issue(ctx context.Context, route string, req GetLicense, cause event.Causation, budget time.Duration) (license.State, error) {
	probe := license.Issue{InstanceID: req.BusinessID, OrderID: req.OrderID, Customer: req.Customer, Purchase: req.Purchase, Debug: true}
	if err := probe.Validate(); err != nil {
		return license.State{}, err
	}
	idx := eventstore.StreamID{Kind: license.IndexKind, Keys: []string{req.OrderID}}
	id, seq, bound, err := s.bind(ctx, idx, 0, req.BusinessID, cause)
	if err != nil {
		return license.State{}, err
	}
	st, err := s.issue(ctx, route, id, bound, req, cause, budget)
	if errors.Is(err, license.ErrIDInUse) {
		// The businessId already names another order's license (reused by
		// the caller): bind a generated id instead, once.
		s.log.Warn("businessId already names another order's license; binding a generated instanceId",
			"businessId", id, "orderId", req.OrderID)
		if id, _, bound, err = s.bind(ctx, idx, seq, uuid.Must(uuid.NewV7()).String(), cause); err != nil {
			return license.State{}, err
		}
		st, err = s.issue(ctx, route, id, bound, req, cause, budget)
	}
	return st, err
}

func (s *Service) issue(ctx context.Context, route, id string, bound bool, req GetLicense, cause event.Causation, budget time.Duration) (license.State, error) {
	if bound {
		s.lic.AssumeNew(id)
	}
	st, _, err := s.lic.Get(ctx, id, true)
	if err != nil {
		return st, err
	}
	if st.Status.Exists() {
		if st.OrderID != req.OrderID {
			return license.State{}, license.ErrIDInUse
		}
		return st, nil // a repeat: the first instance and text
	}
	is := s.issuers[route]
	if is == nil {
		return license.State{}, fmt.Errorf("%w: %s", ErrNoIssuer, route)
	}
	f := s.start(id, is, IssueRequest{Route: route, InstanceID: id, OrderID: req.OrderID, BusinessID: req.BusinessID,
		Customer: req.Customer, Purchase: req.Purchase}, cause)
	var deadline <-chan time.Time
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case <-f.done:
		return f.st, f.err
	case <-deadline:
	case <-ctx.Done():
	}
	return license.State{}, ErrInProgress
}

// start runs the issuer for id and records its text, unless a run for id
// is already going on in this process; the run outlives the request.
func (s *Service) start(id string, is Issuer, r IssueRequest, cause event.Causation) *flight {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[id]; ok {
		return f
	}
	f := &flight{done: make(chan struct{})}
	s.inflight[id] = f
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.GenerationTimeout)
		defer cancel()
		f.st, f.err = s.generate(ctx, id, is, r, cause)
		if f.err != nil {
			s.log.Warn("license generation failed; the next getLicense tries again",
				"route", r.Route, "instanceId", id, "orderId", r.OrderID, "err", f.err)
		}
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
		close(f.done)
	}()
	return f
}

func (s *Service) generate(ctx context.Context, id string, is Issuer, r IssueRequest, cause event.Causation) (license.State, error) {
	text, err := is.Issue(ctx, r)
	if err != nil {
		return license.State{}, fmt.Errorf("issue license %s: %w", id, err)
	}
	if text == "" {
		return license.State{}, fmt.Errorf("issue license %s: the issuer answered an empty license", id)
	}
	p := r.Purchase
	st, _, err := s.lic.Execute(ctx, id, license.Issue{InstanceID: id, OrderID: r.OrderID, BusinessID: r.BusinessID,
		Customer: r.Customer, Purchase: p, Text: text}, cause)
	return st, err
}

// bind returns the instance id bound to the order idx, binding candidate
// if the order's last binding is at sequence expected (0: a new order).
// bound reports that this call made the binding; seq is the sequence of
// the binding returned. The append with an expected sequence is the one
// decision point across all replicas.
func (s *Service) bind(ctx context.Context, idx eventstore.StreamID, expected uint64, candidate string, cause event.Causation) (id string, seq uint64, bound bool, err error) {
	order := idx.Keys[0]
	typ, ver, data, err := license.Encode(license.Bound{InstanceID: candidate})
	if err != nil {
		return "", 0, false, err
	}
	env := event.Envelope{
		ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Version: ver, AggregateKind: license.IndexKind,
		AggregateID: order, OccurredAt: time.Now().UTC(), Causation: cause, Data: data,
	}
	seq, err = s.store.Append(ctx, idx, expected, env)
	if err == nil {
		return candidate, seq, true, nil
	}
	if !errors.Is(err, eventstore.ErrConflict) {
		return "", 0, false, fmt.Errorf("bind license order %s: %w", order, err)
	}
	rec, err := s.store.LastEvent(ctx, idx)
	if err != nil {
		return "", 0, false, fmt.Errorf("license order index %s: %w", order, err)
	}
	b, err := license.DecodeBound(rec.Event.Type, rec.Event.Version, rec.Event.Data)
	if err != nil {
		return "", 0, false, fmt.Errorf("license order index %s: %w", order, err)
	}
	return b.InstanceID, rec.Seq, false, nil
}

// Execute runs refreshLicense, expireLicense or releaseLicense on license
// id; one never issued is license.ErrNotFound.
func (s *Service) Execute(ctx context.Context, id string, cmd license.Command, cause event.Causation) (license.State, error) {
	st, _, err := s.lic.Execute(ctx, id, cmd, cause)
	return st, err
}

// Get returns license id, reflecting every event acknowledged before the
// call; one never issued is license.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (license.State, error) {
	st, _, err := s.lic.Get(ctx, id, true)
	if err == nil && !st.Status.Exists() {
		err = license.ErrNotFound
	}
	return st, err
}

// RegisterCode makes an authorization code known (license.md §3.1: the
// buyer handed it to the vendor's software); a repeat changes nothing.
func (s *Service) RegisterCode(ctx context.Context, code, reference string, cause event.Causation) (licensecode.State, error) {
	c, err := licensecode.ParseCode(code)
	if err != nil {
		return licensecode.State{}, err
	}
	return s.ExecuteCode(ctx, c, licensecode.Register{Code: c, Reference: reference}, cause)
}

// ExecuteCode runs a command on authorization code code; a code never seen
// is licensecode.ErrNotFound.
func (s *Service) ExecuteCode(ctx context.Context, code string, cmd licensecode.Command, cause event.Causation) (licensecode.State, error) {
	st, _, err := s.codes.Execute(ctx, code, cmd, cause)
	return st, err
}

// Code returns authorization code code; one never seen is
// licensecode.ErrNotFound.
func (s *Service) Code(ctx context.Context, code string) (licensecode.State, error) {
	st, _, err := s.codes.Get(ctx, code, true)
	if err == nil && !st.Status.Exists() {
		err = licensecode.ErrNotFound
	}
	return st, err
}
