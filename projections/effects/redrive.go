package effects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
)

// listBatch is how many progress events one fetch of ListParked asks for.
const listBatch = 1024

// check reports whether name is this runner's effect ("" is).
func (r *Runner) check(name string) error {
	if name != "" && name != r.name {
		return fmt.Errorf("%w: %q (this runner runs %q)", ErrUnknownEffect, name, r.name)
	}
	return nil
}

// ListParked returns every parked event of the effect (name "" means this
// runner's), oldest event first. It reads the effect's progress streams
// from the log (one pass over "<prefix>.effect.<name>.>" with a temporary
// consumer), so it is exact, and costs one read of every progress event of
// the effect; the SQL view of parked effects is the cheap listing for
// dashboards.
func (r *Runner) ListParked(ctx context.Context, name string) ([]ParkedEffect, error) {
	if err := r.check(name); err != nil {
		return nil, err
	}
	st, err := r.getStream(ctx)
	if err != nil {
		return nil, err
	}
	filter := r.prefix + "." + effect.Kind + "." + r.name + ".>"
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "Gallerist: list parked events of effect " + r.name,
		FilterSubject:     filter,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: time.Minute, // cleans up after a crash
		MemoryStorage:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("effects: list parked: consumer on %s: %w", filter, err)
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := st.DeleteConsumer(dctx, info.Name); err != nil {
			r.log.Debug("deleting the listing consumer", "consumer", info.Name, "err", err)
		}
	}()

	byInstance := map[string]*Progress{}
	pending := info.NumPending
	for pending > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("effects: list parked: %w", err)
		}
		batch, err := cons.FetchNoWait(listBatch)
		if err != nil {
			return nil, fmt.Errorf("effects: list parked: fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("effects: list parked: %w", err)
			}
			pending = md.NumPending
			sid, err := eventstore.ParseSubject(r.prefix, m.Subject())
			if err != nil || len(sid.Keys) != 2 {
				return nil, fmt.Errorf("effects: list parked: progress event on unexpected subject %q: %v", m.Subject(), err)
			}
			env, err := eventstore.DecodeEnvelope(m.Data())
			if err != nil {
				return nil, fmt.Errorf("effects: list parked: sequence %d: %w", md.Sequence.Stream, err)
			}
			inst := sid.Keys[1]
			p := byInstance[inst]
			if p == nil {
				p = &Progress{Effect: r.name, InstanceID: inst}
				byInstance[inst] = p
			}
			if err := p.apply(eventstore.Record{Seq: md.Sequence.Stream, Subject: m.Subject(), Event: env}); err != nil {
				return nil, err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("effects: list parked: fetch: %w", err)
		}
		if got == 0 && pending > 0 {
			// Nothing available although messages are pending: let the
			// server catch up rather than spin.
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	var out []ParkedEffect
	for _, p := range byInstance {
		out = append(out, p.Parked...)
	}
	slices.SortFunc(out, func(a, b ParkedEffect) int {
		switch {
		case a.EventSeq < b.EventSeq:
			return -1
		case a.EventSeq > b.EventSeq:
			return 1
		}
		return 0
	})
	return out, nil
}

// Redrive re-runs the parked events of one instance, oldest first, through
// the same handler, retries and recording as the consumer: it appends
// EffectRedriven (naming operator), then handles each parked event in
// sequence order and records EffectDone, until none is parked. If an event
// fails again it is parked again with the new reason and Redrive returns
// an error wrapping [ErrStillParked]; the events behind it stay parked.
// Events held back while the re-drive runs are re-driven too. Nothing
// parked is [ErrNotParked]. Redrive blocks for the retries of each event
// (ctx bounds it; a cancelled re-drive leaves the rest parked).
func (r *Runner) Redrive(ctx context.Context, name, instanceID, operator string) error {
	if err := r.check(name); err != nil {
		return err
	}
	return r.redrive(ctx, instanceID, operator, 0)
}

// RedriveEvent re-runs the one parked event at seq of instance instanceID
// like [Runner.Redrive], and leaves the instance's later parked events
// parked. Only the instance's oldest parked event can be re-driven alone:
// any other is [ErrOutOfOrder].
func (r *Runner) RedriveEvent(ctx context.Context, name, instanceID string, seq uint64, operator string) error {
	if err := r.check(name); err != nil {
		return err
	}
	if seq == 0 {
		return fmt.Errorf("%w: event sequence 0", ErrNotParked)
	}
	return r.redrive(ctx, instanceID, operator, seq)
}

// RedriveAll re-drives every instance with parked events of the effect
// (name "" means this runner's), up to Concurrency instances at once, each
// like [Runner.Redrive]. It returns the errors of the instances that are
// still parked, joined.
func (r *Runner) RedriveAll(ctx context.Context, name, operator string) error {
	parked, err := r.ListParked(ctx, name)
	if err != nil {
		return err
	}
	var instances []string
	seen := map[string]bool{}
	for _, p := range parked {
		if !seen[p.InstanceID] {
			seen[p.InstanceID] = true
			instances = append(instances, p.InstanceID)
		}
	}
	errs := make([]error, len(instances))
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, inst := range instances {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := r.redrive(ctx, inst, operator, 0)
			if errors.Is(err, ErrNotParked) {
				err = nil // re-driven by someone else meanwhile
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// redrive re-drives the parked events of one instance; only != 0 limits it
// to the event at that sequence.
func (r *Runner) redrive(ctx context.Context, inst, operator string, only uint64) error {
	log := r.log.With("instanceId", inst, "operator", operator)
	for conflicts := 0; ; conflicts++ {
		p, err := r.Progress(ctx, inst)
		if err != nil {
			return err
		}
		switch {
		case len(p.Parked) == 0:
			return fmt.Errorf("%w: effect %s has nothing parked for instance %s", ErrNotParked, r.name, inst)
		case only != 0 && !p.IsParked(only):
			return fmt.Errorf("%w: effect %s, instance %s: event %d", ErrNotParked, r.name, inst, only)
		case only != 0 && p.Parked[0].EventSeq != only:
			return fmt.Errorf("%w: effect %s, instance %s: event %d is parked before event %d",
				ErrOutOfOrder, r.name, inst, p.Parked[0].EventSeq, only)
		}
		err = r.appendProgress(ctx, p, "", effect.TypeRedriven, effect.Redriven{Effect: r.name, InstanceID: inst, Operator: operator})
		if errors.Is(err, eventstore.ErrConflict) && conflicts < maxConflicts {
			continue
		}
		if err != nil {
			return err
		}
		log.Info("re-drive recorded", "parked", len(p.Parked), "event", only)
		break
	}

	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		p, err := r.Progress(ctx, inst)
		if err != nil {
			return err
		}
		if len(p.Parked) == 0 {
			return nil
		}
		next := p.Parked[0]
		if only != 0 && next.EventSeq != only {
			return nil // done (by us or by a concurrent re-drive)
		}
		env, raw, err := r.fetch(ctx, inst, next.EventSeq)
		if err != nil {
			return err
		}
		elog := log.With("seq", next.EventSeq, "eventId", env.ID, "eventType", env.Type)
		d := &delivery{env: env, raw: raw, seq: next.EventSeq, inst: inst, operator: operator}
		attempts, herr, abandoned := r.try(ctx, d, elog, sleep)
		if abandoned {
			return fmt.Errorf("effects: re-drive of %s event %d abandoned after %d attempts: %w", inst, next.EventSeq, attempts, ctx.Err())
		}
		seq := next.EventSeq
		if err := r.record(ctx, p, env, inst, seq, attempts, herr, func(p Progress) bool { return p.IsParked(seq) }); err != nil {
			return err
		}
		if herr != nil {
			return fmt.Errorf("%w: effect %s, instance %s, event %d (%s) after %d attempts: %s",
				ErrStillParked, r.name, inst, seq, env.Type, attempts, reason(herr))
		}
		if only != 0 {
			return nil
		}
	}
}

// fetch reads the instance event at stream sequence seq: decoded, and as
// stored.
func (r *Runner) fetch(ctx context.Context, inst string, seq uint64) (event.Envelope, []byte, error) {
	st, err := r.getStream(ctx)
	if err != nil {
		return event.Envelope{}, nil, err
	}
	subj, err := eventstore.Subject(r.prefix, instanceStream(inst))
	if err != nil {
		return event.Envelope{}, nil, err
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return event.Envelope{}, nil, fmt.Errorf("effects: read event %d of %s: %w", seq, inst, err)
	}
	if m.Subject != subj {
		return event.Envelope{}, nil, fmt.Errorf("effects: event %d is on %s, not on %s", seq, m.Subject, subj)
	}
	env, err := eventstore.DecodeEnvelope(m.Data)
	if err != nil {
		return event.Envelope{}, nil, fmt.Errorf("effects: event %d of %s: %w", seq, inst, err)
	}
	return env, m.Data, nil
}
