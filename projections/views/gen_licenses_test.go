package views

import (
	"strconv"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
)

// The generator's License A, License B and usage steps: like the
// instance steps, only what each domain's Decide produces for the
// aggregate's state.

type genLicense struct {
	id    string
	state license.State
}

type genCode struct {
	id    string
	state licensecode.State
}

var genLicenseRoutes = []string{"", "/saas/license", "/license/v1"}

// pickAggregate returns an existing aggregate (index) or -1 for a new one:
// new with chance newPct while under maxInstances, else one of the most
// recent (window).
func (g *logGen) pickAggregate(label string, n int) int {
	if n < g.maxInstances && (n == 0 || g.intn("new "+label, 100) < g.newPct) {
		return -1
	}
	from := 0
	if g.window > 0 && n > g.window {
		from = n - g.window
	}
	return from + g.intn(label, n-from)
}

func (g *logGen) licenseStep() {
	i := g.pickAggregate("license", len(g.licenses))
	if i < 0 {
		g.licenses = append(g.licenses, &genLicense{id: g.nextID("lic")})
		i = len(g.licenses) - 1
	}
	l := g.licenses[i]
	var cmd license.Command
	if !l.state.Status.Exists() || g.intn("license command", 10) == 0 {
		p := license.Purchase{
			ProductID: g.pick("product", genProducts), SKUCode: g.pick("sku", []string{"", "sku-1"}),
			Trial: g.intn("trial", 3) == 0, ChargingMode: g.pick("charging", []string{"", "0", "1", "3", "5", "9"}),
			PeriodType: g.pick("period type", []string{"", "month"}), PeriodNumber: g.intn("period", 3),
		}
		if g.intn("expiry", 2) == 0 {
			p.ExpireTime = g.now.AddDate(0, 6, 0).Add(time.Duration(g.intn("ns", 1000)))
		}
		order := "lo-" + l.id
		if g.intn("other order", 4) == 0 {
			order = "lo-other" // a repeat for another order: refused
		}
		cmd = license.Issue{InstanceID: l.id, OrderID: order, BusinessID: "biz-" + l.id,
			Customer: license.Customer{ID: g.pick("customer", []string{"cust-1", "cust-2"})}, Purchase: p, Text: "LICENSE " + l.id}
	} else {
		switch g.intn("license command", 8) {
		case 0, 1, 2:
			cmd = license.Refresh{OrderID: "lr-" + strconv.Itoa(g.intn("order", 4)), ProductID: g.pick("product", genProducts),
				ExpireTime: g.now.AddDate(1, 0, 0).Add(time.Duration(g.intn("ns", 1000))),
				PeriodType: g.pick("period type", []string{"", "year"}), PeriodNumber: g.intn("period", 2)}
		case 3, 4, 5:
			cmd = license.Expire{OrderID: g.pick("order", []string{"", "lo-" + l.id})}
		default:
			cmd = license.Release{OrderID: "lo-" + l.id}
		}
	}
	events, err := license.Decide(l.state, cmd)
	if err != nil || len(events) == 0 {
		return
	}
	cause := event.Causation{Activity: license.Name(cmd), Route: g.pick("route", genLicenseRoutes)}
	for _, e := range events {
		l.state = license.Evolve(l.state, e)
		typ, v, data, err := license.Encode(e)
		if err != nil {
			panic(err)
		}
		g.add(eventstore.StreamID{Kind: license.Kind, Keys: []string{l.id}}, typ, v, data, cause)
	}
}

