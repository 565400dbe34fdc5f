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

// The result codes the rules expect, from the kit's one table
// (ingress/koogallery/codes.go, codes-and-rules.md §2).
const (
	cOK         = koogallery.CodeSuccess
	cAuth       = koogallery.CodeAuthFailed
	cParam      = koogallery.CodeInvalidParam
	cNotFound   = koogallery.CodeNotFound
	cProcessing = koogallery.CodeProcessing
)

// check drives a production address and returns the evidence of a pass,
// or an error: an errViolation when the address broke the rule.
type check func(ctx context.Context, s *session) (string, error)

// Rule is one rule of the spec that `kg conformance` checks.
type Rule struct {
	ID    string `json:"id"`
	Ref   string `json:"ref"` // spec file and section
	Title string `json:"title"`
	check check
}

// v2Rules is the SaaS V2 rule catalogue, in the order they run.
func v2Rules() []Rule {
	return []Rule{
		{"V2-ENVELOPE", "codes-and-rules.md §1, saas-v2.md §1", "every answer is HTTP 200 JSON with a documented resultCode and a resultMsg", checkEnvelope},
		{"V2-BODY-SIGN", "auth.md §4", "every answer (success, 000001, 000002, 000003, 405) carries a valid Body-Sign", checkBodySignAll},
		{"V2-HTTP-STATUS", "codes-and-rules.md §1", "wrong method is 405 with Body-Sign; an unknown path is 404", checkHTTPStatus},
		{"V2-SIG-VALID", "auth.md §2.2, §2.4", "a correct signature is accepted in either case, with a timestamp in ms or s", checkSigValid},
		{"V2-SIG-TAMPERED", "auth.md §2.2, §2.5 step 6", "a tampered body or signature, or another key, is 000001 and changes nothing", checkSigTampered},
		{"V2-SIG-MISSING", "auth.md §2.5 step 4", "a call without signature is 000001", checkSigMissing},
		{"V2-TS-STALE", "auth.md §2.4, §2.5 step 2", "a timestamp outside ±60 s is 000001 and changes nothing", checkTSStale},
		{"V2-TS-MALFORMED", "auth.md §2.5 step 1", "a missing or non-numeric timestamp is 000002", checkTSMalformed},
		{"V2-NONCE-MISSING", "auth.md §2.5 step 3", "a call without nonce is 000002", checkNonceMissing},
		{"V2-NONCE-REPLAY", "auth.md §2.4, §2.5 step 7", "a replayed nonce is 000001 and changes nothing", checkNonceReplay},
		{"V2-NONCE-AFTER-VERIFY", "auth.md §2.4", "a forged call does not use up its nonce", checkNonceAfterVerify},
		{"V2-BODY-NOT-JSON", "auth.md §2.5 step 5", "a body that is not a JSON object is 000002", checkBodyNotJSON},
		{"V2-ACTIVITY-UNKNOWN", "saas-v2.md §1", "an unknown or missing activity is 000002", checkActivityUnknown},
		{"V2-FIELD-MISSING", "saas-v2.md §3–§9, codes-and-rules.md §2.1", "a missing mandatory field is 000002 naming it, and changes nothing", checkFieldMissing},
		{"V2-FIELD-OVERLONG", "saas-v2.md §3–§9 (Len), codes-and-rules.md §7", "a field over its documented length is 000002 naming it, and changes nothing", checkFieldOverlong},
		{"V2-FIELD-ENUM", "saas-v2.md §5, §6, codes-and-rules.md §8", "an unknown scene or status or a malformed expireTime is 000002 and changes nothing", checkFieldEnum},
		{"V2-EXPIRETIME-FORMATS", "codes-and-rules.md §8, saas-v2.md §5", "expireTime is accepted with 14 and 17 digits", checkExpireFormats},
		{"V2-NEW-READY", "saas-v2.md §3, §4, §10.1, auth.md §5", "newInstance answers 000000, or 000004 and queryInstance reaches the app info within the polling window", checkNewReady},
		{"V2-NEW-IDEMPOTENT", "saas-v2.md §3, codes-and-rules.md §3", "a re-sent newInstance gets the first instanceId, also with another businessId", checkNewIdempotent},
		{"V2-NEW-STORM", "saas-v2.md §3, codes-and-rules.md §3", "a duplicate storm of concurrent identical newInstance calls makes one instance", checkNewStorm},
		{"V2-NEW-RETRY-SCHEDULE", "codes-and-rules.md §4", "re-sends at KooGallery's retry interval (compressed) keep the instance and succeed", checkRetrySchedule},
		{"V2-QUERY-UNKNOWN", "saas-v2.md §4", "a single unknown id, or a batch of unknown ids, is 000003", checkQueryUnknown},
		{"V2-QUERY-BATCH", "saas-v2.md §4", "a batch answers the known ids and leaves the unknown ones out", checkQueryBatch},
		{"V2-QUERY-LIMITS", "saas-v2.md §4", "a blank instanceId or more than 100 ids is 000002; 100 ids are fine", checkQueryLimits},
		{"V2-REFRESH", "saas-v2.md §5, codes-and-rules.md §3", "RENEWAL, TRIAL_TO_FORMAL, UNSUBSCRIBE_RENEWAL_PERIOD, RENEWAL_CHANGE are 000000, repeats too", checkRefresh},
		{"V2-STATUS", "saas-v2.md §6, codes-and-rules.md §6", "FREEZE and UNFREEZE are 000000, repeats too; a frozen instance keeps its data", checkStatus},
		{"V2-UPGRADE", "saas-v2.md §8", "upgradeInstance is 000000, a repeat too, and keeps the instanceId", checkUpgrade},
		{"V2-CHANGE-CHECK", "saas-v2.md §9", "changeInstanceCheck accepts (000000) or refuses with 000002 and a reason", checkChangeCheck},
		{"V2-RELEASE", "saas-v2.md §7, codes-and-rules.md §3", "releaseInstance is 000000, a repeat too, also for an unsubscription", checkRelease},
		{"V2-AFTER-RELEASE", "saas-v2.md §7, README Protocol choices", "after release: queryInstance and changes 000003, release 000000, re-sent newInstance 000000 with the same id", checkAfterRelease},
		{"V2-UNKNOWN-INSTANCE", "saas-v2.md §5–§9, codes-and-rules.md §2.1", "every activity on an instanceId never issued is 000003", checkUnknownInstance},
		{"V2-ORDER-NOTIFY", "saas-v2.md §11", "orderNotify is authenticated and answered 000000", checkOrderNotify},
		{"V2-DEBUG-NEW", "codes-and-rules.md §7, saas-v2.md §3", "a debug newInstance answers instanceId = businessId and creates nothing", checkDebugNew},
		{"V2-DEBUG-QUERY", "codes-and-rules.md §7, saas-v2.md §4", "a debug queryInstance answers mock app info, encrypted with the key, never 000003", checkDebugQuery},
		{"V2-DEBUG-NO-CHANGE", "codes-and-rules.md §7", "debug changes answer 000000 and change nothing, never 000003", checkDebugNoChange},
		{"V2-DIAL-TEST", "codes-and-rules.md §5, §7", "the saved debug cases of every activity pass when replayed twice, re-signed", checkDialTest},
		{"V2-LIFECYCLE-PERIOD", "saas-v2.md §2, §3–§9", "yearly/monthly: purchase → provision → renew → freeze → unfreeze → change → upgrade → release → after release", scenarioPeriod},
		{"V2-LIFECYCLE-TRIAL", "saas-v2.md §2, §5", "trial: purchase → provision → trial-to-formal → renew → release", scenarioTrial},
		{"V2-LIFECYCLE-ONE-TIME", "saas-v2.md §2", "one-time: purchase → provision → query → release", scenarioOneTime},
		{"V2-LIFECYCLE-PAY-PER-USE", "saas-v2.md §2, §6", "pay-per-use: purchase → provision → freeze → unfreeze → release", scenarioPayPerUse},
	}
}

