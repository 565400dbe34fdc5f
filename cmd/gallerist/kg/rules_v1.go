package kg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// callV1 builds, signs (authToken, auth.md §3) and sends one SaaS V1 call
// (GET) and checks its answer like call does. fields become parameters;
// mutate sees the signed query (authToken included) and no body.
func (s *session) callV1(ctx context.Context, f *v1Family, activity string, fields map[string]any, o callOpts) (reply, error) {
	params := make(map[string]string, len(fields))
	for k, v := range fields {
		params[k] = fmt.Sprint(v)
	}
	for _, k := range o.omit {
		params[k] = "omitted" // satisfies the defaults; dropped below
	}
	at := o.at
	if at.IsZero() {
		at = time.Now()
	}
	m, err := f.Build(activity, params, o.test, at)
	if err != nil && !f.knows(activity) {
		// An activity the family does not have: sent as given.
		m, err = Message{Params: url.Values{"activity": {activity}}}, nil
		for k, v := range params {
			m.Params.Set(k, v)
		}
		if o.test {
			m.Params.Set("testFlag", "1")
		}
	}
	if err != nil {
		return reply{}, fmt.Errorf("kg: build %s: %w", activity, err)
	}
	dropTS := false
	for _, k := range o.omit {
		m.Params.Del(k)
		dropTS = dropTS || k == "timeStamp"
	}
	if o.post {
		g := *f
		g.method = http.MethodPost
		f = &g
	}
	p, err := f.Sign(s.d.t.url, m, at)
	if err != nil {
		return reply{}, fmt.Errorf("kg: sign %s: %w", activity, err)
	}
	if o.mutate != nil && p.Method == http.MethodPost {
		// The POST-body variant: mutate sees the body's members and the
		// authToken header as one query.
		q := url.Values{}
		for k, vs := range m.Params {
			q[k] = vs
		}
		if q.Get("timeStamp") == "" {
			var b map[string]string
			_ = json.Unmarshal(p.Body, &b)
			q.Set("timeStamp", b["timeStamp"])
		}
		q.Set("authToken", strings.Trim(p.Header.Get("Authtoken"), `"`))
		o.mutate(q, nil)
		body := map[string]string{}
		for k := range q {
			if k != "authToken" {
				body[k] = q.Get(k)
			}
		}
		if p.Body, err = json.Marshal(body); err != nil {
			return reply{}, fmt.Errorf("kg: encode body: %w", err)
		}
		p.Header.Set("Authtoken", `"`+q.Get("authToken")+`"`)
	} else if o.mutate != nil {
		u, err := url.Parse(p.URL)
		if err != nil {
			return reply{}, fmt.Errorf("kg: %w", err)
		}
		q := u.Query()
		o.mutate(q, nil)
		u.RawQuery = q.Encode()
		p.URL = u.String()
	}
	if dropTS {
		// Signed with a timeStamp, sent without one.
		u, err := url.Parse(p.URL)
		if err != nil {
			return reply{}, fmt.Errorf("kg: %w", err)
		}
		q := u.Query()
		q.Del("timeStamp")
		u.RawQuery = q.Encode()
		p.URL = u.String()
		if p.Method == http.MethodPost {
			var b map[string]string
			_ = json.Unmarshal(p.Body, &b)
			delete(b, "timeStamp")
			if p.Body, err = json.Marshal(b); err != nil {
				return reply{}, fmt.Errorf("kg: encode body: %w", err)
			}
		}
	}
	r, err := s.send(ctx, p)
	return s.finish(activity, o, r, err)
}

// knows reports whether activity is one of the family's templates.
func (f *v1Family) knows(activity string) bool {
	all := v1Defaults("", "", time.Now())
	if f.name == FamilyLicenseA {
		all = licenseADefaults("", "", time.Now())
	}
	_, ok := all[activity]
	return ok
}

