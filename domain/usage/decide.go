package usage

import (
	"errors"
	"fmt"
)

// ErrInvalid marks a command that is malformed (not a refusal of the
// vendor's data, which Parse reports per field).
var ErrInvalid = errors.New("usage: invalid command")

// Command is an intention on an instance's usage.
type Command interface{ usageCommand() }

// Report records parsed records of one instance. Records whose
// metering_sn is recorded already are skipped (see Classify); so are later
// records of the same metering_sn within the report.
type Report struct {
	InstanceID string
	Records    []Record
}

// RecordOutcome records what became of one push (or of the last check
// before one). Only pending records change; outcomes of records already
// delivered or refused are ignored, so recording an outcome twice is
// harmless.
type RecordOutcome struct {
	BatchID string
	// Accepted are the delivered metering_sns, Duplicates those of them
	// KooGallery reported as already received.
	Accepted   []string
	Duplicates []string
	Rejected   []Rejection
	// Local: the rejections are Gallerist's own.
	Local bool
	Host  string
}

func (Report) usageCommand()        {}
func (RecordOutcome) usageCommand() {}

// Decide returns the events of c on s (none for a repeat), or an error
// wrapping ErrInvalid. It never mutates s.
func Decide(s State, c Command) ([]Event, error) {
	switch c := c.(type) {
	case Report:
		return decideReport(s, c)
	case RecordOutcome:
		return decideOutcome(s, c)
	case nil:
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: unknown command %T", ErrInvalid, c)
}

func decideReport(s State, c Report) ([]Event, error) {
	if c.InstanceID == "" {
		return nil, fmt.Errorf("%w: report needs instanceId", ErrInvalid)
	}
	if s.InstanceID != "" && s.InstanceID != c.InstanceID {
		return nil, fmt.Errorf("%w: report for %s on the usage of %s", ErrInvalid, c.InstanceID, s.InstanceID)
	}
	var fresh []Record
	seen := map[string]bool{}
	for _, r := range c.Records {
		if r.InstanceID != c.InstanceID {
			return nil, fmt.Errorf("%w: record %s of instance %s in a report for %s", ErrInvalid, r.MeteringSN, r.InstanceID, c.InstanceID)
		}
		if r.MeteringSN == "" || r.MeteringSN != MeteringSN(r.InstanceID, r.RecordKey) {
			return nil, fmt.Errorf("%w: record %q has no or a wrong metering_sn", ErrInvalid, r.RecordKey)
		}
		if _, known := s.entries[r.MeteringSN]; known || seen[r.MeteringSN] {
			continue
		}
		seen[r.MeteringSN] = true
		fresh = append(fresh, r)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	return []Event{Recorded{InstanceID: c.InstanceID, Records: fresh}}, nil
}

func decideOutcome(s State, c RecordOutcome) ([]Event, error) {
	if c.BatchID == "" && !c.Local {
		return nil, fmt.Errorf("%w: a push outcome needs its batch id", ErrInvalid)
	}
	pending := func(sn string) bool {
		e, ok := s.entries[sn]
		return ok && e.Status == StatusPending
	}
	done := map[string]bool{}
	var rej []Rejection
	for _, r := range c.Rejected {
		if pending(r.MeteringSN) && !done[r.MeteringSN] {
			done[r.MeteringSN] = true
			rej = append(rej, r)
		}
	}
	var acc, dups []string
	isDup := map[string]bool{}
	for _, sn := range c.Duplicates {
		isDup[sn] = true
	}
	for _, sn := range c.Accepted {
		if pending(sn) && !done[sn] {
			done[sn] = true
			acc = append(acc, sn)
			if isDup[sn] {
				dups = append(dups, sn)
			}
		}
	}
	var out []Event
	if len(acc) > 0 {
		out = append(out, Pushed{InstanceID: s.InstanceID, BatchID: c.BatchID, Accepted: acc, Duplicates: dups, Host: c.Host})
	}
	if len(rej) > 0 {
		out = append(out, Rejected{InstanceID: s.InstanceID, BatchID: c.BatchID, Local: c.Local, Rejections: rej})
	}
	return out, nil
}

// Outcome says what a report did with one record.
type Outcome string

// The outcomes of a reported record.
const (
	// OutcomeRecorded: new, recorded now.
	OutcomeRecorded Outcome = "recorded"
	// OutcomeDuplicate: recorded before with the same content (idempotent
	// re-report).
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeConflict: its recordKey was recorded before with other
	// content; the first report stands.
	OutcomeConflict Outcome = "conflict"
)

// Classify tells what a report did with r, given the state after the
// report and whether r's metering_sn was in the events it appended.
func Classify(after State, r Record, appendedNow bool) Outcome {
	e, ok := after.entries[r.MeteringSN]
	switch {
	case !ok:
		return OutcomeConflict // cannot happen after a successful report
	case !sameContent(e.Record, r):
		return OutcomeConflict
	case appendedNow:
		return OutcomeRecorded
	}
	return OutcomeDuplicate
}

// Result is what a report did with one record.
type Result struct {
	InstanceID string
	MeteringSN string
	Outcome    Outcome
	// Status is the record's delivery status after the report.
	Status Status
}