// ---- envelope and transport ----

func checkEnvelope(ctx context.Context, s *session) (string, error) {
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
		want   koogallery.Code
	}{
		{"orderNotify", map[string]any{"orderId": "CS" + s.d.tag, "orderLineId": "CS" + s.d.tag + "-1"}, callOpts{test: true}, cOK},
		{"queryInstance", map[string]any{"instanceId": s.unknownID()}, callOpts{}, cNotFound},
		{"noSuchActivity", nil, callOpts{}, cParam},
		{"queryInstance", map[string]any{"instanceId": "x"}, callOpts{note: "tampered signature", mutate: flipSignature}, cAuth},
	}
	for _, c := range calls {
		if _, err := s.expect(ctx, c.act, c.fields, c.o, c.want); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d answers (000000, 000003, 000002, 000001): HTTP 200, application/json, documented resultCode, resultMsg", len(calls)), nil
}

func checkBodySignAll(ctx context.Context, s *session) (string, error) {
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
	}{
		{"orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "success"}},
		{"queryInstance", map[string]any{"instanceId": s.unknownID()}, callOpts{note: "unknown id"}},
		{"noSuchActivity", nil, callOpts{note: "unknown activity"}},
		{"queryInstance", map[string]any{"instanceId": "x"}, callOpts{note: "tampered signature", mutate: flipSignature}},
		{"orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{note: "no timestamp", mutate: dropParam("timestamp")}},
	}
	var codes []string
	for _, c := range calls {
		r, err := s.call(ctx, c.act, c.fields, c.o)
		if err != nil && r.Status == 0 {
			return "", err // no answer at all
		}
		if !r.BodySign.Valid {
			return "", violation("the answer to %s (%s, %s) has no valid Body-Sign: %s", c.act, c.o.note, r.result(), r.BodySign.Error)
		}
		codes = append(codes, r.result())
	}
	r, err := s.rawRequest(ctx, http.MethodGet, s.d.t.url.String(), nil, "wrong method")
	if err != nil && r.Status == 0 {
		return "", err
	}
	if !r.BodySign.Valid {
		return "", violation("the answer to a GET (%s) has no valid Body-Sign: %s", r.result(), r.BodySign.Error)
	}
	codes = append(codes, r.result())
	return "Body-Sign valid on answers " + strings.Join(codes, ", "), nil
}

func checkHTTPStatus(ctx context.Context, s *session) (string, error) {
	r, err := s.rawRequest(ctx, http.MethodGet, s.d.t.url.String(), nil, "wrong method")
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusMethodNotAllowed {
		return "", violation("GET answered HTTP %d, want 405", r.Status)
	}
	if !r.BodySign.Valid {
		return "", violation("the 405 answer's Body-Sign: %s", r.BodySign.Error)
	}
	u := *s.d.t.url
	u.Path = strings.TrimSuffix(u.Path, "/") + "/kg-conformance-no-such-route-" + strings.ToLower(s.d.tag)
	r, err = s.rawRequest(ctx, http.MethodPost, u.String(), []byte(`{"activity":"queryInstance","instanceId":"x"}`), "unknown path")
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusNotFound {
		return "", violation("POST to an unknown path answered HTTP %d, want 404", r.Status)
	}
	return "GET → 405 with a valid Body-Sign; unknown path → 404", nil
}

// ---- signature, timestamp, nonce ----

func flipSignature(q url.Values, body []byte) []byte {
	sig := []byte(q.Get("signature"))
	if len(sig) > 0 {
		if sig[0] == 'A' {
			sig[0] = 'B'
		} else {
			sig[0] = 'A'
		}
	}
	q.Set("signature", string(sig))
	return body
}

func checkSigValid(ctx context.Context, s *session) (string, error) {
	lower := func(q url.Values, body []byte) []byte {
		q.Set("signature", strings.ToLower(q.Get("signature")))
		return body
	}
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "upper-case signature"}, cOK); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "lower-case signature", mutate: lower}, cOK); err != nil {
		return "", err
	}
	// A timestamp in seconds (auth.md §2.4): sign over the seconds text.
	secs := func(q url.Values, body []byte) []byte {
		ts := fmt.Sprint(time.Now().Unix())
		q.Set("timestamp", ts)
		q.Set("signature", strings.ToUpper(koogallery.SignV2(s.d.t.key, q.Get("nonce"), ts, body)))
		return body
	}
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "timestamp in seconds", mutate: secs}, cOK); err != nil {
		return "", err
	}
	return "upper- and lower-case signatures and a seconds timestamp accepted", nil
}

