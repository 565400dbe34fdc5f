package usagepush

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/usage"
)

// Namespace returns store seen from the usage namespace: the stream
// {Kind: k, Keys: ks} becomes {Kind: "usage", Keys: [k, ks…]}, i.e. the
// subject "<prefix>.usage.<k>.<ks…>". Under it, an instance's usage stream
// is {Kind: "instance", Keys: [instanceId]}
// ("<prefix>.usage.instance.<instanceId>") and the pusher's progress
// streams are "<prefix>.usage.effect.usagepush.<instanceId>", which is
// what an effects runner with the prefix Prefix(prefix) addresses.
func Namespace(store eventstore.Store) eventstore.Store { return nsStore{store} }

// Prefix is the subject prefix of the usage namespace under the log's
// prefix: the prefix to give the pusher's effects runner.
func Prefix(prefix string) string { return prefix + "." + usage.Kind }

type nsStore struct{ s eventstore.Store }

func ns(id eventstore.StreamID) eventstore.StreamID {
	return eventstore.StreamID{Kind: usage.Kind, Keys: append([]string{id.Kind}, id.Keys...)}
}

func (n nsStore) Append(ctx context.Context, id eventstore.StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	return n.s.Append(ctx, ns(id), expected, ev)
}

func (n nsStore) Load(ctx context.Context, id eventstore.StreamID, after uint64) ([]eventstore.Record, error) {
	return n.s.Load(ctx, ns(id), after)
}

func (n nsStore) Last(ctx context.Context, id eventstore.StreamID) (uint64, error) {
	return n.s.Last(ctx, ns(id))
}

// Leader is the store's read mode for freshness-critical reads (the
// store's Leader, when it has one), in the namespace.
func (n nsStore) Leader() eventstore.Store {
	if l, ok := n.s.(interface{ Leader() eventstore.Store }); ok {
		return nsStore{l.Leader()}
	}
	return n
}

func (n nsStore) LastEvent(ctx context.Context, id eventstore.StreamID) (eventstore.Record, error) {
	return n.s.LastEvent(ctx, ns(id))
}

// Repo is the repository of usage aggregates.
type Repo = aggregate.Repository[usage.State, usage.Event, usage.Command]

// Definition is the usage aggregate for the repository: kind "instance"
// inside the usage namespace (see Namespace).
var Definition = aggregate.Definition[usage.State, usage.Event, usage.Command]{
	Kind: instance.Kind, Decide: usage.Decide, Evolve: usage.Evolve, Encode: usage.Encode, Decode: usage.Decode,
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Rules are the validation rules; zero means usage.DefaultRules().
	Rules usage.Rules
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Aggregate tunes the repository; zero means aggregate.DefaultConfig().
	Aggregate aggregate.Config
}

// Service records and reads usage: the query API's POST and GET /v1/usage
// and the pusher share it. It is safe for concurrent use.
type Service struct {
	repo  *Repo
	rules usage.Rules
	now   func() time.Time
}

// NewService builds the service on the event log store (the usage
// namespace is applied here).
func NewService(store eventstore.Store, cfg ServiceConfig) (*Service, error) {
	if store == nil {
		return nil, errors.New("usagepush: NewService needs the event store")
	}
	if cfg.Rules == (usage.Rules{}) {
		cfg.Rules = usage.DefaultRules()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ac := cfg.Aggregate
	if ac.CacheSize == 0 && ac.MaxRetries == 0 {
		ac = aggregate.DefaultConfig()
		ac.CacheSize = 10_000
	}
	ac.Now = cfg.Now
	repo, err := aggregate.New(Namespace(store), Definition, ac)
	if err != nil {
		return nil, err
	}
	return &Service{repo: repo, rules: cfg.Rules, now: cfg.Now}, nil
}

// Rules returns the validation rules.
func (s *Service) Rules() usage.Rules { return s.rules }

// Parse validates one reported record now.
func (s *Service) Parse(in usage.Input) (usage.Record, *usage.FieldError) {
	return usage.Parse(in, s.rules, s.now())
}

// Report records parsed records (of any instances) idempotently: per
// instance one UsageRecorded event with the records not recorded yet. The
// results are in the order of recs. cause is recorded with the events.
func (s *Service) Report(ctx context.Context, recs []usage.Record, cause event.Causation) ([]usage.Result, error) {
	var order []string
	byInst := map[string][]usage.Record{}
	for _, r := range recs {
		if _, ok := byInst[r.InstanceID]; !ok {
			order = append(order, r.InstanceID)
		}
		byInst[r.InstanceID] = append(byInst[r.InstanceID], r)
	}
	type done struct {
		after    usage.State
		appended map[string]bool
	}
	states := map[string]done{}
	for _, inst := range order {
		after, evs, err := s.repo.Execute(ctx, inst, usage.Report{InstanceID: inst, Records: byInst[inst]}, cause)
		if err != nil {
			return nil, fmt.Errorf("usagepush: record usage of %s: %w", inst, err)
		}
		d := done{after: after, appended: map[string]bool{}}
		for _, e := range evs {
			if rec, ok := e.(usage.Recorded); ok {
				for _, r := range rec.Records {
					d.appended[r.MeteringSN] = true
				}
			}
		}
		states[inst] = d
	}
	out := make([]usage.Result, len(recs))
	seen := map[string]bool{}
	for i, r := range recs {
		d := states[r.InstanceID]
		o := usage.Classify(d.after, r, d.appended[r.MeteringSN] && !seen[r.MeteringSN])
		seen[r.MeteringSN] = true
		e, _ := d.after.Entry(r.MeteringSN)
		out[i] = usage.Result{InstanceID: r.InstanceID, MeteringSN: r.MeteringSN, Outcome: o, Status: e.Status}
	}
	return out, nil
}

// Usage returns the usage of an instance, fresh from the log, and the
// stream sequence it reflects (0: nothing recorded).
func (s *Service) Usage(ctx context.Context, instanceID string) (usage.State, uint64, error) {
	return s.repo.Get(ctx, instanceID, true)
}

// at returns the usage of an instance reflecting at least seq.
func (s *Service) at(ctx context.Context, instanceID string, seq uint64) (usage.State, error) {
	st, _, err := s.repo.GetAt(ctx, instanceID, seq)
	return st, err
}

// record appends an outcome.
func (s *Service) record(ctx context.Context, instanceID string, o usage.RecordOutcome) (usage.State, error) {
	st, _, err := s.repo.Execute(ctx, instanceID, o, event.Causation{Actor: "effect:" + Name})
	return st, err
}
