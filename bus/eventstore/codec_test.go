package eventstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
)

func TestEnvelopeCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		str := rapid.String()
		data := rapid.SampledFrom([]string{"", `{}`, `null`, `[1, 2 ,3]`, "{ \"a\" : \"<&>\\u00e9\" }", `"s"`, `12.50`, `{"nested":{"x":[true,false,null]}}`}).Draw(t, "data")
		ev := event.Envelope{
			ID: str.Draw(t, "id"), Type: str.Draw(t, "type"), Version: rapid.Int().Draw(t, "v"),
			AggregateKind: str.Draw(t, "kind"), AggregateID: str.Draw(t, "aid"),
			OccurredAt: time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(t, "ns")).UTC(),
			Causation: event.Causation{
				Activity: str.Draw(t, "act"), OrderID: str.Draw(t, "order"), OrderLineID: str.Draw(t, "line"),
				BusinessID: str.Draw(t, "biz"), Nonce: str.Draw(t, "nonce"), TestFlag: rapid.Bool().Draw(t, "test"),
				Route: str.Draw(t, "route"), Actor: str.Draw(t, "actor"),
			},
			Data: json.RawMessage(data),
		}
		b, err := eventstore.EncodeEnvelope(ev)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		got, err := eventstore.DecodeEnvelope(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		wantData := ev.Data
		if string(wantData) == "null" {
			wantData = nil
		}
		if !bytes.Equal(got.Data, wantData) || !got.OccurredAt.Equal(ev.OccurredAt) {
			t.Fatalf("round trip data %q → %q, time %s → %s", ev.Data, got.Data, ev.OccurredAt, got.OccurredAt)
		}
		if !equalEnvelope(got, ev) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, ev)
		}
		// The stored form is plain event.Envelope JSON for any consumer.
		var plain event.Envelope
		if err := json.Unmarshal(b, &plain); err != nil {
			t.Fatalf("stored form is not event.Envelope JSON: %v", err)
		}
	})
}

func equalEnvelope(a, b event.Envelope) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Version == b.Version && a.AggregateKind == b.AggregateKind &&
		a.AggregateID == b.AggregateID && a.Causation == b.Causation
}

// TestEnvelopeMatchesEncodingJSON: for compact Data the stored form is
// exactly what encoding/json produces for event.Envelope.
func TestEnvelopeMatchesEncodingJSON(t *testing.T) {
	ev := event.Envelope{ID: "e1", Type: "T", Version: 2, AggregateKind: "instance", AggregateID: "i1",
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Causation:  event.Causation{OrderID: "o1", TestFlag: true}, Data: json.RawMessage(`{"a":1}`)}
	want, _ := json.Marshal(ev)
	got, err := eventstore.EncodeEnvelope(ev)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("EncodeEnvelope = %s, %v\nencoding/json  = %s", got, err, want)
	}
}

func TestEnvelopeCodecErrors(t *testing.T) {
	if _, err := eventstore.EncodeEnvelope(event.Envelope{ID: "x", Data: json.RawMessage("{")}); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("invalid Data: %v, want ErrInvalidEvent", err)
	}
	for _, b := range []string{"", "not json", `{"id":1}`, `[]`} {
		if _, err := eventstore.DecodeEnvelope([]byte(b)); !errors.Is(err, eventstore.ErrCorrupt) {
			t.Errorf("DecodeEnvelope(%q): %v, want ErrCorrupt", b, err)
		}
	}
}