func checkSigTampered(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	fields := map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}
	other := uuidText()
	tamper := func(q url.Values, body []byte) []byte { return bodyWith(body, "businessId", other) }
	if _, err := s.expect(ctx, "newInstance", fields, callOpts{note: "body changed after signing", mutate: tamper}, cAuth); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "newInstance", fields, callOpts{note: "signature changed", mutate: flipSignature}, cAuth); err != nil {
		return "", err
	}
	wrongKey := func(q url.Values, body []byte) []byte {
		w := koogallery.SignV2Request(append([]byte("not-"), s.d.t.key...), body, time.Now(), q.Get("nonce"))
		q.Set("signature", w.Get("signature"))
		return body
	}
	if _, err := s.expect(ctx, "newInstance", fields, callOpts{note: "signed with another key", mutate: wrongKey}, cAuth); err != nil {
		return "", err
	}
	for _, id := range []string{business, other} {
		if err := s.absent(ctx, id, "tampered calls created nothing"); err != nil {
			return "", err
		}
	}
	// The order is still free: a correct call binds it to its own businessId.
	fields["businessId"] = uuidText()
	r, err := s.expect(ctx, "newInstance", fields, callOpts{note: "now correctly signed"}, cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if r.InstanceID != fields["businessId"] {
		return "", violation("after tampered calls newInstance answered instanceId %q, want %q: a tampered call bound the order", r.InstanceID, fields["businessId"])
	}
	return "tampered body, flipped signature, other key → 000001 each; no instance, order still unbound", nil
}

