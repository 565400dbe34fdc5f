package usage

import (
	"maps"
	"slices"
)

// Status is where a record is in its delivery.
type Status string

// The statuses.
const (
	// StatusPending: recorded, not delivered yet (pushes may have failed
	// and will be retried with the same metering_sn).
	StatusPending Status = "pending"
	// StatusPushed: KooGallery accepted it (or reported it as a duplicate).
	StatusPushed Status = "pushed"
	// StatusRejected: KooGallery, or the last check before a push, refused
	// it; it is never pushed again.
	StatusRejected Status = "rejected"
)

// Entry is one record of the instance and its delivery.
type Entry struct {
	Record Record `json:"record"`
	// Ordinal orders the records of the instance as recorded (0-based).
	Ordinal int    `json:"ordinal"`
	Status  Status `json:"status"`
	// BatchID is the push that delivered or refused it.
	BatchID string `json:"batchId,omitempty"`
	// Duplicate: KooGallery reported it as already received.
	Duplicate bool `json:"duplicate,omitempty"`
	// Code and Message are the rejection's.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Local: the rejection is Gallerist's own.
	Local bool `json:"local,omitempty"`
}

// State is the usage of one instance. Its map is copied on write by
// Evolve, so a State handed out is never changed afterwards (readers of a
// cached state need no lock).
type State struct {
	InstanceID string
	// Events counts the events folded.
	Events  int
	entries map[string]Entry // by metering_sn
	pending int
}

// Len is the number of records.
func (s State) Len() int { return len(s.entries) }

// PendingLen is the number of records not delivered yet.
func (s State) PendingLen() int { return s.pending }

// Entry returns the record with metering_sn sn.
func (s State) Entry(sn string) (Entry, bool) {
	e, ok := s.entries[sn]
	return e, ok
}

// Entries returns every record, in the order recorded.
func (s State) Entries() []Entry {
	out := slices.Collect(maps.Values(s.entries))
	slices.SortFunc(out, func(a, b Entry) int { return a.Ordinal - b.Ordinal })
	return out
}

// Pending returns up to limit pending records, oldest first: the next
// batch to push.
func (s State) Pending(limit int) []Record {
	if s.pending == 0 || limit <= 0 {
		return nil
	}
	var es []Entry
	for _, e := range s.entries {
		if e.Status == StatusPending {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b Entry) int { return a.Ordinal - b.Ordinal })
	out := make([]Record, 0, min(limit, len(es)))
	for _, e := range es[:min(limit, len(es))] {
		out = append(out, e.Record)
	}
	return out
}

// Evolve folds one event into the state. It trusts the event and never
// fails; outcomes of records no longer pending change nothing.
func Evolve(s State, e Event) State {
	s.Events++
	switch e := e.(type) {
	case Recorded:
		if s.InstanceID == "" {
			s.InstanceID = e.InstanceID
		}
		next := cloneEntries(s.entries, len(e.Records))
		for _, r := range e.Records {
			if _, dup := next[r.MeteringSN]; dup {
				continue
			}
			next[r.MeteringSN] = Entry{Record: r, Ordinal: len(next), Status: StatusPending}
			s.pending++
		}
		s.entries = next
	case Pushed:
		next := cloneEntries(s.entries, 0)
		dups := make(map[string]bool, len(e.Duplicates))
		for _, sn := range e.Duplicates {
			dups[sn] = true
		}
		for _, sn := range e.Accepted {
			en, ok := next[sn]
			if !ok || en.Status != StatusPending {
				continue
			}
			en.Status, en.BatchID, en.Duplicate = StatusPushed, e.BatchID, dups[sn]
			next[sn] = en
			s.pending--
		}
		s.entries = next
	case Rejected:
		next := cloneEntries(s.entries, 0)
		for _, r := range e.Rejections {
			en, ok := next[r.MeteringSN]
			if !ok || en.Status != StatusPending {
				continue
			}
			en.Status, en.BatchID, en.Code, en.Message, en.Local = StatusRejected, e.BatchID, r.Code, r.Message, e.Local
			next[r.MeteringSN] = en
			s.pending--
		}
		s.entries = next
	}
	return s
}

func cloneEntries(m map[string]Entry, extra int) map[string]Entry {
	out := make(map[string]Entry, len(m)+extra)
	maps.Copy(out, m)
	return out
}

// Fold folds events into the empty state.
func Fold(events ...Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}