// v1Rules is the SaaS V1 rule catalogue (GET variant).
func v1Rules() []Rule {
	return []Rule{
		{"V1-BODY-SIGN", "auth.md §4, codes-and-rules.md §1", "answers (000000, 000001, 000002, 000003) are HTTP 200 JSON with a valid Body-Sign", checkV1Envelope},
		{"V1-AUTH-TAMPERED", "auth.md §3", "a changed authToken or a parameter changed after signing is 000001 and creates nothing", checkV1Tampered},
		{"V1-NEW-READY", "saas-v1.md §3, §9", "newInstance answers 000000 (or 000004 and queryInstance reaches the app info) with instanceId = businessId", checkV1NewReady},
		{"V1-NEW-IDEMPOTENT", "saas-v1.md §3, codes-and-rules.md §3", "a re-sent newInstance (same orderId, other businessId) gets the first instanceId", checkV1Idempotent},
		{"V1-DEBUG", "codes-and-rules.md §7, saas-v1.md §3", "debug calls (testFlag 1) answer 000000 (newInstance: instanceId = businessId) and change nothing", checkV1Debug},
		{"V1-UNKNOWN-INSTANCE", "saas-v1.md §4–§9", "every activity on an instanceId never issued is 000003", checkV1Unknown},
		{"V1-POST-BODY", "auth.md §3.3, saas-v1.md §1", "the POST-body variant (JSON body, authToken header) is served like GET: newInstance, its GET re-send, queryInstance; a wrong header → 000001", checkV1PostBody},
		{"V1-PAY-PER-USE", "saas-v1.md §3 (idempotency)", "pay-per-use (chargingMode 0): one order with two productIds → two instances, each re-send → its own first instanceId", checkV1PayPerUse},
		{"V1-FIELD-MISSING", "saas-v1.md §3–§9, codes-and-rules.md §2.3", "a missing mandatory parameter (timeStamp included) is 000002 naming it; nothing is created", checkV1FieldMissing},
		{"V1-FIELD-OVERLONG", "saas-v1.md §3–§9 (Len)", "a parameter over its documented length is 000002 naming it; nothing is created or changed", checkV1FieldOverlong},
		{"V1-LIFECYCLE", "saas-v1.md §2–§9", "purchase → provision → renew → expire → renew → status FREEZE/NORMAL → upgrade → release → after release", checkV1Lifecycle},
	}
}

func flipAuthToken(q url.Values, body []byte) []byte {
	t := []byte(q.Get("authToken"))
	if len(t) > 0 {
		if t[0] == 'A' {
			t[0] = 'B'
		} else {
			t[0] = 'A'
		}
	}
	q.Set("authToken", string(t))
	return body
}

// v1Create sends a V1 newInstance for a fresh order.
func (s *session) v1Create(ctx context.Context) (id, orderID string, err error) {
	orderID, _, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": business}, callOpts{}, cOK, cProcessing)
	if err != nil {
		return "", orderID, err
	}
	if r.InstanceID != business {
		return r.InstanceID, orderID, violation("newInstance answered instanceId %q, want the businessId %q (saas-v1.md §3)", r.InstanceID, business)
	}
	return business, orderID, nil
}

func checkV1Envelope(ctx context.Context, s *session) (string, error) {
	calls := []struct {
		act    string
		fields map[string]any
		o      callOpts
		want   string
	}{
		{"queryInstance", map[string]any{"instanceId": "huaweitest123456"}, callOpts{test: true}, "000000"},
		{"queryInstance", map[string]any{"instanceId": "x"}, callOpts{note: "tampered authToken", mutate: flipAuthToken}, "000001"},
		{"instanceStatus", map[string]any{"instanceId": "x", "instanceStatus": "PAUSE"}, callOpts{}, "000002"},
		{"queryInstance", map[string]any{"instanceId": s.unknownID()}, callOpts{}, "000003"},
	}
	for _, c := range calls {
		r, err := s.call(ctx, c.act, c.fields, c.o)
		if err != nil {
			return "", err
		}
		if r.ResultCode != c.want {
			return "", violation("%s answered %s %q, want %s", c.act, r.ResultCode, r.ResultMsg, c.want)
		}
	}
	r, err := s.rawRequest(ctx, http.MethodPut, s.d.t.url.String(), nil, "wrong method")
	if err != nil && r.Status == 0 {
		return "", err
	}
	if r.Status != http.StatusMethodNotAllowed || !r.BodySign.Valid {
		return "", violation("PUT answered HTTP %d (Body-Sign valid: %v), want 405 with a Body-Sign", r.Status, r.BodySign.Valid)
	}
	return "000000, 000001, 000002, 000003 and 405 answers: HTTP 200 JSON (405 aside) with a valid Body-Sign", nil
}

