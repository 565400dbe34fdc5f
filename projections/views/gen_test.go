package views

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/usage"
)

// logGen generates valid event logs: instance events are only what
// instance.Decide produces for the instance's state, interleaved with
// effect progress events and entries the views must ignore (order index,
// order notifications, an unknown event type, a debug event).
type logGen struct {
	// intn returns a number in [0, n): rapid's draws in property tests,
	// math/rand for large logs.
	intn func(label string, n int) int
	// maxInstances bounds the instances; newPct is the chance (in %) that
	// a step starts a new instance while under the bound; window limits
	// the other steps to the most recent instances (0: all).
	maxInstances, newPct, window int

	now   time.Time
	insts []*genInstance
	out   []genEvent
	ids   int

	// License A licenses, License B codes and the instances' usage
	// (gen_licenses_test.go).
	licenses []*genLicense
	codes    []*genCode
	usages   map[string]*usage.State
}

type genInstance struct {
	id    string
	state instance.State
}

type genEvent struct {
	stream eventstore.StreamID
	env    event.Envelope
}

func newLogGen(intn func(string, int) int, maxInstances, newPct, window int) *logGen {
	return &logGen{
		intn: intn, maxInstances: maxInstances, newPct: newPct, window: window,
		// Late evening: the first steps cross midnight (UTC day boundaries).
		now: time.Date(2025, 3, 30, 21, 0, 0, 0, time.UTC),
	}
}

var (
	genProducts = []string{"", "prod-a", "prod-b", "prod-c"}
	genRoutes   = []string{"/saas/v2/a", "/saas/v2/b"}
	genEffects  = []string{"webhook", "queryorder"}
)

func (g *logGen) pick(label string, options []string) string {
	return options[g.intn(label, len(options))]
}

func (g *logGen) nextID(kind string) string {
	g.ids++
	return kind + "-" + strconv.Itoa(g.ids)
}

// step adds at most one entry to the log.
func (g *logGen) step() {
	// Minutes to hours between events, with odd milliseconds and
	// nanoseconds (the views keep microseconds).
	g.now = g.now.Add(time.Duration(1+g.intn("minutes", 300))*time.Minute +
		time.Duration(g.intn("micros", 1_000_000))*time.Microsecond + time.Duration(g.intn("nanos", 1000)))
	switch r := g.intn("what", 100); {
	case r < 55 || len(g.insts) == 0:
		g.instanceStep()
	case r < 68:
		g.effectStep()
	case r < 76:
		g.licenseStep()
	case r < 85:
		g.codeStep()
	case r < 95:
		g.usageStep()
	default:
		g.noiseStep()
	}
}

func (g *logGen) instance() (*genInstance, bool) {
	if len(g.insts) < g.maxInstances && (len(g.insts) == 0 || g.intn("new", 100) < g.newPct) {
		in := &genInstance{id: g.nextID("inst")}
		g.insts = append(g.insts, in)
		return in, true
	}
	from := 0
	if g.window > 0 && len(g.insts) > g.window {
		from = len(g.insts) - g.window
	}
	return g.insts[from+g.intn("instance", len(g.insts)-from)], false
}

