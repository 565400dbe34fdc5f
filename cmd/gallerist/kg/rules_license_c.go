package kg

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// License C (license.md §4): the SaaS V2-like instance activities plus
// getLicenseAsync, V2-signed. The License itself travels by upload to
// KooGallery's open API (outgoing.md §5), which these rules do not see.

// licenseCRules is the License C rule catalogue, in the order they run.
func licenseCRules() []Rule {
	return []Rule{
		{"LC-ENVELOPE", "license.md §1, §4, auth.md §4, codes-and-rules.md §1", "answers (000000, 000001, 000002, 000003) are HTTP 200 JSON with a resultMsg and a valid Body-Sign; GET is 405 with a Body-Sign", checkLCEnvelope},
		{"LC-SIG-TAMPERED", "auth.md §2.2, §2.5", "a tampered body or signature, another key, no signature → 000001; nothing created, the order stays unbound", checkLCTampered},
		{"LC-TIMESTAMP-NONCE", "auth.md §2.4, §2.5", "a stale timestamp → 000001; no nonce → 000002; a replayed nonce → 000001 and changes nothing", checkLCTimestampNonce},
		{"LC-ACTIVITY", "license.md §4.1, §4.7", "activities License C does not have (changeInstanceCheck, orderNotify, License A/B ones, unknown) and non-object bodies → 000002", checkLCActivity},
		{"LC-FIELD-MISSING", "license.md §4.2–§4.6, codes-and-rules.md §2.1", "a missing mandatory field is 000002 naming it, and changes nothing", checkLCFieldMissing},
		{"LC-FIELD-OVERLONG", "license.md §4.2–§4.6 (Len)", "a field over its documented length is 000002 naming it; a 5 KB deviceFingerprint is accepted", checkLCFieldOverlong},
		{"LC-FIELD-FORMAT", "license.md §4.3, §4.4, §4.6, codes-and-rules.md §8", "an unknown scene or status, malformed expireTime/effectiveTime, expireTime before effectiveTime → 000002 naming the field", checkLCFieldFormat},
		{"LC-TIME-FORMATS", "license.md §4.6 (UNCERTAIN time format)", "getLicenseAsync accepts \"yyyy-MM-dd HH:mm:ss z\", Z, UTC, GMT and 14/17 digits", checkLCTimeFormats},
		{"LC-NEW-READY", "license.md §4.2, §4.7", "newInstance answers 000000 or 000004 with instanceId = businessId; queryInstance reaches 000000", checkLCNewReady},
		{"LC-NEW-IDEMPOTENT", "license.md §4.2, codes-and-rules.md §3", "re-sent newInstance (identical, other businessId, once ready) → the first instanceId", checkLCNewIdempotent},
		{"LC-GLA-ASYNC", "license.md §4.6", "getLicenseAsync answers 000004 (or 000000); re-sends of the same eventId and fingerprint are accepted again, never 000002", checkLCGLAAsync},
		{"LC-GLA-FINGERPRINT", "license.md §4.6, README License C routes", "the same eventId with another deviceFingerprint → 000002 (another application under a used eventId)", checkLCGLAFingerprint},
		{"LC-REFRESH-STATUS", "license.md §4.3, §4.4", "every scene, FREEZE and UNFREEZE are 000000, repeats too", checkLCRefreshStatus},
		{"LC-UNKNOWN-INSTANCE", "license.md §4.3–§4.7", "every activity (getLicenseAsync included) on an instanceId never issued → 000003", checkLCUnknown},
		{"LC-DEBUG", "license.md §4.2, §4.6, codes-and-rules.md §7", "debug calls answer 000000 (newInstance: instanceId = businessId), never 000003, and record nothing", checkLCDebug},
		{"LC-AFTER-RELEASE", "license.md §4.5, README Protocol choices", "release and its repeat 000000; then getLicenseAsync, query and changes 000003; a re-sent newInstance the same id", checkLCAfterRelease},
		{"LC-LIFECYCLE-PERIOD", "license.md §4.2–§4.6", "yearly: purchase → provision → License → renew → freeze → unfreeze → License for another device → renewal cancel → release", checkLCLifecyclePeriod},
		{"LC-LIFECYCLE-ONE-TIME", "license.md §4.2, §4.5, §4.6", "one-time: purchase → provision → License without expireTime → release", checkLCLifecycleOneTime},
	}
}

