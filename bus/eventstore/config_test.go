package eventstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
)

func TestJetStreamConfigValidate(t *testing.T) {
	if err := (eventstore.JetStreamConfig{}).Validate(); err != nil {
		t.Fatalf("zero config (all defaults): %v", err)
	}
	bad := []eventstore.JetStreamConfig{
		{Stream: "A.B"},
		{Stream: "A B"},
		{Stream: "A>"},
		{Prefix: "a..b"},
		{Prefix: "a.>"},
		{Replicas: 7},
		{Replicas: -1},
		{Storage: 9},
		{DuplicateWindow: -time.Second},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, eventstore.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}