func checkV1Tampered(ctx context.Context, s *session) (string, error) {
	orderID, _, business := s.order()
	f := map[string]any{"orderId": orderID, "businessId": business}
	if _, err := s.expect(ctx, "newInstance", f, callOpts{note: "authToken changed", mutate: flipAuthToken}, cAuth); err != nil {
		return "", err
	}
	other := uuidText()
	changed := func(q url.Values, body []byte) []byte {
		q.Set("businessId", other)
		return body
	}
	if _, err := s.expect(ctx, "newInstance", f, callOpts{note: "businessId changed after signing", mutate: changed}, cAuth); err != nil {
		return "", err
	}
	for _, id := range []string{business, other} {
		if err := s.absent(ctx, id, "tampered calls created nothing"); err != nil {
			return "", err
		}
	}
	return "changed authToken and a parameter changed after signing → 000001; nothing created", nil
}

func checkV1NewReady(ctx context.Context, s *session) (string, error) {
	id, _, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	_, polls, err := s.provisioned(ctx, id)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("newInstance instanceId=businessId; queryInstance 000000 after %d poll(s) with appInfo decrypted", polls), nil
}

func checkV1Idempotent(ctx context.Context, s *session) (string, error) {
	id, orderID, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	for i := range 2 {
		r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": uuidText()}, callOpts{note: fmt.Sprintf("re-send %d", i+1)}, cOK, cProcessing)
		if err != nil {
			return "", err
		}
		if r.InstanceID != id {
			return "", violation("re-sent newInstance answered instanceId %q, want the first %q (a second instance)", r.InstanceID, id)
		}
	}
	return "2 re-sends with other businessIds → the first instanceId", nil
}

func checkV1Debug(ctx context.Context, s *session) (string, error) {
	id, _, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	orderID, _, business := s.order()
	r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": business}, callOpts{test: true}, cOK)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("debug newInstance answered instanceId %q, want the businessId %q", r.InstanceID, business)
	}
	uo, _, _ := s.order()
	for _, c := range []struct {
		act    string
		fields map[string]any
	}{
		{"refreshInstance", map[string]any{"orderId": uo, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"expireInstance", map[string]any{"orderId": uo, "instanceId": id}},
		{"instanceStatus", map[string]any{"instanceId": id, "instanceStatus": "FREEZE"}},
		{"upgrade", map[string]any{"orderId": uo, "instanceId": id}},
		{"releaseInstance", map[string]any{"orderId": uo, "instanceId": id}},
		{"queryInstance", map[string]any{"instanceId": s.unknownID()}},
	} {
		if _, err := s.expect(ctx, c.act, c.fields, callOpts{test: true}, cOK); err != nil {
			return "", err
		}
	}
	if err := s.absent(ctx, business, "the debug newInstance created nothing"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the debug release changed nothing"); err != nil {
		return "", err
	}
	return "debug newInstance → instanceId=businessId; debug refresh, expire, status, upgrade, release, query → 000000; nothing changed", nil
}

func checkV1Unknown(ctx context.Context, s *session) (string, error) {
	id := s.unknownID()
	orderID, _, _ := s.order()
	var acts []string
	for _, c := range []struct {
		act    string
		fields map[string]any
	}{
		{"refreshInstance", map[string]any{"orderId": orderID, "instanceId": id, "expireTime": expireIn(24 * time.Hour)}},
		{"expireInstance", map[string]any{"orderId": orderID, "instanceId": id}},
		{"releaseInstance", map[string]any{"orderId": orderID, "instanceId": id}},
		{"upgrade", map[string]any{"orderId": orderID, "instanceId": id}},
		{"instanceStatus", map[string]any{"instanceId": id, "instanceStatus": "FREEZE"}},
		{"queryInstance", map[string]any{"instanceId": id}},
	} {
		if _, err := s.expect(ctx, c.act, c.fields, callOpts{note: "unknown instanceId"}, cNotFound); err != nil {
			return "", err
		}
		acts = append(acts, c.act)
	}
	return strings.Join(acts, ", ") + " of an unknown id → 000003", nil
}