// lcReady creates a License C instance and waits until it is provisioned.
func (s *session) lcReady(ctx context.Context, note string) (id, orderID, lineID string, err error) {
	id, orderID, lineID, err = s.create(ctx, note)
	if err != nil {
		return id, orderID, lineID, err
	}
	_, _, err = s.provisioned(ctx, id)
	return id, orderID, lineID, err
}

// glaFields are getLicenseAsync's fields for one application.
func glaFields(id, eventID, fingerprint string, expire bool) map[string]any {
	now := time.Now()
	f := map[string]any{"instanceId": id, "eventId": eventID, "effectiveTime": licenseTime(now)}
	if expire {
		f["expireTime"] = licenseTime(now.AddDate(0, 6, 0))
	}
	if fingerprint != "" {
		f["deviceFingerprint"] = fingerprint
	}
	return f
}

// newEventID returns a fresh KooGallery business serial number.
func newEventID() string { return strings.ReplaceAll(uuidText(), "-", "") }

// fingerprint returns a plausible device fingerprint (license.md §4.8).
func fingerprint() string {
	return strings.ToUpper("04:7C:16:5E:" + randomText(2) + ":5D|001B_444A_" + randomText(4) + ".||BFEBFBFF00090672")
}

// apply sends getLicenseAsync and requires 000000 or 000004.
func (s *session) apply(ctx context.Context, f map[string]any, note string) (reply, error) {
	return s.expect(ctx, "getLicenseAsync", f, callOpts{note: note}, cOK, cProcessing)
}

func checkLCEnvelope(ctx context.Context, s *session) (string, error) {
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
		want   koogallery.Code
	}{
		{"getLicenseAsync", glaFields(s.unknownID(), newEventID(), "", true), callOpts{test: true, note: "debug"}, cOK},
		{"queryInstance", map[string]any{"instanceId": "x"}, callOpts{note: "tampered signature", mutate: flipSignature}, cAuth},
		{"changeInstanceCheck", map[string]any{"instanceId": "x"}, callOpts{note: "not a License C activity"}, cParam},
		{"getLicenseAsync", glaFields(s.unknownID(), newEventID(), "", true), callOpts{note: "unknown instanceId"}, cNotFound},
	}
	for _, c := range calls {
		if _, err := s.expect(ctx, c.act, c.fields, c.o, c.want); err != nil {
			return "", err
		}
	}
	r, err := s.rawRequest(ctx, http.MethodGet, s.d.t.url.String(), nil, "wrong method")
	if err != nil && r.Status == 0 {
		return "", err
	}
	if r.Status != http.StatusMethodNotAllowed || !r.BodySign.Valid {
		return "", violation("GET answered HTTP %d (Body-Sign valid: %v), want 405 with a Body-Sign", r.Status, r.BodySign.Valid)
	}
	return "000000, 000001, 000002, 000003: HTTP 200 JSON, resultMsg, valid Body-Sign; GET → 405 signed", nil
}

func checkLCTampered(ctx context.Context, s *session) (string, error) {
	// checkSigTampered drives newInstance and checks through queryInstance:
	// both are License C activities with the SaaS V2 definitions.
	ev, err := checkSigTampered(ctx, s)
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "newInstance", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{note: "no signature", mutate: dropParam("signature")}, cAuth); err != nil {
		return "", err
	}
	return ev + "; no signature → 000001", nil
}

func checkLCTimestampNonce(ctx context.Context, s *session) (string, error) {
	stale, err := checkTSStale(ctx, s)
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "getLicenseAsync", glaFields(s.unknownID(), newEventID(), "", true), callOpts{test: true, note: "no nonce", mutate: dropParam("nonce")}, cParam); err != nil {
		return "", err
	}
	replay, err := checkNonceReplay(ctx, s)
	if err != nil {
		return "", err
	}
	return stale + "; no nonce → 000002; " + replay, nil
}

