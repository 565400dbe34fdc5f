package instance

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var (
	licStart = time.Date(2026, 3, 1, 10, 30, 15, 0, time.UTC)
	licEnd   = licStart.AddDate(1, 0, 0)
)

// licenseFixtures builds one state per License C situation.
func licenseFixtures() map[string]State {
	created := Created{InstanceID: "c-1", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "c-1"}
	app := Provisioned{AppInfo: AppInfo{FrontEndURL: "https://x"}}
	period := OrderQueried{Info: OrderInfo{OrderID: "o-1", OrderLineID: "l-1", ChargingMode: "PERIOD", ExpireTime: licEnd.AddDate(0, 1, 0)}}
	renewed := Refreshed{Scene: SceneRenewal, OrderID: "r-1", OrderLineID: "rl-1", ExpireTime: licEnd.AddDate(0, 2, 0)}
	req := LicenseRequested{EventID: "ev-1", Fingerprint: "FP-1", EffectiveTime: licStart, ExpireTime: licEnd}
	issued := LicenseIssued{EventID: "ev-1", LicenseID: "lic-1", Text: "text-1"}
	failed := LicenseDeliveryFailed{EventID: "ev-1", Failure: Failure{Code: "91381038", Message: "denied"}}
	return map[string]State{
		"none":         {},
		"provisioning": Fold(created),
		"active":       Fold(created, app),
		"period":       Fold(created, app, period),
		"renewed":      Fold(created, app, period, renewed),
		"frozen":       Fold(created, app, Frozen{}),
		"released":     Fold(created, app, Released{}),
		"failed":       Fold(created, ProvisioningFailed{Failure: Failure{Code: "000100", Message: "full"}}),
		"requested":    Fold(created, app, req),
		"issued":       Fold(created, app, req, issued),
		"undelivered":  Fold(created, app, req, issued, failed),
		"delivered":    Fold(created, app, req, issued, LicenseDelivered{EventID: "ev-1", Type: "CHARACTERS"}),
		"frozen-req":   Fold(created, app, req, issued, Frozen{}),
	}
}

func licenseCommands() map[string]Command {
	return map[string]Command{
		"request":          RequestLicense{EventID: "ev-1", Fingerprint: "FP-1", EffectiveTime: licStart, ExpireTime: licEnd},
		"request-otherfp":  RequestLicense{EventID: "ev-1", Fingerprint: "FP-2", EffectiveTime: licStart, ExpireTime: licEnd},
		"request-new":      RequestLicense{EventID: "ev-2", EffectiveTime: licStart, ExpireTime: licEnd},
		"request-noexpiry": RequestLicense{EventID: "ev-3", EffectiveTime: licStart},
		"request-late":     RequestLicense{EventID: "ev-4", EffectiveTime: licStart, ExpireTime: licEnd.AddDate(1, 0, 0)},
		"issue":            RecordLicenseIssued{EventID: "ev-1", LicenseID: "lic-2", Text: "text-2"},
		"issue-unknown":    RecordLicenseIssued{EventID: "ev-9", LicenseID: "lic-9", Text: "text-9"},
		"delivered":        RecordLicenseDelivered{EventID: "ev-1", Type: "CHARACTERS"},
		"delivery-failed":  RecordLicenseDeliveryFailed{EventID: "ev-1", Failure: Failure{Code: "91381034", Message: "invalid"}},
	}
}

