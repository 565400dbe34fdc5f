package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gallerist/gallerist/domain/event"
)

// envelopeHead is event.Envelope without Data, with the same JSON names, so
// that Data can be spliced in verbatim (encoding/json would compact and
// HTML-escape a json.RawMessage, changing its bytes).
type envelopeHead struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"v"`
	AggregateKind string          `json:"kind"`
	AggregateID   string          `json:"aggregateId"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Causation     event.Causation `json:"causation"`
}

var (
	dataField = []byte(`,"data":`)
	jsonNull  = []byte("null")
)

// EncodeEnvelope returns the stored form of ev: the JSON object of
// event.Envelope, with Data copied byte for byte (empty Data is stored as
// null). Data must be valid JSON; otherwise the error wraps
// [ErrInvalidEvent]. Any consumer of the stream can decode it with
// encoding/json into event.Envelope, or with [DecodeEnvelope].
func EncodeEnvelope(ev event.Envelope) ([]byte, error) {
	data := []byte(ev.Data)
	if len(data) == 0 {
		data = jsonNull
	} else if !json.Valid(data) {
		return nil, fmt.Errorf("%w: event %s: Data is not valid JSON", ErrInvalidEvent, ev.ID)
	}
	head, err := json.Marshal(envelopeHead{
		ID: ev.ID, Type: ev.Type, Version: ev.Version,
		AggregateKind: ev.AggregateKind, AggregateID: ev.AggregateID,
		OccurredAt: ev.OccurredAt, Causation: ev.Causation,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: event %s: %w", ErrInvalidEvent, ev.ID, err)
	}
	// head ends with '}': replace it by ,"data":<data>}.
	out := make([]byte, 0, len(head)+len(dataField)+len(data))
	out = append(out, head[:len(head)-1]...)
	out = append(out, dataField...)
	out = append(out, data...)
	out = append(out, '}')
	return out, nil
}

// DecodeEnvelope parses the stored form written by [EncodeEnvelope]. Data
// comes back byte for byte; a stored null becomes nil Data. Errors wrap
// [ErrCorrupt].
func DecodeEnvelope(b []byte) (event.Envelope, error) {
	var ev event.Envelope
	if err := json.Unmarshal(b, &ev); err != nil {
		return event.Envelope{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if bytes.Equal(ev.Data, jsonNull) {
		ev.Data = nil
	}
	return ev, nil
}