func checkLCActivity(ctx context.Context, s *session) (string, error) {
	for _, act := range []string{"changeInstanceCheck", "orderNotify", "refreshLicenseCode", "getLicense", "getLicenseAsyncX"} {
		if _, err := s.expect(ctx, act, map[string]any{"instanceId": s.unknownID(), "orderId": "CS" + s.d.tag}, callOpts{note: "not a License C activity"}, cParam); err != nil {
			return "", err
		}
	}
	if _, err := s.expect(ctx, "(none)", nil, callOpts{note: "no activity", rawBody: []byte(`{"instanceId":"x"}`)}, cParam); err != nil {
		return "", err
	}
	for _, b := range []string{"not json", "[1,2]"} {
		if _, err := s.expect(ctx, "?", nil, callOpts{rawBody: []byte(b), note: "body " + b}, cParam); err != nil {
			return "", err
		}
	}
	return "changeInstanceCheck, orderNotify, refreshLicenseCode, getLicense, an unknown and a missing activity, non-object bodies → 000002", nil
}

func checkLCFieldMissing(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	orderID, lineID, business := s.order()
	gla := func(drop string) map[string]any {
		f := glaFields(id, newEventID(), fingerprint(), true)
		delete(f, drop)
		return f
	}
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"newInstance", "orderId", map[string]any{"orderLineId": lineID, "businessId": business}},
		{"newInstance", "orderLineId", map[string]any{"orderId": orderID, "businessId": business}},
		{"newInstance", "businessId", map[string]any{"orderId": orderID, "orderLineId": lineID}},
		{"getLicenseAsync", "instanceId", gla("instanceId")},
		{"getLicenseAsync", "effectiveTime", gla("effectiveTime")},
		{"getLicenseAsync", "eventId", gla("eventId")},
		{"refreshInstance", "expireTime", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id}},
		{"refreshInstance", "scene", map[string]any{"orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"updateInstanceStatus", "status", map[string]any{"instanceId": id}},
		{"releaseInstance", "instanceId", map[string]any{}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.fields, "no "+c.field, c.field); err != nil {
			return "", err
		}
	}
	if err := s.absent(ctx, business, "nothing created"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "nothing changed"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d calls missing a mandatory field → 000002 naming it; nothing created or changed", len(cases)), nil
}

func checkLCFieldOverlong(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	orderID, lineID, business := s.order()
	long := strings.Repeat("x", 65)
	gla := func(k, v string) map[string]any {
		f := glaFields(id, newEventID(), fingerprint(), true)
		f[k] = v
		return f
	}
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"newInstance", "orderId", map[string]any{"orderId": "CS" + long, "orderLineId": lineID, "businessId": business}},
		{"newInstance", "businessId", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business + long}},
		{"newInstance", "testFlag", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business, "testFlag": "123"}},
		{"getLicenseAsync", "eventId", gla("eventId", long)},
		{"getLicenseAsync", "instanceId", gla("instanceId", id+long)},
		{"getLicenseAsync", "effectiveTime", gla("effectiveTime", licenseTime(time.Now())+strings.Repeat(" ", 20)+"z")},
		{"getLicenseAsync", "deviceFingerprint", gla("deviceFingerprint", strings.Repeat("F", 5*1024+1))},
		{"updateInstanceStatus", "status", map[string]any{"instanceId": id, "status": strings.Repeat("F", 33)}},
		{"releaseInstance", "orderId", map[string]any{"instanceId": id, "orderId": "CS" + long}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.fields, c.field+" too long", c.field); err != nil {
			return "", err
		}
	}
	if _, err := s.apply(ctx, glaFields(id, newEventID(), strings.Repeat("F", 5*1024), true), "deviceFingerprint of 5 KB (license.md §4.6, §4.8)"); err != nil {
		return "", err
	}
	if err := s.absent(ctx, business, "nothing created"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the overlong release changed nothing"); err != nil {
		return "", err
	}
	return "orderId, businessId, eventId, instanceId (65), effectiveTime (33+), deviceFingerprint (5 KB + 1), status (33), testFlag (3) → 000002 naming them; a 5 KB fingerprint accepted; nothing created or released", nil
}

