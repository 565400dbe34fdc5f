package effects

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// panicError is the error of an attempt whose handler (or middleware)
// panicked: an ordinary, retryable error. Its text is short, because it
// becomes the reason of a parked event; the stack is logged. It wraps
// watermill's middleware.RecoveredPanicError.
type panicError struct {
	effect    string
	value     any // what was passed to panic
	recovered error
}

func (p *panicError) Error() string { return fmt.Sprintf("effect %s panicked: %v", p.effect, p.value) }

// Unwrap returns watermill's RecoveredPanicError (with the stack).
func (p *panicError) Unwrap() error { return p.recovered }

// recoverPanics is watermill's middleware.Recoverer (outermost in the
// chain, so it also catches the middlewares' panics) with its error made
// a panicError and the stack logged.
func recoverPanics(name string, log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		rec := middleware.Recoverer(h)
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := rec(msg)
			var p middleware.RecoveredPanicError
			if err == nil || !errors.As(err, &p) {
				return out, err
			}
			log.Error("effect handler panicked", "eventId", msg.UUID,
				"instanceId", msg.Metadata.Get(MetadataInstanceID), "seq", msg.Metadata.Get(MetadataStreamSeq),
				"attempt", msg.Metadata.Get(MetadataAttempt), "panic", fmt.Sprint(p.V), "stack", p.Stacktrace)
			return out, &panicError{effect: name, value: p.V, recovered: err}
		}
	}
}