func checkV1Lifecycle(ctx context.Context, s *session) (string, error) {
	id, orderID, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	year := 365 * 24 * time.Hour
	ro1, _, _ := s.order()
	ro2, _, _ := s.order()
	uo, _, _ := s.order()
	steps := []struct {
		act, note string
		fields    map[string]any
	}{
		{"refreshInstance", "renewal", map[string]any{"orderId": ro1, "instanceId": id, "expireTime": expireIn(year)}},
		{"refreshInstance", "renewal re-sent", map[string]any{"orderId": ro1, "instanceId": id, "expireTime": expireIn(year)}},
		{"expireInstance", "expired", map[string]any{"orderId": ro1, "instanceId": id}},
		{"expireInstance", "expired re-sent", map[string]any{"orderId": ro1, "instanceId": id}},
		{"refreshInstance", "renewal in the freeze period", map[string]any{"orderId": ro2, "instanceId": id, "expireTime": expireIn(2 * year)}},
		{"instanceStatus", "FREEZE", map[string]any{"instanceId": id, "instanceStatus": "FREEZE"}},
		{"instanceStatus", "NORMAL", map[string]any{"instanceId": id, "instanceStatus": "NORMAL"}},
		{"upgrade", "upgrade order", map[string]any{"orderId": uo, "instanceId": id}},
		{"releaseInstance", "end of life", map[string]any{"orderId": orderID, "instanceId": id}},
		{"releaseInstance", "re-sent", map[string]any{"orderId": orderID, "instanceId": id}},
	}
	for _, st := range steps {
		if _, err := s.expect(ctx, st.act, st.fields, callOpts{note: st.note}, cOK); err != nil {
			return "", err
		}
	}
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": id}, callOpts{note: "after release"}, cNotFound); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: %d lifecycle calls → 000000, then queryInstance → 000003", id, len(steps)), nil
}

func checkV1PostBody(ctx context.Context, s *session) (string, error) {
	orderID, _, business := s.order()
	f := map[string]any{"orderId": orderID, "businessId": business}
	if _, err := s.expect(ctx, "newInstance", f, callOpts{post: true, note: "POST-body variant, authToken header changed", mutate: flipAuthToken}, cAuth); err != nil {
		return "", err
	}
	r, err := s.expect(ctx, "newInstance", f, callOpts{post: true, note: "POST-body variant"}, cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("POST-body newInstance answered instanceId %q, want the businessId %q", r.InstanceID, business)
	}
	r, err = s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": uuidText()}, callOpts{note: "re-sent as GET"}, cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if r.InstanceID != business {
		return "", violation("the GET re-send of a POST-body newInstance answered instanceId %q, want %q", r.InstanceID, business)
	}
	if _, _, err := s.provisioned(ctx, business); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": business}, callOpts{post: true, note: "POST-body variant"}, cOK); err != nil {
		return "", err
	}
	return "POST-body newInstance (wrong header → 000001, then instanceId=businessId), GET re-send → same id, POST-body queryInstance → 000000", nil
}

func checkV1PayPerUse(ctx context.Context, s *session) (string, error) {
	orderID, _, _ := s.order()
	ids := map[string]string{}
	for _, product := range []string{"00301-000001-0--0", "00301-000002-0--0"} {
		business := uuidText()
		r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": business, "productId": product, "chargingMode": "0"}, callOpts{note: "pay-per-use item " + product, omit: []string{"periodType", "periodNumber", "expireTime"}}, cOK, cProcessing)
		if err != nil {
			return "", err
		}
		if r.InstanceID != business {
			return "", violation("pay-per-use newInstance of product %s answered instanceId %q, want its own businessId %q (one instance per orderId + productId)", product, r.InstanceID, business)
		}
		ids[product] = business
	}
	for product, id := range ids {
		r, err := s.expect(ctx, "newInstance", map[string]any{"orderId": orderID, "businessId": uuidText(), "productId": product, "chargingMode": "0"}, callOpts{note: "re-send of item " + product, omit: []string{"periodType", "periodNumber", "expireTime"}}, cOK, cProcessing)
		if err != nil {
			return "", err
		}
		if r.InstanceID != id {
			return "", violation("re-sent pay-per-use newInstance of product %s answered instanceId %q, want %q", product, r.InstanceID, id)
		}
	}
	for _, id := range ids {
		if _, _, err := s.provisioned(ctx, id); err != nil {
			return "", err
		}
	}
	return "one pay-per-use order, two productIds → two instances; re-sends → their own first instanceId", nil
}