func checkLCFieldFormat(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	orderID, lineID, _ := s.order()
	now := time.Now()
	gla := func(k, v string) map[string]any {
		f := glaFields(id, newEventID(), fingerprint(), true)
		f[k] = v
		return f
	}
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"refreshInstance", "scene", map[string]any{"scene": "RENEW", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"refreshInstance", "expireTime", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": "2030-01-01"}},
		{"updateInstanceStatus", "status", map[string]any{"instanceId": id, "status": "PAUSE"}},
		{"getLicenseAsync", "effectiveTime", gla("effectiveTime", "yesterday")},
		{"getLicenseAsync", "expireTime", gla("expireTime", "2030/01/01")},
		{"getLicenseAsync", "expireTime", gla("expireTime", licenseTime(now.AddDate(0, 0, -1)))},
		{"getLicenseAsync", "eventId", gla("eventId", "a/b")},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.fields, "bad "+c.field, c.field); err != nil {
			return "", err
		}
	}
	if err := s.stillThere(ctx, id, "nothing changed"); err != nil {
		return "", err
	}
	return "scene RENEW, expireTime 2030-01-01, status PAUSE, effectiveTime yesterday, expireTime 2030/01/01 and before effectiveTime, eventId a/b → 000002 naming the field", nil
}

func checkLCTimeFormats(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	later := now.AddDate(0, 3, 0)
	plain := func(t time.Time) string { return t.Format("2006-01-02 15:04:05") }
	forms := []struct{ note, effective, expire string }{
		{"yyyy-MM-dd HH:mm:ss z (the documented example)", plain(now) + " z", plain(later) + " z"},
		{"… Z", plain(now) + " Z", plain(later) + " Z"},
		{"… UTC", plain(now) + " UTC", plain(later) + " UTC"},
		{"… GMT", plain(now) + " GMT", plain(later) + " GMT"},
		{"no zone token", plain(now), plain(later)},
		{"14 digits", now.Format("20060102150405"), later.Format("20060102150405")},
		{"17 digits", now.Format("20060102150405") + "000", later.Format("20060102150405") + "000"},
	}
	for _, f := range forms {
		if _, err := s.apply(ctx, map[string]any{"instanceId": id, "eventId": newEventID(), "effectiveTime": f.effective, "expireTime": f.expire}, "times "+f.note); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d time forms accepted (000000/000004)", len(forms)), nil
}

func checkLCNewReady(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}, callOpts{}, cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("newInstance answered instanceId %q, want the businessId %q (license.md §4.2)", r.InstanceID, business)
	}
	q, polls, err := s.provisioned(ctx, business)
	if err != nil {
		return "", err
	}
	info := "without appInfo (a License instance)"
	if a, err := q.query(); err == nil && len(a.Info) == 1 && a.Info[0].AppInfo != nil {
		info = "with the configured appInfo, checked"
	}
	return fmt.Sprintf("newInstance %s instanceId=businessId; queryInstance 000000 after %d poll(s), %s", r.ResultCode, polls, info), nil
}

func checkLCNewIdempotent(ctx context.Context, s *session) (string, error) {
	return checkNewIdempotent(ctx, s)
}

func checkLCGLAAsync(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	ev, fp := newEventID(), fingerprint()
	f := glaFields(id, ev, fp, true)
	first, err := s.apply(ctx, f, "application")
	if err != nil {
		return "", err
	}
	codes := []string{first.ResultCode}
	for i := 1; i <= 3; i++ {
		if err := s.sleep(ctx, retryInterval); err != nil {
			return "", err
		}
		r, err := s.apply(ctx, f, fmt.Sprintf("re-send %d, same eventId and fingerprint", i))
		if err != nil {
			return "", err
		}
		codes = append(codes, r.ResultCode)
	}
	// Another application (another eventId) for the same device is fine.
	if _, err := s.apply(ctx, glaFields(id, newEventID(), fp, true), "another eventId, same device"); err != nil {
		return "", err
	}
	return "application and 3 re-sends (same eventId, fingerprint) → " + strings.Join(codes, ", ") + "; another eventId accepted", nil
}

