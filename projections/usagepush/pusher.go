// Package usagepush delivers the usage the vendor reports (domain/usage) to
// KooGallery's usage push (spec/outgoing.md §3): the Service records
// reports (the query API's POST /v1/usage) and reads an instance's usage
// (GET /v1/usage), and the Pusher is the effects.Handler that pushes.
//
// # Where the events live
//
// An instance's usage is one aggregate, the stream
// "<prefix>.usage.instance.<instanceId>" (see Namespace and domain/usage):
// the instance aggregate's own stream refuses unknown event types, and the
// views and the other effects of instances must not see usage. The
// effects runner of the pusher is an ordinary effects.Runner given the
// prefix Prefix(prefix) ("<prefix>.usage") and the store Namespace(store):
// in that namespace the usage streams are instance streams, so the runner
// brings its per-instance order, retries with backoff, parking, re-drive
// and progress streams ("<prefix>.usage.effect.usagepush.<instanceId>")
// without knowing about usage.
//
// # Batches
//
// The runner hands the pusher each UsageRecorded event (one per report and
// instance), in order per instance. The handler of an event pushes the
// instance's pending records, oldest first, at most 1000 per push, until
// every record of its own event is delivered or refused; each push's
// outcome is recorded (UsagePushed, UsageRejected) before the next. A later
// event whose records went out with an earlier push finds them delivered
// and is done at once. So batches form by themselves: while the pusher
// keeps up, each report is one push; when it falls behind (KooGallery was
// down), the backlog leaves in pushes of 1000. 2500 records reported at
// once (three reports of ≤ 1000) are three pushes.
//
// # Retries and the same metering_sn
//
// A record's metering_sn is derived from its instance and the vendor's
// record key and stored with it, so every retry, by the runner or after a
// crash between a push and the record of its outcome, sends the same
// metering_sn, and KooGallery de-duplicates (it answers 005/010, which
// count as delivered). Transport failures, HTTP 5xx and MKT.0999 are
// returned to the runner, which retries with backoff and parks after its
// last attempt (re-drive then resumes). Answers that refuse the records
// themselves (MKT.01xx but 0102, MKT.9001–9004) reject the listed records
// with their record codes, or, without a list, every record of the push
// with the overall code; the rest stays pending and goes with the next
// push. Authentication errors (MKT.0102, MKT.015x, APIGW.*) reject nothing:
// they are the deployment's to fix, so the event is parked at once
// (effects.Permanent) and re-driven after the fix, with the same records.
// Just before a push, records that have become older than the 21-day limit
// are rejected locally (code MKT.9004, Local) rather than sent to certain
// refusal.
//
// Batches are per instance: a push carries records of one instance only.
package usagepush

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
)

// Name is the effect's name: its durable consumer is "effect-usagepush".
const Name = "usagepush"

// Client is the usage push of the open-API client (*openapi.Client).
type Client interface {
	PushUsage(ctx context.Context, key []byte, recs []usage.Record, opt openapi.UsageOptions) (openapi.UsageAnswer, error)
}

// Config configures a Pusher.
type Config struct {
	// Key is the vendor interconnection key the pushes are signed with
	// (auth.md §7: the SaaS V2 access key). Secret.
	Key []byte
	// Options tune the pushes (usage_value as a number for the
	// international site).
	Options openapi.UsageOptions
	// BatchSize is the most records per push: 1..1000, 0 means 1000.
	BatchSize int
}

// Pusher is the effects.Handler of the usage push.
type Pusher struct {
	svc    *Service
	client Client
	cfg    Config
	log    *slog.Logger
}

var _ effects.Handler = (*Pusher)(nil)

// NewPusher builds the pusher over svc (whose clock and rules it uses).
// log nil discards.
func NewPusher(svc *Service, client Client, cfg Config, log *slog.Logger) (*Pusher, error) {
	switch {
	case svc == nil || client == nil:
		return nil, errors.New("usagepush: NewPusher needs the service and the open-API client")
	case len(cfg.Key) == 0:
		return nil, errors.New("usagepush: the vendor interconnection key is required to sign usage pushes")
	case cfg.BatchSize < 0 || cfg.BatchSize > usage.MaxBatch:
		return nil, fmt.Errorf("usagepush: batch size %d not in 1..%d", cfg.BatchSize, usage.MaxBatch)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = usage.MaxBatch
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pusher{svc: svc, client: client, cfg: cfg, log: log.With("component", "usagepush")}, nil
}

// Name implements effects.Handler.
func (p *Pusher) Name() string { return Name }

// Wants implements effects.Handler: the pusher acts on UsageRecorded.
func (p *Pusher) Wants(eventType string) bool { return eventType == usage.TypeRecorded }

// maxRounds bounds the pushes of one handler call: a call never loops
// forever, whatever KooGallery answers.
const maxRounds = 64

// Handle implements effects.Handler: it pushes the instance's pending
// records until those of ev are delivered or refused (see the package doc).
func (p *Pusher) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	e, err := usage.Decode(ev.Type, ev.Version, ev.Data)
	if err != nil {
		return effects.Permanent(err)
	}
	rec, ok := e.(usage.Recorded)
	if !ok {
		return nil
	}
	inst := rec.InstanceID
	if inst == "" {
		inst = ev.AggregateID
	}
	log := p.log.With("instanceId", inst, "seq", seq)
	for round := 0; ; round++ {
		st, err := p.svc.at(ctx, inst, seq)
		if err != nil {
			return err
		}
		if delivered(st, rec.Records) {
			return nil
		}
		if round >= maxRounds {
			return fmt.Errorf("usagepush: %s: records still pending after %d pushes", inst, round)
		}
		batch := st.Pending(p.cfg.BatchSize)
		if len(batch) == 0 {
			return nil
		}
		before := st.PendingLen()
		out, err := p.push(ctx, log, batch)
		if err != nil {
			return err
		}
		after, err := p.svc.record(ctx, inst, out)
		if err != nil {
			return fmt.Errorf("usagepush: record the outcome of %s: %w", out.BatchID, err)
		}
		if after.PendingLen() >= before {
			return fmt.Errorf("usagepush: %s: push %s delivered or refused nothing", inst, out.BatchID)
		}
	}
}