// v1Invalid requires 000002 naming field.
func (s *session) v1Invalid(ctx context.Context, act string, f map[string]any, omit []string, note, field string) error {
	r, err := s.expect(ctx, act, f, callOpts{note: note, omit: omit}, cParam)
	if err != nil {
		return err
	}
	if !strings.Contains(r.ResultMsg, field) {
		return violation("%s (%s) answered 000002 %q, which does not name %s", act, note, r.ResultMsg, field)
	}
	return nil
}

func checkV1FieldMissing(ctx context.Context, s *session) (string, error) {
	id, _, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	orderID, _, business := s.order()
	nf := map[string]any{"orderId": orderID, "businessId": business}
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"newInstance", "customerId", nf},
		{"newInstance", "businessId", nf},
		{"newInstance", "orderId", nf},
		{"newInstance", "productId", nf},
		{"newInstance", "timeStamp", nf},
		{"refreshInstance", "expireTime", map[string]any{"orderId": orderID, "instanceId": id}},
		{"refreshInstance", "instanceId", map[string]any{"orderId": orderID}},
		{"instanceStatus", "instanceStatus", map[string]any{"instanceId": id}},
		{"upgrade", "productId", map[string]any{"orderId": orderID, "instanceId": id}},
		{"releaseInstance", "instanceId", map[string]any{"orderId": orderID}},
		{"queryInstance", "instanceId", map[string]any{}},
	}
	for _, c := range cases {
		if err := s.v1Invalid(ctx, c.act, c.f, []string{c.field}, "no "+c.field, c.field); err != nil {
			return "", err
		}
	}
	if err := s.absent(ctx, business, "nothing created"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d calls missing a mandatory parameter → 000002 naming it; nothing created", len(cases)), nil
}

func checkV1FieldOverlong(ctx context.Context, s *session) (string, error) {
	id, _, err := s.v1Create(ctx)
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	orderID, _, business := s.order()
	nf := func(k, v string) map[string]any {
		return map[string]any{"orderId": orderID, "businessId": business, k: v}
	}
	long := strings.Repeat("x", 65)
	cases := []struct {
		act, field string
		f          map[string]any
	}{
		{"newInstance", "customerId", nf("customerId", strings.Repeat("c", 101))},
		{"newInstance", "customerName", nf("customerName", long)},
		{"newInstance", "businessId", nf("businessId", business+long)},
		{"newInstance", "orderId", nf("orderId", "CS"+long)},
		{"newInstance", "productId", nf("productId", long)},
		{"newInstance", "skuCode", nf("skuCode", long)},
		{"newInstance", "testFlag", nf("testFlag", "123")},
		{"refreshInstance", "instanceId", map[string]any{"orderId": orderID, "instanceId": id + long, "expireTime": expireIn(24 * time.Hour)}},
		{"instanceStatus", "instanceStatus", map[string]any{"instanceId": id, "instanceStatus": strings.Repeat("F", 33)}},
		{"releaseInstance", "orderId", map[string]any{"instanceId": id, "orderId": "CS" + long}},
	}
	for _, c := range cases {
		if err := s.v1Invalid(ctx, c.act, c.f, nil, c.field+" too long", c.field); err != nil {
			return "", err
		}
	}
	if err := s.absent(ctx, business, "nothing created"); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the overlong release changed nothing"); err != nil {
		return "", err
	}
	return "customerId (101), customerName, businessId, orderId, productId, skuCode, instanceId (65), instanceStatus (33), testFlag (3) → 000002 naming them; nothing created or released", nil
}
