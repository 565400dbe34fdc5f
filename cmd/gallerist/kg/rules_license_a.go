package kg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// License A (license.md §2): getLicense, refreshLicense, expireLicense,
// releaseLicense, sent V1-style (GET, authToken; auth.md §3).

// licenseARules is the License A rule catalogue, in the order they run.
func licenseARules() []Rule {
	return []Rule{
		{"LA-ENVELOPE", "license.md §1, §2, auth.md §4, codes-and-rules.md §1", "answers (000000, 000001, 000002, 000003) are HTTP 200 JSON with a resultMsg and a valid Body-Sign; PUT is 405 with a Body-Sign", checkLAEnvelope},
		{"LA-AUTH-TAMPERED", "auth.md §3", "a changed authToken, a parameter changed after signing, another key, a wrong POST authToken header → 000001; the order stays unbound", checkLATampered},
		{"LA-GET-LICENSE", "license.md §2.1", "getLicense answers 000000 with instanceId = businessId, a resultMsg and a non-empty license (000005 then a retry is accepted)", checkLAGet},
		{"LA-GET-IDEMPOTENT", "license.md §2.1, codes-and-rules.md §3", "re-sent getLicense (other businessIds, GET and POST-body variant) → the same instanceId and the same license text", checkLAIdempotent},
		{"LA-LICENSE-VERIFIES", "license.md §2.1, README License A routes", "the license verifies with --license-public-key and names the instance and the order", checkLAVerifies},
		{"LA-REFRESH", "license.md §2.2", "refreshLicense is 000000 with 14- and 17-digit expireTime, a re-sent renewal too", checkLARefresh},
		{"LA-EXPIRE", "license.md §2.2, §2.3", "expireLicense is 000000, a repeat too; a renewal reactivates the frozen license", checkLAExpire},
		{"LA-RELEASE", "license.md §2.4", "releaseLicense is 000000, a repeat too", checkLARelease},
		{"LA-AFTER-RELEASE", "license.md §2.4, README Protocol choices", "after release: refresh and expire 000003, release 000000, a re-sent getLicense the same id and license", checkLAAfterRelease},
		{"LA-UNKNOWN-INSTANCE", "license.md §2.2–§2.4", "refreshLicense, expireLicense, releaseLicense of an instanceId never issued → 000003", checkLAUnknown},
		{"LA-DEBUG", "license.md §2.1, codes-and-rules.md §7", "debug calls (testFlag 1) answer 000000 (getLicense: instanceId = businessId, a placeholder license), never 000003, change nothing", checkLADebug},
		{"LA-FIELD-MISSING", "license.md §2.1–§2.4, codes-and-rules.md §2.4", "a missing mandatory parameter is 000002 naming it; nothing is issued", checkLAFieldMissing},
		{"LA-FIELD-OVERLONG", "license.md §2.1–§2.4 (Len)", "a parameter over its documented length is 000002 naming it; nothing is issued", checkLAFieldOverlong},
		{"LA-FIELD-FORMAT", "license.md §2, §2.2, auth.md §3", "an unknown or SaaS V1 activity, a malformed expireTime, a missing timeStamp → 000002", checkLAFieldFormat},
		{"LA-LIFECYCLE", "license.md §2.1–§2.4", "purchase → license → renew → renewal re-sent → expire → renew (reactivated) → release → after release", checkLALifecycle},
	}
}

// licenseAnswer reads the license member of a getLicense answer.
func (r reply) licenseText() string {
	var a struct {
		License string `json:"license"`
	}
	_ = json.Unmarshal(r.body, &a)
	return a.License
}

// laOrder returns the getLicense parameters of a fresh order.
func (s *session) laOrder() map[string]any {
	orderID, _, business := s.order()
	return map[string]any{"orderId": orderID, "businessId": business}
}

