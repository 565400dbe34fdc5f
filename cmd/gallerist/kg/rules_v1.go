package kg

import (
	"context"
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
	at := o.at
	if at.IsZero() {
		at = time.Now()
	}
	m, err := f.Build(activity, params, o.test, at)
	if err != nil {
		return reply{}, fmt.Errorf("kg: build %s: %w", activity, err)
	}
	p, err := f.Sign(s.d.t.url, m, at)
	if err != nil {
		return reply{}, fmt.Errorf("kg: sign %s: %w", activity, err)
	}
	if o.mutate != nil {
		u, err := url.Parse(p.URL)
		if err != nil {
			return reply{}, fmt.Errorf("kg: %w", err)
		}
		q := u.Query()
		o.mutate(q, nil)
		u.RawQuery = q.Encode()
		p.URL = u.String()
	}
	r, err := s.send(ctx, p)
	return s.finish(activity, o, r, err)
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
