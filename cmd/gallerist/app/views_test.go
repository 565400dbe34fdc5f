package app

import (
	"errors"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/views"
)

// The read models follow the log while the service runs: an instance
// created over HTTP shows up in the SQL view, provisioned and then frozen.
func TestViewsFollowTheLog(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	id := r.kg.create(t)
	r.kg.must(t, map[string]any{"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		inst, seq, err := r.Views().GetInstance(t.Context(), id)
		if err == nil && inst.Status == "frozen" && inst.ProvisionedAt != nil {
			if seq == 0 || inst.LastEventSeq > seq {
				t.Fatalf("view consistent to %d but row at %d", seq, inst.LastEventSeq)
			}
			return
		}
		if err != nil && !errors.Is(err, views.ErrNotFound) {
			t.Fatalf("GetInstance: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("view never showed the frozen, provisioned instance: %+v, %v (projector error: %v)", inst, err, r.Projector().Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