// delivered reports whether every record of recs is no longer pending.
func delivered(st usage.State, recs []usage.Record) bool {
	for _, r := range recs {
		if e, ok := st.Entry(r.MeteringSN); ok && e.Status == usage.StatusPending {
			return false
		}
	}
	return true
}

// push sends one batch (after the last local check) and turns the answer
// into the outcome to record; an error is for the runner.
func (p *Pusher) push(ctx context.Context, log *slog.Logger, batch []usage.Record) (usage.RecordOutcome, error) {
	rules, now := p.svc.rules, p.svc.now()
	var send []usage.Record
	var old []usage.Rejection
	for _, r := range batch {
		if rules.TooOld(r, now) {
			old = append(old, usage.Rejection{MeteringSN: r.MeteringSN, Code: openapi.UsageCodeTooOld,
				Message: fmt.Sprintf("beginTime %s is more than the 21-day limit before the push (%s)", usage.FormatTime(r.BeginTime), usage.FormatTime(now))})
			continue
		}
		send = append(send, r)
	}
	if len(old) > 0 {
		log.Warn("usage records too old to push; rejected", "records", len(old))
		return usage.RecordOutcome{Local: true, BatchID: "local-" + BatchID(batch), Rejected: old}, nil
	}
	id := BatchID(send)
	log = log.With("batchId", id, "records", len(send))
	ans, err := p.client.PushUsage(ctx, p.cfg.Key, send, p.cfg.Options)
	inBatch := make(map[string]bool, len(send))
	for _, r := range send {
		inBatch[r.MeteringSN] = true
	}
	out := usage.RecordOutcome{BatchID: id, Host: ans.Host}
	failed := map[string]bool{}
	for _, re := range ans.Records {
		if !inBatch[re.MeteringSN] || failed[re.MeteringSN] {
			continue
		}
		failed[re.MeteringSN] = true
		if re.Delivered() {
			out.Accepted = append(out.Accepted, re.MeteringSN)
			out.Duplicates = append(out.Duplicates, re.MeteringSN)
			continue
		}
		out.Rejected = append(out.Rejected, usage.Rejection{MeteringSN: re.MeteringSN, Code: re.Code, Message: re.Message})
	}
	switch {
	case err == nil:
		for _, r := range send {
			if !failed[r.MeteringSN] {
				out.Accepted = append(out.Accepted, r.MeteringSN)
			}
		}
		log.Info("usage pushed", "accepted", len(out.Accepted), "duplicates", len(out.Duplicates), "rejected", len(out.Rejected))
		return out, nil
	case openapi.UsageRefusesRecords(err):
		if len(failed) == 0 {
			for _, r := range send {
				out.Rejected = append(out.Rejected, usage.Rejection{MeteringSN: r.MeteringSN, Code: ans.Code, Message: ans.Message})
			}
		}
		log.Warn("usage push refused; records rejected", "code", ans.Code, "rejected", len(out.Rejected), "err", err)
		return out, nil
	case openapi.IsTemporary(err):
		return out, fmt.Errorf("usagepush: push %s: %w", id, err)
	}
	log.Error("usage push refused for a reason the records cannot fix (key, account or gateway); parking", "err", err)
	return out, effects.Permanent(fmt.Errorf("usagepush: push %s: %w", id, err))
}

// BatchID names a push by its records: the same records give the same id,
// so a retried push keeps its name.
func BatchID(recs []usage.Record) string {
	h := sha256.New()
	for _, r := range recs {
		h.Write([]byte(r.MeteringSN))
		h.Write([]byte{0})
	}
	return "b-" + hex.EncodeToString(h.Sum(nil))[:20]
}

// String describes the pusher without its key.
func (p *Pusher) String() string {
	return fmt.Sprintf("usagepush.Pusher{batch:%d numeric:%t key:[REDACTED]}", p.cfg.BatchSize, p.cfg.Options.NumericValue)
}
