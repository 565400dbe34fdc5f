package instance

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var expiry = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)

// fixtures builds one state per status (two for frozen: with and without app info).
func fixtures() map[string]State {
	created := Created{InstanceID: "i-1", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "i-1"}
	app := Provisioned{AppInfo: AppInfo{FrontEndURL: "https://x"}}
	renewed := Refreshed{Scene: SceneRenewal, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: expiry}
	upgraded := Upgraded{OrderID: "u-1", OrderLineID: "ul-1"}
	return map[string]State{
		"none":          {},
		"provisioning":  Fold(created),
		"active":        Fold(created, app, renewed, upgraded),
		"frozen":        Fold(created, app, renewed, upgraded, Frozen{}),
		"frozen-unprov": Fold(created, Frozen{}),
		"released":      Fold(created, app, Released{}),
		"failed":        Fold(created, ProvisioningFailed{Failure: Failure{Code: "000100", Message: "full"}}),
	}
}

func commands() map[string]Command {
	return map[string]Command{
		"create":            Create{InstanceID: "i-1", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "i-1"},
		"create-otherorder": Create{InstanceID: "i-1", OrderID: "o-2", OrderLineID: "l-2", BusinessID: "i-1"},
		"refresh":           Refresh{Scene: SceneTrialToFormal, OrderID: "r-2", OrderLineID: "rl-2", ProductID: "p-2", ExpireTime: expiry.AddDate(1, 0, 0)},
		"refresh-repeat":    Refresh{Scene: SceneRenewal, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: expiry},
		"freeze":            SetStatus{Target: TargetFreeze},
		"unfreeze":          SetStatus{Target: TargetUnfreeze},
		"release":           Release{OrderID: "x-1"},
		"upgrade":           Upgrade{OrderID: "u-2", OrderLineID: "ul-2"},
		"upgrade-repeat":    Upgrade{OrderID: "u-1", OrderLineID: "ul-1"},
		"check":             CheckChange{},
		"provisioned":       RecordProvisioning{AppInfo: &AppInfo{FrontEndURL: "https://y"}},
		"prov-failed":       RecordProvisioning{Failure: &Failure{Code: "000104", Message: "boom"}},
		"order-info":        RecordOrderInfo{Info: OrderInfo{OrderID: "o-1", OrderLineID: "l-1", OrderType: "NEW", ChargingMode: "PERIOD"}},
	}
}

// outcome: an error (sentinel or *RefusedError marker) or the event types and
// the resulting status.
type outcome struct {
	err    error
	events []string
	status Status
}

var errRefused = errors.New("errRefused marker")

func ok(status Status, events ...string) outcome { return outcome{events: events, status: status} }
func fail(err error) outcome                     { return outcome{err: err} }

// want is the complete transition table: every (state, command) pair.
var want = map[string]map[string]outcome{
	"none": {
		"create": ok(StatusProvisioning, TypeCreated), "create-otherorder": ok(StatusProvisioning, TypeCreated),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": fail(ErrNotFound),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": fail(ErrNotFound), "prov-failed": fail(ErrNotFound),
		"order-info": fail(ErrNotFound),
	},
	"provisioning": {
		"create": ok(StatusProvisioning), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusProvisioning, TypeRefreshed), "refresh-repeat": ok(StatusProvisioning, TypeRefreshed),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusProvisioning),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusProvisioning, TypeUpgraded), "upgrade-repeat": ok(StatusProvisioning, TypeUpgraded),
		"check":       ok(StatusProvisioning),
		"provisioned": ok(StatusActive, TypeProvisioned), "prov-failed": ok(StatusFailed, TypeProvisioningFailed),
		"order-info": ok(StatusProvisioning, TypeOrderQueried),
	},
	"active": {
		"create": ok(StatusActive), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusActive, TypeRefreshed), "refresh-repeat": ok(StatusActive),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusActive),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusActive, TypeUpgraded), "upgrade-repeat": ok(StatusActive),
		"check": ok(StatusActive), "provisioned": ok(StatusActive), "prov-failed": ok(StatusActive),
		"order-info": ok(StatusActive, TypeOrderQueried),
	},
	"frozen": {
		"create": ok(StatusFrozen), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusActive, TypeUnfrozen),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusFrozen, TypeUpgraded), "upgrade-repeat": ok(StatusFrozen),
		"check": ok(StatusFrozen), "provisioned": ok(StatusFrozen), "prov-failed": ok(StatusFrozen),
		"order-info": ok(StatusFrozen, TypeOrderQueried),
	},
	"frozen-unprov": {
		"create": ok(StatusFrozen), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen, TypeRefreshed),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusProvisioning, TypeUnfrozen),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusFrozen, TypeUpgraded), "upgrade-repeat": ok(StatusFrozen, TypeUpgraded),
		"check": ok(StatusFrozen), "provisioned": ok(StatusFrozen, TypeProvisioned),
		"prov-failed": ok(StatusFailed, TypeProvisioningFailed),
		"order-info":  ok(StatusFrozen, TypeOrderQueried),
	},
	"released": {
		"create": ok(StatusReleased), "create-otherorder": fail(ErrIDInUse),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": ok(StatusReleased),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": ok(StatusReleased), "prov-failed": ok(StatusReleased),
		"order-info": ok(StatusReleased, TypeOrderQueried),
	},
	"failed": {
		"create": fail(errRefused), "create-otherorder": fail(ErrIDInUse),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": ok(StatusReleased, TypeReleased),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": ok(StatusActive, TypeProvisioned), "prov-failed": ok(StatusFailed),
		"order-info": ok(StatusFailed, TypeOrderQueried),
	},
}