func dropParam(name string) func(url.Values, []byte) []byte {
	return func(q url.Values, body []byte) []byte {
		q.Del(name)
		return body
	}
}

func setParam(name, value string) func(url.Values, []byte) []byte {
	return func(q url.Values, body []byte) []byte {
		q.Set(name, value)
		return body
	}
}

func checkSigMissing(ctx context.Context, s *session) (string, error) {
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "no signature", mutate: dropParam("signature")}, cAuth); err != nil {
		return "", err
	}
	return "no signature → 000001", nil
}

func checkTSStale(ctx context.Context, s *session) (string, error) {
	var ids []string
	for _, off := range []time.Duration{-10 * time.Minute, -2 * time.Minute, 10 * time.Minute} {
		orderID, lineID, business := s.order()
		ids = append(ids, business)
		if _, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business},
			callOpts{at: time.Now().Add(off), note: fmt.Sprintf("timestamp %+v", off)}, cAuth); err != nil {
			return "", err
		}
	}
	for _, id := range ids {
		if err := s.absent(ctx, id, "stale calls created nothing"); err != nil {
			return "", err
		}
	}
	return "timestamps −10 min, −2 min, +10 min → 000001; nothing created", nil
}

func checkTSMalformed(ctx context.Context, s *session) (string, error) {
	for _, c := range []struct {
		note   string
		mutate func(url.Values, []byte) []byte
	}{{"no timestamp", dropParam("timestamp")}, {"timestamp 12ab", setParam("timestamp", "12ab")}} {
		if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: c.note, mutate: c.mutate}, cParam); err != nil {
			return "", err
		}
	}
	return "missing and non-numeric timestamp → 000002", nil
}

func checkNonceMissing(ctx context.Context, s *session) (string, error) {
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{test: true, note: "no nonce", mutate: dropParam("nonce")}, cParam); err != nil {
		return "", err
	}
	return "no nonce → 000002", nil
}

func checkNonceReplay(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	n := koogallery.NewNonce()
	at := time.Now()
	q := map[string]any{"instanceId": id}
	if _, err := s.expect(ctx, "queryInstance", q, callOpts{nonce: n, at: at, note: "nonce N"}, cOK); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "queryInstance", q, callOpts{nonce: n, at: at, note: "exact replay"}, cAuth); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseInstance", q, callOpts{nonce: n, note: "release re-signed with the used nonce N"}, cAuth); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the replayed release changed nothing"); err != nil {
		return "", err
	}
	return "exact replay and a re-signed release with a used nonce → 000001; the instance is still there", nil
}

func checkNonceAfterVerify(ctx context.Context, s *session) (string, error) {
	n := koogallery.NewNonce()
	f := map[string]any{"orderId": "CS" + s.d.tag}
	if _, err := s.expect(ctx, "orderNotify", f, callOpts{test: true, nonce: n, note: "forged, nonce N", mutate: flipSignature}, cAuth); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "orderNotify", f, callOpts{test: true, nonce: n, note: "correct, same nonce N"}, cOK); err != nil {
		return "", err
	}
	return "a forged call with nonce N → 000001, then a correct one with N → 000000", nil
}

func checkBodyNotJSON(ctx context.Context, s *session) (string, error) {
	for _, b := range []string{"not json", "[1,2]"} {
		if _, err := s.expect(ctx, "?", nil, callOpts{rawBody: []byte(b), note: "body " + b}, cParam); err != nil {
			return "", err
		}
	}
	return "bodies `not json` and `[1,2]` → 000002", nil
}

func checkActivityUnknown(ctx context.Context, s *session) (string, error) {
	if _, err := s.expect(ctx, "newInstanceX", map[string]any{"orderId": "CS" + s.d.tag}, callOpts{}, cParam); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "(none)", nil, callOpts{note: "no activity", rawBody: []byte(`{"orderId":"CS` + s.d.tag + `"}`)}, cParam); err != nil {
		return "", err
	}
	return "unknown and missing activity → 000002", nil
}

