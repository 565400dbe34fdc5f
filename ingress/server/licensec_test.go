package server_test

// License C (license.md §4: POST with the V2 signature) through real HTTP,
// on the harness's env (embedded NATS, the event store, the instances
// service, the provisioning worker).

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/server"
)

const (
	// pathLicC is a License C route with the built-in issuer; pathLicCFP
	// requires a device fingerprint; pathLicCApp configures app info.
	pathLicC    = "/koogallery/license-c"
	pathLicCFP  = "/koogallery/license-c-fp"
	pathLicCApp = "/koogallery/license-c-app"
	keyLicC     = "LICENSE-C-ACCESS-KEY-00000012"
	keyLicCFP   = "LICENSE-C-FP-ACCESS-KEY-000013"
	keyLicCApp  = "LICENSE-C-APP-ACCESS-KEY-00014"
)

func licenseCRoutes() []config.Route {
	builtin := &config.Issuer{Builtin: &config.BuiltinIssuer{PrivateKeyEnv: licenseKeyEnv, Features: licenseFeatures}}
	return []config.Route{
		{Path: pathLicC, Family: config.FamilyLicenseC, Keys: []config.Key{{Value: keyLicC}}, Issuer: builtin},
		{Path: pathLicCFP, Family: config.FamilyLicenseC, Keys: []config.Key{{Value: keyLicCFP}}, Issuer: builtin, RequireFingerprint: true},
		{Path: pathLicCApp, Family: config.FamilyLicenseC, Keys: []config.Key{{Value: keyLicCApp}}, Issuer: builtin,
			Provisioner: config.Provisioner{FrontEndURL: "https://iscdesk.example.com/{instanceId}"}},
	}
}

// onC, onCFP and onCApp sign for and post to a License C route.
func onC() []mutator    { return []mutator{withPath(pathLicC), withKey(keyLicC)} }
func onCFP() []mutator  { return []mutator{withPath(pathLicCFP), withKey(keyLicCFP)} }
func onCApp() []mutator { return []mutator{withPath(pathLicCApp), withKey(keyLicCApp)} }

func (h *harness) licC(t testing.TB, code string, body any, mutate ...mutator) map[string]any {
	t.Helper()
	return h.expect(t, code, body, append(onC(), mutate...)...)
}

func (h *harness) licCInvalid(t testing.TB, field string, body any, mutate ...mutator) {
	t.Helper()
	h.invalid(t, field, body, append(onC(), mutate...)...)
}

func licenseAsyncBody(id, eventID, fingerprint string) obj {
	b := obj{"activity": "getLicenseAsync", "instanceId": id, "eventId": eventID,
		"effectiveTime": "2026-01-01 00:00:00 z", "expireTime": "2027-01-01 00:00:00 z"}
	if fingerprint != "" {
		b["deviceFingerprint"] = fingerprint
	}
	return b
}

// exec runs an instance command directly (what an effect would record).
func (h *harness) exec(t testing.TB, id string, cmd instance.Command) instance.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.svc.Execute(ctx, id, cmd, event.Causation{Actor: "test"})
	if err != nil {
		t.Fatalf("%s on %s: %v", instance.Name(cmd), id, err)
	}
	return st
}

