package licensecode

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	expiry = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	t0     = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC) // activation
	t1     = t0.Add(24 * time.Hour)                      // after every fixture
)

func intp(n int) *int { return &n }

var (
	registered = Registered{Code: "PL-1", Reference: "tenant-7"}
	activated  = Activated{Answer: Answer{At: t0, ErrorCode: APISuccess, ErrorMessage: "success"},
		Info: &CodeInfo{Status: RemoteAlive, ExpireTime: expiry, ProductID: "p-1", OrderID: "CS1", Amount: 2}}
	refused = ActivationFailed{Answer: Answer{At: t0, ErrorCode: "92020004", ErrorMessage: "can not active before user received."}}
	renewed = Refreshed{Scene: SceneRenewal, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: expiry.AddDate(1, 0, 0)}
	queried = Queried{Answer: Answer{At: t0.Add(time.Hour), ErrorCode: APISuccess},
		Info: &QueryInfo{Status: RemoteAlive, ActivateTime: t0, ExpireTime: expiry.AddDate(1, 0, 0)}}
	used = UsageReported{Answer: Answer{At: t0.Add(time.Hour), ErrorCode: APISuccess}, Entries: []UsageEntry{{ID: "account1"}}}
)

// fixtures builds one state per status, and per activation state for an
// active code.
func fixtures() map[string]State {
	return map[string]State{
		"none":              {},
		"pending":           Fold(registered),
		"activation-failed": Fold(registered, refused),
		"activated":         Fold(registered, activated, renewed, queried, used),
		"frozen":            Fold(registered, activated, renewed, queried, used, Frozen{}),
		"released":          Fold(registered, activated, renewed, Released{}),
	}
}

func commands() map[string]Command {
	return map[string]Command{
		"register":       Register{Code: "PL-1", Reference: "tenant-8"},
		"refresh":        Refresh{Scene: SceneRenewal, OrderID: "r-2", OrderLineID: "rl-2", ProductID: "p-2", ExpireTime: expiry.AddDate(2, 0, 0)},
		"refresh-repeat": Refresh{Scene: SceneRenewal, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: expiry.AddDate(1, 0, 0)},
		// An older page style: the cancellation carries the orderId of the
		// renewal it cancels; it is not a repeat of that renewal.
		"refresh-cancel":    Refresh{Scene: SceneUnsubscribeRenewalPeriod, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: expiry},
		"refresh-debug":     Refresh{Scene: SceneRenewal, OrderID: "******", OrderLineID: "******", ExpireTime: expiry, Debug: true},
		"freeze":            SetStatus{Target: TargetFreeze},
		"unfreeze":          SetStatus{Target: TargetUnfreeze},
		"freeze-debug":      SetStatus{Target: TargetFreeze, Debug: true},
		"unfreeze-debug":    SetStatus{Target: TargetUnfreeze, Debug: true},
		"release":           Release{OrderID: "u-1", OrderLineID: "ul-1"},
		"release-debug":     Release{Debug: true},
		"activated":         RecordActivation{Answer: Answer{At: t1, ErrorCode: APISuccess}, Info: &CodeInfo{Status: RemoteAlive, ExpireTime: expiry}},
		"activation-failed": RecordActivation{Answer: Answer{At: t1, ErrorCode: "92020003", ErrorMessage: "illegal state"}},
		"query":             RecordQuery{Answer: Answer{At: t1, ErrorCode: APISuccess}, Info: &QueryInfo{Status: RemoteAlive, ActivateTime: t0, ExpireTime: expiry}},
		"query-failed":      RecordQuery{Answer: Answer{At: t1, ErrorCode: "92020011", ErrorMessage: "license code has been not activated."}},
		"usage":             RecordUsage{Answer: Answer{At: t1, ErrorCode: APISuccess}, Entries: []UsageEntry{{ActiveNum: intp(100)}}},
	}
}

// outcome: an error, or the event types and the resulting status.
type outcome struct {
	err    error
	events []string
	status Status
}

func ok(status Status, events ...string) outcome { return outcome{events: events, status: status} }
func fail(err error) outcome                     { return outcome{err: err} }

// live is the row shared by an active code whatever its activation state
// (pending or refused); spec sections as in want.
func live(activation outcome, failed outcome) map[string]outcome {
	return map[string]outcome{
		"register": ok(StatusActive),
		"refresh":  ok(StatusActive, TypeRefreshed), "refresh-repeat": ok(StatusActive, TypeRefreshed),
		"refresh-cancel": ok(StatusActive, TypeRefreshed), "refresh-debug": ok(StatusActive),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusActive),
		"freeze-debug": ok(StatusActive), "unfreeze-debug": ok(StatusActive),
		"release": ok(StatusReleased, TypeReleased), "release-debug": ok(StatusActive),
		"activated": activation, "activation-failed": failed,
		"query": ok(StatusActive, TypeQueried), "query-failed": ok(StatusActive, TypeQueried),
		"usage": ok(StatusActive, TypeUsageReported),
	}
}