func (g *logGen) codeStep() {
	i := g.pickAggregate("code", len(g.codes))
	if i < 0 {
		g.codes = append(g.codes, &genCode{id: g.nextID("code")})
		i = len(g.codes) - 1
	}
	c := g.codes[i]
	// Answers carry the time of the call: mostly just now, sometimes
	// older (a late or redelivered answer, which Decide may ignore).
	answer := func() licensecode.Answer {
		a := licensecode.Answer{At: g.now.Add(-time.Duration(g.intn("answer age", 3)) * time.Hour), ErrorCode: licensecode.APISuccess}
		if g.intn("answer fails", 3) == 0 {
			a.ErrorCode, a.ErrorMessage = "92020004", "refused "+c.id
		}
		return a
	}
	var cmd licensecode.Command
	route := g.pick("route", genLicenseRoutes)
	if !c.state.Status.Exists() {
		cmd, route = licensecode.Register{Code: c.id, Reference: g.pick("reference", []string{"", "vendor-1"})}, ""
	} else {
		switch g.intn("code command", 12) {
		case 0, 1:
			cmd = licensecode.Refresh{Scene: licensecode.Scenes[g.intn("scene", len(licensecode.Scenes))],
				OrderID: "co-" + strconv.Itoa(g.intn("order", 3)), OrderLineID: "col", ProductID: g.pick("product", genProducts),
				ExpireTime: g.now.AddDate(0, 3, 0).Add(time.Duration(g.intn("ns", 1000)))}
		case 2:
			cmd = licensecode.SetStatus{Target: licensecode.TargetFreeze}
		case 3:
			cmd = licensecode.SetStatus{Target: licensecode.TargetUnfreeze}
		case 4:
			cmd = licensecode.Release{OrderID: "cu-" + c.id}
		case 5, 6:
			a := answer()
			ra := licensecode.RecordActivation{Answer: a}
			if a.OK() && g.intn("info", 2) == 0 {
				ra.Info = &licensecode.CodeInfo{Status: licensecode.RemoteAlive, ProductID: g.pick("product", genProducts),
					OrderID: g.pick("order", []string{"", "ko-1"}), Amount: g.intn("amount", 3)}
				if g.intn("estimate", 2) == 0 {
					ra.Info.ExpireTime = g.now.AddDate(0, 2, 0)
				}
			}
			cmd, route = ra, ""
		case 7, 8, 9:
			a := answer()
			rq := licensecode.RecordQuery{Answer: a}
			if a.OK() {
				rq.Info = &licensecode.QueryInfo{Status: licensecode.RemoteStatus(g.pick("remote", []string{"ALIVE", "EXPIRED", "RELEASED", "ODD"}))}
				if g.intn("activate time", 2) == 0 {
					rq.Info.ActivateTime = g.now.Add(-time.Duration(1+g.intn("since", 48)) * time.Hour)
				}
				if g.intn("query expiry", 2) == 0 {
					rq.Info.ExpireTime = g.now.AddDate(0, 4, 0)
				}
			}
			cmd, route = rq, ""
		default:
			n := g.intn("active", 5)
			entries := []licensecode.UsageEntry{{ID: "dev-1"}, {ActiveNum: &n}}
			cmd, route = licensecode.RecordUsage{Answer: answer(), Entries: entries[:1+g.intn("entries", 2)]}, ""
		}
	}
	events, err := licensecode.Decide(c.state, cmd)
	if err != nil || len(events) == 0 {
		return
	}
	cause := event.Causation{Activity: licensecode.Name(cmd), Route: route}
	for _, e := range events {
		c.state = licensecode.Evolve(c.state, e)
		typ, v, data, err := licensecode.Encode(e)
		if err != nil {
			panic(err)
		}
		g.add(eventstore.StreamID{Kind: licensecode.Kind, Keys: []string{c.id}}, typ, v, data, cause)
	}
}

var genUsageValues = []string{"1", "0.25", "12.5", "99999999999999.9999", "7"}

// usageStep reports usage of an instance, or records a push's outcome:
// the usage streams are "<prefix>.usage.instance.<id>", as the usage
// service appends them.
func (g *logGen) usageStep() {
	in, _ := g.instance()
	if g.usages == nil {
		g.usages = map[string]*usage.State{}
	}
	st := g.usages[in.id]
	if st == nil {
		st = &usage.State{}
		g.usages[in.id] = st
	}
	var cmd usage.Command
	if st.PendingLen() == 0 || g.intn("usage command", 2) == 0 {
		var recs []usage.Record
		for range 1 + g.intn("records", 3) {
			key := "k" + strconv.Itoa(g.intn("record key", 8))
			end := g.now.Truncate(time.Hour)
			begin := end.Add(-time.Hour)
			billing := usage.BillingHourly
			if g.intn("daily", 3) == 0 {
				begin, billing = end.Add(-6*time.Hour), usage.BillingDaily
			}
			recs = append(recs, usage.Record{InstanceID: in.id, RecordKey: key, MeteringSN: usage.MeteringSN(in.id, key),
				RecordTime: end.Add(time.Minute), BeginTime: begin, EndTime: end, UsageValue: g.pick("value", genUsageValues),
				RelatePkgInstance: g.pick("pkg", []string{"", "pkg-1"}), Billing: billing})
		}
		cmd = usage.Report{InstanceID: in.id, Records: recs}
	} else {
		o := usage.RecordOutcome{BatchID: "batch-" + strconv.Itoa(g.ids), Host: "kg"}
		for _, r := range st.Pending(10) {
			switch g.intn("outcome", 5) {
			case 0, 1:
				o.Accepted = append(o.Accepted, r.MeteringSN)
			case 2:
				o.Accepted = append(o.Accepted, r.MeteringSN)
				o.Duplicates = append(o.Duplicates, r.MeteringSN)
			case 3:
				o.Rejected = append(o.Rejected, usage.Rejection{MeteringSN: r.MeteringSN, Code: "00" + strconv.Itoa(1+g.intn("code", 9)), Message: "bad"})
			}
		}
		if g.intn("local", 4) == 0 {
			o.Local, o.Accepted, o.Duplicates = true, nil, nil
		}
		// Sometimes a metering_sn that is not pending (or not this
		// instance's): the outcome ignores it.
		o.Accepted = append(o.Accepted, usage.MeteringSN("other", "k"))
		cmd = o
	}
	events, err := usage.Decide(*st, cmd)
	if err != nil || len(events) == 0 {
		return
	}
	cause := event.Causation{Actor: "usage"}
	for _, e := range events {
		*st = usage.Evolve(*st, e)
		typ, v, data, err := usage.Encode(e)
		if err != nil {
			panic(err)
		}
		g.add(eventstore.StreamID{Kind: usage.Kind, Keys: []string{"instance", in.id}}, typ, v, data, cause)
	}
}