func checkLCGLAFingerprint(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	ev := newEventID()
	if _, err := s.apply(ctx, glaFields(id, ev, fingerprint(), true), "application, device 1"); err != nil {
		return "", err
	}
	r, err := s.expect(ctx, "getLicenseAsync", glaFields(id, ev, fingerprint(), true), callOpts{note: "same eventId, device 2"}, cParam)
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "getLicenseAsync", glaFields(id, ev, "", true), callOpts{note: "same eventId, no fingerprint"}, cParam); err != nil {
		return "", err
	}
	return fmt.Sprintf("the same eventId with another fingerprint, and without one → 000002 (%q)", r.ResultMsg), nil
}

func checkLCRefreshStatus(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	day := 24 * time.Hour
	orderID, lineID, _ := s.order()
	steps := []func() error{
		func() error {
			_, err := s.refresh(ctx, id, "TRIAL_TO_FORMAL", expireIn(30*day), callOpts{note: "trial converted"}, cOK)
			return err
		},
		func() error {
			_, err := s.expect(ctx, "refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(400 * day)}, callOpts{note: "renewal"}, cOK)
			return err
		},
		func() error {
			_, err := s.expect(ctx, "refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(400 * day)}, callOpts{note: "renewal re-sent"}, cOK)
			return err
		},
		func() error {
			_, err := s.refresh(ctx, id, "RENEWAL_CHANGE", expireIn(500*day), callOpts{note: "renewal with change"}, cOK)
			return err
		},
		func() error {
			_, err := s.refresh(ctx, id, "UNSUBSCRIBE_RENEWAL_PERIOD", expireIn(300*day), callOpts{note: "renewal period cancelled"}, cOK)
			return err
		},
		func() error { _, err := s.status(ctx, id, "FREEZE", callOpts{note: "expired"}, cOK); return err },
		func() error { _, err := s.status(ctx, id, "FREEZE", callOpts{note: "repeat"}, cOK); return err },
		func() error { return s.stillThere(ctx, id, "frozen: data kept") },
		func() error { _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "renewed"}, cOK); return err },
		func() error { _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "repeat"}, cOK); return err },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return "", err
		}
	}
	return "TRIAL_TO_FORMAL, RENEWAL (+ re-send), RENEWAL_CHANGE, UNSUBSCRIBE_RENEWAL_PERIOD, FREEZE ×2, UNFREEZE ×2 → 000000", nil
}

func checkLCUnknown(ctx context.Context, s *session) (string, error) {
	id := s.unknownID()
	orderID, lineID, _ := s.order()
	var acts []string
	for _, c := range []struct {
		act string
		f   map[string]any
	}{
		{"getLicenseAsync", glaFields(id, newEventID(), fingerprint(), true)},
		{"refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"updateInstanceStatus", map[string]any{"instanceId": id, "status": "FREEZE"}},
		{"releaseInstance", map[string]any{"instanceId": id}},
		{"queryInstance", map[string]any{"instanceId": id}},
		{"upgradeInstance", map[string]any{"instanceId": id, "orderId": orderID, "orderLineId": lineID}},
	} {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: "unknown instanceId"}, cNotFound); err != nil {
			return "", err
		}
		acts = append(acts, c.act)
	}
	return strings.Join(acts, ", ") + " of an unknown id → 000003", nil
}

func checkLCDebug(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	orderID, lineID, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}, callOpts{test: true}, cOK)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("debug newInstance answered instanceId %q, want the businessId %q", r.InstanceID, business)
	}
	ev := newEventID()
	uo, ul, _ := s.order()
	for _, target := range []string{s.unknownID(), id} {
		for _, c := range []struct {
			act string
			f   map[string]any
		}{
			{"getLicenseAsync", glaFields(target, ev, "DEBUG-DEVICE", true)},
			{"refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": uo, "orderLineId": ul, "instanceId": target, "expireTime": expireIn(24 * time.Hour)}},
			{"updateInstanceStatus", map[string]any{"instanceId": target, "status": "FREEZE"}},
			{"upgradeInstance", map[string]any{"instanceId": target, "orderId": uo, "orderLineId": ul}},
			{"releaseInstance", map[string]any{"instanceId": target}},
			{"queryInstance", map[string]any{"instanceId": target}},
		} {
			note := "debug, unknown instanceId"
			if target == id {
				note = "debug, ready instance"
			}
			if _, err := s.expect(ctx, c.act, c.f, callOpts{test: true, note: note}, cOK); err != nil {
				return "", err
			}
		}
	}
	if err := s.absent(ctx, business, "the debug newInstance created nothing"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the debug release changed nothing"); err != nil {
		return "", err
	}
	if _, err := s.apply(ctx, glaFields(id, ev, fingerprint(), true), "the debug application recorded nothing: its eventId with another device"); err != nil {
		return "", err
	}
	return "debug newInstance → instanceId=businessId; debug getLicenseAsync, refresh, status, upgrade, release, query → 000000 on unknown and ready ids; nothing recorded", nil
}