// ---- field validation ----

// expectInvalid requires 000002 with a resultMsg naming field.
func (s *session) expectInvalid(ctx context.Context, act string, fields map[string]any, note, field string) error {
	r, err := s.expect(ctx, act, fields, callOpts{note: note}, cParam)
	if err != nil {
		return err
	}
	if !strings.Contains(r.ResultMsg, field) {
		return violation("%s (%s) answered 000002 %q, which does not name %s (saas-v2.md §1)", act, note, r.ResultMsg, field)
	}
	return nil
}

func checkFieldMissing(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	orderID, lineID, business := s.order()
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"newInstance", "orderLineId", map[string]any{"orderId": orderID, "businessId": business}},
		{"newInstance", "businessId", map[string]any{"orderId": orderID, "orderLineId": lineID}},
		{"queryInstance", "instanceId", map[string]any{}},
		{"refreshInstance", "expireTime", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id}},
		{"updateInstanceStatus", "status", map[string]any{"instanceId": id}},
		{"releaseInstance", "instanceId", map[string]any{}},
		{"upgradeInstance", "orderId", map[string]any{"instanceId": id, "orderLineId": lineID}},
		{"changeInstanceCheck", "productInfo", map[string]any{"instanceId": id}},
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

func checkFieldOverlong(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	orderID, lineID, business := s.order()
	long := strings.Repeat("x", 65)
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"newInstance", "orderId", map[string]any{"orderId": "CS" + long, "orderLineId": lineID, "businessId": business}},
		{"newInstance", "businessId", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business + long}},
		{"newInstance", "testFlag", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business, "testFlag": "123"}},
		{"refreshInstance", "instanceId", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id + long, "expireTime": expireIn(24 * time.Hour)}},
		{"releaseInstance", "orderId", map[string]any{"instanceId": id, "orderId": "CS" + long}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.fields, c.field+" too long", c.field); err != nil {
			return "", err
		}
	}
	if err := s.absent(ctx, business, "nothing created"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the overlong release changed nothing"); err != nil {
		return "", err
	}
	return "orderId, businessId (65), testFlag (3), instanceId (65+) over their Len → 000002 naming them; nothing created or released", nil
}

func checkFieldEnum(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	orderID, lineID, _ := s.order()
	cases := []struct {
		act, field string
		fields     map[string]any
	}{
		{"refreshInstance", "scene", map[string]any{"scene": "RENEW", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"refreshInstance", "expireTime", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": "2030-01-01"}},
		{"updateInstanceStatus", "status", map[string]any{"instanceId": id, "status": "PAUSE"}},
	}
	for _, c := range cases {
		if err := s.expectInvalid(ctx, c.act, c.fields, "bad "+c.field, c.field); err != nil {
			return "", err
		}
	}
	if err := s.stillThere(ctx, id, "nothing changed"); err != nil {
		return "", err
	}
	return "scene RENEW, expireTime 2030-01-01, status PAUSE → 000002 naming the field", nil
}

func checkExpireFormats(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	t := time.Now().UTC().AddDate(0, 1, 0)
	for _, e := range []string{t.Format("20060102150405"), t.Format("20060102150405") + "123"} {
		if _, err := s.refresh(ctx, id, "RENEWAL", e, callOpts{note: fmt.Sprintf("expireTime %d digits", len(e))}, cOK); err != nil {
			return "", err
		}
	}
	return "expireTime with 14 and with 17 digits → 000000", nil
}

// ---- newInstance ----

func checkNewReady(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}, callOpts{}, cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("newInstance answered instanceId %q, want the businessId %q", r.InstanceID, business)
	}
	first := r.ResultCode
	q, polls, err := s.provisioned(ctx, r.InstanceID)
	if err != nil {
		return "", err
	}
	if first == string(cOK) && polls > 1 {
		return "", violation("newInstance answered 000000 (ready) but queryInstance needed %d polls", polls)
	}
	return fmt.Sprintf("newInstance %s instanceId=businessId; queryInstance 000000 after %d poll(s) with appInfo, userName/password decrypted (encryptType %s)", first, polls, q.EncryptType), nil
}

