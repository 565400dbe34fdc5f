package effects_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/webhook"
)

func TestRetriesUntilTheVendorAccepts(t *testing.T) {
	const failures = 3
	r := newRig(t)
	r.vendor.setAnswer(func(_ webhook.Notification, attempt int) int {
		if attempt <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := fastConfig()
	cfg.MaxAttempts = failures + 2
	run := r.runner(t, r.notifier(t), cfg)
	id := r.create(t, "1")
	created := r.events(t, id)[0]

	progress(t, run, id, "the creation is done", doneThrough(created.Seq))
	calls := r.vendor.of(id)
	if len(calls) != failures+1 {
		t.Fatalf("vendor called %d times, want %d", len(calls), failures+1)
	}
	for i, c := range calls {
		if !c.signature || c.idemKey != created.Event.ID || c.n.EventID != created.Event.ID ||
			c.n.EventType != instance.TypeCreated || c.n.Sequence != created.Seq || c.n.InstanceID != id || c.n.Route != route {
			t.Fatalf("call %d: %+v", i, c)
		}
	}
	recs, err := r.store.Load(testContext(t), eventstore.StreamID{Kind: effect.Kind, Keys: []string{webhook.Name, id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var done effect.Done
	if len(recs) != 1 || recs[0].Event.Type != effect.TypeDone || json.Unmarshal(recs[0].Event.Data, &done) != nil {
		t.Fatalf("progress = %+v", recs)
	}
	if done != (effect.Done{Effect: webhook.Name, InstanceID: id, EventID: created.Event.ID, EventSeq: created.Seq,
		EventType: instance.TypeCreated, Attempts: failures + 1}) {
		t.Fatalf("done = %+v", done)
	}
}

func TestParksAfterTheLastAttempt(t *testing.T) {
	r := newRig(t)
	r.vendor.setAnswer(func(n webhook.Notification, _ int) int {
		if n.InstanceID == "biz-refused" {
			return http.StatusBadRequest // permanent: parked at once
		}
		return http.StatusInternalServerError
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 3
	run := r.runner(t, r.notifier(t), cfg)
	down := r.create(t, "down")
	refused := r.create(t, "refused")

	p := progress(t, run, down, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	got := p.Parked[0]
	created := r.events(t, down)[0]
	if got.Attempts != 3 || got.HeldBack || got.EventSeq != created.Seq || got.EventID != created.Event.ID ||
		got.EventType != instance.TypeCreated || !strings.Contains(got.Reason, "HTTP 500") {
		t.Fatalf("parked = %+v", got)
	}
	if n := len(r.vendor.of(down)); n != 3 {
		t.Fatalf("vendor called %d times, want 3", n)
	}

	p = progress(t, run, refused, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	if got := p.Parked[0]; got.Attempts != 1 || !strings.Contains(got.Reason, "permanent") || !strings.Contains(got.Reason, "HTTP 400") {
		t.Fatalf("parked = %+v", got)
	}
	if n := len(r.vendor.of(refused)); n != 1 {
		t.Fatalf("vendor called %d times for a permanent refusal, want 1", n)
	}

	list, err := run.ListParked(testContext(t), webhook.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].InstanceID != down || list[1].InstanceID != refused || list[0].Effect != webhook.Name {
		t.Fatalf("parked list = %+v", list)
	}
	if _, err := run.ListParked(testContext(t), "other"); !errors.Is(err, effects.ErrUnknownEffect) {
		t.Fatalf("listing another effect: %v", err)
	}
}

// TestFailedCreateHoldsBackItsInstanceOnly: instance A's creation keeps
// failing, so its freeze is held back (never delivered before the
// creation), while instance B's events flow; a re-drive then delivers A's
// events in order.
func TestFailedCreateHoldsBackItsInstanceOnly(t *testing.T) {
	r := newRig(t)
	var fixed atomic.Bool
	r.vendor.setAnswer(func(n webhook.Notification, _ int) int {
		if n.InstanceID == "biz-a" && n.EventType == instance.TypeCreated && !fixed.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 3
	run := r.runner(t, r.notifier(t), cfg)

	a := r.create(t, "a")
	r.setStatus(t, a, instance.TargetFreeze)
	b := r.create(t, "b")
	r.setStatus(t, b, instance.TargetFreeze)
	r.setStatus(t, b, instance.TargetUnfreeze)

	bEvents := r.events(t, b)
	progress(t, run, b, "all of B is done", doneThrough(bEvents[len(bEvents)-1].Seq))
	if got := types(r.vendor.of(b)); !slices.Equal(got, []string{instance.TypeCreated, instance.TypeFrozen, instance.TypeUnfrozen}) {
		t.Fatalf("B delivered %v", got)
	}

	aEvents := r.events(t, a)
	p := progress(t, run, a, "A's create and freeze are parked", func(p effects.Progress) bool { return len(p.Parked) == 2 })
	if p.Parked[0].EventSeq != aEvents[0].Seq || p.Parked[0].HeldBack || p.Parked[0].Attempts != 3 ||
		p.Parked[1].EventSeq != aEvents[1].Seq || !p.Parked[1].HeldBack || p.Parked[1].EventType != instance.TypeFrozen ||
		!strings.Contains(p.Parked[1].Reason, "held back behind parked event") {
		t.Fatalf("A's progress = %+v", p)
	}
	for _, c := range r.vendor.of(a) {
		if c.n.EventType != instance.TypeCreated {
			t.Fatalf("A's %s reached the vendor while its creation was failing", c.n.EventType)
		}
	}

	fixed.Store(true)
	if err := run.Redrive(testContext(t), webhook.Name, a, "alice"); err != nil {
		t.Fatal(err)
	}
	p, err := run.Progress(testContext(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Parked) != 0 || p.Cursor != aEvents[1].Seq || p.Redrives != 1 {
		t.Fatalf("A's progress after the re-drive = %+v", p)
	}
	if got := r.progressEvents(t, webhook.Name, a); !slices.Equal(got,
		[]string{effect.TypeParked, effect.TypeParked, effect.TypeRedriven, effect.TypeDone, effect.TypeDone}) {
		t.Fatalf("A's progress events = %v", got)
	}
	var ok []string
	for _, c := range r.vendor.of(a) {
		if c.status == http.StatusOK {
			ok = append(ok, c.n.EventType)
		}
	}
	if !slices.Equal(ok, []string{instance.TypeCreated, instance.TypeFrozen}) {
		t.Fatalf("A accepted %v", ok)
	}

	// A flows again.
	r.setStatus(t, a, instance.TargetUnfreeze)
	aEvents = r.events(t, a)
	progress(t, run, a, "A's unfreeze is done", doneThrough(aEvents[len(aEvents)-1].Seq))
	checkOrder(t, r.vendor.received())
}

func TestRedriveOneEventThenAll(t *testing.T) {
	r := newRig(t)
	var fixed atomic.Bool
	r.vendor.setAnswer(func(webhook.Notification, int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusBadGateway
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 2
	run := r.runner(t, r.notifier(t), cfg)
	x := r.create(t, "x")
	r.setStatus(t, x, instance.TargetFreeze)
	y := r.create(t, "y")
	xEvents, yEvents := r.events(t, x), r.events(t, y)
	progress(t, run, x, "both parked", func(p effects.Progress) bool { return len(p.Parked) == 2 })
	progress(t, run, y, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })

	list, err := run.ListParked(testContext(t), "")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, p := range list {
		seqs = append(seqs, p.EventSeq)
	}
	if want := []uint64{xEvents[0].Seq, xEvents[1].Seq, yEvents[0].Seq}; !slices.Equal(seqs, want) {
		t.Fatalf("parked %v, want %v", seqs, want)
	}

	ctx := testContext(t)
	// A re-drive that fails again parks anew, with the attempts of this try.
	if err := run.Redrive(ctx, webhook.Name, y, "bob"); !errors.Is(err, effects.ErrStillParked) {
		t.Fatalf("re-drive against a failing vendor: %v", err)
	}
	if got := r.progressEvents(t, webhook.Name, y); !slices.Equal(got, []string{effect.TypeParked, effect.TypeRedriven, effect.TypeParked}) {
		t.Fatalf("y's progress events = %v", got)
	}
	// The freeze cannot overtake the creation.
	if err := run.RedriveEvent(ctx, webhook.Name, x, xEvents[1].Seq, "bob"); !errors.Is(err, effects.ErrOutOfOrder) {
		t.Fatalf("re-driving the freeze first: %v", err)
	}

	fixed.Store(true)
	if err := run.RedriveEvent(ctx, webhook.Name, x, xEvents[0].Seq, "bob"); err != nil {
		t.Fatal(err)
	}
	p, err := run.Progress(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Parked) != 1 || p.Parked[0].EventSeq != xEvents[1].Seq {
		t.Fatalf("after re-driving one event: %+v", p)
	}
	for _, c := range r.vendor.of(x) {
		if c.n.EventType == instance.TypeFrozen {
			t.Fatal("the freeze was delivered by a re-drive of the creation only")
		}
	}

	if err := run.RedriveAll(ctx, "", "carol"); err != nil {
		t.Fatal(err)
	}
	if list, err := run.ListParked(ctx, webhook.Name); err != nil || len(list) != 0 {
		t.Fatalf("still parked after re-driving all: %+v, %v", list, err)
	}
	progress(t, run, x, "done", doneThrough(xEvents[1].Seq))
	progress(t, run, y, "done", doneThrough(yEvents[0].Seq))
	if got := r.progressEvents(t, webhook.Name, y); !slices.Equal(got,
		[]string{effect.TypeParked, effect.TypeRedriven, effect.TypeParked, effect.TypeRedriven, effect.TypeDone}) {
		t.Fatalf("y's progress events = %v", got)
	}
	if err := run.Redrive(ctx, webhook.Name, x, "bob"); !errors.Is(err, effects.ErrNotParked) {
		t.Fatalf("re-driving an instance with nothing parked: %v", err)
	}
	checkOrder(t, r.vendor.received())
}

// counted counts the events a handler handled.
type counted struct {
	effects.Handler
	n *atomic.Int64
}

func (c counted) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	c.n.Add(1)
	return c.Handler.Handle(ctx, ev, seq)
}

// TestReplicasKeepPerInstanceOrder: two runners on one durable, as two
// replicas run, share the work and still deliver each instance's events
// in order, every first attempt failing.
func TestReplicasKeepPerInstanceOrder(t *testing.T) {
	const instances = 8
	r := newRig(t)
	r.vendor.setAnswer(func(_ webhook.Notification, attempt int) int {
		if attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var byA, byB atomic.Int64
	runA := r.runner(t, counted{r.notifier(t), &byA}, fastConfig())
	r.runner(t, counted{r.notifier(t), &byB}, fastConfig())

	var wg sync.WaitGroup
	ids := make([]string, instances)
	for i := range instances {
		ids[i] = "biz-" + string(rune('a'+i))
		wg.Go(func() {
			id := r.create(t, string(rune('a'+i)))
			r.setStatus(t, id, instance.TargetFreeze)
			r.setStatus(t, id, instance.TargetUnfreeze)
			r.setStatus(t, id, instance.TargetFreeze)
		})
	}
	wg.Wait()
	for _, id := range ids {
		evs := r.events(t, id)
		progress(t, runA, id, "all done", doneThrough(evs[len(evs)-1].Seq))
		if got := types(accepted(r.vendor.of(id))); !slices.Equal(got, []string{
			instance.TypeCreated, instance.TypeFrozen, instance.TypeUnfrozen, instance.TypeFrozen}) {
			t.Fatalf("%s accepted %v", id, got)
		}
	}
	checkOrder(t, r.vendor.received())
	t.Logf("handler calls: replica a %d, replica b %d", byA.Load(), byB.Load())
}

func accepted(calls []call) []call {
	var out []call
	for _, c := range calls {
		if c.status/100 == 2 {
			out = append(out, c)
		}
	}
	return out
}

// TestStopWaitsForTheCallInFlight: Stop returns only after the handler
// call in flight is answered and its outcome recorded; a restarted runner
// carries on from the durable.
func TestStopWaitsForTheCallInFlight(t *testing.T) {
	r := newRig(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.vendor.setGate(func(n webhook.Notification) <-chan struct{} {
		if n.EventType != instance.TypeCreated {
			return nil
		}
		once.Do(func() { close(arrived) })
		return release
	})
	run := r.newRunner(t, r.notifier(t), fastConfig())
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	id := r.create(t, "1")
	created := r.events(t, id)[0]
	<-arrived

	stopped := make(chan struct{})
	go func() {
		run.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a handler call was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return after the call in flight was answered")
	}
	p, err := run.Progress(testContext(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cursor != created.Seq || p.Done != 1 {
		t.Fatalf("after Stop: %+v, want the creation done", p)
	}

	r.setStatus(t, id, instance.TargetFreeze)
	next := r.runner(t, r.notifier(t), fastConfig())
	evs := r.events(t, id)
	progress(t, next, id, "the freeze is done", doneThrough(evs[len(evs)-1].Seq))
	if n := len(r.vendor.of(id)); n != 2 {
		t.Fatalf("vendor called %d times, want 2 (no redelivery of the creation)", n)
	}
}

// TestStopHandsBackWaitingRetries: an event waiting for its next attempt
// does not delay Stop; it is handed back and another runner finishes it.
func TestStopHandsBackWaitingRetries(t *testing.T) {
	r := newRig(t)
	var fixed atomic.Bool
	r.vendor.setAnswer(func(webhook.Notification, int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	slow := fastConfig()
	slow.RetryBase, slow.RetryMax = time.Hour, time.Hour
	run := r.newRunner(t, r.notifier(t), slow)
	if err := run.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	id := r.create(t, "1")
	eventually(t, "a first attempt", func() bool { return len(r.vendor.of(id)) == 1 })
	run.Stop() // would take an hour if it waited for the retry

	fixed.Store(true)
	next := r.runner(t, r.notifier(t), fastConfig())
	created := r.events(t, id)[0]
	progress(t, next, id, "done by the next runner", doneThrough(created.Seq))
}

// TestRoutesWithoutWebhookAreDoneSilently: the effect records events of
// routes without a webhook as done and calls nobody; events it does not
// want get no progress at all.
func TestRoutesWithoutWebhookAreDoneSilently(t *testing.T) {
	r := newRig(t)
	run := r.runner(t, r.notifier(t), fastConfig())
	cause := event.Causation{Activity: "newInstance", OrderID: "o-q", OrderLineID: "l-q", BusinessID: "biz-q", Route: "/elsewhere"}
	if _, err := r.svc.Create(testContext(t), "o-q", "l-q", "biz-q", cause, 0); err != nil {
		t.Fatal(err)
	}
	info := instance.OrderInfo{OrderID: "o-q", OrderType: "NEW"}
	if _, err := r.svc.Execute(testContext(t), "biz-q", instance.RecordOrderInfo{Info: info}, event.Causation{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	evs := r.events(t, "biz-q")
	p := progress(t, run, "biz-q", "the creation is done", doneThrough(evs[0].Seq))
	if p.Done != 1 || len(r.vendor.received()) != 0 {
		t.Fatalf("progress %+v, vendor calls %d", p, len(r.vendor.received()))
	}
	eventually(t, "the consumer drained", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), run.Durable())
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	if p, _ := run.Progress(testContext(t), "biz-q"); p.Done != 1 || p.Cursor != evs[0].Seq {
		t.Fatalf("progress %+v: the order-queried event must not be recorded", p)
	}
}

func TestRunnerConfig(t *testing.T) {
	if err := effects.DefaultRunnerConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []effects.RunnerConfig{
		{},
		func() effects.RunnerConfig {
			c := effects.DefaultRunnerConfig()
			c.RetryMax = c.RetryBase / 2
			return c
		}(),
		func() effects.RunnerConfig {
			c := effects.DefaultRunnerConfig()
			c.MaxAckPending = c.Concurrency - 1
			return c
		}(),
		func() effects.RunnerConfig {
			c := effects.DefaultRunnerConfig()
			c.AckWait = time.Millisecond
			return c
		}(),
	}
	for i, c := range bad {
		if c.Validate() == nil {
			t.Errorf("config %d: %+v validated", i, c)
		}
	}
	r := newRig(t)
	c := r.store.Config()
	if _, err := effects.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, named("bad.name"), effects.RunnerConfig{}, nil); err == nil {
		t.Error("an effect name with a dot was accepted")
	}
	run, err := effects.NewRunner(r.store.JetStream(), r.store, c.Stream, c.Prefix, named("ok"), effects.RunnerConfig{MaxAttempts: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := run.Config(); got.MaxAttempts != 3 || got.RetryBase != effects.DefaultRunnerConfig().RetryBase || run.Durable() != "effect-ok" {
		t.Fatalf("config %+v, durable %s", got, run.Durable())
	}
}

type named string

func (n named) Name() string                                       { return string(n) }
func (named) Wants(string) bool                                    { return true }
func (named) Handle(context.Context, event.Envelope, uint64) error { return nil }

// wanting narrows a handler to some event types.
type wanting struct {
	effects.Handler
	types []string
}

func (w wanting) Wants(t string) bool { return slices.Contains(w.types, t) }

// TestNewlyWantedTypesDoNotBlock: a new version of an effect wants a type
// the old one acknowledged unhandled; the instance's later events must not
// wait for those old events forever.
func TestNewlyWantedTypesDoNotBlock(t *testing.T) {
	r := newRig(t)
	old := r.runner(t, wanting{r.notifier(t), []string{instance.TypeCreated}}, fastConfig())
	id := r.create(t, "1")
	r.setStatus(t, id, instance.TargetFreeze)
	evs := r.events(t, id)
	progress(t, old, id, "the creation is done", doneThrough(evs[0].Seq))
	eventually(t, "the freeze is acknowledged", func() bool {
		c, err := r.store.Stream().Consumer(testContext(t), old.Durable())
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream >= evs[1].Seq
	})
	old.Stop()

	next := r.runner(t, r.notifier(t), fastConfig())
	r.setStatus(t, id, instance.TargetUnfreeze)
	evs = r.events(t, id)
	progress(t, next, id, "the unfreeze is done", doneThrough(evs[len(evs)-1].Seq))
	if got := types(r.vendor.of(id)); !slices.Equal(got, []string{instance.TypeCreated, instance.TypeUnfrozen}) {
		t.Fatalf("vendor received %v", got)
	}
}