// getLicense sends getLicense and follows KooGallery's retries while the
// answer is 000005 "license generation in progress" (license.md §2.1). It
// requires 000000 with instanceId = want (the first businessId) and a
// non-empty license, and returns the license text.
func (s *session) getLicense(ctx context.Context, f map[string]any, want string, o callOpts) (string, error) {
	deadline := time.Now().Add(s.d.scaled(retryWindow))
	for attempt := 1; ; attempt++ {
		r, err := s.expect(ctx, "getLicense", f, o, cOK, koogallery.CodeInternal)
		if err != nil {
			return "", err
		}
		if r.code() == cOK {
			if r.InstanceID != want {
				return "", violation("getLicense (%s) answered instanceId %q, want %q (the businessId of the order's first request, license.md §2.1)", o.note, r.InstanceID, want)
			}
			text := r.licenseText()
			if text == "" {
				return "", violation("getLicense (%s) answered 000000 without a license (license.md §2.1: M)", o.note)
			}
			return text, nil
		}
		if time.Now().After(deadline) {
			return "", violation("getLicense still 000005 after %d attempts over the retry window", attempt)
		}
		if err := s.sleep(ctx, retryInterval); err != nil {
			return "", err
		}
		o.note = strings.TrimPrefix(o.note+", retry after 000005", ", ")
	}
}

// laIssued buys a fresh order and returns its instanceId, orderId and
// license.
func (s *session) laIssued(ctx context.Context, note string) (id, orderID, text string, err error) {
	f := s.laOrder()
	id, orderID = f["businessId"].(string), f["orderId"].(string)
	text, err = s.getLicense(ctx, f, id, callOpts{note: note})
	return id, orderID, text, err
}

func checkLAEnvelope(ctx context.Context, s *session) (string, error) {
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
		want   koogallery.Code
	}{
		{"getLicense", s.laOrder(), callOpts{test: true, note: "debug"}, cOK},
		{"refreshLicense", map[string]any{"instanceId": "x"}, callOpts{note: "tampered authToken", mutate: flipAuthToken}, cAuth},
		{"getLicenseX", nil, callOpts{note: "unknown activity"}, cParam},
		{"expireLicense", map[string]any{"instanceId": s.unknownID()}, callOpts{note: "unknown instanceId"}, cNotFound},
	}
	for _, c := range calls {
		if _, err := s.expect(ctx, c.act, c.fields, c.o, c.want); err != nil {
			return "", err
		}
	}
	r, err := s.rawRequest(ctx, http.MethodPut, s.d.t.url.String(), nil, "wrong method")
	if err != nil && r.Status == 0 {
		return "", err
	}
	if r.Status != http.StatusMethodNotAllowed || !r.BodySign.Valid {
		return "", violation("PUT answered HTTP %d (Body-Sign valid: %v), want 405 with a Body-Sign", r.Status, r.BodySign.Valid)
	}
	return "000000, 000001, 000002, 000003: HTTP 200 JSON, resultMsg, valid Body-Sign; PUT → 405 signed", nil
}

func checkLATampered(ctx context.Context, s *session) (string, error) {
	f := s.laOrder()
	other := uuidText()
	changed := func(q url.Values, body []byte) []byte {
		q.Set("businessId", other)
		return body
	}
	wrongKey := func(q url.Values, body []byte) []byte {
		p := url.Values{}
		for k, vs := range q {
			if k != "authToken" {
				p[k] = vs
			}
		}
		q.Set("authToken", koogallery.AuthToken(append([]byte("not-"), s.d.t.key...), q.Get("timeStamp"), p))
		return body
	}
	for _, c := range []callOpts{
		{note: "authToken changed", mutate: flipAuthToken},
		{note: "businessId changed after signing", mutate: changed},
		{note: "signed with another key", mutate: wrongKey},
		{note: "POST-body variant, authToken header changed", mutate: flipAuthToken, post: true},
	} {
		if _, err := s.expect(ctx, "getLicense", f, c, cAuth); err != nil {
			return "", err
		}
	}
	// The order is still free: a correct call binds it to its own businessId.
	f["businessId"] = uuidText()
	if _, err := s.getLicense(ctx, f, f["businessId"].(string), callOpts{note: "now correctly signed"}); err != nil {
		return "", err
	}
	return "changed authToken, changed parameter, other key, wrong POST header → 000001 each; the order stayed unbound", nil
}

func checkLAGet(ctx context.Context, s *session) (string, error) {
	id, _, text, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("getLicense 000000, instanceId=businessId %s, license of %d characters", id, len(text)), nil
}

func checkLAIdempotent(ctx context.Context, s *session) (string, error) {
	f := s.laOrder()
	id := f["businessId"].(string)
	text, err := s.getLicense(ctx, f, id, callOpts{note: "purchase"})
	if err != nil {
		return "", err
	}
	for i, o := range []callOpts{{note: "identical re-send"}, {note: "re-send, other businessId"}, {note: "re-send, POST-body variant", post: true}} {
		if i > 0 {
			f["businessId"] = uuidText()
		}
		again, err := s.getLicense(ctx, f, id, o)
		if err != nil {
			return "", err
		}
		if again != text {
			return "", violation("getLicense (%s) answered another license text than the first (license.md §2.1: the same License)", o.note)
		}
	}
	return "3 re-sends (identical, other businessId, POST-body variant) → the first instanceId and the same license text", nil
}

