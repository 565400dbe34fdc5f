// Package event defines the envelope every domain event travels in: on the
// log, on the bus and into the projections. It is pure data (no I/O).
package event

import (
	"encoding/json"
	"time"
)

// Causation records the marketplace request that caused an event.
type Causation struct {
	Activity    string `json:"activity,omitempty"`
	OrderID     string `json:"orderId,omitempty"`
	OrderLineID string `json:"orderLineId,omitempty"`
	BusinessID  string `json:"businessId,omitempty"`
	Nonce       string `json:"nonce,omitempty"`
	TestFlag    bool   `json:"testFlag,omitempty"`
	// Route is the production path the request arrived on.
	Route string `json:"route,omitempty"`
	// Actor names a non-marketplace cause, e.g. "provisioner" or "operator".
	Actor string `json:"actor,omitempty"`
}

// Envelope is one event as stored in the log.
type Envelope struct {
	// ID is unique per event; it is the Nats-Msg-Id of the append.
	ID string `json:"id"`
	// Type names the event, e.g. "InstanceCreated".
	Type string `json:"type"`
	// Version is the schema version of Data.
	Version int `json:"v"`
	// AggregateKind is e.g. "instance"; AggregateID the aggregate's id.
	AggregateKind string    `json:"kind"`
	AggregateID   string    `json:"aggregateId"`
	OccurredAt    time.Time `json:"occurredAt"`
	Causation     Causation `json:"causation"`
	// Data is the event body, JSON, shaped by Type and Version.
	Data json.RawMessage `json:"data"`
}