// licenseWant is the complete License C table: every (state, command) pair.
var licenseWant = map[string]map[string]outcome{
	"none": {
		"request": fail(ErrNotFound), "request-otherfp": fail(ErrNotFound), "request-new": fail(ErrNotFound),
		"request-noexpiry": fail(ErrNotFound), "request-late": fail(ErrNotFound),
		"issue": fail(ErrNotFound), "issue-unknown": fail(ErrNotFound),
		"delivered": fail(ErrNotFound), "delivery-failed": fail(ErrNotFound),
	},
	"provisioning": {
		"request": ok(StatusProvisioning, TypeLicenseRequested), "request-otherfp": ok(StatusProvisioning, TypeLicenseRequested),
		"request-new": ok(StatusProvisioning, TypeLicenseRequested), "request-noexpiry": ok(StatusProvisioning, TypeLicenseRequested),
		"request-late": ok(StatusProvisioning, TypeLicenseRequested),
		"issue":        fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	"active": {
		"request": ok(StatusActive, TypeLicenseRequested), "request-otherfp": ok(StatusActive, TypeLicenseRequested),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": ok(StatusActive, TypeLicenseRequested),
		"request-late": ok(StatusActive, TypeLicenseRequested),
		"issue":        fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	// A period product: an expiry is required and must fall within the order.
	"period": {
		"request": ok(StatusActive, TypeLicenseRequested), "request-otherfp": ok(StatusActive, TypeLicenseRequested),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": fail(ErrLicenseExpiryRequired),
		"request-late": fail(ErrLicenseOutsideValidity),
		"issue":        fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	// A renewal moved the expiry, still before request-late's end.
	"renewed": {
		"request": ok(StatusActive, TypeLicenseRequested), "request-otherfp": ok(StatusActive, TypeLicenseRequested),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": fail(ErrLicenseExpiryRequired),
		"request-late": fail(ErrLicenseOutsideValidity),
		"issue":        fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	"frozen": {
		"request": fail(ErrLicenseOutsideValidity), "request-otherfp": fail(ErrLicenseOutsideValidity),
		"request-new": fail(ErrLicenseOutsideValidity), "request-noexpiry": fail(ErrLicenseOutsideValidity),
		"request-late": fail(ErrLicenseOutsideValidity),
		"issue":        fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	"released": {
		"request": fail(ErrNotFound), "request-otherfp": fail(ErrNotFound), "request-new": fail(ErrNotFound),
		"request-noexpiry": fail(ErrNotFound), "request-late": fail(ErrNotFound),
		"issue": fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	"failed": {
		"request": fail(ErrNotFound), "request-otherfp": fail(ErrNotFound), "request-new": fail(ErrNotFound),
		"request-noexpiry": fail(ErrNotFound), "request-late": fail(ErrNotFound),
		"issue": fail(ErrInvalid), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": fail(ErrInvalid),
	},
	"requested": {
		"request": ok(StatusActive), "request-otherfp": fail(ErrLicenseConflict),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": ok(StatusActive, TypeLicenseRequested),
		"request-late": ok(StatusActive, TypeLicenseRequested),
		"issue":        ok(StatusActive, TypeLicenseIssued), "issue-unknown": fail(ErrInvalid),
		"delivered": fail(ErrInvalid), "delivery-failed": ok(StatusActive, TypeLicenseDeliveryFailed),
	},
	"issued": {
		"request": ok(StatusActive), "request-otherfp": fail(ErrLicenseConflict),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": ok(StatusActive, TypeLicenseRequested),
		"request-late": ok(StatusActive, TypeLicenseRequested),
		"issue":        ok(StatusActive), "issue-unknown": fail(ErrInvalid),
		"delivered": ok(StatusActive, TypeLicenseDelivered), "delivery-failed": ok(StatusActive, TypeLicenseDeliveryFailed),
	},
	// A refused upload may still be delivered after an operator's re-drive;
	// KooGallery's re-send uploads it again (license.md §4.6, point 5).
	"undelivered": {
		"request": ok(StatusActive, TypeLicenseResent), "request-otherfp": fail(ErrLicenseConflict),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": ok(StatusActive, TypeLicenseRequested),
		"request-late": ok(StatusActive, TypeLicenseRequested),
		"issue":        ok(StatusActive), "issue-unknown": fail(ErrInvalid),
		"delivered": ok(StatusActive, TypeLicenseDelivered), "delivery-failed": ok(StatusActive, TypeLicenseDeliveryFailed),
	},
	// A re-send after the delivery uploads the same License again.
	"delivered": {
		"request": ok(StatusActive, TypeLicenseResent), "request-otherfp": fail(ErrLicenseConflict),
		"request-new": ok(StatusActive, TypeLicenseRequested), "request-noexpiry": ok(StatusActive, TypeLicenseRequested),
		"request-late": ok(StatusActive, TypeLicenseRequested),
		"issue":        ok(StatusActive), "issue-unknown": fail(ErrInvalid),
		"delivered": ok(StatusActive), "delivery-failed": ok(StatusActive),
	},
	// A repeat of a known application is answered even when frozen; a new
	// one is refused.
	"frozen-req": {
		"request": ok(StatusFrozen), "request-otherfp": fail(ErrLicenseConflict),
		"request-new": fail(ErrLicenseOutsideValidity), "request-noexpiry": fail(ErrLicenseOutsideValidity),
		"request-late": fail(ErrLicenseOutsideValidity),
		"issue":        ok(StatusFrozen), "issue-unknown": fail(ErrInvalid),
		"delivered": ok(StatusFrozen, TypeLicenseDelivered), "delivery-failed": ok(StatusFrozen, TypeLicenseDeliveryFailed),
	},
}

func TestDecideLicenseEveryStateCommandPair(t *testing.T) {
	states, cmds := licenseFixtures(), licenseCommands()
	if len(licenseWant) != len(states) {
		t.Fatalf("table covers %d states, fixtures have %d", len(licenseWant), len(states))
	}
	for sn, s := range states {
		row, found := licenseWant[sn]
		if !found || len(row) != len(cmds) {
			t.Fatalf("row %s missing or incomplete (%d of %d)", sn, len(row), len(cmds))
		}
		for cn, c := range cmds {
			w, found := row[cn]
			if !found {
				t.Fatalf("no table entry for (%s, %s)", sn, cn)
			}
			t.Run(sn+"/"+cn, func(t *testing.T) {
				before := fmt.Sprintf("%+v", s)
				events, next, err := Settle(s, c)
				if after := fmt.Sprintf("%+v", s); after != before {
					t.Fatal("Settle mutated its input state")
				}
				if w.err != nil {
					if !errors.Is(err, w.err) || events != nil {
						t.Fatalf("err = %v (events %v), want %v", err, events, w.err)
					}
					return
				}
				if err != nil {
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
				if again, err := Decide(next, c); err == nil && len(again) != 0 {
					t.Fatalf("repeat of %s produced %v", cn, again)
				}
			})
		}
	}
}

func TestLicenseEvolveDetails(t *testing.T) {
	s := licenseFixtures()["issued"]
	a, ok := s.LicenseApplication("ev-1")
	if !ok || a.Fingerprint != "FP-1" || !a.EffectiveTime.Equal(licStart) || !a.ExpireTime.Equal(licEnd) ||
		a.LicenseID != "lic-1" || a.Text != "text-1" || a.Delivered || !a.Issued() {
		t.Fatalf("application %+v", a)
	}
	// The first License recorded stays: a second one decides nothing.
	if ev, err := Decide(s, RecordLicenseIssued{EventID: "ev-1", LicenseID: "lic-2", Text: "text-2"}); err != nil || len(ev) != 0 {
		t.Fatalf("second issue: %v %v", ev, err)
	}
	failed := Evolve(s, LicenseDeliveryFailed{EventID: "ev-1", Failure: Failure{Code: "91381038", Message: "denied"}})
	if a, _ := failed.LicenseApplication("ev-1"); a.Failure == nil || a.Failure.Code != "91381038" || a.Text != "text-1" {
		t.Fatalf("after the failure %+v", a)
	}
	if a, _ := s.LicenseApplication("ev-1"); a.Failure != nil {
		t.Fatal("Evolve changed the applications of an earlier state")
	}
	done := Evolve(failed, LicenseDelivered{EventID: "ev-1", Type: "FILE", SHA256: "ab"})
	if a, _ := done.LicenseApplication("ev-1"); !a.Delivered || a.Failure != nil || a.DeliveryType != "FILE" || a.SHA256 != "ab" {
		t.Fatalf("after the delivery %+v", a)
	}
	if st := licenseFixtures()["period"]; !st.PeriodProduct() || !st.ValidUntil().Equal(licEnd.AddDate(0, 1, 0)) {
		t.Fatalf("period %v until %v", st.PeriodProduct(), st.ValidUntil())
	}
	if st := licenseFixtures()["renewed"]; !st.ValidUntil().Equal(licEnd.AddDate(0, 2, 0)) {
		t.Fatalf("renewed until %v", st.ValidUntil())
	}
	if st := licenseFixtures()["active"]; st.PeriodProduct() || !st.ValidUntil().IsZero() {
		t.Fatal("an instance without order info is neither period nor bounded")
	}
}

func TestLicenseCommandValidation(t *testing.T) {
	s := licenseFixtures()["active"]
	for name, c := range map[string]Command{
		"no event id":       RequestLicense{EffectiveTime: licStart},
		"no effective time": RequestLicense{EventID: "e"},
		"expiry not after":  RequestLicense{EventID: "e", EffectiveTime: licStart, ExpireTime: licStart},
		"issue no text":     RecordLicenseIssued{EventID: "ev-1", LicenseID: "x"},
		"delivered no type": RecordLicenseDelivered{EventID: "ev-1"},
		"failed no code":    RecordLicenseDeliveryFailed{EventID: "ev-1"},
	} {
		if _, err := Decide(s, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// The validity window is enforced at both ends: an application that
	// starts at the order's end is outside it.
	before := licenseFixtures()["period"]
	if _, err := Decide(before, RequestLicense{EventID: "e", EffectiveTime: licEnd.AddDate(0, 1, 0), ExpireTime: licEnd.AddDate(0, 1, 1)}); !errors.Is(err, ErrLicenseOutsideValidity) {
		t.Errorf("start at the order's end: %v", err)
	}
	if !errors.Is(ErrLicenseConflict, ErrInvalid) {
		t.Error("a conflicting fingerprint is an invalid parameter")
	}
}

func TestLicenseEventsRoundTrip(t *testing.T) {
	for _, e := range []Event{
		LicenseRequested{EventID: "e", Fingerprint: "04:7C|X", EffectiveTime: licStart, ExpireTime: licEnd},
		LicenseRequested{EventID: "e2", EffectiveTime: licStart},
		LicenseIssued{EventID: "e", LicenseID: "l", Text: "t"},
		LicenseDelivered{EventID: "e", Type: "FILE", SHA256: "00ff"},
		LicenseDeliveryFailed{EventID: "e", Failure: Failure{Code: "91381038", Message: "m"}},
	} {
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
}