func (g *logGen) instanceStep() {
	in, fresh := g.instance()
	s := in.state
	var cmd instance.Command
	if fresh || !s.Status.Exists() {
		c := instance.Create{InstanceID: in.id, OrderID: "ord-" + in.id, OrderLineID: "line-" + in.id, BusinessID: "biz-" + in.id}
		if g.intn("family", 3) == 0 { // a SaaS V1 creation carries its order
			mode := instance.ChargingMode([]int{0, 1, 3, 5}[g.intn("v1 charging", 4)])
			c.OrderLineID = ""
			c.V1 = &instance.V1Order{
				ProductID: g.pick("product", genProducts), SKUCode: g.pick("sku", []string{"", "sku-1"}),
				CustomerID: g.pick("customer", []string{"", "cust-1"}), ChargingMode: &mode,
				Trial: g.intn("v1 trial", 3) == 0, PeriodType: g.pick("period type", []string{"", "month"}),
				PeriodNumber: g.intn("period", 3), OrderAmount: "12.340",
			}
			if g.intn("v1 expiry", 2) == 0 {
				c.V1.ExpireTime = g.now.AddDate(0, 1, 0)
			}
		}
		cmd = c
	} else {
		switch g.intn("command", 20) {
		case 0, 1, 2, 3:
			cmd = instance.RecordProvisioning{AppInfo: &instance.AppInfo{FrontEndURL: "https://app/" + in.id}}
		case 4:
			cmd = instance.RecordProvisioning{Failure: &instance.Failure{Code: "000100", Message: "refused " + in.id}}
		case 5, 6, 7:
			cmd = instance.Refresh{
				Scene:       instance.Scenes[g.intn("scene", len(instance.Scenes))],
				OrderID:     "ord-r" + strconv.Itoa(g.intn("order", 4)),
				OrderLineID: "line-r",
				ProductID:   g.pick("product", genProducts),
				ExpireTime:  g.now.AddDate(0, 1+g.intn("months", 12), 0).Add(time.Duration(g.intn("ns", 1000))),
			}
		case 8, 9:
			cmd = instance.SetStatus{Target: instance.TargetFreeze}
		case 10, 11:
			cmd = instance.SetStatus{Target: instance.TargetUnfreeze}
		case 12:
			cmd = instance.Release{OrderID: "ord-u-" + in.id}
		case 13:
			cmd = instance.Upgrade{OrderID: "ord-up" + strconv.Itoa(g.intn("order", 3)), OrderLineID: "line-up"}
		default:
			orderID := s.OrderID
			if g.intn("other order", 5) == 0 {
				orderID = "ord-other"
			}
			info := instance.OrderInfo{
				OrderID: orderID, OrderLineID: s.OrderLineID,
				OrderType:    g.pick("order type", []string{"NEW", "TRIAL", "RENEW", ""}),
				ChargingMode: g.pick("charging", []string{"", "PERIOD", "ON_DEMAND"}),
				ProductID:    g.pick("product", genProducts),
				SKUCode:      g.pick("sku", []string{"", "sku-1", "sku-2"}),
				PeriodType:   g.pick("period type", []string{"", "month", "year"}),
				PeriodNumber: g.intn("period", 3),
				CustomerID:   g.pick("customer", []string{"", "cust-1", "cust-2", "cust-3"}),
			}
			if g.intn("expiry", 2) == 0 {
				info.ExpireTime = g.now.AddDate(1, 0, 0)
			}
			cmd = instance.RecordOrderInfo{Info: info}
		}
	}
	events, err := instance.Decide(s, cmd)
	if err != nil || len(events) == 0 {
		return
	}
	cause := event.Causation{Activity: instance.Name(cmd), Route: g.pick("route", genRoutes)}
	for _, e := range events {
		in.state = instance.Evolve(in.state, e)
		g.addInstanceEvent(in.id, e, cause)
	}
}

func (g *logGen) addInstanceEvent(id string, e instance.Event, cause event.Causation) {
	typ, v, data, err := instance.Encode(e)
	if err != nil {
		panic(err)
	}
	g.add(eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, typ, v, data, cause)
}

func (g *logGen) add(sid eventstore.StreamID, typ string, v int, data []byte, cause event.Causation) {
	g.out = append(g.out, genEvent{stream: sid, env: event.Envelope{
		ID: g.nextID("ev"), Type: typ, Version: v, AggregateKind: sid.Kind, AggregateID: sid.Keys[len(sid.Keys)-1],
		OccurredAt: g.now, Causation: cause, Data: data,
	}})
}

func (g *logGen) effectStep() {
	eff := g.pick("effect", genEffects)
	in, _ := g.instance()
	if !in.state.Status.Exists() {
		return
	}
	seq := uint64(1 + g.intn("event seq", 6))
	var typ string
	var v any
	switch g.intn("effect event", 3) {
	case 0:
		typ, v = effect.TypeParked, effect.Parked{Effect: eff, InstanceID: in.id, EventID: "e" + strconv.FormatUint(seq, 10),
			EventSeq: seq, EventType: instance.TypeCreated, Attempts: 1 + g.intn("attempts", 5), Reason: "HTTP 50" + strconv.Itoa(g.intn("code", 4))}
	case 1:
		typ, v = effect.TypeDone, effect.Done{Effect: eff, InstanceID: in.id, EventSeq: seq, EventID: "e", EventType: instance.TypeCreated, Attempts: 1}
	default:
		typ, v = effect.TypeRedriven, effect.Redriven{Effect: eff, InstanceID: in.id, Operator: "op"}
	}
	data, _ := json.Marshal(v)
	g.add(eventstore.StreamID{Kind: effect.Kind, Keys: []string{eff, in.id}}, typ, 1, data, event.Causation{Actor: "effects"})
}

