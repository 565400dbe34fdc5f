package effects

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
)

// progressVersion is the schema version the runner writes progress events
// with.
const progressVersion = 1

// ParkedEffect is one parked instance event of one effect: the effect gave
// up on it (or held it back behind an earlier parked event) and waits for
// an operator's re-drive.
type ParkedEffect struct {
	Effect     string `json:"effect"`
	InstanceID string `json:"instanceId"`
	EventID    string `json:"eventId"`
	// EventSeq is the instance event's stream sequence.
	EventSeq  uint64 `json:"eventSeq"`
	EventType string `json:"eventType"`
	// Attempts is how many handler calls were made before parking; 0 for
	// an event held back behind an earlier parked event.
	Attempts int    `json:"attempts"`
	Reason   string `json:"reason"`
	// HeldBack is set when the event was never tried because an earlier
	// event of the instance was parked.
	HeldBack bool `json:"heldBack,omitempty"`
	// ParkedAt is when the Parked event was recorded.
	ParkedAt time.Time `json:"parkedAt"`
}

// Progress is the folded progress stream of one effect for one instance.
type Progress struct {
	Effect     string `json:"effect"`
	InstanceID string `json:"instanceId"`
	// Seq is the stream sequence of the last progress event, 0 if none: the
	// expected sequence of the next append.
	Seq uint64 `json:"seq"`
	// Cursor is the highest instance-event sequence handled (done or
	// parked). Every wanted instance event at or below it is handled,
	// because events are only handled in order.
	Cursor uint64 `json:"cursor"`
	// Parked lists the parked events, oldest first.
	Parked []ParkedEffect `json:"parked,omitempty"`
	// Done counts EffectDone events; Redrives counts EffectRedriven ones.
	Done     int `json:"done"`
	Redrives int `json:"redrives"`
}

// IsParked reports whether the instance event at seq is parked.
func (p Progress) IsParked(seq uint64) bool {
	_, ok := p.parkedAt(seq)
	return ok
}

func (p Progress) parkedAt(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(p.Parked, seq, func(e ParkedEffect, s uint64) int {
		switch {
		case e.EventSeq < s:
			return -1
		case e.EventSeq > s:
			return 1
		}
		return 0
	})
}

// apply folds one stored progress event into p.
func (p *Progress) apply(rec eventstore.Record) error {
	ev := rec.Event
	if ev.Version != progressVersion {
		return fmt.Errorf("effects: %s at sequence %d: unsupported schema version %d", ev.Type, rec.Seq, ev.Version)
	}
	switch ev.Type {
	case effect.TypeDone:
		var d effect.Done
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("effects: %s at sequence %d: %w", ev.Type, rec.Seq, err)
		}
		if i, ok := p.parkedAt(d.EventSeq); ok {
			p.Parked = slices.Delete(p.Parked, i, i+1)
		}
		p.Cursor = max(p.Cursor, d.EventSeq)
		p.Done++
	case effect.TypeParked:
		var d effect.Parked
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("effects: %s at sequence %d: %w", ev.Type, rec.Seq, err)
		}
		pe := ParkedEffect{
			Effect: d.Effect, InstanceID: d.InstanceID, EventID: d.EventID, EventSeq: d.EventSeq,
			EventType: d.EventType, Attempts: d.Attempts, Reason: d.Reason, HeldBack: d.Attempts == 0,
			ParkedAt: ev.OccurredAt,
		}
		if i, ok := p.parkedAt(d.EventSeq); ok {
			p.Parked[i] = pe // parked again after a re-drive
		} else {
			p.Parked = slices.Insert(p.Parked, i, pe)
		}
		p.Cursor = max(p.Cursor, d.EventSeq)
	case effect.TypeRedriven:
		p.Redrives++
	default:
		return fmt.Errorf("effects: unknown progress event type %q at sequence %d", ev.Type, rec.Seq)
	}
	p.Seq = rec.Seq
	return nil
}

// progressStream is the stream id of effect name's progress for instance.
func progressStream(name, instanceID string) eventstore.StreamID {
	return eventstore.StreamID{Kind: effect.Kind, Keys: []string{name, instanceID}}
}

// progressEnvelope wraps one progress event for the store.
func progressEnvelope(id, name, instanceID, typ string, data any, cause event.Causation, now time.Time) (event.Envelope, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return event.Envelope{}, fmt.Errorf("effects: encode %s: %w", typ, err)
	}
	return event.Envelope{
		ID: id, Type: typ, Version: progressVersion, AggregateKind: effect.Kind,
		AggregateID: name + "/" + instanceID, OccurredAt: now.UTC(), Causation: cause, Data: b,
	}, nil
}