func checkLAVerifies(ctx context.Context, s *session) (string, error) {
	if s.d.licensePub == nil {
		return "", violation("no --license-public-key given") // filtered out before the run
	}
	id, orderID, text, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	l, err := licensetoken.Verify(s.d.licensePub, []byte(text), time.Now())
	if err != nil {
		return "", violation("the license of %s does not verify with --license-public-key: %v", id, err)
	}
	if l.InstanceID != id || l.OrderID != orderID {
		return "", violation("the license names instance %q and order %q, want %q and %q", l.InstanceID, l.OrderID, id, orderID)
	}
	return fmt.Sprintf("the license verifies (Ed25519), names instance %s and order %s, valid until %s", id, orderID, l.NotAfter.UTC().Format(time.RFC3339)), nil
}

func checkLARefresh(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	t := time.Now().UTC().AddDate(1, 0, 0)
	ro1, _, _ := s.order()
	ro2, _, _ := s.order()
	for _, c := range []struct{ order, expire, note string }{
		{ro1, t.Format("20060102150405"), "renewal, expireTime 14 digits"},
		{ro1, t.Format("20060102150405"), "renewal re-sent"},
		{ro2, t.AddDate(1, 0, 0).Format("20060102150405") + "000", "renewal, expireTime 17 digits"},
	} {
		if _, err := s.expect(ctx, "refreshLicense", map[string]any{"orderId": c.order, "instanceId": id, "expireTime": c.expire}, callOpts{note: c.note}, cOK); err != nil {
			return "", err
		}
	}
	return "renewals with 14- and 17-digit expireTime and a re-sent renewal → 000000", nil
}

func checkLAExpire(ctx context.Context, s *session) (string, error) {
	id, orderID, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	ro, _, _ := s.order()
	for _, c := range []struct {
		act, note string
		f         map[string]any
	}{
		{"expireLicense", "expired", map[string]any{"instanceId": id, "orderId": orderID}},
		{"expireLicense", "expired re-sent, no orderId", map[string]any{"instanceId": id}},
		{"refreshLicense", "renewal in the freeze period", map[string]any{"orderId": ro, "instanceId": id, "expireTime": expireIn(365 * 24 * time.Hour)}},
		{"expireLicense", "expired again", map[string]any{"instanceId": id}},
	} {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: c.note}, cOK); err != nil {
			return "", err
		}
	}
	return "expire, repeat (without orderId), renewal of the frozen license, expire again → 000000", nil
}

func checkLARelease(ctx context.Context, s *session) (string, error) {
	id, orderID, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	for _, note := range []string{"end of life", "re-sent"} {
		if _, err := s.expect(ctx, "releaseLicense", map[string]any{"orderId": orderID, "instanceId": id}, callOpts{note: note}, cOK); err != nil {
			return "", err
		}
	}
	return "release and its repeat → 000000", nil
}

// laAfterRelease checks the calls after a release.
func (s *session) laAfterRelease(ctx context.Context, id, orderID, text string) error {
	ro, _, _ := s.order()
	if _, err := s.expect(ctx, "refreshLicense", map[string]any{"orderId": ro, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}, callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.expect(ctx, "expireLicense", map[string]any{"instanceId": id}, callOpts{note: "after release"}, cNotFound); err != nil {
		return err
	}
	if _, err := s.expect(ctx, "releaseLicense", map[string]any{"orderId": orderID, "instanceId": id}, callOpts{note: "after release"}, cOK); err != nil {
		return err
	}
	again, err := s.getLicense(ctx, map[string]any{"orderId": orderID, "businessId": uuidText()}, id, callOpts{note: "re-sent after release"})
	if err != nil {
		return err
	}
	if again != text {
		return violation("getLicense re-sent after release answered another license text")
	}
	return nil
}

func checkLAAfterRelease(ctx context.Context, s *session) (string, error) {
	id, orderID, text, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseLicense", map[string]any{"orderId": orderID, "instanceId": id}, callOpts{note: "end of life"}, cOK); err != nil {
		return "", err
	}
	if err := s.laAfterRelease(ctx, id, orderID, text); err != nil {
		return "", err
	}
	return "after release: refresh, expire → 000003; release → 000000; getLicense → the same id and license", nil
}

