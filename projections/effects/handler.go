// Package effects runs side effects of instance events (vendor webhook,
// Query Order, …) with at-least-once delivery, retries with backoff and
// jitter, per-instance ordering and parking.
package effects

import (
	"context"
	"errors"

	"github.com/gallerist/gallerist/domain/event"
)

// Handler performs one effect for one instance event.
//
// Handle returns nil when the effect is done, an error wrapped by Permanent
// when retrying cannot help (the event is parked at once), and any other
// error to be retried with backoff (and parked after the last attempt).
// Handle must be idempotent: after a crash an event may be handled again;
// ev.ID is the idempotency key to hand to downstream systems. The ctx of a
// call carries the attempt's watermill message: see [CorrelationID] and
// [MessageFromContext].
type Handler interface {
	// Name is the effect's stable name: its durable consumer and the key of
	// its progress streams, e.g. "webhook" or "queryorder".
	Name() string
	// Wants reports whether the effect acts on instance events of this type.
	Wants(eventType string) bool
	// Handle performs the effect for ev, the event at stream sequence seq.
	Handle(ctx context.Context, ev event.Envelope, seq uint64) error
}

// FirstOfInstance is an optional interface of a [Handler]: FirstOfInstance
// reports that an event of this type always comes first among the events
// the handler wants of its instance (InstanceCreated, which opens the
// instance's stream, for an effect that wants it). Before handling such an
// event the runner reads only the effect's progress for the instance (one
// direct get when it is empty), not the instance's events: no earlier
// event can be in flight or parked. It saves reads on the path a caller
// may be waiting on (newInstance waits for provisioning). Answer true only
// when it holds for every instance, or later events could overtake an
// earlier one.
type FirstOfInstance interface {
	FirstOfInstance(eventType string) bool
}

// SuccessUnrecorded is an optional interface of a [Handler]:
// SuccessUnrecorded reports that a successfully handled event of this type
// needs no progress record. The runner then neither checks the instance's
// turn nor appends EffectDone for it, which saves a read and a write on a
// path a caller may be waiting on (newInstance waits for provisioning); a
// failed event is still parked (and recorded) as usual. Answer true only
// for the single event type the handler wants of an instance, and only
// when Handle is idempotent by itself (it sees that the work is done, e.g.
// the instance is provisioned already): a redelivery after a crash, or a
// re-drive of a parked event that succeeded meanwhile, runs it again.
type SuccessUnrecorded interface {
	SuccessUnrecorded(eventType string) bool
}

// errPermanent marks an error as not worth retrying.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return "permanent: " + p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the runner parks the event without retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
