package effects_test

import (
	"testing"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
)

// quietCreate is firstCreate whose successes need no progress record.
type quietCreate struct{ firstCreate }

var _ effects.SuccessUnrecorded = (*quietCreate)(nil)

func (q *quietCreate) Name() string                    { return "quietcreate" }
func (q *quietCreate) SuccessUnrecorded(t string) bool { return t == instance.TypeCreated }

// TestSuccessUnrecorded: a handled event of a SuccessUnrecorded type is
// acked without an EffectDone; one that fails for good is still parked,
// listed and re-drivable.
func TestSuccessUnrecorded(t *testing.T) {
	r := newRig(t)
	h := &quietCreate{firstCreate{calls: map[string]int{}, fail: map[string]bool{"biz-bad": true}}}
	run := r.runner(t, h, fastConfig())
	good, bad := r.create(t, "good"), r.create(t, "bad")
	progress(t, run, bad, "create parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	eventually(t, "the consumer drained", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), run.Durable())
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testContext(t))
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if h.count(good) != 1 {
		t.Fatalf("good handled %d times", h.count(good))
	}
	if got := r.progressEvents(t, "quietcreate", good); len(got) != 0 {
		t.Fatalf("progress of a successful create: %v, want none", got)
	}
	parked, err := run.ListParked(testContext(t), "quietcreate")
	if err != nil || len(parked) != 1 || parked[0].InstanceID != bad {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	h.mu.Lock()
	delete(h.fail, bad)
	h.mu.Unlock()
	if err := run.Redrive(testContext(t), "quietcreate", bad, "alice"); err != nil {
		t.Fatal(err)
	}
	if h.count(bad) != 2 {
		t.Fatalf("bad handled %d times after the re-drive, want 2", h.count(bad))
	}
	if p, err := run.Progress(testContext(t), bad); err != nil || len(p.Parked) != 0 {
		t.Fatalf("after the re-drive: %+v, %v", p, err)
	}
}