func checkLAUnknown(ctx context.Context, s *session) (string, error) {
	id := s.unknownID()
	orderID, _, _ := s.order()
	for _, c := range []struct {
		act string
		f   map[string]any
	}{
		{"refreshLicense", map[string]any{"orderId": orderID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"expireLicense", map[string]any{"instanceId": id}},
		{"releaseLicense", map[string]any{"orderId": orderID, "instanceId": id}},
	} {
		if _, err := s.expect(ctx, c.act, c.f, callOpts{note: "unknown instanceId"}, cNotFound); err != nil {
			return "", err
		}
	}
	return "refreshLicense, expireLicense, releaseLicense of an unknown id → 000003", nil
}

func checkLADebug(ctx context.Context, s *session) (string, error) {
	id, orderID, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	f := s.laOrder()
	business := f["businessId"].(string)
	if _, err := s.getLicense(ctx, f, business, callOpts{test: true, note: "debug purchase"}); err != nil {
		return "", err
	}
	ro, _, _ := s.order()
	for _, target := range []string{s.unknownID(), id} {
		for _, c := range []struct {
			act string
			f   map[string]any
		}{
			{"refreshLicense", map[string]any{"orderId": ro, "instanceId": target, "expireTime": expireIn(24 * time.Hour)}},
			{"expireLicense", map[string]any{"instanceId": target}},
			{"releaseLicense", map[string]any{"orderId": orderID, "instanceId": target}},
		} {
			note := "debug, issued instance"
			if target != id {
				note = "debug, unknown instanceId"
			}
			if _, err := s.expect(ctx, c.act, c.f, callOpts{test: true, note: note}, cOK); err != nil {
				return "", err
			}
		}
	}
	// Nothing changed: the debug release left the license live, and the
	// debug purchase bound no order.
	if _, err := s.expect(ctx, "refreshLicense", map[string]any{"orderId": ro, "instanceId": id, "expireTime": expireIn(48 * time.Hour)}, callOpts{note: "the debug release changed nothing"}, cOK); err != nil {
		return "", err
	}
	f["businessId"] = uuidText()
	if _, err := s.getLicense(ctx, f, f["businessId"].(string), callOpts{note: "the debug purchase bound nothing"}); err != nil {
		return "", err
	}
	return "debug getLicense → instanceId=businessId and a placeholder; debug refresh, expire, release → 000000 on unknown and issued ids; nothing changed", nil
}

// laInvalid requires 000002 naming field from a License A call that drops
// the omitted parameters.
func (s *session) laInvalid(ctx context.Context, act string, f map[string]any, omit []string, note, field string) error {
	r, err := s.expect(ctx, act, f, callOpts{note: note, omit: omit}, cParam)
	if err != nil {
		return err
	}
	if !strings.Contains(r.ResultMsg, field) {
		return violation("%s (%s) answered 000002 %q, which does not name %s", act, note, r.ResultMsg, field)
	}
	return nil
}

func checkLAFieldMissing(ctx context.Context, s *session) (string, error) {
	id, orderID, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	f := s.laOrder()
	ro, _, _ := s.order()
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"getLicense", "customerId", f},
		{"getLicense", "businessId", f},
		{"getLicense", "orderId", f},
		{"refreshLicense", "instanceId", map[string]any{"orderId": ro, "expireTime": expireIn(24 * time.Hour)}},
		{"refreshLicense", "expireTime", map[string]any{"orderId": ro, "instanceId": id}},
		{"refreshLicense", "orderId", map[string]any{"instanceId": id}},
		{"expireLicense", "instanceId", map[string]any{}},
		{"releaseLicense", "orderId", map[string]any{"instanceId": id}},
		{"releaseLicense", "instanceId", map[string]any{"orderId": orderID}},
	}
	for _, c := range cases {
		if err := s.laInvalid(ctx, c.act, c.f, []string{c.field}, "no "+c.field, c.field); err != nil {
			return "", err
		}
	}
	f["businessId"] = uuidText()
	if _, err := s.getLicense(ctx, f, f["businessId"].(string), callOpts{note: "the refused calls bound nothing"}); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "expireLicense", map[string]any{"instanceId": id}, callOpts{note: "the refused release changed nothing"}, cOK); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d calls missing a mandatory parameter → 000002 naming it; nothing issued or released", len(cases)), nil
}