func checkNewIdempotent(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	f := map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}
	if _, err := s.expect(ctx, "newInstance", f, callOpts{}, cOK, cProcessing); err != nil {
		return "", err
	}
	ids := map[string]bool{}
	for i, b := range []string{business, uuidText(), uuidText()} {
		f["businessId"] = b
		note := "identical re-send"
		if i > 0 {
			note = "re-send with another businessId"
		}
		r, err := s.expect(ctx, "newInstance", f, callOpts{note: note}, cOK, cProcessing)
		if err != nil {
			return "", err
		}
		ids[r.InstanceID] = true
		if r.InstanceID != business {
			return "", violation("%s answered instanceId %q, want the first %q (a second instance)", note, r.InstanceID, business)
		}
	}
	if _, _, err := s.provisioned(ctx, business); err != nil {
		return "", err
	}
	f["businessId"] = uuidText()
	r, err := s.expect(ctx, "newInstance", f, callOpts{note: "re-send once ready"}, cOK)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("re-send once ready answered instanceId %q, want %q", r.InstanceID, business)
	}
	return "4 re-sends (identical, other businessIds, after ready) → the first instanceId", nil
}

func checkNewStorm(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	ids, err := s.storm(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}, "storm", cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 || ids[business] != s.d.storm {
		return "", violation("a storm of %d identical newInstance calls answered instanceIds %v, want only %q (one instance)", s.d.storm, ids, business)
	}
	if _, _, err := s.provisioned(ctx, business); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d concurrent identical newInstance calls → one instanceId, provisioned", s.d.storm), nil
}

// retryResends is how many re-sends the conformance rule makes (the
// retry-schedule scenario makes the whole window's worth).
const retryResends = 3

func checkRetrySchedule(ctx context.Context, s *session) (string, error) {
	return retryScenario(ctx, s, retryResends)
}

// ---- queryInstance ----

func checkQueryUnknown(ctx context.Context, s *session) (string, error) {
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": s.unknownID()}, callOpts{note: "one unknown id"}, cNotFound); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": s.unknownID() + "," + s.unknownID()}, callOpts{note: "two unknown ids"}, cNotFound); err != nil {
		return "", err
	}
	return "one unknown id and a batch of unknown ids → 000003", nil
}

func checkQueryBatch(ctx context.Context, s *session) (string, error) {
	a, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	b, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	r, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": a + "," + s.unknownID() + "," + b}, callOpts{note: "two known, one unknown"}, cOK)
	if err != nil {
		return "", err
	}
	q, err := r.query()
	if err != nil {
		return "", err
	}
	if len(q.Info) != 2 {
		return "", violation("a batch of two known ids and an unknown one answered %d info elements, want 2: %s", len(q.Info), r.Body)
	}
	for _, id := range []string{a, b} {
		if err := checkAppInfo(r, id, s.d.t.family.Name()); err != nil {
			return "", err
		}
	}
	return "known,unknown,known → 000000 with the two known instances and their appInfo", nil
}

func checkQueryLimits(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	if err := s.expectInvalid(ctx, "queryInstance", map[string]any{"instanceId": ""}, "blank instanceId", "instanceId"); err != nil {
		return "", err
	}
	ids := []string{id}
	for len(ids) < 100 {
		ids = append(ids, fmt.Sprintf("kg-unknown-%d", len(ids)))
	}
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": strings.Join(ids, ",")}, callOpts{note: "100 ids"}, cOK); err != nil {
		return "", err
	}
	ids = append(ids, "kg-unknown-100")
	if err := s.expectInvalid(ctx, "queryInstance", map[string]any{"instanceId": strings.Join(ids, ",")}, "101 ids", "instanceId"); err != nil {
		return "", err
	}
	return "blank → 000002, 100 ids → 000000, 101 ids → 000002", nil
}

// ---- lifecycle activities ----