func TestDecideEveryStateCommandPair(t *testing.T) {
	states, cmds := fixtures(), commands()
	if len(want) != len(states) {
		t.Fatalf("table covers %d states, fixtures have %d", len(want), len(states))
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
				switch {
				case w.err == errRefused:
					var re *RefusedError
					if !errors.As(err, &re) || re.Failure.Code != "000100" {
						t.Fatalf("err = %v, want RefusedError with the stored failure", err)
					}
					return
				case w.err != nil:
					if !errors.Is(err, w.err) {
						t.Fatalf("err = %v, want %v", err, w.err)
					}
					if events != nil {
						t.Fatalf("events %v with an error", events)
					}
					return
				case err != nil:
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
				// Deciding the same command again on the new state is a no-op
				// (every command is idempotent), except where it is errRefused.
				again, err := Decide(next, c)
				if err == nil && len(again) != 0 {
					t.Fatalf("repeat of %s produced %v", cn, again)
				}
			})
		}
	}
}

func TestEvolveDetails(t *testing.T) {
	s := fixtures()["active"]
	s = Evolve(s, Refreshed{Scene: SceneTrialToFormal, OrderID: "t", OrderLineID: "tl", ProductID: "p-9", ExpireTime: expiry.AddDate(0, 1, 0)})
	if !s.Formal || s.ProductID != "p-9" || !s.ExpireTime.Equal(expiry.AddDate(0, 1, 0)) {
		t.Fatalf("trial to formal not folded: %+v", s)
	}
	s = Evolve(s, Refreshed{Scene: SceneUnsubscribeRenewalPeriod, OrderID: "u", OrderLineID: "ul", ExpireTime: expiry})
	if !s.ExpireTime.Equal(expiry) {
		t.Fatalf("unsubscribe renewal period must move expiry back, got %v", s.ExpireTime)
	}
	if s.AppInfo == nil || s.AppInfo.FrontEndURL != "https://x" || s.Upgrades != 1 {
		t.Fatalf("app info or upgrades lost: %+v", s)
	}
}

func TestEvolveDoesNotShareOrders(t *testing.T) {
	a := fixtures()["active"]
	b := Evolve(a, Refreshed{Scene: SceneRenewal, OrderID: "z", OrderLineID: "zl", ExpireTime: expiry})
	if a.HasOrder(refreshKind(SceneRenewal), "z", "zl") || !b.HasOrder(refreshKind(SceneRenewal), "z", "zl") {
		t.Fatal("Evolve changed the orders map of an earlier state")
	}
}

func TestCancellationWithTheRenewalsOrderIsApplied(t *testing.T) {
	// Older pages send UNSUBSCRIBE_RENEWAL_PERIOD with the orderId of the
	// renewal it cancels: it must not be mistaken for a repeat.
	s := fixtures()["active"] // renewed by r-1/rl-1 to expiry
	renewed := Evolve(s, Refreshed{Scene: SceneRenewal, OrderID: "r-9", OrderLineID: "rl-9", ExpireTime: expiry.AddDate(1, 0, 0)})
	events, err := Decide(renewed, Refresh{Scene: SceneUnsubscribeRenewalPeriod, OrderID: "r-9", OrderLineID: "rl-9", ExpireTime: expiry})
	if err != nil || len(events) != 1 {
		t.Fatalf("cancellation = %v, %v; want one Refreshed", events, err)
	}
	if got := Evolve(renewed, events[0]); !got.ExpireTime.Equal(expiry) {
		t.Fatalf("expiry after cancellation = %v, want %v", got.ExpireTime, expiry)
	}
}

func TestOrderKeyUnambiguous(t *testing.T) {
	if orderKey("refresh", "a|b", "c") == orderKey("refresh", "a", "b|c") {
		t.Fatal("order keys collide")
	}
}

func TestParseSceneAndTarget(t *testing.T) {
	for _, sc := range Scenes {
		if got, err := ParseScene(string(sc)); err != nil || got != sc {
			t.Fatalf("ParseScene(%s) = %v, %v", sc, got, err)
		}
	}
	for _, bad := range []string{"", "renewal", "RENEW"} {
		if _, err := ParseScene(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseScene(%q) err = %v", bad, err)
		}
		if _, err := ParseTarget(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseTarget(%q) err = %v", bad, err)
		}
	}
	if _, err := Decide(fixtures()["active"], Refresh{Scene: "BAD", ExpireTime: expiry}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad scene accepted: %v", err)
	}
	if _, err := Decide(fixtures()["active"], Refresh{Scene: SceneRenewal}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero expiry accepted: %v", err)
	}
	if _, err := Decide(fixtures()["active"], SetStatus{Target: "NORMAL"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad target accepted: %v", err)
	}
	if _, err := Decide(fixtures()["provisioning"], RecordProvisioning{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty outcome accepted: %v", err)
	}
	if _, err := Decide(State{}, Create{InstanceID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create without order accepted: %v", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	events := []Event{
		Created{InstanceID: "i", OrderID: "o", OrderLineID: "l", BusinessID: "b"},
		Provisioned{AppInfo: AppInfo{FrontEndURL: "f", AdminURL: "a", UserName: "u", Password: "p", Memo: "中文"}},
		ProvisioningFailed{Failure: Failure{Code: "000100", Message: "m"}},
		Refreshed{Scene: SceneRenewalChange, OrderID: "o", OrderLineID: "l", ProductID: "p", ExpireTime: expiry},
		Frozen{}, Unfrozen{}, Released{OrderID: "o"}, Upgraded{OrderID: "o", OrderLineID: "l"},
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
	if _, err := Decode(TypeCreated, 2, []byte(`{}`)); err == nil {
		t.Fatal("future schema version accepted")
	}
	if _, err := Decode("Nope", 1, []byte(`{}`)); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := Decode(TypeCreated, 1, []byte(`{`)); err == nil {
		t.Fatal("bad json accepted")
	}
}
