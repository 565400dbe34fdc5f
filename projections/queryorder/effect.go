// Package queryorder is the Query Order enrichment effect (outgoing.md §2,
// saas-v2.md §3, §5, §8): after KooGallery created an instance, or sent it
// a new order (a renewal with change, an upgrade), it asks Query Order what
// was bought and records the answer on the instance as an
// InstanceOrderQueried event. It is an effects.Handler: the effects runner
// delivers the events, retries the transient failures and parks the
// permanent ones.
package queryorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
)

// Name is the effect's stable name (its consumer and progress streams).
const Name = "queryorder"

// Actor is the Causation.Actor of the events the effect records.
const Actor = "queryorder"

// Querier asks KooGallery about an order; *openapi.Client implements it.
// Errors are classified with openapi.IsTemporary, *openapi.APIError and
// openapi.ErrInvalidRequest.
type Querier interface {
	QueryOrder(ctx context.Context, orderID, orderLineID string) (instance.OrderInfo, error)
}

// Recorder runs instance commands; *instances.Service implements it.
type Recorder interface {
	Execute(ctx context.Context, id string, cmd instance.Command, cause event.Causation) (instance.State, error)
}

// Effect is the Query Order effect.
type Effect struct {
	q   Querier
	rec Recorder
	log *slog.Logger
}

var _ effects.Handler = (*Effect)(nil)

// New builds the effect. A nil log discards.
func New(q Querier, rec Recorder, log *slog.Logger) *Effect {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Effect{q: q, rec: rec, log: log.With("effect", Name)}
}

// Name implements effects.Handler.
func (e *Effect) Name() string { return Name }

// Wants implements effects.Handler: the events that carry a new order.
// InstanceRefreshed is wanted for its RENEWAL_CHANGE scene only, which
// Handle checks (the other scenes change the expiry of the order already
// known).
func (e *Effect) Wants(eventType string) bool {
	switch eventType {
	case instance.TypeCreated, instance.TypeRefreshed, instance.TypeUpgraded:
		return true
	}
	return false
}

// Handle implements effects.Handler: it queries the order the event names
// and records the answer with RecordOrderInfo (the domain ignores an answer
// already recorded, so handling an event twice records it once). Debug
// events (Causation.TestFlag) and events without a new order are skipped.
// Transport failures and temporary API errors are returned for a retry;
// refusals (4xx, an unknown order, a bad argument, an undecodable event)
// are effects.Permanent.
func (e *Effect) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	log := e.log.With("instanceId", ev.AggregateID, "eventId", ev.ID, "eventType", ev.Type, "seq", seq)
	if ev.AggregateKind != instance.Kind || !e.Wants(ev.Type) {
		return nil
	}
	if ev.Causation.TestFlag {
		log.Debug("debug event, not querying the order")
		return nil
	}
	orderID, orderLineID, ok, err := orderOf(ev)
	if err != nil {
		log.Error("undecodable event", "err", err)
		return effects.Permanent(err)
	}
	if !ok {
		return nil
	}
	log = log.With("orderId", orderID, "orderLineId", orderLineID)

	info, err := e.q.QueryOrder(ctx, orderID, orderLineID)
	if err != nil {
		if openapi.IsTemporary(err) {
			log.Warn("query order failed, will retry", "err", err)
			return err
		}
		var ae *openapi.APIError
		if errors.As(err, &ae) || errors.Is(err, openapi.ErrInvalidRequest) {
			log.Error("query order refused", "err", err)
			return effects.Permanent(err)
		}
		log.Warn("query order failed", "err", err)
		return err
	}
	if info.OrderID == "" {
		info.OrderID = orderID
	}
	if info.OrderLineID == "" {
		info.OrderLineID = orderLineID
	}
	cause := event.Causation{Actor: Actor, OrderID: orderID, OrderLineID: orderLineID, Route: ev.Causation.Route}
	if _, err := e.rec.Execute(ctx, ev.AggregateID, instance.RecordOrderInfo{Info: info}, cause); err != nil {
		// ErrNotFound is retried: the event is in the log, so a read that
		// misses the instance is behind.
		if errors.Is(err, instance.ErrInvalid) {
			log.Error("recording the order refused", "err", err)
			return effects.Permanent(err)
		}
		log.Warn("recording the order failed, will retry", "err", err)
		return fmt.Errorf("queryorder: record order %s: %w", orderID, err)
	}
	log.Info("order recorded", "orderType", info.OrderType, "chargingMode", info.ChargingMode, "trial", info.Trial)
	return nil
}

// orderOf returns the order an event carries; ok is false for events that
// carry none worth querying.
func orderOf(ev event.Envelope) (orderID, orderLineID string, ok bool, err error) {
	e, err := instance.Decode(ev.Type, ev.Version, ev.Data)
	if err != nil {
		return "", "", false, err
	}
	switch e := e.(type) {
	case instance.Created:
		orderID, orderLineID = e.OrderID, e.OrderLineID
	case instance.Upgraded:
		orderID, orderLineID = e.OrderID, e.OrderLineID
	case instance.Refreshed:
		if e.Scene != instance.SceneRenewalChange {
			return "", "", false, nil
		}
		orderID, orderLineID = e.OrderID, e.OrderLineID
	default:
		return "", "", false, nil
	}
	if orderID == "" {
		return "", "", false, fmt.Errorf("%s event without orderId", ev.Type)
	}
	return orderID, orderLineID, true, nil
}
