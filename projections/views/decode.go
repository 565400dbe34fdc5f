package views

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
)

// item is one entry of the log, decoded as far as the views need it.
type item struct {
	seq  uint64
	kind string // the aggregate kind, from the subject
	env  event.Envelope
	// ev is the decoded event (an instance.Event, license.Event,
	// licensecode.Event, usage.Event, or effect.Done, Parked, Redriven); nil when the views have nothing to do with the entry
	// (another kind, an unknown type, a debug event). Such entries still
	// advance the checkpoint.
	ev any
}

// batch is a run of consecutive log entries.
type batch struct {
	items []item
	// first and last are the sequences of the first and the last entry.
	first, last uint64
}

// skipReason says why decode left ev nil, "" if it did not.
type skipReason string

const (
	skipNone    skipReason = ""
	skipKind    skipReason = "kind"    // a kind the views ignore (order index, order notifications, …)
	skipUnknown skipReason = "unknown" // an event type this program does not know
	skipDebug   skipReason = "debug"   // Causation.TestFlag: never in the log, ignored if seen
)

// kindOf returns the aggregate kind of subject "<prefix>.<kind>.<keys…>".
func kindOf(prefix, subject string) string {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return rest[:i]
	}
	return rest
}

var knownInstanceTypes = map[string]bool{
	instance.TypeCreated: true, instance.TypeProvisioned: true, instance.TypeProvisioningFailed: true,
	instance.TypeRefreshed: true, instance.TypeFrozen: true, instance.TypeUnfrozen: true,
	instance.TypeReleased: true, instance.TypeUpgraded: true, instance.TypeOrderQueried: true,
}

// decodeEntry decodes the entry at seq. Entries of other kinds are not
// decoded at all. An entry of a known type that cannot be decoded (corrupt,
// or a schema version newer than this program) is an error: skipping it
// would make the views silently wrong, so the projector stops there and
// retries (a newer replica sharing the database can apply it meanwhile).
func decodeEntry(prefix, subject string, seq uint64, data []byte) (item, skipReason, error) {
	it := item{seq: seq, kind: kindOf(prefix, subject)}
	switch it.kind {
	case instance.Kind, effect.Kind, license.Kind, licensecode.Kind:
	case usage.Kind:
		// Only the instances' usage streams, "<prefix>.usage.instance.<id>";
		// the usage pusher's own progress streams live in the same
		// namespace ("<prefix>.usage.effect.…") and are not projected.
		if !strings.HasPrefix(subject, prefix+"."+usage.Kind+"."+instance.Kind+".") {
			return it, skipKind, nil
		}
	default:
		return it, skipKind, nil
	}
	env, err := eventstore.DecodeEnvelope(data)
	if err != nil {
		return it, skipNone, fmt.Errorf("views: entry %d on %s: %w", seq, subject, err)
	}
	it.env = env
	if env.Causation.TestFlag {
		return it, skipDebug, nil
	}
	switch it.kind {
	case instance.Kind:
		if !knownInstanceTypes[env.Type] {
			return it, skipUnknown, nil
		}
		e, err := instance.Decode(env.Type, env.Version, env.Data)
		if err != nil {
			return it, skipNone, fmt.Errorf("views: entry %d on %s: %w", seq, subject, err)
		}
		it.ev = e
	case license.Kind, licensecode.Kind, usage.Kind:
		known, decode := otherDecoders(it.kind)
		if !known[env.Type] {
			return it, skipUnknown, nil
		}
		e, err := decode(env.Type, env.Version, env.Data)
		if err != nil {
			return it, skipNone, fmt.Errorf("views: entry %d on %s: %w", seq, subject, err)
		}
		it.ev = e
	case effect.Kind:
		var v any
		switch env.Type {
		case effect.TypeDone:
			v = &effect.Done{}
		case effect.TypeParked:
			v = &effect.Parked{}
		case effect.TypeRedriven:
			v = &effect.Redriven{}
		default:
			return it, skipUnknown, nil
		}
		if env.Version > 1 {
			return it, skipNone, fmt.Errorf("views: entry %d on %s: %s: unsupported schema version %d", seq, subject, env.Type, env.Version)
		}
		if err := json.Unmarshal(env.Data, v); err != nil {
			return it, skipNone, fmt.Errorf("views: entry %d on %s: decode %s: %w", seq, subject, env.Type, err)
		}
		switch v := v.(type) {
		case *effect.Done:
			it.ev = *v
		case *effect.Parked:
			it.ev = *v
		case *effect.Redriven:
			it.ev = *v
		}
	}
	return it, skipNone, nil
}

var (
	knownLicenseTypes = map[string]bool{
		license.TypeIssued: true, license.TypeRefreshed: true, license.TypeExpired: true, license.TypeReleased: true,
	}
	knownCodeTypes = map[string]bool{
		licensecode.TypeRegistered: true, licensecode.TypeRefreshed: true, licensecode.TypeFrozen: true,
		licensecode.TypeUnfrozen: true, licensecode.TypeReleased: true, licensecode.TypeActivated: true,
		licensecode.TypeActivationFailed: true, licensecode.TypeQueried: true, licensecode.TypeUsageReported: true,
	}
	knownUsageTypes = map[string]bool{usage.TypeRecorded: true, usage.TypePushed: true, usage.TypeRejected: true}
)

// otherDecoders returns the known event types of kind (license,
// licensecode or usage) and a decoder returning the domain event.
func otherDecoders(kind string) (map[string]bool, func(string, int, []byte) (any, error)) {
	switch kind {
	case license.Kind:
		return knownLicenseTypes, func(t string, v int, d []byte) (any, error) { return license.Decode(t, v, d) }
	case licensecode.Kind:
		return knownCodeTypes, func(t string, v int, d []byte) (any, error) { return licensecode.Decode(t, v, d) }
	}
	return knownUsageTypes, func(t string, v int, d []byte) (any, error) { return usage.Decode(t, v, d) }
}