func requestsOf(t testing.TB, h *harness, id string) []instance.LicenseRequested {
	t.Helper()
	var out []instance.LicenseRequested
	for _, r := range h.instanceEvents(t, id) {
		if r.Event.Type != instance.TypeLicenseRequested {
			continue
		}
		e, err := instance.Decode(r.Event.Type, r.Event.Version, r.Event.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Event.Causation.Route != pathLicC && r.Event.Causation.Route != pathLicCFP {
			t.Errorf("causation %+v", r.Event.Causation)
		}
		out = append(out, e.(instance.LicenseRequested))
	}
	return out
}

func TestLicenseCInstanceLifecycle(t *testing.T) {
	h := newHarness(t)
	id, orderID, lineID := h.create(t, onC()...)

	t.Run("newInstance as for SaaS V2, without encryptType", func(t *testing.T) {
		m := h.licC(t, "000000", newInstanceBody(orderID, lineID, uid("biz-other")))
		if strOf(m, "instanceId") != id {
			t.Fatalf("repeat answered %v, want %s", m, id)
		}
		if _, has := m["encryptType"]; has {
			t.Errorf("License C newInstance carries encryptType: %v", m)
		}
		if n := len(h.indexEvents(t, orderID, lineID)); n != 1 {
			t.Errorf("%d order-line bindings", n)
		}
		m = h.licC(t, "000000", debug(newInstanceBody(uid("CS"), uid("CS-line"), "dbg-biz")))
		if strOf(m, "instanceId") != "dbg-biz" {
			t.Errorf("debug newInstance %v", m)
		}
		h.licCInvalid(t, "businessId", without(newInstanceBody(orderID, lineID, id), "businessId"))
	})
	t.Run("queryInstance without app info unless the route configures it", func(t *testing.T) {
		m := h.licC(t, "000000", queryBody(id))
		info := infos(t, m)
		if len(info) != 1 || strOf(info[0], "instanceId") != id || info[0]["appInfo"] != nil {
			t.Fatalf("info %v", info)
		}
		if info := infos(t, h.licC(t, "000000", debug(queryBody("huaweitest123456")))); len(info) != 1 || info[0]["appInfo"] != nil {
			t.Fatalf("debug info %v", info)
		}
		h.licC(t, "000003", queryBody("never-issued"))
		appID, _, _ := h.create(t, onCApp()...)
		info = infos(t, h.expect(t, "000000", queryBody(appID), onCApp()...))
		app, _ := info[0]["appInfo"].(map[string]any)
		if len(info) != 1 || app == nil || strOf(app, "frontEndUrl") != "https://iscdesk.example.com/"+appID {
			t.Fatalf("configured app info %v", info)
		}
	})
	t.Run("refreshInstance, updateInstanceStatus, upgradeInstance", func(t *testing.T) {
		renewal := uid("CS-renew")
		h.licC(t, "000000", refreshBody("RENEWAL", renewal, renewal+"-000001", id, "20991124023618256"))
		h.licC(t, "000000", refreshBody("RENEWAL", renewal, renewal+"-000001", id, "20991124023618256"))
		if st := h.state(t, id); !st.ExpireTime.Equal(time.Date(2099, 11, 24, 2, 36, 18, 256e6, time.UTC)) {
			t.Fatalf("expiry %v", st.ExpireTime)
		}
		h.licC(t, "000000", refreshBody("RENEWAL_CHANGE", uid("CS"), uid("CS-line"), id, "20991231000000"))
		h.licCInvalid(t, "scene", refreshBody("RENEW", renewal, renewal+"-1", id, "20991124023618"))
		h.licCInvalid(t, "expireTime", refreshBody("RENEWAL", renewal, renewal+"-1", id, "2099-11-24"))
		h.licC(t, "000000", statusBody(id, "FREEZE"))
		h.licC(t, "000000", statusBody(id, "FREEZE"))
		if st := h.state(t, id); st.Status != instance.StatusFrozen {
			t.Fatalf("status %s", st.Status)
		}
		h.licC(t, "000000", statusBody(id, "UNFREEZE"))
		h.licCInvalid(t, "status", statusBody(id, "NORMAL"))
		up := uid("CS-up")
		h.licC(t, "000000", upgradeBody(id, up, up+"-000001"))
		if st := h.state(t, id); st.Status != instance.StatusActive || st.Upgrades != 1 {
			t.Fatalf("state %+v", st)
		}
		recs := h.instanceEvents(t, id)
		if countType(recs, instance.TypeFrozen) != 1 || countType(recs, instance.TypeUnfrozen) != 1 || countType(recs, instance.TypeRefreshed) != 2 {
			t.Fatalf("events %v", typesOf(recs))
		}
	})
	t.Run("activities that are not License C ones", func(t *testing.T) {
		for _, b := range []obj{changeBody(id, productInfo()), notifyBody(orderID, lineID), {"activity": "getLicense"},
			{"activity": "refreshLicenseCode"}} {
			m := h.expect(t, "000002", b, onC()...)
			if !strings.Contains(msgOf(m), "activity") || !strings.Contains(msgOf(m), "License C") {
				t.Errorf("resultMsg %q", msgOf(m))
			}
		}
		// And getLicenseAsync is not an activity of the other V2 families.
		h.invalid(t, "activity", licenseAsyncBody(id, uid("ev"), ""))
		h.invalid(t, "activity", licenseAsyncBody(id, uid("ev"), ""), withPath(pathLicB), withKey(keyLicB))
	})
	t.Run("unknown instances are 000003, debug never", func(t *testing.T) {
		h.licC(t, "000003", refreshBody("RENEWAL", "o", "l", "never-issued", "20991124023618"))
		h.licC(t, "000003", statusBody("never-issued", "FREEZE"))
		h.licC(t, "000003", releaseBody("never-issued"))
		h.licC(t, "000003", licenseAsyncBody("never-issued", uid("ev"), ""))
		h.licC(t, "000000", debug(statusBody("never-issued", "FREEZE")))
		h.licC(t, "000000", debug(licenseAsyncBody("never-issued", uid("ev"), "")))
	})
	t.Run("releaseInstance, idempotent; nothing else after it", func(t *testing.T) {
		unsub := uid("CS-unsub")
		h.licC(t, "000000", with(with(releaseBody(id), "orderId", unsub), "orderLineId", unsub+"-000001"))
		h.licC(t, "000000", releaseBody(id))
		h.licC(t, "000003", statusBody(id, "UNFREEZE"))
		h.licC(t, "000003", licenseAsyncBody(id, uid("ev"), ""))
		h.licC(t, "000003", queryBody(id))
		if n := countType(h.instanceEvents(t, id), instance.TypeReleased); n != 1 {
			t.Fatalf("%d releases", n)
		}
	})
}

func TestLicenseCGetLicenseAsync(t *testing.T) {
	h := newHarness(t)
	id, _, _ := h.create(t, onC()...)

	t.Run("recorded once per eventId, answered 000004 until delivered", func(t *testing.T) {
		ev := uid("ev")
		const fp = "04:7C:16:5E:E3:5D|001B_444A_488B_5CEC.||BFEBFBFF00090672"
		h.licC(t, "000004", licenseAsyncBody(id, ev, fp))
		h.licC(t, "000004", licenseAsyncBody(id, ev, fp))
		// A repeat with other times is the same application.
		h.licC(t, "000004", with(licenseAsyncBody(id, ev, fp), "expireTime", "2026-06-01 00:00:00 z"))
		reqs := requestsOf(t, h, id)
		want := instance.LicenseRequested{EventID: ev, Fingerprint: fp,
			EffectiveTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ExpireTime: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
		if len(reqs) != 1 || reqs[0] != want {
			t.Fatalf("requests %+v, want one %+v", reqs, want)
		}
		// The same eventId with another device is refused, naming both.
		m := h.expect(t, "000002", licenseAsyncBody(id, ev, "OTHER-DEVICE"), onC()...)
		if !strings.Contains(msgOf(m), "eventId") || !strings.Contains(msgOf(m), "deviceFingerprint") {
			t.Errorf("resultMsg %q", msgOf(m))
		}
		// Once the effect recorded the delivery, a re-send answers 000000
		// and uploads the same License again (license.md §4.6, point 5):
		// one InstanceLicenseResent, no new application, and the answer
		// stays 000000 while the upload is redone.
		h.exec(t, id, instance.RecordLicenseIssued{EventID: ev, LicenseID: "lic-1", Text: "license-text"})
		h.exec(t, id, instance.RecordLicenseDelivered{EventID: ev, Type: "CHARACTERS"})
		before := h.instanceEvents(t, id)
		h.licC(t, "000000", licenseAsyncBody(id, ev, fp))
		after := h.instanceEvents(t, id)
		if len(after) != len(before)+1 || after[len(after)-1].Event.Type != instance.TypeLicenseResent {
			t.Fatalf("a re-send after delivery recorded %d events, want one %s", len(after)-len(before), instance.TypeLicenseResent)
		}
		if len(requestsOf(t, h, id)) != 1 {
			t.Fatal("a re-send recorded a new application")
		}
		h.licC(t, "000000", licenseAsyncBody(id, ev, fp)) // still being uploaded again: no second re-upload
		if n := len(h.instanceEvents(t, id)); n != len(after) {
			t.Fatalf("a re-send during the re-upload recorded %d events", n-len(after))
		}
	})
	t.Run("the documented example body", func(t *testing.T) {
		ev := uid("8e5694c8")
		body := `{"activity":"getLicenseAsync","eventId":"` + ev + `","instanceId":"` + id +
			`","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","deviceFingerprint":"8******6034e2*****60e1"}`
		h.licC(t, "000004", body)
		h.licC(t, "000004", body)
		var got []instance.LicenseRequested
		for _, r := range requestsOf(t, h, id) {
			if r.EventID == ev {
				got = append(got, r)
			}
		}
		if len(got) != 1 || !got[0].EffectiveTime.Equal(time.Date(2023, 10, 27, 10, 30, 15, 0, time.UTC)) ||
			!got[0].ExpireTime.Equal(time.Date(2024, 10, 27, 10, 30, 15, 0, time.UTC)) || got[0].Fingerprint != "8******6034e2*****60e1" {
			t.Fatalf("requests %+v", got)
		}
	})
	t.Run("without expireTime nor fingerprint", func(t *testing.T) {
		ev := uid("ev")
		h.licC(t, "000004", without(licenseAsyncBody(id, ev, ""), "expireTime"))
		st := h.state(t, id)
		if a, ok := st.LicenseApplication(ev); !ok || !a.ExpireTime.IsZero() || a.Fingerprint != "" {
			t.Fatalf("application %+v", a)
		}
	})
	t.Run("period products need expireTime (000902) inside the order (000901)", func(t *testing.T) {
		pid, orderID, lineID := h.create(t, onC()...)
		h.exec(t, pid, instance.RecordOrderInfo{Info: instance.OrderInfo{OrderID: orderID, OrderLineID: lineID,
			OrderType: "NEW", ChargingMode: "PERIOD", ExpireTime: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}})
		h.licC(t, "000902", without(licenseAsyncBody(pid, uid("ev"), ""), "expireTime"))
		m := h.licC(t, "000901", licenseAsyncBody(pid, uid("ev"), "")) // ends 2027-01-01
		if !strings.Contains(msgOf(m), "2026-12-31") {
			t.Errorf("resultMsg %q", msgOf(m))
		}
		late := with(with(licenseAsyncBody(pid, uid("ev"), ""), "effectiveTime", "2027-02-01 00:00:00"), "expireTime", "2027-03-01 00:00:00")
		h.licC(t, "000901", late)
		h.licC(t, "000004", with(licenseAsyncBody(pid, uid("ev"), ""), "expireTime", "2026-12-31 00:00:00 Z"))
		// A renewal moves the end of validity.
		r := uid("CS-renew")
		h.licC(t, "000000", refreshBody("RENEWAL", r, r+"-000001", pid, "20271231000000"))
		h.licC(t, "000004", licenseAsyncBody(pid, uid("ev"), ""))
		if n := len(requestsOf(t, h, pid)); n != 2 {
			t.Fatalf("%d requests recorded, want 2", n)
		}
	})
	t.Run("a frozen instance gets no new license (000901)", func(t *testing.T) {
		fid, _, _ := h.create(t, onC()...)
		ev := uid("ev")
		h.licC(t, "000004", licenseAsyncBody(fid, ev, ""))
		h.licC(t, "000000", statusBody(fid, "FREEZE"))
		h.licC(t, "000901", licenseAsyncBody(fid, uid("ev"), ""))
		h.licC(t, "000004", licenseAsyncBody(fid, ev, "")) // the earlier application, answered as before
		h.licC(t, "000000", statusBody(fid, "UNFREEZE"))
		h.licC(t, "000004", licenseAsyncBody(fid, uid("ev"), ""))
	})
	t.Run("a route requiring a fingerprint (000903)", func(t *testing.T) {
		fid, _, _ := h.create(t, onCFP()...)
		h.expect(t, "000903", licenseAsyncBody(fid, uid("ev"), ""), onCFP()...)
		h.expect(t, "000903", with(licenseAsyncBody(fid, uid("ev"), ""), "deviceFingerprint", ""), onCFP()...)
		h.expect(t, "000000", debug(licenseAsyncBody(fid, uid("ev"), "")), onCFP()...)
		h.expect(t, "000004", licenseAsyncBody(fid, uid("ev"), "MAC|DISK|BOARD|CPU"), onCFP()...)
		if n := len(requestsOf(t, h, fid)); n != 1 {
			t.Fatalf("%d requests recorded, want 1", n)
		}
	})
	t.Run("debug calls record nothing", func(t *testing.T) {
		before := len(h.instanceEvents(t, id))
		h.licC(t, "000000", debug(licenseAsyncBody(id, uid("ev"), "FP")))
		h.licC(t, "000000", with(licenseAsyncBody(id, uid("ev"), "FP"), "testFlag", 1))
		h.licC(t, "000000", debug(licenseAsyncBody("10e758d0-31ad-4c4b-8f1b-81d03469a10e", uid("ev"), "")))
		if after := len(h.instanceEvents(t, id)); after != before {
			t.Fatalf("debug calls recorded %d events", after-before)
		}
	})
}

func TestLicenseCFieldRules(t *testing.T) {
	h := newHarness(t)
	id, _, _ := h.create(t, onC()...)
	long := func(n int) string { return strings.Repeat("x", n) }
	b := licenseAsyncBody(id, "ev-fields", "FP")
	for _, f := range []string{"instanceId", "effectiveTime", "eventId"} {
		t.Run(f+" is mandatory", func(t *testing.T) {
			h.licCInvalid(t, f, without(b, f))
			h.licCInvalid(t, f, with(b, f, ""))
			h.licCInvalid(t, f, debug(without(b, f)))
		})
	}
	for f, n := range map[string]int{"instanceId": 64, "effectiveTime": 32, "expireTime": 32, "eventId": 64, "deviceFingerprint": server.MaxFingerprintLen} {
		t.Run(f+" length", func(t *testing.T) {
			h.licCInvalid(t, f, with(b, f, long(n+1)))
		})
	}
	t.Run("formats", func(t *testing.T) {
		h.licCInvalid(t, "effectiveTime", with(b, "effectiveTime", "2026/01/01 00:00:00"))
		h.licCInvalid(t, "effectiveTime", with(b, "effectiveTime", "2026-01-01 00:00:00 +08:00"))
		h.licCInvalid(t, "expireTime", with(b, "expireTime", "tomorrow"))
		h.licCInvalid(t, "expireTime", with(b, "expireTime", "2025-12-31 23:59:59 z"))
		h.licCInvalid(t, "expireTime", debug(with(b, "expireTime", "2026-01-01 00:00:00")))
		h.licCInvalid(t, "eventId", with(b, "eventId", "a/b"))
		h.licCInvalid(t, "eventId", with(b, "eventId", ".."))
		h.licCInvalid(t, "eventId", with(b, "eventId", 42))
		h.licCInvalid(t, "deviceFingerprint", with(b, "deviceFingerprint", "MAC\nDISK"))
		h.licCInvalid(t, "testFlag", with(b, "testFlag", "100"))
	})
	t.Run("accepted forms", func(t *testing.T) {
		for _, v := range []string{"2026-01-01 00:00:00 z", "2026-01-01 00:00:00Z", "2026-01-01 00:00:00 UTC",
			"2026-01-01 00:00:00 GMT", "2026-01-01 00:00:00", "20260101000000", "20260101000000250", "2026-01-01 00:00:00.5 z"} {
			h.licC(t, "000000", debug(with(b, "effectiveTime", v)))
		}
		// The table says 1024; the client guide allows up to 5 KB.
		h.licC(t, "000000", debug(with(b, "deviceFingerprint", long(server.MaxFingerprintLen))))
	})
	t.Run("nothing recorded", func(t *testing.T) {
		if n := len(requestsOf(t, h, id)); n != 0 {
			t.Fatalf("%d requests recorded", n)
		}
	})
}

func TestParseLicenseTime(t *testing.T) {
	want := time.Date(2023, 10, 27, 10, 30, 15, 0, time.UTC)
	for in, w := range map[string]time.Time{
		"2023-10-27 10:30:15 z":     want,
		" 2023-10-27 10:30:15 Z ":   want,
		"2023-10-27 10:30:15UTC":    want,
		"2023-10-27 10:30:15 GMT":   want,
		"2023-10-27 10:30:15":       want,
		"20231027103015":            want,
		"20231027103015120":         want.Add(120 * time.Millisecond),
		"2023-10-27 10:30:15.120 z": want.Add(120 * time.Millisecond),
	} {
		got, err := server.ParseLicenseTime(in)
		if err != nil || !got.Equal(w) || got.Location() != time.UTC {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "z", "2023-10-27", "2023-10-27T10:30:15Z", "2023-10-27 10:30:15 +0800", "2023-13-27 10:30:15", "2023102710301"} {
		if got, err := server.ParseLicenseTime(in); err == nil {
			t.Errorf("%q parsed as %v", in, got)
		}
	}
}

func TestLicenseCAuthentication(t *testing.T) {
	h := newHarness(t)
	id, _, _ := h.create(t, onC()...)
	body := licenseAsyncBody(id, uid("ev-auth"), "FP")
	t.Run("the key of another route", func(t *testing.T) {
		h.expect(t, "000001", body, withPath(pathLicC), withKey(keyLicB), answeredWith(keyLicC))
		h.expect(t, "000001", body, withPath(pathLicC), withKey(keyLicCFP), answeredWith(keyLicC))
	})
	t.Run("a tampered body", func(t *testing.T) {
		h.licC(t, "000001", body, tampered(func(b []byte) []byte { return []byte(strings.Replace(string(b), "FP", "XX", 1)) }))
	})
	t.Run("a stale timestamp", func(t *testing.T) {
		h.licC(t, "000001", body, withTime(time.Now().Add(-2*time.Minute)))
	})
	t.Run("a replayed nonce", func(t *testing.T) {
		n := uid("nonce")
		h.licC(t, "000000", debug(body), withNonce(n))
		h.licC(t, "000001", debug(body), withNonce(n))
	})
	t.Run("the documented example (vectors.md §11.1)", func(t *testing.T) {
		ex := `{"activity":"getLicenseAsync","eventId":"8****e5694*****c8","instanceId":"RA2****4LVS","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","deviceFingerprint":"8******6034e2*****60e1"}`
		h.licC(t, "000001", ex, withRawQuery("signature=11C4C*********31DEF5C515*******B8A3A6D8******7A48&timestamp=1680508066618&nonce=50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"))
		h.licC(t, "000003", ex) // signed with the route's key: a real call for an unknown instance
	})
	t.Run("nothing recorded", func(t *testing.T) {
		if n := len(requestsOf(t, h, id)); n != 0 {
			t.Fatalf("%d requests recorded", n)
		}
	})
	t.Run("methods", func(t *testing.T) {
		r, err := h.do(nil, withPath(pathLicC), withKey(keyLicC), withMethod(http.MethodGet))
		if err != nil || r.status != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %v %v", r, err)
		}
		if err := h.check(r); err != nil {
			t.Fatal(err)
		}
	})
}