func checkRefresh(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	for _, scene := range []string{"TRIAL_TO_FORMAL", "RENEWAL", "RENEWAL_CHANGE", "UNSUBSCRIBE_RENEWAL_PERIOD"} {
		orderID, lineID, _ := s.order()
		f := map[string]any{"scene": scene, "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(400 * 24 * time.Hour)}
		for _, note := range []string{scene, scene + " re-sent"} {
			if _, err := s.expect(ctx, "refreshInstance", f, callOpts{note: note}, cOK); err != nil {
				return "", err
			}
		}
	}
	return "4 scenes, each sent twice → 000000", nil
}

func checkStatus(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	for _, st := range []string{"FREEZE", "FREEZE"} {
		if _, err := s.status(ctx, id, st, callOpts{note: st}, cOK); err != nil {
			return "", err
		}
	}
	if err := s.stillThere(ctx, id, "frozen: data kept"); err != nil {
		return "", err
	}
	for _, st := range []string{"UNFREEZE", "UNFREEZE"} {
		if _, err := s.status(ctx, id, st, callOpts{note: st}, cOK); err != nil {
			return "", err
		}
	}
	return "FREEZE ×2, UNFREEZE ×2 → 000000; the frozen instance still answers its appInfo", nil
}

func checkUpgrade(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	orderID, lineID, _ := s.order()
	f := map[string]any{"instanceId": id, "orderId": orderID, "orderLineId": lineID}
	for _, note := range []string{"upgrade order", "re-sent"} {
		if _, err := s.expect(ctx, "upgradeInstance", f, callOpts{note: note}, cOK); err != nil {
			return "", err
		}
	}
	if err := s.stillThere(ctx, id, "same instanceId after the upgrade"); err != nil {
		return "", err
	}
	return "upgradeInstance ×2 → 000000; queryInstance of the same id → 000000", nil
}

func checkChangeCheck(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	r, err := s.expect(ctx, "changeInstanceCheck", map[string]any{"instanceId": id, "productInfo": productInfo()}, callOpts{}, cOK, cParam)
	if err != nil {
		return "", err
	}
	if r.code() == cParam {
		return "refused with 000002: " + r.ResultMsg, nil
	}
	return "changeInstanceCheck → 000000 (accepted)", nil
}

func checkRelease(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	for _, note := range []string{"expiry", "re-sent"} {
		if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: note}, cOK); err != nil {
			return "", err
		}
	}
	id2, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	orderID, lineID, _ := s.order()
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id2, "orderId": orderID, "orderLineId": lineID}, callOpts{note: "unsubscription"}, cOK); err != nil {
		return "", err
	}
	return "release ×2 → 000000; release with an unsubscribe order → 000000", nil
}

// afterRelease checks the calls KooGallery may still send after a release.
func (s *session) afterRelease(ctx context.Context, id, orderID, lineID string) error {
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": id}, callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.refresh(ctx, id, "RENEWAL", expireIn(30*24*time.Hour), callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	uo, ul, _ := s.order()
	if _, err := s.expect(ctx, "upgradeInstance", map[string]any{"instanceId": id, "orderId": uo, "orderLineId": ul}, callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.expect(ctx, "changeInstanceCheck", map[string]any{"instanceId": id, "productInfo": productInfo()}, callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "after release"}, cOK); err != nil {
		return err
	}
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": uuidText()}, callOpts{note: "re-sent after release"}, cOK)
	if err != nil {
		return err
	}
	if r.InstanceID != id {
		return violation("newInstance re-sent after release answered instanceId %q, want %q", r.InstanceID, id)
	}
	return nil
}

func checkAfterRelease(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{}, cOK); err != nil {
		return "", err
	}
	if err := s.afterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return "query, refresh, status, upgrade, changeInstanceCheck → 000003; release → 000000; newInstance → 000000 same id", nil
}

func checkUnknownInstance(ctx context.Context, s *session) (string, error) {
	id := s.unknownID()
	orderID, lineID, _ := s.order()
	calls := []struct {
		act    string
		fields map[string]any
	}{
		{"refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"updateInstanceStatus", map[string]any{"instanceId": id, "status": "FREEZE"}},
		{"releaseInstance", map[string]any{"instanceId": id}},
		{"upgradeInstance", map[string]any{"instanceId": id, "orderId": orderID, "orderLineId": lineID}},
		{"changeInstanceCheck", map[string]any{"instanceId": id, "productInfo": productInfo()}},
	}
	for _, c := range calls {
		if _, err := s.expect(ctx, c.act, c.fields, callOpts{note: "unknown instanceId"}, cNotFound); err != nil {
			return "", err
		}
	}
	return "refresh, status, release, upgrade, changeInstanceCheck of an unknown id → 000003", nil
}

func checkOrderNotify(ctx context.Context, s *session) (string, error) {
	orderID, lineID, _ := s.order()
	if _, err := s.expect(ctx, "orderNotify", map[string]any{"orderId": orderID, "orderLineId": lineID}, callOpts{}, cOK); err != nil {
		return "", err
	}
	return "orderNotify → 000000", nil
}

// ---- debug calls ----

func checkDebugNew(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	f := map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}
	r, err := s.expect(ctx, "newInstance", f, callOpts{test: true}, cOK)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("debug newInstance answered instanceId %q, want the businessId %q", r.InstanceID, business)
	}
	num := map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": uuidText(), "testFlag": 1}
	if r, err = s.expect(ctx, "newInstance", num, callOpts{note: "testFlag 1 (number)"}, cOK); err != nil {
		return "", err
	}
	if r.InstanceID != num["businessId"] {
		return "", violation("debug newInstance (testFlag number 1) answered instanceId %q, want %q", r.InstanceID, num["businessId"])
	}
	if err := s.absent(ctx, business, "the debug call created nothing"); err != nil {
		return "", err
	}
	f["businessId"] = uuidText()
	if r, err = s.expect(ctx, "newInstance", f, callOpts{note: "real call, same order"}, cOK, cProcessing); err != nil {
		return "", err
	}
	if r.InstanceID != f["businessId"] {
		return "", violation("a real newInstance after debug ones answered instanceId %q, want %q: the debug call bound the order", r.InstanceID, f["businessId"])
	}
	return "debug newInstance (testFlag \"1\" and 1) → 000000 instanceId=businessId; nothing created, order not bound", nil
}

