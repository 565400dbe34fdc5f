package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// recordNotification appends an OrderNotified event to the order's
// notification stream. Every notification is kept (KooGallery may send
// several); concurrent appends retry on conflict.
func (s *Server) recordNotification(ctx context.Context, cl *call, orderID, orderLineID string) error {
	typ, ver, data, err := instance.Encode(instance.OrderNotified{OrderID: orderID, OrderLineID: orderLineID})
	if err != nil {
		return err
	}
	sid := eventstore.StreamID{Kind: instance.NotifyKind, Keys: []string{orderID}}
	env := event.Envelope{
		ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Version: ver, AggregateKind: instance.NotifyKind,
		AggregateID: orderID, OccurredAt: time.Now().UTC(), Causation: s.cause(cl, orderID, orderLineID, ""), Data: data,
	}
	for attempt := 0; attempt < 5; attempt++ {
		last, err := s.deps.Store.Last(ctx, sid)
		if err != nil {
			return fmt.Errorf("order notification %s: %w", orderID, err)
		}
		if _, err = s.deps.Store.Append(ctx, sid, last, env); err == nil || !errors.Is(err, eventstore.ErrConflict) {
			if err != nil {
				return fmt.Errorf("order notification %s: %w", orderID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("order notification %s: %w", orderID, eventstore.ErrConflict)
}