func checkLAFieldOverlong(ctx context.Context, s *session) (string, error) {
	id, orderID, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	base := s.laOrder()
	with := func(k, v string) map[string]any {
		m := map[string]any{}
		for n, x := range base {
			m[n] = x
		}
		m[k] = v
		return m
	}
	long := strings.Repeat("x", 65)
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"getLicense", "customerId", with("customerId", strings.Repeat("c", 101))},
		{"getLicense", "customerName", with("customerName", long)},
		{"getLicense", "businessId", with("businessId", base["businessId"].(string)+long)},
		{"getLicense", "orderId", with("orderId", "CS"+long)},
		{"getLicense", "skuCode", with("skuCode", long)},
		{"getLicense", "testFlag", with("testFlag", "123")},
		{"refreshLicense", "instanceId", map[string]any{"orderId": orderID, "instanceId": id + long, "expireTime": expireIn(24 * time.Hour)}},
		{"releaseLicense", "orderId", map[string]any{"orderId": "CS" + long, "instanceId": id}},
	}
	for _, c := range cases {
		if err := s.laInvalid(ctx, c.act, c.f, nil, c.field+" too long", c.field); err != nil {
			return "", err
		}
	}
	if _, err := s.getLicense(ctx, base, base["businessId"].(string), callOpts{note: "the refused calls bound nothing"}); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "expireLicense", map[string]any{"instanceId": id}, callOpts{note: "the refused release changed nothing"}, cOK); err != nil {
		return "", err
	}
	return "customerId (101), customerName, businessId, orderId, skuCode, instanceId (65), testFlag (3) over their Len → 000002 naming them; nothing issued or released", nil
}

func checkLAFieldFormat(ctx context.Context, s *session) (string, error) {
	id, _, _, err := s.laIssued(ctx, "purchase")
	if err != nil {
		return "", err
	}
	ro, _, _ := s.order()
	if err := s.laInvalid(ctx, "refreshLicense", map[string]any{"orderId": ro, "instanceId": id, "expireTime": "2030-01-01"}, nil, "expireTime 2030-01-01", "expireTime"); err != nil {
		return "", err
	}
	if err := s.laInvalid(ctx, "getLicense", map[string]any{"orderId": ro, "businessId": uuidText(), "expireTime": "tomorrow"}, nil, "expireTime tomorrow", "expireTime"); err != nil {
		return "", err
	}
	for _, act := range []string{"getLicenseX", "newInstance", "refreshLicenseCode"} {
		if _, err := s.expect(ctx, act, map[string]any{"instanceId": id}, callOpts{note: "not a License A activity"}, cParam); err != nil {
			return "", err
		}
	}
	if err := s.laInvalid(ctx, "expireLicense", map[string]any{"instanceId": id}, []string{"timeStamp"}, "no timeStamp", "timeStamp"); err != nil {
		return "", err
	}
	return "malformed expireTime (refresh, getLicense), unknown, SaaS V1 and License B activities, no timeStamp → 000002", nil
}

func checkLALifecycle(ctx context.Context, s *session) (string, error) {
	id, orderID, text, err := s.laIssued(ctx, "yearly purchase")
	if err != nil {
		return "", err
	}
	year := 365 * 24 * time.Hour
	ro1, _, _ := s.order()
	ro2, _, _ := s.order()
	steps := []struct {
		act, note string
		f         map[string]any
	}{
		{"refreshLicense", "renewal", map[string]any{"orderId": ro1, "instanceId": id, "expireTime": expireIn(2 * year), "periodType": "year", "periodNumber": "1"}},
		{"refreshLicense", "renewal re-sent", map[string]any{"orderId": ro1, "instanceId": id, "expireTime": expireIn(2 * year), "periodType": "year", "periodNumber": "1"}},
		{"expireLicense", "expired", map[string]any{"orderId": orderID, "instanceId": id}},
		{"refreshLicense", "renewal in the freeze period", map[string]any{"orderId": ro2, "instanceId": id, "expireTime": expireIn(3 * year)}},
		{"releaseLicense", "end of life", map[string]any{"orderId": orderID, "instanceId": id}},
	}
	for _, st := range steps {
		if _, err := s.expect(ctx, st.act, st.f, callOpts{note: st.note}, cOK); err != nil {
			return "", err
		}
	}
	if err := s.laAfterRelease(ctx, id, orderID, text); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: licensed, %d lifecycle calls → 000000, calls after release as documented", id, len(steps)), nil
}