// want is the complete transition table: every (state, command) pair.
// Sections: license.md §3.1 (a code becomes known when handed over), §3.2
// refreshLicenseCode (absolute expiry, de-duplicated; unknown code 000003),
// §3.3 updateLicenseCodeStatus (setting the current status is 000000),
// §3.4 releaseLicenseCode (release again 000000, never seen 000003);
// outgoing.md §6–§8 for the recorded answers; codes-and-rules.md §7: a debug
// call changes nothing and is never 000003; design.md §4: on a released code
// only release succeeds, the other KooGallery calls are not found.
var want = map[string]map[string]outcome{
	"none": {
		"register": ok(StatusActive, TypeRegistered),
		"refresh":  fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound), "refresh-cancel": fail(ErrNotFound),
		"refresh-debug": ok(StatusNone),
		"freeze":        fail(ErrNotFound), "unfreeze": fail(ErrNotFound),
		"freeze-debug": ok(StatusNone), "unfreeze-debug": ok(StatusNone),
		"release": fail(ErrNotFound), "release-debug": ok(StatusNone),
		// Answers for a code never registered have nowhere to go.
		"activated": fail(ErrNotFound), "activation-failed": fail(ErrNotFound),
		"query": fail(ErrNotFound), "query-failed": fail(ErrNotFound), "usage": fail(ErrNotFound),
	},
	"pending":           live(ok(StatusActive, TypeActivated), ok(StatusActive, TypeActivationFailed)),
	"activation-failed": live(ok(StatusActive, TypeActivated), ok(StatusActive, TypeActivationFailed)),
	"activated": {
		"register": ok(StatusActive),
		// §3.2: a new order moves the expiry, a repeat does not; the
		// cancellation of r-1 is a different key (scene is part of it).
		"refresh": ok(StatusActive, TypeRefreshed), "refresh-repeat": ok(StatusActive),
		"refresh-cancel": ok(StatusActive, TypeRefreshed), "refresh-debug": ok(StatusActive),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusActive),
		"freeze-debug": ok(StatusActive), "unfreeze-debug": ok(StatusActive),
		"release": ok(StatusReleased, TypeReleased), "release-debug": ok(StatusActive),
		// outgoing.md §6: a code is activated once; later answers (e.g.
		// 92020003 "do not activate twice") change nothing.
		"activated": ok(StatusActive), "activation-failed": ok(StatusActive),
		"query": ok(StatusActive, TypeQueried), "query-failed": ok(StatusActive, TypeQueried),
		"usage": ok(StatusActive, TypeUsageReported),
	},
	"frozen": {
		"register": ok(StatusFrozen),
		// §3.2 + codes-and-rules.md §6: a renewal does not unfreeze a
		// License B code; UNFREEZE does.
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen),
		"refresh-cancel": ok(StatusFrozen, TypeRefreshed), "refresh-debug": ok(StatusFrozen),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusActive, TypeUnfrozen),
		"freeze-debug": ok(StatusFrozen), "unfreeze-debug": ok(StatusFrozen),
		"release": ok(StatusReleased, TypeReleased), "release-debug": ok(StatusFrozen),
		"activated": ok(StatusFrozen), "activation-failed": ok(StatusFrozen),
		"query": ok(StatusFrozen, TypeQueried), "query-failed": ok(StatusFrozen, TypeQueried),
		"usage": ok(StatusFrozen, TypeUsageReported),
	},
	"released": {
		"register": ok(StatusReleased),
		"refresh":  fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound), "refresh-cancel": fail(ErrNotFound),
		"refresh-debug": ok(StatusReleased),
		"freeze":        fail(ErrNotFound), "unfreeze": fail(ErrNotFound),
		"freeze-debug": ok(StatusReleased), "unfreeze-debug": ok(StatusReleased),
		"release": ok(StatusReleased), "release-debug": ok(StatusReleased),
		// Too late to change the activation; heartbeats and usage reports
		// after a release are still recorded (they show a code in use that
		// should not be).
		"activated": ok(StatusReleased), "activation-failed": ok(StatusReleased),
		"query": ok(StatusReleased, TypeQueried), "query-failed": ok(StatusReleased, TypeQueried),
		"usage": ok(StatusReleased, TypeUsageReported),
	},
}

