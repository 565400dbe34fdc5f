package effects

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/gallerist/gallerist/domain/event"
)

// correlationID is the correlation id of an instance event's attempts: the
// nonce of the marketplace request that caused it, else the event's id.
// It is set on each attempt's message with watermill's
// middleware.SetCorrelationID, under middleware.CorrelationIDMetadataKey.
// (watermill's middleware.CorrelationID is not in the chain: it copies the
// id onto the messages a handler produces, and effects produce none.)
func correlationID(env event.Envelope) string {
	if env.Causation.Nonce != "" {
		return env.Causation.Nonce
	}
	return env.ID
}

// CorrelationID returns the correlation id of the attempt that ctx, a
// context given to [Handler.Handle] by a [Runner], belongs to: the nonce of
// the marketplace request that caused the event, else the event's id (as
// read from the message's metadata, so a middleware may change it). It is
// "" for any other context.
func CorrelationID(ctx context.Context) string {
	msg := MessageFromContext(ctx)
	if msg == nil {
		return ""
	}
	return middleware.MessageCorrelationID(msg)
}
