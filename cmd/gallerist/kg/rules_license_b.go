package kg

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// License B (license.md §3): refreshLicenseCode, updateLicenseCodeStatus,
// releaseLicenseCode, V2-signed. KooGallery never announces a purchase: a
// code is known only once the vendor's software activated it through the
// open API, which the production interface cannot reach. The rules cover
// unknown codes, debug calls, authentication and field rules; notCovered
// lists the rest.

// licenseBRules is the License B rule catalogue, in the order they run.
func licenseBRules() []Rule {
	return []Rule{
		{"LB-ENVELOPE", "license.md §1, §3, auth.md §4, codes-and-rules.md §1", "answers (000000, 000001, 000002, 000003) are HTTP 200 JSON with a resultMsg and a valid Body-Sign; GET is 405 with a Body-Sign", checkLBEnvelope},
		{"LB-UNKNOWN-CODE", "license.md §3.2–§3.4", "refreshLicenseCode, updateLicenseCodeStatus, releaseLicenseCode of a code never activated → 000003", checkLBUnknown},
		{"LB-DEBUG", "license.md §3.5, codes-and-rules.md §7", "debug calls (testFlag 1) of every activity answer 000000, never 000003, and change nothing (the code stays unknown)", checkLBDebug},
		{"LB-SIG-TAMPERED", "auth.md §2.2, §2.5", "a tampered body or signature, another key or no signature → 000001 (before the code lookup)", checkLBTampered},
		{"LB-TIMESTAMP", "auth.md §2.4, §2.5 steps 1–2", "a timestamp outside ±60 s → 000001; a missing or non-numeric one → 000002", checkLBTimestamp},
		{"LB-NONCE", "auth.md §2.4, §2.5 steps 3, 7", "no nonce → 000002; a replayed nonce → 000001; a forged call does not use up its nonce", checkLBNonce},
		{"LB-ACTIVITY", "license.md §1, §3", "an unknown or missing activity, another family's activity, a body that is not a JSON object → 000002", checkLBActivity},
		{"LB-FIELD-MISSING", "license.md §3.2–§3.4, codes-and-rules.md §2.1", "a missing mandatory field is 000002 naming it (checked before the code lookup)", checkLBFieldMissing},
		{"LB-FIELD-OVERLONG", "license.md §3.2–§3.4 (Len)", "a field over its documented length is 000002 naming it", checkLBFieldOverlong},
		{"LB-FIELD-ENUM", "license.md §3.2, §3.3, codes-and-rules.md §8", "an unknown scene or status, a malformed expireTime → 000002 naming the field", checkLBFieldEnum},
	}
}

// unknownCode returns an authorization code KooGallery never issued.
func (s *session) unknownCode() string { return "PLKG" + strings.ToUpper(randomText(12)) }

// lbCalls are one call of every License B activity on code.
func (s *session) lbCalls(code string) []struct {
	act string
	f   map[string]any
} {
	orderID, lineID, _ := s.order()
	return []struct {
		act string
		f   map[string]any
	}{
		{"refreshLicenseCode", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "license": code, "expireTime": expireIn(365 * 24 * time.Hour)}},
		{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "FREEZE"}},
		{"releaseLicenseCode", map[string]any{"license": code, "orderId": orderID, "orderLineId": lineID}},
	}
}

func checkLBEnvelope(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
		want   koogallery.Code
	}{
		{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "FREEZE"}, callOpts{test: true, note: "debug"}, cOK},
		{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "FREEZE"}, callOpts{note: "tampered signature", mutate: flipSignature}, cAuth},
		{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "PAUSE"}, callOpts{note: "bad status"}, cParam},
		{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "FREEZE"}, callOpts{note: "unknown code"}, cNotFound},
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

func checkLBUnknown(ctx context.Context, s *session) (string, error) {
	var acts []string
	for _, c := range s.lbCalls(s.unknownCode()) {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: "unknown code"}, cNotFound); err != nil {
			return "", err
		}
		acts = append(acts, c.act)
	}
	return strings.Join(acts, ", ") + " of an unknown code → 000003", nil
}