// debugIDs are debug instance ids KooGallery uses (codes-and-rules.md §7).
func debugIDs() []string {
	return []string{"10e758d0-31ad-4c4b-8f1b-81d03469a10e", "huaweitest123456"}
}

func checkDebugQuery(ctx context.Context, s *session) (string, error) {
	ids := debugIDs()
	r, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": strings.Join(ids, ",")}, callOpts{test: true}, cOK)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		if err := checkAppInfo(r, id, s.d.t.family.Name()); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("debug queryInstance of %s → 000000 with mock appInfo, %d field(s) decrypted", strings.Join(ids, ","), len(r.Decrypted)), nil
}

// debugCases are the saved debug cases of every SaaS V2 activity, as the
// seller console saves them for the dial tests, on instance id.
func (s *session) debugCases(id string) []struct {
	act    string
	fields map[string]any
} {
	orderID, lineID, business := s.order()
	return []struct {
		act    string
		fields map[string]any
	}{
		{"newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}},
		{"queryInstance", map[string]any{"instanceId": id}},
		{"refreshInstance", map[string]any{"scene": "RENEWAL", "orderId": orderID, "orderLineId": lineID, "instanceId": id, "expireTime": expireIn(30 * 24 * time.Hour)}},
		{"updateInstanceStatus", map[string]any{"instanceId": id, "status": "FREEZE"}},
		{"upgradeInstance", map[string]any{"instanceId": id, "orderId": orderID, "orderLineId": lineID}},
		{"changeInstanceCheck", map[string]any{"instanceId": id, "productInfo": productInfo()}},
		{"orderNotify", map[string]any{"orderId": orderID, "orderLineId": lineID}},
		{"releaseInstance", map[string]any{"instanceId": id}},
	}
}

func checkDebugNoChange(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	n := 0
	for _, target := range []string{id, s.unknownID()} {
		for _, c := range s.debugCases(target) {
			if _, err := s.expect(ctx, c.act, c.fields, callOpts{test: true}, cOK); err != nil {
				return "", err
			}
			n++
		}
	}
	if err := s.stillThere(ctx, id, "debug calls changed nothing"); err != nil {
		return "", err
	}
	// Still active, not frozen: a real FREEZE is a change that succeeds.
	return fmt.Sprintf("%d debug calls (every activity, on a real and an unknown id) → 000000; the real instance is untouched", n), nil
}

func checkDialTest(ctx context.Context, s *session) (string, error) {
	return dialTest(ctx, s, 0)
}

// dialTest replays the saved debug cases twice, gap apart (compressed),
// each re-signed with a fresh timestamp and nonce (auth.md §2.4).
func dialTest(ctx context.Context, s *session, gap time.Duration) (string, error) {
	ids := debugIDs()
	cases := s.debugCases(ids[0])
	n := 0
	for round := 1; round <= 2; round++ {
		if round == 2 && gap > 0 {
			if err := s.sleep(ctx, gap); err != nil {
				return "", err
			}
		}
		for _, c := range cases {
			if _, err := s.expect(ctx, c.act, c.fields, callOpts{test: true, note: fmt.Sprintf("dial test round %d", round)}, cOK); err != nil {
				return "", err
			}
			n++
		}
	}
	return fmt.Sprintf("%d saved debug cases × 2 rounds → 000000 each, within %s", len(cases), answerTimeout), nil
}
