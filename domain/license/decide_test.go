package license

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var expiry = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)

var issued = Issued{
	InstanceID: "b-1", OrderID: "o-1", BusinessID: "b-1",
	Customer: Customer{ID: "c-1", Name: "buyer"},
	Purchase: Purchase{ProductID: "p-1", SKUCode: "s-1", ChargingMode: "1", PeriodType: "month", PeriodNumber: 1,
		ExpireTime: expiry, Extra: map[string]string{"orderAmount": "9.9"}},
	Text: "LICENSE-TEXT-1",
}

// fixtures builds one state per status.
func fixtures() map[string]State {
	renewed := Refreshed{OrderID: "r-1", ExpireTime: expiry.AddDate(0, 1, 0)}
	return map[string]State{
		"none":     {},
		"issued":   Fold(issued, renewed),
		"frozen":   Fold(issued, renewed, Expired{OrderID: "o-1"}),
		"released": Fold(issued, renewed, Released{OrderID: "o-1"}),
	}
}

func commands() map[string]Command {
	issue := Issue{InstanceID: "b-1", OrderID: "o-1", BusinessID: "b-9", Customer: Customer{ID: "c-1"}, Text: "LICENSE-TEXT-2"}
	other := Issue{InstanceID: "b-1", OrderID: "o-2", BusinessID: "b-1", Customer: Customer{ID: "c-2"}, Text: "LICENSE-TEXT-3"}
	debugIssue := Issue{InstanceID: "huaweitest123456", OrderID: "123456789", BusinessID: "huaweitest123456", Customer: Customer{ID: "123456789"}, Debug: true}
	return map[string]Command{
		"issue":              issue,
		"issue-otherorder":   other,
		"issue-debug":        debugIssue,
		"refresh":            Refresh{OrderID: "r-2", ProductID: "p-2", ExpireTime: expiry.AddDate(1, 0, 0), PeriodType: "year", PeriodNumber: 1},
		"refresh-repeat":     Refresh{OrderID: "r-1", ExpireTime: expiry.AddDate(0, 1, 0)},
		"refresh-debug":      Refresh{OrderID: "r-3", ExpireTime: expiry.AddDate(2, 0, 0), Debug: true},
		"expire":             Expire{OrderID: "o-1"},
		"expire-noorder":     Expire{},
		"expire-debug":       Expire{OrderID: "o-1", Debug: true},
		"release":            Release{OrderID: "o-1"},
		"release-debug":      Release{OrderID: "o-1", Debug: true},
		"release-otherorder": Release{OrderID: "o-2"},
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

// want is the complete transition table: every (state, command) pair, with
// the license.md section each outcome follows. Cross-cutting rules:
//   - codes-and-rules.md §3: a repeat with the same key answers success and
//     changes nothing (getLicense: orderId; refreshLicense: the renewal
//     orderId; expire: the target state; release: the instanceId).
//   - codes-and-rules.md §7: a debug call (testFlag=1) changes nothing and
//     is never 000003 (ErrNotFound), whatever the state.
//   - design.md §4: on a released license only release (and a repeated
//     getLicense of its own order) succeed; the rest is ErrNotFound.
var want = map[string]map[string]outcome{
	"none": {
		// §2.1 getLicense: a new order gets a new license.
		"issue": ok(StatusIssued, TypeIssued), "issue-otherorder": ok(StatusIssued, TypeIssued),
		"issue-debug": ok(StatusNone),
		// §2.2 / §2.3 / §2.4: an unknown instanceId is 000003.
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound), "refresh-debug": ok(StatusNone),
		"expire": fail(ErrNotFound), "expire-noorder": fail(ErrNotFound), "expire-debug": ok(StatusNone),
		"release": fail(ErrNotFound), "release-debug": ok(StatusNone), "release-otherorder": fail(ErrNotFound),
	},
	"issued": {
		// §2.1: same orderId → same instance, same License; another order
		// never takes over an instanceId.
		"issue": ok(StatusIssued), "issue-otherorder": fail(ErrIDInUse), "issue-debug": ok(StatusIssued),
		// §2.2: a new renewal order moves the expiry; a repeat is a no-op.
		"refresh": ok(StatusIssued, TypeRefreshed), "refresh-repeat": ok(StatusIssued), "refresh-debug": ok(StatusIssued),
		// §2.3: expiry freezes.
		"expire": ok(StatusFrozen, TypeExpired), "expire-noorder": ok(StatusFrozen, TypeExpired), "expire-debug": ok(StatusIssued),
		// §2.4: release deletes; orderId is recorded, not checked.
		"release": ok(StatusReleased, TypeReleased), "release-debug": ok(StatusIssued),
		"release-otherorder": ok(StatusReleased, TypeReleased),
	},
	"frozen": {
		"issue": ok(StatusFrozen), "issue-otherorder": fail(ErrIDInUse), "issue-debug": ok(StatusFrozen),
		// §2.2: "an instance frozen by expireLicense becomes active again";
		// a re-sent earlier renewal is a repeat and does not unfreeze.
		"refresh": ok(StatusIssued, TypeRefreshed), "refresh-repeat": ok(StatusFrozen), "refresh-debug": ok(StatusFrozen),
		// §2.3: "a repeated expiry of the same instanceId is 000000".
		"expire": ok(StatusFrozen), "expire-noorder": ok(StatusFrozen), "expire-debug": ok(StatusFrozen),
		// §2.4 and codes-and-rules.md §6: a frozen license can be released.
		"release": ok(StatusReleased, TypeReleased), "release-debug": ok(StatusFrozen),
		"release-otherorder": ok(StatusReleased, TypeReleased),
	},
	"released": {
		// §2.1 idempotency: a repeated getLicense of the same order gets the
		// first answer (same instance, same License), nothing changes.
		"issue": ok(StatusReleased), "issue-otherorder": fail(ErrIDInUse), "issue-debug": ok(StatusReleased),
		// design.md §4: others on a released aggregate are not found.
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound), "refresh-debug": ok(StatusReleased),
		"expire": fail(ErrNotFound), "expire-noorder": fail(ErrNotFound), "expire-debug": ok(StatusReleased),
		// §2.4: "releasing an already deleted instance is 000000".
		"release": ok(StatusReleased), "release-debug": ok(StatusReleased), "release-otherorder": ok(StatusReleased),
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
				// Every command is idempotent: deciding it again on the new
				// state appends nothing.
				again, err := Decide(next, c)
				if err == nil && len(again) != 0 {
					t.Fatalf("repeat of %s produced %v", cn, again)
				}
				// Once issued, the text never changes (§2.1: same License).
				if s.Status.Exists() && next.Text != s.Text {
					t.Fatalf("license text changed from %q to %q", s.Text, next.Text)
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

// §2.1: a repeated getLicense answers with the first instanceId and the first
// license text, although its businessId and the issuer's text are new.
func TestIssueRepeatKeepsFirstAnswer(t *testing.T) {
	s := Fold(issued)
	events, err := Decide(s, Issue{InstanceID: "b-1", OrderID: "o-1", BusinessID: "b-2", Customer: Customer{ID: "c-1"}, Text: "OTHER"})
	if err != nil || len(events) != 0 {
		t.Fatalf("repeat = %v, %v; want no events", events, err)
	}
	if s.ID != "b-1" || s.Text != "LICENSE-TEXT-1" || s.BusinessID != "b-1" {
		t.Fatalf("first answer lost: %+v", s)
	}
}

func TestEvolveDetails(t *testing.T) {
	s := Fold(issued)
	if s.ID != "b-1" || s.ProductID != "p-1" || !s.ExpireTime.Equal(expiry) || s.Purchase.SKUCode != "s-1" || s.Customer.Name != "buyer" {
		t.Fatalf("issue not folded: %+v", s)
	}
	s = Evolve(s, Expired{})
	s = Evolve(s, Refreshed{OrderID: "r-9", ProductID: "p-9", ExpireTime: expiry.AddDate(1, 0, 0)})
	if s.Status != StatusIssued || s.ProductID != "p-9" || !s.ExpireTime.Equal(expiry.AddDate(1, 0, 0)) || s.Renewals != 1 {
		t.Fatalf("renewal of a frozen license not folded: %+v", s)
	}
	if s.Purchase.SKUCode != "s-1" {
		t.Fatalf("skuCode must survive a period-type change: %+v", s)
	}
	// An absolute expiry may move back (a shorter renewal period).
	s = Evolve(s, Refreshed{OrderID: "r-10", ExpireTime: expiry})
	if !s.ExpireTime.Equal(expiry) || s.ProductID != "p-9" {
		t.Fatalf("expiry not moved back, or productId lost: %+v", s)
	}
	if s.Events != 4 {
		t.Fatalf("events = %d, want 4", s.Events)
	}
}

// §2.2: a new renewal order with an unchanged expireTime is recorded (so
// that a late re-send is recognised) and changes nothing else.
func TestRefreshSameExpiryNewOrder(t *testing.T) {
	s := fixtures()["issued"]
	events, err := Decide(s, Refresh{OrderID: "r-5", ExpireTime: s.ExpireTime})
	if err != nil || len(events) != 1 {
		t.Fatalf("refresh = %v, %v; want one Refreshed", events, err)
	}
	next := Evolve(s, events[0])
	if !next.ExpireTime.Equal(s.ExpireTime) || next.Status != s.Status || !next.HasRenewal("r-5") {
		t.Fatalf("same-expiry renewal: %+v", next)
	}
}

func TestStatesDoNotShareMaps(t *testing.T) {
	a := fixtures()["issued"]
	b := Evolve(a, Refreshed{OrderID: "z", ExpireTime: expiry})
	if a.HasRenewal("z") || !b.HasRenewal("z") {
		t.Fatal("Evolve changed the orders map of an earlier state")
	}
	extra := map[string]string{"k": "v"}
	events, err := Decide(State{}, Issue{InstanceID: "i", OrderID: "o", Customer: Customer{ID: "c"}, Purchase: Purchase{Extra: extra}, Text: "t"})
	if err != nil {
		t.Fatal(err)
	}
	extra["k"] = "changed"
	s := Fold(events...)
	if s.Purchase.Extra["k"] != "v" {
		t.Fatal("the event shares the command's parameter map")
	}
	ev := events[0].(Issued)
	ev.Purchase.Extra["k"] = "changed again"
	if s.Purchase.Extra["k"] != "v" {
		t.Fatal("the state shares the event's parameter map")
	}
}

func TestOrderKeyUnambiguous(t *testing.T) {
	if orderKey("refresh", "a|1|b") == orderKey("refresh|1|a", "b") {
		t.Fatal("order keys collide")
	}
}

// codes-and-rules.md §7: a debug call is validated like a real one.
func TestValidation(t *testing.T) {
	cases := map[string]Command{
		"nil":                nil,
		"issue-no-instance":  Issue{OrderID: "o", Customer: Customer{ID: "c"}, Text: "t"},
		"issue-no-order":     Issue{InstanceID: "i", Customer: Customer{ID: "c"}, Text: "t"},
		"issue-no-customer":  Issue{InstanceID: "i", OrderID: "o", Text: "t"},
		"issue-no-text":      Issue{InstanceID: "i", OrderID: "o", Customer: Customer{ID: "c"}},
		"issue-debug-no-ids": Issue{Debug: true},
		"issue-neg-period":   Issue{InstanceID: "i", OrderID: "o", Customer: Customer{ID: "c"}, Text: "t", Purchase: Purchase{PeriodNumber: -1}},
		"refresh-no-order":   Refresh{ExpireTime: expiry},
		"refresh-no-expiry":  Refresh{OrderID: "r"},
		"refresh-debug-bad":  Refresh{OrderID: "r", Debug: true},
		"refresh-neg-period": Refresh{OrderID: "r", ExpireTime: expiry, PeriodNumber: -2},
	}
	for name, c := range cases {
		for sn, s := range fixtures() {
			if _, err := Decide(s, c); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s on %s: err = %v, want ErrInvalid", name, sn, err)
			}
		}
	}
	if _, err := Decide(State{}, Issue{InstanceID: "i", OrderID: "o", Customer: Customer{ID: "c"}, Debug: true}); err != nil {
		t.Fatalf("a debug getLicense needs no license text: %v", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	events := []Event{
		issued,
		Issued{InstanceID: "i", OrderID: "o", Customer: Customer{ID: "c", Name: "中文", UserID: "u", UserName: "n"}, Purchase: Purchase{Trial: true}, Text: "t"},
		Refreshed{OrderID: "r", ProductID: "p", ExpireTime: expiry, PeriodType: "year", PeriodNumber: 2},
		Expired{OrderID: "o"}, Expired{}, Released{OrderID: "o"}, Released{},
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
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", e) {
			t.Fatalf("round trip %s: got %#v want %#v", typ, got, e)
		}
	}
	if _, err := Decode(TypeIssued, 2, []byte(`{}`)); err == nil {
		t.Fatal("future schema version accepted")
	}
	if _, err := Decode(TypeIssued, 0, []byte(`{}`)); err == nil {
		t.Fatal("schema version 0 accepted")
	}
	if _, err := Decode("Nope", 1, []byte(`{}`)); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := Decode(TypeRefreshed, 1, []byte(`{`)); err == nil {
		t.Fatal("bad json accepted")
	}
}

func TestDecodeBound(t *testing.T) {
	b, err := DecodeBound(TypeBound, SchemaVersion, []byte(`{"instanceId":"b-1"}`))
	if err != nil || b.InstanceID != "b-1" {
		t.Fatalf("DecodeBound = %+v, %v", b, err)
	}
	for _, bad := range []struct {
		typ  string
		v    int
		data string
	}{{TypeIssued, 1, `{"instanceId":"b"}`}, {TypeBound, 2, `{"instanceId":"b"}`}, {TypeBound, 1, `{}`}, {TypeBound, 1, `[`}} {
		if _, err := DecodeBound(bad.typ, bad.v, []byte(bad.data)); err == nil {
			t.Errorf("DecodeBound(%s, %d, %s) accepted", bad.typ, bad.v, bad.data)
		}
	}
}

func TestName(t *testing.T) {
	for want, c := range map[string]Command{"issue": Issue{}, "refresh": Refresh{}, "expire": Expire{}, "release": Release{}} {
		if got := Name(c); got != want {
			t.Errorf("Name(%T) = %q, want %q", c, got, want)
		}
	}
}