func TestDecideEveryStateCommandPair(t *testing.T) {
	states, cmds := fixtures(), commands()
	if len(want) != len(states) {
		t.Fatalf("table covers %d states, fixtures have %d", len(want), len(states))
	}
	for _, st := range Statuses {
		if !covered(states, st) {
			t.Fatalf("no fixture in status %q", st)
		}
	}
	for sn, s := range states {
		row, found := want[sn]
		if !found {
			t.Fatalf("no table row for state %s", sn)
		}
		if len(row) != len(cmds) {
			t.Fatalf("row %s covers %d commands, want %d", sn, len(row), len(cmds))
		}
		for cn, c := range cmds {
			w, found := row[cn]
			if !found {
				t.Fatalf("no table entry for (%s, %s)", sn, cn)
			}
			t.Run(sn+"/"+cn, func(t *testing.T) {
				before := fmt.Sprintf("%+v", s)
				events, err := Decide(s, c)
				if after := fmt.Sprintf("%+v", s); after != before {
					t.Fatalf("Decide mutated its input state")
				}
				if w.err != nil {
					if !errors.Is(err, w.err) {
						t.Fatalf("err = %v, want %v", err, w.err)
					}
					if events != nil {
						t.Fatalf("events %v with an error", events)
					}
					return
				}
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				var types []string
				next := s
				for _, e := range events {
					types = append(types, e.EventType())
					next = Evolve(next, e)
				}
				if fmt.Sprint(types) != fmt.Sprint(w.events) {
					t.Fatalf("events = %v, want %v", types, w.events)
				}
				if next.Status != w.status {
					t.Fatalf("status after = %s, want %s", next.Status, w.status)
				}
				again, err := Decide(next, c)
				if err == nil && len(again) != 0 {
					t.Fatalf("repeat of %s produced %v", cn, again)
				}
			})
		}
	}
}

func covered(states map[string]State, st Status) bool {
	for _, s := range states {
		if s.Status == st {
			return true
		}
	}
	return false
}

// The activation state after each recorded answer (outgoing.md §6, §7).
func TestActivationState(t *testing.T) {
	s := Fold(registered)
	if s.Activation != ActivationPending {
		t.Fatalf("registered code: activation %q", s.Activation)
	}
	steps := []struct {
		name string
		c    Command
		want Activation
	}{
		{"not received yet", RecordActivation{Answer: Answer{At: t0, ErrorCode: "92020004"}}, ActivationRefused},
		{"redelivered", RecordActivation{Answer: Answer{At: t0, ErrorCode: "92020004"}}, ActivationRefused},
		{"heartbeat says not activated", RecordQuery{Answer: Answer{At: t0.Add(time.Minute), ErrorCode: "92020011"}}, ActivationRefused},
		{"activated", RecordActivation{Answer: Answer{At: t0.Add(time.Hour), ErrorCode: APISuccess},
			Info: &CodeInfo{Status: RemoteAlive, ExpireTime: expiry, ProductID: "p-1", OrderID: "CS1", Amount: 3}}, ActivationConfirmed},
		{"a later refusal changes nothing", RecordActivation{Answer: Answer{At: t1, ErrorCode: "92020003"}}, ActivationConfirmed},
	}
	for _, st := range steps {
		events, err := Decide(s, st.c)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, e := range events {
			s = Evolve(s, e)
		}
		if s.Activation != st.want {
			t.Fatalf("%s: activation %q, want %q", st.name, s.Activation, st.want)
		}
	}
	if s.ActivationError != nil || !s.ActivatedAt.Equal(t0.Add(time.Hour)) || s.OrderID != "CS1" || s.Amount != 3 ||
		s.ProductID != "p-1" || !s.ExpireTime.Equal(expiry) {
		t.Fatalf("activation info not folded: %+v", s)
	}
	if s.Query == nil || s.Query.Answer.ErrorCode != "92020011" {
		t.Fatalf("failed heartbeat not recorded: %+v", s.Query)
	}
}

// outgoing.md §7: a heartbeat that reports an activation time confirms the
// activation (e.g. the software activated the code without Gallerist), and
// its expiry is authoritative.
func TestQueryConfirmsActivationAndExpiry(t *testing.T) {
	s := Fold(registered, refused)
	events, err := Decide(s, RecordQuery{Answer: Answer{At: t1, ErrorCode: APISuccess},
		Info: &QueryInfo{Status: RemoteAlive, ActivateTime: t0.Add(-time.Hour), ExpireTime: expiry}})
	if err != nil || len(events) != 1 {
		t.Fatalf("query = %v, %v", events, err)
	}
	s = Evolve(s, events[0])
	if s.Activation != ActivationConfirmed || !s.ActivatedAt.Equal(t0.Add(-time.Hour)) || s.ActivationError != nil || !s.ExpireTime.Equal(expiry) {
		t.Fatalf("query not folded: %+v", s)
	}
	// An older answer delivered late changes nothing.
	if events, err := Decide(s, RecordQuery{Answer: Answer{At: t0, ErrorCode: "92020011"}}); err != nil || len(events) != 0 {
		t.Fatalf("stale query = %v, %v", events, err)
	}
}