func (g *logGen) noiseStep() {
	in, _ := g.instance()
	switch g.intn("noise", 6) {
	case 4: // the license order index (another kind)
		data, _ := json.Marshal(license.Bound{InstanceID: "lic-x"})
		g.add(eventstore.StreamID{Kind: license.IndexKind, Keys: []string{"lo-" + strconv.Itoa(g.ids)}}, license.TypeBound, 1, data, event.Causation{})
	case 5: // the usage pusher's progress, in the usage namespace
		data, _ := json.Marshal(effect.Done{Effect: "usagepush", InstanceID: in.id, EventSeq: 1, Attempts: 1})
		g.add(eventstore.StreamID{Kind: usage.Kind, Keys: []string{effect.Kind, "usagepush", in.id}}, effect.TypeDone, 1, data, event.Causation{Actor: "effects"})
	case 0: // the order index
		data, _ := json.Marshal(instance.Bound{InstanceID: in.id})
		g.add(eventstore.StreamID{Kind: instance.IndexKind, Keys: []string{"ord-" + in.id, "line-" + in.id + "-" + strconv.Itoa(g.ids)}},
			instance.TypeBound, 1, data, event.Causation{})
	case 1: // an order notification
		data, _ := json.Marshal(instance.OrderNotified{OrderID: "ord-" + in.id})
		g.add(eventstore.StreamID{Kind: instance.NotifyKind, Keys: []string{"ord-" + in.id + "-" + strconv.Itoa(g.ids)}},
			instance.TypeOrderNotified, 1, data, event.Causation{})
	case 2: // a type from the future
		g.add(eventstore.StreamID{Kind: instance.Kind, Keys: []string{in.id}}, "InstanceTeleported", 1, []byte(`{"to":"mars"}`), event.Causation{})
	default: // a debug event: would freeze or release the instance if applied
		if !in.state.Status.Exists() {
			return
		}
		var e instance.Event = instance.Frozen{}
		if g.intn("debug", 2) == 0 {
			e = instance.Released{}
		}
		g.addInstanceEvent(in.id, e, event.Causation{TestFlag: true, Activity: "debug"})
	}
}

// appendAll appends the log through the event store (expected sequences
// per stream, as the application does) and returns the stored records.
func appendAll(t tb, ts *testStream, events []genEvent) []eventstore.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	last := map[string]uint64{}
	recs := make([]eventstore.Record, 0, len(events))
	for _, ge := range events {
		subj, err := ts.store.Subject(ge.stream)
		if err != nil {
			t.Fatalf("subject: %v", err)
		}
		seq, err := ts.store.Append(ctx, ge.stream, last[subj], ge.env)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last[subj] = seq
		recs = append(recs, eventstore.Record{Seq: seq, Subject: subj, Event: ge.env})
	}
	return recs
}

// publishAll publishes the log in bulk (asynchronous publishes, no
// expected sequences) for large logs.
func publishAll(t tb, ts *testStream, events []genEvent) []eventstore.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	recs := make([]eventstore.Record, len(events))
	futures := make([]jetstream.PubAckFuture, 0, 4096)
	flush := func(base int) {
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				recs[base+i].Seq = ack.Sequence
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-ctx.Done():
				t.Fatalf("publish: %v", ctx.Err())
			}
		}
		futures = futures[:0]
	}
	base := 0
	for i, ge := range events {
		subj, err := ts.store.Subject(ge.stream)
		if err != nil {
			t.Fatalf("subject: %v", err)
		}
		data, err := eventstore.EncodeEnvelope(ge.env)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{
			jetstream.MsgIDHeader: []string{ge.env.ID}, eventstore.TypeHeader: []string{ge.env.Type},
		}}
		f, err := ts.js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		recs[i] = eventstore.Record{Subject: subj, Event: ge.env}
		futures = append(futures, f)
		if len(futures) == cap(futures) {
			flush(base)
			base = i + 1
		}
	}
	flush(base)
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq != recs[i-1].Seq+1 {
			t.Fatalf("publish: sequences not consecutive at %d: %d after %d", i, recs[i].Seq, recs[i-1].Seq)
		}
	}
	return recs
}

func (g *logGen) String() string {
	return fmt.Sprintf("%d events, %d instances", len(g.out), len(g.insts))
}
