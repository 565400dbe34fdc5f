package instance

import (
	"encoding/json"
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
	v1Created := Created{InstanceID: "i-1", OrderID: "o-1", BusinessID: "i-1", V1: v1Order("p-1")}
	return map[string]State{
		"v1-active":     Fold(v1Created, app),
		"v1-expired":    Fold(v1Created, app, Frozen{Reason: FrozenExpired}),
		"none":          {},
		"provisioning":  Fold(created),
		"active":        Fold(created, app, renewed, upgraded),
		"frozen":        Fold(created, app, renewed, upgraded, Frozen{}),
		"frozen-unprov": Fold(created, Frozen{}),
		"released":      Fold(created, app, Released{}),
		"failed":        Fold(created, ProvisioningFailed{Failure: Failure{Code: "000100", Message: "full"}}),
	}
}

// v1Order is a pay-per-use SaaS V1 order of product p.
func v1Order(p string) *V1Order {
	ppu := ChargingPayPerUse
	return &V1Order{ProductID: p, ChargingMode: &ppu, OrderAmount: "0.125", CustomerID: "c-1"}
}

func commands() map[string]Command {
	seven := int64(7)
	return map[string]Command{
		"create-v1":              Create{InstanceID: "i-1", OrderID: "o-1", BusinessID: "i-1", V1: v1Order("p-1")},
		"create-v1-otherproduct": Create{InstanceID: "i-1", OrderID: "o-1", BusinessID: "i-1", V1: v1Order("p-2")},
		"refresh-v1": Refresh{Scene: SceneRenewal, OrderID: "r-3", ProductID: "p-3", ExpireTime: expiry.AddDate(2, 0, 0),
			PeriodType: "year", PeriodNumber: 2, OrderAmount: "-1.5", Reactivate: true},
		"expire":            SetStatus{Target: TargetFreeze, Reason: FrozenExpired},
		"upgrade-v1":        Upgrade{OrderID: "u-3", V1: &V1Upgrade{SKUCode: "sku-2", ProductID: "p-4", Amount: &seven}},
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
		"create-v1": ok(StatusProvisioning, TypeCreated), "create-v1-otherproduct": ok(StatusProvisioning, TypeCreated),
		"refresh-v1": fail(ErrNotFound), "expire": fail(ErrNotFound), "upgrade-v1": fail(ErrNotFound),
		"create": ok(StatusProvisioning, TypeCreated), "create-otherorder": ok(StatusProvisioning, TypeCreated),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": fail(ErrNotFound),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": fail(ErrNotFound), "prov-failed": fail(ErrNotFound),
		"order-info": fail(ErrNotFound),
	},
	"provisioning": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusProvisioning, TypeRefreshed), "expire": ok(StatusFrozen, TypeFrozen),
		"upgrade-v1": ok(StatusProvisioning, TypeUpgraded),
		"create":     ok(StatusProvisioning), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusProvisioning, TypeRefreshed), "refresh-repeat": ok(StatusProvisioning, TypeRefreshed),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusProvisioning),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusProvisioning, TypeUpgraded), "upgrade-repeat": ok(StatusProvisioning, TypeUpgraded),
		"check":       ok(StatusProvisioning),
		"provisioned": ok(StatusActive, TypeProvisioned), "prov-failed": ok(StatusFailed, TypeProvisioningFailed),
		"order-info": ok(StatusProvisioning, TypeOrderQueried),
	},
	"active": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusActive, TypeRefreshed), "expire": ok(StatusFrozen, TypeFrozen),
		"upgrade-v1": ok(StatusActive, TypeUpgraded),
		"create":     ok(StatusActive), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusActive, TypeRefreshed), "refresh-repeat": ok(StatusActive),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusActive),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusActive, TypeUpgraded), "upgrade-repeat": ok(StatusActive),
		"check": ok(StatusActive), "provisioned": ok(StatusActive), "prov-failed": ok(StatusActive),
		"order-info": ok(StatusActive, TypeOrderQueried),
	},
	"frozen": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusActive, TypeRefreshed, TypeUnfrozen), "expire": ok(StatusFrozen),
		"upgrade-v1": ok(StatusFrozen, TypeUpgraded),
		"create":     ok(StatusFrozen), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusActive, TypeUnfrozen),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusFrozen, TypeUpgraded), "upgrade-repeat": ok(StatusFrozen),
		"check": ok(StatusFrozen), "provisioned": ok(StatusFrozen), "prov-failed": ok(StatusFrozen),
		"order-info": ok(StatusFrozen, TypeOrderQueried),
	},
	"frozen-unprov": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusProvisioning, TypeRefreshed, TypeUnfrozen), "expire": ok(StatusFrozen),
		"upgrade-v1": ok(StatusFrozen, TypeUpgraded),
		"create":     ok(StatusFrozen), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen, TypeRefreshed),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusProvisioning, TypeUnfrozen),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusFrozen, TypeUpgraded), "upgrade-repeat": ok(StatusFrozen, TypeUpgraded),
		"check": ok(StatusFrozen), "provisioned": ok(StatusFrozen, TypeProvisioned),
		"prov-failed": ok(StatusFailed, TypeProvisioningFailed),
		"order-info":  ok(StatusFrozen, TypeOrderQueried),
	},
	"released": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": fail(ErrNotFound), "expire": fail(ErrNotFound), "upgrade-v1": fail(ErrNotFound),
		"create": ok(StatusReleased), "create-otherorder": fail(ErrIDInUse),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": ok(StatusReleased),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": ok(StatusReleased), "prov-failed": ok(StatusReleased),
		"order-info": ok(StatusReleased, TypeOrderQueried),
	},
	"failed": {
		"create-v1": fail(ErrIDInUse), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": fail(ErrNotFound), "expire": fail(ErrNotFound), "upgrade-v1": fail(ErrNotFound),
		"create": fail(errRefused), "create-otherorder": fail(ErrIDInUse),
		"refresh": fail(ErrNotFound), "refresh-repeat": fail(ErrNotFound),
		"freeze": fail(ErrNotFound), "unfreeze": fail(ErrNotFound), "release": ok(StatusReleased, TypeReleased),
		"upgrade": fail(ErrNotFound), "upgrade-repeat": fail(ErrNotFound), "check": fail(ErrNotFound),
		"provisioned": ok(StatusActive, TypeProvisioned), "prov-failed": ok(StatusFailed),
		"order-info": ok(StatusFailed, TypeOrderQueried),
	},
	"v1-active": {
		"create": fail(ErrIDInUse), "create-otherorder": fail(ErrIDInUse),
		"refresh": ok(StatusActive, TypeRefreshed), "refresh-repeat": ok(StatusActive, TypeRefreshed),
		"freeze": ok(StatusFrozen, TypeFrozen), "unfreeze": ok(StatusActive),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusActive, TypeUpgraded), "upgrade-repeat": ok(StatusActive, TypeUpgraded),
		"check": ok(StatusActive), "provisioned": ok(StatusActive), "prov-failed": ok(StatusActive),
		"order-info": ok(StatusActive, TypeOrderQueried),
		"create-v1":  ok(StatusActive), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusActive, TypeRefreshed), "expire": ok(StatusFrozen, TypeFrozen),
		"upgrade-v1": ok(StatusActive, TypeUpgraded),
	},
	"v1-expired": {
		"create": fail(ErrIDInUse), "create-otherorder": fail(ErrIDInUse),
		// A V2 renewal never unfreezes; a V1 renewal reactivates.
		"refresh": ok(StatusFrozen, TypeRefreshed), "refresh-repeat": ok(StatusFrozen, TypeRefreshed),
		"freeze": ok(StatusFrozen), "unfreeze": ok(StatusActive, TypeUnfrozen),
		"release": ok(StatusReleased, TypeReleased),
		"upgrade": ok(StatusFrozen, TypeUpgraded), "upgrade-repeat": ok(StatusFrozen, TypeUpgraded),
		"check": ok(StatusFrozen), "provisioned": ok(StatusFrozen), "prov-failed": ok(StatusFrozen),
		"order-info": ok(StatusFrozen, TypeOrderQueried),
		"create-v1":  ok(StatusFrozen), "create-v1-otherproduct": fail(ErrIDInUse),
		"refresh-v1": ok(StatusActive, TypeRefreshed, TypeUnfrozen), "expire": ok(StatusFrozen),
		"upgrade-v1": ok(StatusFrozen, TypeUpgraded),
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
				if _, err := Decide(s, c); err == nil {
					if after := fmt.Sprintf("%+v", s); after != before {
						t.Fatalf("Decide mutated its input state")
					}
				}
				// The command is decided until it decides nothing: every
				// command but a V1 renewal of a frozen instance settles
				// after one event.
				events, next, err := Settle(s, c)
				if after := fmt.Sprintf("%+v", s); after != before {
					t.Fatalf("Settle mutated its input state")
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
				for _, e := range events {
					types = append(types, e.EventType())
				}
				if fmt.Sprint(types) != fmt.Sprint(w.events) {
					t.Fatalf("events = %v, want %v", types, w.events)
				}
				if next.Status != w.status {
					t.Fatalf("status after = %s, want %s", next.Status, w.status)
				}
				// Deciding the same command again on the settled state is a
				// no-op (every command is idempotent).
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

func TestV1EvolveDetails(t *testing.T) {
	s := fixtures()["v1-active"]
	if s.V1 == nil || !s.V1.PayPerUse() || !s.V1.Metered() || s.ProductID != "p-1" || s.V1.OrderAmount != "0.125" {
		t.Fatalf("V1 order not folded: %+v", s)
	}
	nine := int64(9)
	u := Upgraded{OrderID: "u-9", V1: &V1Upgrade{SKUCode: "sku-9", ProductID: "p-9", DiskSize: &nine, ExtendParams: map[string]string{"a": "b"}}}
	after := Evolve(s, u)
	if after.ProductID != "p-9" || after.SKUCode != "sku-9" || after.V1.DiskSize == nil || *after.V1.DiskSize != 9 ||
		after.V1.ProductID != "p-9" || after.V1.ExtendParams["a"] != "b" || !after.HasOrder("upgrade", "u-9", "") {
		t.Fatalf("V1 upgrade not folded: %+v %+v", after, after.V1)
	}
	if s.V1.DiskSize != nil || s.V1.ProductID != "p-1" {
		t.Fatal("Evolve changed the V1 order of an earlier state")
	}
	exp := fixtures()["v1-expired"]
	if exp.FrozenReason != FrozenExpired || exp.AppInfo == nil {
		t.Fatalf("expiry must freeze and keep the app info: %+v", exp)
	}
	if back := Evolve(exp, Unfrozen{}); back.FrozenReason != "" || back.Status != StatusActive {
		t.Fatalf("unfreeze after expiry: %+v", back)
	}
	trial := Fold(Created{InstanceID: "t", OrderID: "o", BusinessID: "t", V1: &V1Order{ProductID: "p", Trial: true, ExpireTime: expiry}})
	if !trial.Trial || !trial.ExpireTime.Equal(expiry) || trial.V1.PayPerUse() {
		t.Fatalf("trial V1 order: %+v", trial)
	}
	// A V1 create without productId, with an order line, or with an unknown
	// charging mode is invalid.
	bad := ChargingMode(2)
	for _, c := range []Create{
		{InstanceID: "x", OrderID: "o", V1: &V1Order{}},
		{InstanceID: "x", OrderID: "o", OrderLineID: "l", V1: &V1Order{ProductID: "p"}},
		{InstanceID: "x", OrderID: "o", V1: &V1Order{ProductID: "p", ChargingMode: &bad}},
	} {
		if _, err := Decide(State{}, c); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Decide(%+v) err = %v, want ErrInvalid", c, err)
		}
	}
	// A non-pay-per-use order is one instance per order: the product does
	// not matter for the repeat.
	period := Fold(Created{InstanceID: "q", OrderID: "o", BusinessID: "q", V1: &V1Order{ProductID: "p"}})
	if ev, err := Decide(period, Create{InstanceID: "q", OrderID: "o", BusinessID: "q", V1: &V1Order{ProductID: "p-other"}}); err != nil || len(ev) != 0 {
		t.Fatalf("repeat of a period order = %v, %v; want a no-op", ev, err)
	}
}

func TestV1EventsRoundTrip(t *testing.T) {
	one, ppu := int64(1), ChargingPayPerUse
	events := []Event{
		Created{InstanceID: "i", OrderID: "o", BusinessID: "b", V1: &V1Order{ProductID: "p", ChargingMode: &ppu, Trial: true,
			ExpireTime: expiry, OrderAmount: "1.500", Amount: &one, ExtendParams: map[string]string{"k": "v"}, MobilePhone: "15905222222"}},
		Refreshed{Scene: SceneRenewal, OrderID: "o", ExpireTime: expiry, PeriodType: "month", PeriodNumber: 3, OrderAmount: "-2"},
		Frozen{Reason: FrozenExpired}, Released{OrderID: "o", OrderAmount: "0"},
		Upgraded{OrderID: "o", V1: &V1Upgrade{SKUCode: "s", ProductID: "p", BandWidth: &one}},
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
		a, _ := json.Marshal(got)
		if string(a) != string(data) || got.EventType() != e.EventType() {
			t.Fatalf("round trip %s: got %s want %s", typ, a, data)
		}
	}
	// Events written before V1 existed still decode.
	if e, err := Decode(TypeFrozen, 1, []byte(`{}`)); err != nil || e != (Frozen{}) {
		t.Fatalf("old Frozen = %#v, %v", e, err)
	}
}