// outgoing.md §6: the activation's expire_time is an estimate; it never
// overrides an expiry set by refreshLicenseCode or a query.
func TestActivationEstimateOnlyFillsAGap(t *testing.T) {
	s := Fold(registered, renewed, activated)
	if !s.ExpireTime.Equal(renewed.ExpireTime) {
		t.Fatalf("estimate overrode the renewal: %v", s.ExpireTime)
	}
	if s = Fold(registered, activated); !s.ExpireTime.Equal(expiry) {
		t.Fatalf("estimate not used when nothing else is known: %v", s.ExpireTime)
	}
}

// license.md §3.2: UNSUBSCRIBE_RENEWAL_PERIOD shortens the expiry.
func TestCancellationShortensExpiry(t *testing.T) {
	s := fixtures()["activated"]
	events, err := Decide(s, commands()["refresh-cancel"])
	if err != nil || len(events) != 1 {
		t.Fatalf("cancellation = %v, %v", events, err)
	}
	if s = Evolve(s, events[0]); !s.ExpireTime.Equal(expiry) || s.Renewals != 2 {
		t.Fatalf("expiry after cancellation = %v (renewals %d), want %v", s.ExpireTime, s.Renewals, expiry)
	}
}

func TestEventsDoNotShareMemory(t *testing.T) {
	n := 5
	c := RecordUsage{Answer: Answer{At: t1, ErrorCode: APISuccess}, Entries: []UsageEntry{{ActiveNum: &n}}}
	events, err := Decide(Fold(registered), c)
	if err != nil {
		t.Fatal(err)
	}
	n = 6
	c.Entries[0].ActiveNum = nil
	if got := events[0].(UsageReported).Entries[0].ActiveNum; got == nil || *got != 5 {
		t.Fatal("the event shares the command's entries")
	}
	info := &CodeInfo{ProductID: "p"}
	events, err = Decide(Fold(registered), RecordActivation{Answer: Answer{At: t1, ErrorCode: APISuccess}, Info: info})
	if err != nil {
		t.Fatal(err)
	}
	info.ProductID = "changed"
	if events[0].(Activated).Info.ProductID != "p" {
		t.Fatal("the event shares the command's info")
	}
	a := fixtures()["activated"]
	b := Evolve(a, Refreshed{Scene: SceneRenewal, OrderID: "z", ExpireTime: expiry})
	if a.HasOrder(SceneRenewal, "z", "") || !b.HasOrder(SceneRenewal, "z", "") {
		t.Fatal("Evolve changed the orders map of an earlier state")
	}
}

func TestOrderKeyUnambiguous(t *testing.T) {
	if orderKey("refresh", "a|b", "c") == orderKey("refresh", "a", "b|c") {
		t.Fatal("order keys collide")
	}
}

