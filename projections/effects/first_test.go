package effects_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
)

// firstCreate wants InstanceCreated and declares it first of its instance
// (effects.FirstOfInstance); fail names the instances it fails for good.
type firstCreate struct {
	mu    sync.Mutex
	calls map[string]int
	fail  map[string]bool
}

var _ effects.FirstOfInstance = (*firstCreate)(nil)

func (f *firstCreate) Name() string                  { return "firstcreate" }
func (f *firstCreate) Wants(typ string) bool         { return typ == instance.TypeCreated }
func (f *firstCreate) FirstOfInstance(t string) bool { return t == instance.TypeCreated }

func (f *firstCreate) Handle(_ context.Context, ev event.Envelope, _ uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[ev.AggregateID]++
	if f.fail[ev.AggregateID] {
		return effects.Permanent(errors.New("refused"))
	}
	return nil
}

func (f *firstCreate) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

// TestFirstOfInstanceTurn: the turn check of an event first of its
// instance reads only the progress, and still sees a create already done
// or parked when the consumer delivers it again (here: the durable deleted
// and created anew).
func TestFirstOfInstanceTurn(t *testing.T) {
	r := newRig(t)
	h := &firstCreate{calls: map[string]int{}, fail: map[string]bool{"biz-bad": true}}
	run := r.runner(t, h, fastConfig())
	good, bad := r.create(t, "good"), r.create(t, "bad")
	progress(t, run, good, "create done", doneThrough(r.events(t, good)[0].Seq))
	progress(t, run, bad, "create parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	run.Stop()
	if err := r.store.Stream().DeleteConsumer(testContext(t), run.Durable()); err != nil {
		t.Fatal(err)
	}

	again := r.runner(t, h, fastConfig())
	later := r.create(t, "later")
	progress(t, again, later, "later create done", doneThrough(r.events(t, later)[0].Seq))
	eventually(t, "the new consumer drained", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), again.Durable())
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testContext(t))
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if h.count(good) != 1 || h.count(bad) != 1 || h.count(later) != 1 {
		t.Fatalf("calls good %d, bad %d, later %d; want 1 each", h.count(good), h.count(bad), h.count(later))
	}
	if got := r.progressEvents(t, "firstcreate", bad); len(got) != 1 {
		t.Fatalf("progress of the parked create: %v", got)
	}
}