func checkLBDebug(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	calls := s.lbCalls(code)
	calls = append(calls, struct {
		act string
		f   map[string]any
	}{"updateLicenseCodeStatus", map[string]any{"license": code, "status": "UNFREEZE"}})
	for _, c := range calls {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{test: true, note: "debug, code never activated"}, cOK); err != nil {
			return "", err
		}
	}
	for _, c := range s.lbCalls(code) {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: "real call after the debug calls: still unknown"}, cNotFound); err != nil {
			return "", err
		}
	}
	return "debug refresh, FREEZE, release, UNFREEZE → 000000; the code stayed unknown (000003)", nil
}

func checkLBTampered(ctx context.Context, s *session) (string, error) {
	f := map[string]any{"license": s.unknownCode(), "status": "FREEZE"}
	wrongKey := func(q url.Values, body []byte) []byte {
		w := koogallery.SignV2Request(append([]byte("not-"), s.d.t.key...), body, time.Now(), q.Get("nonce"))
		q.Set("signature", w.Get("signature"))
		return body
	}
	for _, o := range []callOpts{
		{note: "body changed after signing", mutate: func(q url.Values, body []byte) []byte { return bodyWith(body, "status", "UNFREEZE") }},
		{note: "signature changed", mutate: flipSignature},
		{note: "signed with another key", mutate: wrongKey},
		{note: "no signature", mutate: dropParam("signature")},
		{note: "debug call, signature changed", mutate: flipSignature, test: true},
	} {
		if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, o, cAuth); err != nil {
			return "", err
		}
	}
	return "tampered body, flipped signature, other key, no signature, forged debug call → 000001", nil
}

func checkLBTimestamp(ctx context.Context, s *session) (string, error) {
	f := map[string]any{"license": s.unknownCode(), "status": "FREEZE"}
	for _, off := range []time.Duration{-10 * time.Minute, -2 * time.Minute, 10 * time.Minute} {
		if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, at: time.Now().Add(off), note: fmt.Sprintf("timestamp %+v", off)}, cAuth); err != nil {
			return "", err
		}
	}
	for _, c := range []struct {
		note   string
		mutate func(url.Values, []byte) []byte
	}{{"no timestamp", dropParam("timestamp")}, {"timestamp 12ab", setParam("timestamp", "12ab")}} {
		if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, note: c.note, mutate: c.mutate}, cParam); err != nil {
			return "", err
		}
	}
	return "timestamps −10 min, −2 min, +10 min → 000001; missing and non-numeric → 000002", nil
}

func checkLBNonce(ctx context.Context, s *session) (string, error) {
	f := map[string]any{"license": s.unknownCode(), "status": "FREEZE"}
	if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, note: "no nonce", mutate: dropParam("nonce")}, cParam); err != nil {
		return "", err
	}
	n, at := koogallery.NewNonce(), time.Now()
	if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, nonce: n, at: at, note: "forged, nonce N", mutate: flipSignature}, cAuth); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, nonce: n, at: at, note: "correct, same nonce N"}, cOK); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "updateLicenseCodeStatus", f, callOpts{test: true, nonce: n, at: at, note: "exact replay"}, cAuth); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseLicenseCode", map[string]any{"license": f["license"]}, callOpts{nonce: n, note: "release re-signed with the used nonce N"}, cAuth); err != nil {
		return "", err
	}
	return "no nonce → 000002; forged call with N → 000001, then correct with N → 000000; replays with N → 000001", nil
}