func TestParse(t *testing.T) {
	for _, sc := range Scenes {
		if got, err := ParseScene(string(sc)); err != nil || got != sc {
			t.Fatalf("ParseScene(%s) = %v, %v", sc, got, err)
		}
	}
	for _, tg := range []Target{TargetFreeze, TargetUnfreeze} {
		if got, err := ParseTarget(string(tg)); err != nil || got != tg {
			t.Fatalf("ParseTarget(%s) = %v, %v", tg, got, err)
		}
	}
	// codes-and-rules.md §9: License B has no TRIAL_TO_FORMAL or
	// RENEWAL_CHANGE scene.
	for _, bad := range []string{"", "renewal", "TRIAL_TO_FORMAL", "RENEWAL_CHANGE", "NORMAL"} {
		if _, err := ParseScene(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseScene(%q) err = %v", bad, err)
		}
		if _, err := ParseTarget(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseTarget(%q) err = %v", bad, err)
		}
	}
	for _, good := range []string{"PLXXXXXX", "PL-1", strings.Repeat("中", MaxCodeLen)} {
		if _, err := ParseCode(good); err != nil {
			t.Fatalf("ParseCode(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxCodeLen+1), "PL\n1", "PL\x7f", "\xff"} {
		if _, err := ParseCode(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseCode(%q) accepted", bad)
		}
	}
	if !RemoteAlive.Known() || !RemoteExpired.Known() || !RemoteReleased.Known() || RemoteStatus("FROZEN").Known() {
		t.Fatal("RemoteStatus.Known")
	}
}

// codes-and-rules.md §7: a debug call is validated like a real one.
func TestValidation(t *testing.T) {
	ok := Answer{At: t1, ErrorCode: APISuccess}
	cases := map[string]Command{
		"nil":                        nil,
		"register-empty":             Register{},
		"register-too-long":          Register{Code: strings.Repeat("x", 65)},
		"refresh-bad-scene":          Refresh{Scene: "TRIAL_TO_FORMAL", OrderID: "r", ExpireTime: expiry},
		"refresh-no-order":           Refresh{Scene: SceneRenewal, ExpireTime: expiry},
		"refresh-no-expiry":          Refresh{Scene: SceneRenewal, OrderID: "r"},
		"refresh-debug-bad-scene":    Refresh{Scene: "X", OrderID: "r", ExpireTime: expiry, Debug: true},
		"status-bad":                 SetStatus{Target: "NORMAL"},
		"status-debug-bad":           SetStatus{Target: "", Debug: true},
		"activation-no-time":         RecordActivation{Answer: Answer{ErrorCode: APISuccess}},
		"activation-no-code":         RecordActivation{Answer: Answer{At: t1}},
		"activation-failed-info":     RecordActivation{Answer: Answer{At: t1, ErrorCode: "92020001"}, Info: &CodeInfo{}},
		"activation-negative-amount": RecordActivation{Answer: ok, Info: &CodeInfo{Amount: -1}},
		"query-ok-no-info":           RecordQuery{Answer: ok},
		"query-failed-info":          RecordQuery{Answer: Answer{At: t1, ErrorCode: "92020005"}, Info: &QueryInfo{Status: RemoteAlive}},
		"query-no-status":            RecordQuery{Answer: ok, Info: &QueryInfo{}},
		"usage-empty":                RecordUsage{Answer: ok},
		"usage-too-many":             RecordUsage{Answer: ok, Entries: make([]UsageEntry, MaxUsageEntries+1)},
		"usage-both":                 RecordUsage{Answer: ok, Entries: []UsageEntry{{ID: "a", ActiveNum: intp(1)}}},
		"usage-neither":              RecordUsage{Answer: ok, Entries: []UsageEntry{{}}},
		"usage-negative":             RecordUsage{Answer: ok, Entries: []UsageEntry{{ActiveNum: intp(-1)}}},
		"usage-no-time":              RecordUsage{Answer: Answer{ErrorCode: APISuccess}, Entries: []UsageEntry{{ID: "a"}}},
	}
	for name, c := range cases {
		for sn, s := range fixtures() {
			if _, err := Decide(s, c); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s on %s: err = %v, want ErrInvalid", name, sn, err)
			}
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	events := []Event{
		registered, Registered{Code: "中文"},
		renewed, Refreshed{Scene: SceneUnsubscribeRenewalPeriod, OrderID: "o", ExpireTime: expiry},
		Frozen{}, Unfrozen{}, Released{OrderID: "u", OrderLineID: "ul"}, Released{},
		activated, Activated{Answer: Answer{At: t0, ErrorCode: APISuccess}, EffectTime: t0.Add(-time.Hour)},
		refused, queried, Queried{Answer: Answer{At: t1, ErrorCode: "92020005", ErrorMessage: "license code notexist"}},
		used, UsageReported{Answer: Answer{At: t1, ErrorCode: APISuccess}, Entries: []UsageEntry{{ActiveNum: intp(0)}, {ID: "x"}}},
	}
	for _, e := range events {
		typ, v, data, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(typ, v, data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip %s: got %#v want %#v", typ, got, e)
		}
	}
	if _, err := Decode(TypeRegistered, 2, []byte(`{}`)); err == nil {
		t.Fatal("future schema version accepted")
	}
	if _, err := Decode("Nope", 1, []byte(`{}`)); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := Decode(TypeQueried, 1, []byte(`{`)); err == nil {
		t.Fatal("bad json accepted")
	}
}

func TestName(t *testing.T) {
	for want, c := range map[string]Command{"register": Register{}, "refresh": Refresh{}, "setStatus": SetStatus{},
		"release": Release{}, "recordActivation": RecordActivation{}, "recordQuery": RecordQuery{}, "recordUsage": RecordUsage{}} {
		if got := Name(c); got != want {
			t.Errorf("Name(%T) = %q, want %q", c, got, want)
		}
	}
}