// lcAfterRelease checks the calls after a release.
func (s *session) lcAfterRelease(ctx context.Context, id, orderID, lineID string) error {
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "after release"}, cOK); err != nil {
		return err
	}
	ro, rl, _ := s.order()
	for _, c := range []struct {
		act string
		f   map[string]any
	}{
		{"getLicenseAsync", glaFields(id, newEventID(), fingerprint(), true)},
		{"queryInstance", map[string]any{"instanceId": id}},
		{"refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": ro, "orderLineId": rl, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"updateInstanceStatus", map[string]any{"instanceId": id, "status": "UNFREEZE"}},
	} {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: "after release"}, cNotFound); err != nil {
			return err
		}
	}
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": uuidText()}, callOpts{note: "re-sent after release"}, cOK, cProcessing)
	if err != nil {
		return err
	}
	if r.InstanceID != id {
		return violation("newInstance re-sent after release answered instanceId %q, want %q", r.InstanceID, id)
	}
	return nil
}

func checkLCAfterRelease(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.lcReady(ctx, "")
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "end of life"}, cOK); err != nil {
		return "", err
	}
	if err := s.lcAfterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return "release, repeat → 000000; getLicenseAsync, query, refresh, status → 000003; re-sent newInstance → the same id", nil
}

func checkLCLifecyclePeriod(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.lcReady(ctx, "yearly purchase")
	if err != nil {
		return "", err
	}
	year := 365 * 24 * time.Hour
	fp := fingerprint()
	app := glaFields(id, newEventID(), fp, true)
	steps := []func() error{
		func() error { _, err := s.apply(ctx, app, "License for device 1"); return err },
		func() error { _, err := s.apply(ctx, app, "re-sent (interrupted transfer)"); return err },
		func() error {
			_, err := s.refresh(ctx, id, "RENEWAL", expireIn(2*year), callOpts{note: "renewal"}, cOK)
			return err
		},
		func() error { _, err := s.status(ctx, id, "FREEZE", callOpts{note: "expired"}, cOK); return err },
		func() error { return s.stillThere(ctx, id, "frozen: data kept") },
		func() error { _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "renewed"}, cOK); return err },
		func() error {
			_, err := s.apply(ctx, glaFields(id, newEventID(), fingerprint(), true), "License for device 2")
			return err
		},
		func() error {
			_, err := s.refresh(ctx, id, "UNSUBSCRIBE_RENEWAL_PERIOD", expireIn(year), callOpts{note: "renewal period cancelled"}, cOK)
			return err
		},
		func() error {
			uo, ul, _ := s.order()
			_, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id, "orderId": uo, "orderLineId": ul}, callOpts{note: "unsubscribed"}, cOK)
			return err
		},
		func() error { return s.lcAfterRelease(ctx, id, orderID, lineID) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("instance %s: %d lifecycle steps answered as documented", id, len(steps)), nil
}

func checkLCLifecycleOneTime(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.lcReady(ctx, "one-time purchase")
	if err != nil {
		return "", err
	}
	if _, err := s.apply(ctx, glaFields(id, newEventID(), fingerprint(), false), "License without expireTime"); err != nil {
		return "", err
	}
	if _, err := s.apply(ctx, glaFields(id, newEventID(), "", false), "License without fingerprint"); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "end of life"}, cOK); err != nil {
		return "", err
	}
	if err := s.lcAfterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: purchased, two Licenses (no expireTime, no fingerprint), released, as documented", id), nil
}