func checkLBActivity(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	for _, act := range []string{"refreshLicenseCodeX", "newInstance", "getLicenseAsync", "queryInstance", "getLicense"} {
		if _, err := s.expect(ctx, act, map[string]any{"license": code, "instanceId": code}, callOpts{note: "not a License B activity"}, cParam); err != nil {
			return "", err
		}
	}
	if _, err := s.expect(ctx, "(none)", nil, callOpts{note: "no activity", rawBody: []byte(`{"license":"` + code + `"}`)}, cParam); err != nil {
		return "", err
	}
	for _, b := range []string{"not json", "[1,2]"} {
		if _, err := s.expect(ctx, "?", nil, callOpts{rawBody: []byte(b), note: "body " + b}, cParam); err != nil {
			return "", err
		}
	}
	return "unknown, SaaS V2, License C, License A and missing activities, non-object bodies → 000002", nil
}

func checkLBFieldMissing(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	orderID, lineID, _ := s.order()
	exp := expireIn(365 * 24 * time.Hour)
	refresh := func(drop string) map[string]any {
		f := map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "license": code, "expireTime": exp}
		delete(f, drop)
		return f
	}
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"refreshLicenseCode", "scene", refresh("scene")},
		{"refreshLicenseCode", "orderId", refresh("orderId")},
		{"refreshLicenseCode", "orderLineId", refresh("orderLineId")},
		{"refreshLicenseCode", "license", refresh("license")},
		{"refreshLicenseCode", "expireTime", refresh("expireTime")},
		{"updateLicenseCodeStatus", "license", map[string]any{"status": "FREEZE"}},
		{"updateLicenseCodeStatus", "status", map[string]any{"license": code}},
		{"releaseLicenseCode", "license", map[string]any{"orderId": orderID}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.f, "no "+c.field, c.field); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d calls missing a mandatory field → 000002 naming it", len(cases)), nil
}

func checkLBFieldOverlong(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	orderID, lineID, _ := s.order()
	long := strings.Repeat("x", 65)
	exp := expireIn(365 * 24 * time.Hour)
	refresh := func(k, v string) map[string]any {
		f := map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "license": code, "expireTime": exp}
		f[k] = v
		return f
	}
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"refreshLicenseCode", "scene", refresh("scene", long)},
		{"refreshLicenseCode", "orderId", refresh("orderId", "CS"+long)},
		{"refreshLicenseCode", "orderLineId", refresh("orderLineId", long)},
		{"refreshLicenseCode", "license", refresh("license", code+long)},
		{"refreshLicenseCode", "productId", refresh("productId", long)},
		{"refreshLicenseCode", "expireTime", refresh("expireTime", exp+"0000")},
		{"updateLicenseCodeStatus", "status", map[string]any{"license": code, "status": strings.Repeat("F", 33)}},
		{"updateLicenseCodeStatus", "testFlag", map[string]any{"license": code, "status": "FREEZE", "testFlag": "123"}},
		{"releaseLicenseCode", "orderLineId", map[string]any{"license": code, "orderLineId": long}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.f, c.field+" too long", c.field); err != nil {
			return "", err
		}
	}
	return "scene, orderId, orderLineId, license, productId (65), expireTime (21), status (33), testFlag (3) over their Len → 000002 naming them", nil
}

func checkLBFieldEnum(ctx context.Context, s *session) (string, error) {
	code := s.unknownCode()
	orderID, lineID, _ := s.order()
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"refreshLicenseCode", "scene", map[string]any{"scene": "RENEW", "orderId": orderID, "orderLineId": lineID, "license": code, "expireTime": expireIn(24 * time.Hour)}},
		{"refreshLicenseCode", "expireTime", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "license": code, "expireTime": "2030-01-01"}},
		{"updateLicenseCodeStatus", "status", map[string]any{"license": code, "status": "PAUSE"}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.f, "bad "+c.field, c.field); err != nil {
			return "", err
		}
		debug := map[string]any{"testFlag": "1"}
		for k, v := range c.f {
			debug[k] = v
		}
		if err := s.expectInvalid(ctx, c.act, debug, "bad "+c.field+", debug", c.field); err != nil {
			return "", err
		}
	}
	return "scene RENEW, expireTime 2030-01-01, status PAUSE → 000002 naming the field (debug calls too)", nil
}
