package server_test

// SaaS V1 through real HTTP (saas-v1.md, auth.md §3): the harness's env
// (embedded NATS, event store, instances service, provisioning worker) and
// V1 requests signed with the V1 authToken.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/server"
)

// v1req is one V1 call before it is sent.
type v1req struct {
	path     string
	key      []byte
	post     bool
	rawQuery *string           // sent as is instead of the signed query
	mutate   func(url.Values)  // after signing (GET)
	header   map[string]string // extra headers
	bodyRaw  []byte            // POST: sent as is
}

type v1mut func(*v1req)

func v1Path(p string) v1mut            { return func(r *v1req) { r.path = p } }
func v1Key(k string) v1mut             { return func(r *v1req) { r.key = []byte(k) } }
func v1Post() v1mut                    { return func(r *v1req) { r.post = true } }
func v1Raw(q string) v1mut             { return func(r *v1req) { r.rawQuery = &q } }
func v1After(f func(url.Values)) v1mut { return func(r *v1req) { r.mutate = f } }

// v1do signs params (timeStamp added unless present) and sends them.
func (h *harness) v1do(t testing.TB, params map[string]string, muts ...v1mut) *response {
	t.Helper()
	rq := &v1req{path: pathV1, key: []byte(keyMain)}
	for _, m := range muts {
		m(rq)
	}
	p := make(map[string]string, len(params)+1)
	for k, v := range params {
		p[k] = v
	}
	if _, ok := p["timeStamp"]; !ok {
		p["timeStamp"] = koogallery.FormatV1TimeStamp(time.Now())
	}
	var req *http.Request
	var sent []byte
	var err error
	if rq.post {
		sent = rq.bodyRaw
		if sent == nil {
			if sent, err = json.Marshal(p); err != nil {
				t.Fatal(err)
			}
		}
		req, err = http.NewRequest(http.MethodPost, h.URL+rq.path, bytes.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("authToken", `"`+koogallery.AuthTokenBody(rq.key, p)+`"`)
	} else {
		q := url.Values{}
		for k, v := range p {
			q.Set(k, v)
		}
		q.Set("authToken", koogallery.AuthToken(rq.key, p["timeStamp"], q))
		if rq.mutate != nil {
			rq.mutate(q)
		}
		u := h.URL + rq.path + "?" + q.Encode()
		if rq.rawQuery != nil {
			u = h.URL + rq.path + "?" + *rq.rawQuery
		}
		if req, err = http.NewRequest(http.MethodGet, u, nil); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{path: rq.path, status: resp.StatusCode, hdr: resp.Header, raw: raw, sent: sent}
	for _, k := range h.keys[rq.path] {
		if bytes.Equal(k, rq.key) {
			r.answerKey = k
		}
	}
	if r.answerKey == nil && len(h.keys[rq.path]) > 0 {
		r.answerKey = h.keys[rq.path][0]
	}
	if err := h.check(r); err != nil {
		t.Errorf("answer %d %s:\n%v", r.status, r.raw, err)
	}
	return r
}

// v1expect calls and requires HTTP 200 with resultCode code.
func (h *harness) v1expect(t testing.TB, code string, params map[string]string, muts ...v1mut) map[string]any {
	t.Helper()
	r := h.v1do(t, params, muts...)
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d, want 200: %s", r.status, r.raw)
	}
	if got := codeOf(r.m); got != code {
		t.Fatalf("resultCode = %s, want %s; body %s", got, code, r.raw)
	}
	return r.m
}

// v1invalid requires 000002 with a resultMsg naming field.
func (h *harness) v1invalid(t testing.TB, field string, params map[string]string, muts ...v1mut) {
	t.Helper()
	m := h.v1expect(t, "000002", params, muts...)
	if !strings.Contains(msgOf(m), field) {
		t.Errorf("resultMsg %q does not name %q", msgOf(m), field)
	}
}

type sp = map[string]string

func v1New(orderID, businessID, productID string) sp {
	return sp{"activity": "newInstance", "customerId": "68cbc86abc2018ab880d92f36422fa0e", "customerName": "buyer",
		"businessId": businessID, "orderId": orderID, "productId": productID}
}

func v1With(p sp, kv ...string) sp {
	out := make(sp, len(p)+len(kv)/2)
	for k, v := range p {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func v1Without(p sp, k string) sp {
	out := v1With(p)
	delete(out, k)
	return out
}

// v1Create opens a V1 instance and waits until it is provisioned.
func (h *harness) v1Create(t testing.TB, p sp, muts ...v1mut) map[string]any {
	t.Helper()
	var m map[string]any
	eventually(t, "V1 newInstance "+p["businessId"], func() (bool, string) {
		r := h.v1do(t, p, muts...)
		m = r.m
		if c := codeOf(m); c != "000000" && c != "000004" {
			t.Fatalf("newInstance: %s", r.raw)
		}
		return codeOf(m) == "000000", codeOf(m)
	})
	return m
}

// decryptApp decrypts the appInfo of an answer with the route's cipher.
func decryptApp(t testing.TB, key string, enc koogallery.EncryptType, app any) (user, pass string) {
	t.Helper()
	a, ok := app.(map[string]any)
	if !ok {
		t.Fatalf("appInfo = %#v, want an object", app)
	}
	c, err := koogallery.NewCipher([]byte(key), enc)
	if err != nil {
		t.Fatal(err)
	}
	if user, err = c.Decrypt(strOf(a, "userName")); err != nil {
		t.Fatalf("userName does not decrypt: %v", err)
	}
	if pass, err = c.Decrypt(strOf(a, "password")); err != nil {
		t.Fatalf("password does not decrypt: %v", err)
	}
	if strOf(a, "frontEndUrl") == "" {
		t.Fatalf("appInfo without frontEndUrl: %v", a)
	}
	return user, pass
}

const (
	v1VecTS    = "20200727073711903"
	v1VecToken = "Yo8569XTGL32Q9VPKu49b+DrHvoZnjykFxfaSLZIw/Y="
	v1VecQuery = "activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903"
	// extendB64 is the documented saasExtendParams (vectors.md §10); it has
	// no '+', so extendPlus (a JSON array whose Base64 has '+') is used for
	// the pitfall.
	extendB64 = "W3sibmFtZSI6ImlkTnVtIiwidmFsdWUiOiIzNTIyNTU1NTU1NTU2NTYifSx7Im5hbWUiOiJ1c2VyTmFtZSIsInZhbHVlIjoiaHVhd2VpMTIzIn0seyJuYW1lIjoiY3VzdEVtYWlsIiwidmFsdWUiOiIxMjNAaHVhd2VpLmNvbSJ9XQ=="
)

func TestV1Vectors(t *testing.T) {
	h := newHarness(t)
	t.Run("vectors.md §4: encoded, raw '+' and reordered forms verify", func(t *testing.T) {
		forms := map[string]string{
			"encoded":   v1VecQuery + "&authToken=" + url.QueryEscape(v1VecToken),
			"raw token": v1VecQuery + "&authToken=" + v1VecToken,
			"reordered": "authToken=" + url.QueryEscape(v1VecToken) + "&timeStamp=" + v1VecTS + "&testFlag=1&productId=00301-666666-0--0&orderId=CS1906666666ABCDE&expireTime=20200727153156&customerId=68cbc86abc2018ab880d92f36422fa0e&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&activity=newInstance",
		}
		for name, q := range forms {
			m := h.v1expect(t, "000000", nil, v1Raw(q))
			if strOf(m, "instanceId") != "61e834ba-7b97-4418-b8f7-e5345137278c" || strOf(m, "encryptType") != "1" {
				t.Fatalf("%s: %v", name, m)
			}
			decryptApp(t, keyMain, koogallery.EncryptAES256, m["appInfo"])
		}
		// A debug call stores nothing.
		if recs := h.events(t, instance.Kind, "61e834ba-7b97-4418-b8f7-e5345137278c"); len(recs) != 0 {
			t.Fatalf("a debug newInstance stored %v", typesOf(recs))
		}
		if recs := h.events(t, instance.IndexKind, "CS1906666666ABCDE", "saas-v1"); len(recs) != 0 {
			t.Fatalf("a debug newInstance bound the order: %v", typesOf(recs))
		}
	})
	t.Run("vectors.md §4: tampering fails with 000001", func(t *testing.T) {
		tok := "&authToken=" + url.QueryEscape(v1VecToken)
		for name, q := range map[string]string{
			"value changed":       strings.Replace(v1VecQuery, "CS1906666666ABCDE", "CS1906666666ABCDF", 1) + tok,
			"parameter added":     v1VecQuery + "&extra=1" + tok,
			"other timeStamp":     strings.Replace(v1VecQuery, v1VecTS, "20200727073711904", 1) + tok,
			"token case changed":  v1VecQuery + "&authToken=" + url.QueryEscape(strings.ToLower(v1VecToken)),
			"token missing":       v1VecQuery,
			"empty token":         v1VecQuery + "&authToken=",
			"provisionType added": v1VecQuery + "&provisionType=1" + tok,
		} {
			m := h.v1expect(t, "000001", nil, v1Raw(q))
			if strOf(m, "instanceId") != "" {
				t.Fatalf("%s: a refused call answered an instanceId: %v", name, m)
			}
		}
		h.v1invalid(t, "timeStamp", nil, v1Raw(strings.Replace(v1VecQuery, "&timeStamp="+v1VecTS, "", 1)+tok))
	})
	t.Run("vectors.md §11.3: the documented examples are 000001 with any key", func(t *testing.T) {
		for _, q := range []string{
			"activity=refreshInstance&expireTime=20180725000000&instanceId=03pf80c2bae96vc49b80b917bea776d7&orderId=HWS001014ED483AA1E8&timeStamp=20170725025113409&testFlag=1&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
			"activity=expireInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&timeStamp=20170725025113409&testFlag=0&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
			"activity=releaseInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&timeStamp=20170725025113409&testFlag=0&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
			"activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2Cfe28e27e-1157-4105-8592-24cc9488db10%2C92df74e4-163e-4e0b-a206-d9800d33881b&testFlag=1&timeStamp=20230327065233980&authToken=Eh%2F3Ud%2BR1j3d%2FwOui5CAcvRipM8IuribvgkXfJAsTfE%3D",
			"activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE&testFlag=1&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
		} {
			for _, p := range []string{pathV1, pathV1Rotate, pathV1AES128} {
				// A refused call is signed with the route's primary key.
				h.v1expect(t, "000001", nil, v1Raw(q), v1Path(p), v1Key(h.keysText(p)))
			}
		}
		// The upgrade example is cut off before timeStamp and authToken:
		// a missing timeStamp is 000002 (auth.md §3.4), checked first.
		h.v1invalid(t, "timeStamp", nil, v1Raw("activity=upgrade&amount=6456&instanceId=huaweitest123456&orderId=CS1906666688ABCDE&productId=00301-666688-0-0&saasExtendParams="+extendB64+"&skuCode=d0abcd12-..."))
	})
	t.Run("the documented examples re-signed with the route key are served", func(t *testing.T) {
		// The queryInstance example's three ids, as a debug call: mock
		// app info for each, never 000003.
		ids := "ebc28eb6-4606-4098-b4bd-c201c99a0654,fe28e27e-1157-4105-8592-24cc9488db10,92df74e4-163e-4e0b-a206-d9800d33881b"
		m := h.v1expect(t, "000000", sp{"activity": "queryInstance", "instanceId": ids, "testFlag": "1", "timeStamp": "20230327065233980"})
		if info := infos(t, m); len(info) != 3 || strOf(info[2], "instanceId") != "92df74e4-163e-4e0b-a206-d9800d33881b" {
			t.Fatalf("info = %v", m["info"])
		}
		for _, p := range []sp{
			{"activity": "instanceStatus", "instanceId": "huaweitest123456", "instanceStatus": "FREEZE", "testFlag": "1"},
			{"activity": "instanceStatus", "instanceId": "huaweitest123456", "instanceStatus": "NORMAL", "testFlag": "1"},
			{"activity": "refreshInstance", "expireTime": "20180725000000", "instanceId": "03pf80c2bae96vc49b80b917bea776d7", "orderId": "HWS001014ED483AA1E8", "testFlag": "1"},
			{"activity": "expireInstance", "instanceId": "03pf80c2bae96vc49b80b917bea776d7", "testFlag": "1"},
			{"activity": "releaseInstance", "instanceId": "03pf80c2bae96vc49b80b917bea776d7", "testFlag": "1"},
			{"activity": "upgrade", "amount": "6456", "instanceId": "huaweitest123456", "orderId": "CS1906666688ABCDE", "productId": "00301-666688-0-0", "saasExtendParams": extendB64, "skuCode": "d0abcd12-x", "testFlag": "1"},
		} {
			h.v1expect(t, "000000", p)
		}
		if recs := h.events(t, instance.Kind, "huaweitest123456"); len(recs) != 0 {
			t.Fatalf("debug calls stored %v", typesOf(recs))
		}
	})
}

func TestV1Auth(t *testing.T) {
	h := newHarness(t)
	t.Run("both keys of a rotating route verify; the answer is signed with the one that did", func(t *testing.T) {
		for _, k := range []string{keyV1Old, keyMain} {
			r := h.v1do(t, sp{"activity": "queryInstance", "instanceId": "x", "testFlag": "1"}, v1Path(pathV1Rotate), v1Key(k))
			if codeOf(r.m) != "000000" || !bytes.Equal(r.answerKey, []byte(k)) {
				t.Fatalf("key %s: %s", k, r.raw)
			}
		}
		h.v1expect(t, "000001", sp{"activity": "queryInstance", "instanceId": "x", "testFlag": "1"}, v1Path(pathV1Rotate), v1Key(keyV1Window))
	})
	t.Run("the key of another route is 000001", func(t *testing.T) {
		h.v1expect(t, "000001", sp{"activity": "queryInstance", "instanceId": "x", "testFlag": "1"}, v1Key(keyV1Window))
	})
	t.Run("'+' in Base64 values sent raw (percent pass) and encoded (form pass)", func(t *testing.T) {
		// A saasExtendParams whose Base64 holds '+' and '/'.
		js := `[{"name":"note","value":"\u00ff\u00fe>>>?"}]`
		b64 := base64.StdEncoding.EncodeToString([]byte(js))
		if !strings.Contains(b64, "+") {
			t.Fatalf("fixture has no '+': %s", b64)
		}
		c, err := koogallery.NewCipher([]byte(keyMain), koogallery.EncryptAES256)
		if err != nil {
			t.Fatal(err)
		}
		var phone string
		for !strings.Contains(phone, "+") {
			if phone, err = c.Encrypt("15905222222"); err != nil {
				t.Fatal(err)
			}
		}
		order, biz := uid("CS"), uid("biz")
		p := v1With(v1New(order, biz, "prod-plus"), "saasExtendParams", b64, "mobilePhone", phone, "testFlag", "1")
		// Encoded: %2B everywhere.
		h.v1expect(t, "000000", p)
		// Raw: the query as some documented URLs carry it, signed over '+'.
		signed := v1With(p, "timeStamp", koogallery.FormatV1TimeStamp(time.Now()))
		q := url.Values{}
		for k, v := range signed {
			q.Set(k, v)
		}
		tok := koogallery.AuthToken([]byte(keyMain), signed["timeStamp"], q)
		q.Set("authToken", tok)
		raw := strings.ReplaceAll(q.Encode(), "%2B", "+")
		if !strings.Contains(raw, "+") {
			t.Fatal("the raw query carries no '+'")
		}
		m := h.v1expect(t, "000000", nil, v1Raw(raw))
		if strOf(m, "instanceId") != biz {
			t.Fatalf("instanceId = %q", strOf(m, "instanceId"))
		}
		// A real call with the raw form: the phone decrypts, the params decode.
		order2, biz2 := uid("CS"), uid("biz")
		real := v1With(v1New(order2, biz2, "prod-plus"), "saasExtendParams", b64, "mobilePhone", phone, "timeStamp", koogallery.FormatV1TimeStamp(time.Now()))
		q = url.Values{}
		for k, v := range real {
			q.Set(k, v)
		}
		q.Set("authToken", koogallery.AuthToken([]byte(keyMain), real["timeStamp"], q))
		h.v1Create(t, nil, v1Raw(strings.ReplaceAll(q.Encode(), "%2B", "+")))
		st := h.state(t, biz2)
		if st.V1 == nil || st.V1.MobilePhone != "15905222222" || st.V1.ExtendParams["note"] != "\u00ff\u00fe>>>?" {
			t.Fatalf("V1 order = %+v", st.V1)
		}
	})
	t.Run("signing the encoded values is a mismatch", func(t *testing.T) {
		p := sp{"activity": "queryInstance", "instanceId": "a,b", "testFlag": "1", "timeStamp": koogallery.FormatV1TimeStamp(time.Now())}
		q := url.Values{}
		for k, v := range p {
			q.Set(k, url.QueryEscape(v)) // the common mistake
		}
		tok := koogallery.AuthToken([]byte(keyMain), p["timeStamp"], q)
		h.v1expect(t, "000001", p, v1After(func(q url.Values) { q.Set("authToken", tok) }))
	})
	t.Run("POST-body variant", func(t *testing.T) {
		p := sp{"activity": "queryInstance", "instanceId": "a,b", "testFlag": "1", "blank": ""}
		m := h.v1expect(t, "000000", p, v1Post())
		if len(infos(t, m)) != 2 {
			t.Fatalf("info = %v", m["info"])
		}
		h.v1expect(t, "000001", p, v1Post(), func(r *v1req) { r.header = map[string]string{"authToken": "nope"} })
		h.v1expect(t, "000001", p, v1Post(), v1Key(keyV1Window))
		h.v1invalid(t, "body", p, v1Post(), func(r *v1req) { r.bodyRaw = []byte(`[1,2]`) })
		// A number member is signed as its literal text.
		ts := koogallery.FormatV1TimeStamp(time.Now())
		body := []byte(`{"activity":"queryInstance","instanceId":"n1","testFlag":1,"timeStamp":"` + ts + `"}`)
		tok := koogallery.AuthTokenBody([]byte(keyMain), map[string]string{"activity": "queryInstance", "instanceId": "n1", "testFlag": "1", "timeStamp": ts})
		h.v1expect(t, "000000", nil, v1Post(), func(r *v1req) {
			r.bodyRaw = body
			r.header = map[string]string{"authToken": tok}
		})
		// Without timeStamp: 000002.
		h.v1invalid(t, "timeStamp", nil, v1Post(), func(r *v1req) {
			r.bodyRaw = []byte(`{"activity":"queryInstance","instanceId":"n1"}`)
			r.header = map[string]string{"authToken": tok}
		})
	})
	t.Run("timeStamp: no skew rejection by default, the window when configured", func(t *testing.T) {
		old := sp{"activity": "queryInstance", "instanceId": "x", "testFlag": "1", "timeStamp": "20170725025113409"}
		h.v1expect(t, "000000", old)
		h.v1expect(t, "000001", old, v1Path(pathV1Window), v1Key(keyV1Window))
		h.v1invalid(t, "timeStamp", v1With(old, "timeStamp", "2017"), v1Path(pathV1Window), v1Key(keyV1Window))
		h.v1expect(t, "000000", v1Without(old, "timeStamp"), v1Path(pathV1Window), v1Key(keyV1Window))
		h.v1invalid(t, "timeStamp", v1With(old, "timeStamp", strings.Repeat("1", 21)))
	})
	t.Run("activity and testFlag rules", func(t *testing.T) {
		h.v1invalid(t, "activity", sp{"testFlag": "1"})
		h.v1invalid(t, "activity", sp{"activity": "getLicense", "testFlag": "1"})
		h.v1invalid(t, "activity", sp{"activity": "upgradeInstance", "testFlag": "1"}) // the V2 name
		h.v1invalid(t, "testFlag", sp{"activity": "queryInstance", "instanceId": "x", "testFlag": "111"})
	})
	t.Run("methods: GET and POST are served, others are 405", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPut, h.URL+pathV1, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := &response{path: pathV1, status: resp.StatusCode, hdr: resp.Header, raw: raw}
		if err := h.check(r); err != nil || r.status != http.StatusMethodNotAllowed || !strings.Contains(string(raw), "GET or POST") {
			t.Fatalf("PUT: %d %s %v", r.status, raw, err)
		}
	})
}

// fieldCase is one field rule: params that break it and the field named.
type fieldCase struct {
	name   string
	params sp
	field  string
}

func TestV1NewInstance(t *testing.T) {
	h := newHarness(t)
	c256, err := koogallery.NewCipher([]byte(keyMain), koogallery.EncryptAES256)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) string {
		v, err := c256.Encrypt(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	t.Run("every field is decoded and kept; the answer carries the app info", func(t *testing.T) {
		order, biz := uid("CS"), uid("biz")
		p := v1With(v1New(order, biz, "00301-666666-0--0"), "userId", "iam-1", "userName", "iam-user",
			"mobilePhone", enc("15905222222"), "email", enc("buyer@example.com"), "skuCode", "sku-1", "trialFlag", "1",
			"expireTime", "20300727153156", "chargingMode", "1", "saasExtendParams", extendB64, "amount", "20",
			"diskSize", "100", "bandWidth", "5", "periodType", "year", "periodNumber", "2", "orderAmount", "1234.567",
			"provisionType", "1")
		m := h.v1Create(t, p)
		if strOf(m, "instanceId") != biz || strOf(m, "encryptType") != "1" {
			t.Fatalf("answer %v", m)
		}
		user, pass := decryptApp(t, keyMain, koogallery.EncryptAES256, m["appInfo"])
		st := h.state(t, biz)
		if st.AppInfo == nil || user != st.AppInfo.UserName || pass != st.AppInfo.Password {
			t.Fatalf("app info %q/%q, state %+v", user, pass, st.AppInfo)
		}
		o := st.V1
		want := instance.V1Order{CustomerID: "68cbc86abc2018ab880d92f36422fa0e", CustomerName: "buyer", UserID: "iam-1", UserName: "iam-user",
			MobilePhone: "15905222222", Email: "buyer@example.com", ProductID: "00301-666666-0--0", SKUCode: "sku-1", Trial: true,
			PeriodType: "year", PeriodNumber: 2, OrderAmount: "1234.567"}
		if o == nil || o.CustomerID != want.CustomerID || o.CustomerName != want.CustomerName || o.UserID != want.UserID ||
			o.UserName != want.UserName || o.MobilePhone != want.MobilePhone || o.Email != want.Email || o.ProductID != want.ProductID ||
			o.SKUCode != want.SKUCode || !o.Trial || o.PeriodType != "year" || o.PeriodNumber != 2 || o.OrderAmount != "1234.567" {
			t.Fatalf("V1 order = %+v", o)
		}
		if o.ChargingMode == nil || *o.ChargingMode != instance.ChargingPeriod || *o.Amount != 20 || *o.DiskSize != 100 || *o.BandWidth != 5 {
			t.Fatalf("V1 numbers = %+v", o)
		}
		if o.ExtendParams["idNum"] != "352255555555656" || o.ExtendParams["userName"] != "huawei123" || o.ExtendParams["custEmail"] != "123@huawei.com" {
			t.Fatalf("extend params = %v", o.ExtendParams)
		}
		if !st.Trial || st.ExpireTime.Format("20060102150405") != "20300727153156" || st.ProductID != "00301-666666-0--0" || st.SKUCode != "sku-1" {
			t.Fatalf("state = %+v", st)
		}
		// orderAmount is stored as the exact text, never a float.
		recs := h.instanceEvents(t, biz)
		if len(recs) == 0 || !bytes.Contains(recs[0].Event.Data, []byte(`"orderAmount":"1234.567"`)) {
			t.Fatalf("Created data = %s", recs[0].Event.Data)
		}
	})
	t.Run("re-calls (retry, View Resource Details) answer the same instance with the current app info", func(t *testing.T) {
		order, biz := uid("CS"), uid("biz")
		first := h.v1Create(t, v1New(order, biz, "p-1"))
		u1, p1 := decryptApp(t, keyMain, koogallery.EncryptAES256, first["appInfo"])
		for i := 0; i < 3; i++ {
			// KooGallery's re-call carries a new businessId every time.
			m := h.v1expect(t, "000000", v1New(order, uid("biz-again"), "p-1"))
			if strOf(m, "instanceId") != biz {
				t.Fatalf("re-call %d: instanceId %q, want %q", i, strOf(m, "instanceId"), biz)
			}
			if u, p := decryptApp(t, keyMain, koogallery.EncryptAES256, m["appInfo"]); u != u1 || p != p1 {
				t.Fatalf("re-call %d: other app info", i)
			}
		}
		if n := countType(h.instanceEvents(t, biz), instance.TypeCreated); n != 1 {
			t.Fatalf("%d InstanceCreated, want 1", n)
		}
		if recs := h.events(t, instance.IndexKind, order, "saas-v1"); len(recs) != 1 {
			t.Fatalf("order index %v, want one binding", typesOf(recs))
		}
		// Frozen by expiry: the re-call still shows the instance.
		h.v1expect(t, "000000", sp{"activity": "expireInstance", "instanceId": biz})
		if m := h.v1expect(t, "000000", v1New(order, uid("biz"), "p-1")); strOf(m, "instanceId") != biz || m["appInfo"] == nil {
			t.Fatalf("re-call of a frozen instance: %v", m)
		}
		// A period order is one instance, whatever productId a re-call names.
		if m := h.v1expect(t, "000000", v1New(order, uid("biz"), "p-other")); strOf(m, "instanceId") != biz {
			t.Fatalf("period re-call with another productId: %v", m)
		}
	})
	t.Run("pay-per-use: orderId + productId, several instances per order", func(t *testing.T) {
		order := uid("CS")
		a, b := uid("biz-a"), uid("biz-b")
		h.v1Create(t, v1With(v1New(order, a, "ppu-a"), "chargingMode", "0"))
		h.v1Create(t, v1With(v1New(order, b, "ppu-b"), "chargingMode", "0"))
		for prod, id := range map[string]string{"ppu-a": a, "ppu-b": b} {
			m := h.v1expect(t, "000000", v1With(v1New(order, uid("biz"), prod), "chargingMode", "0"))
			if strOf(m, "instanceId") != id {
				t.Fatalf("%s: instanceId %q, want %q", prod, strOf(m, "instanceId"), id)
			}
		}
		if h.state(t, a).V1.ProductID != "ppu-a" || h.state(t, b).V1.ProductID != "ppu-b" {
			t.Fatal("products swapped")
		}
		// A businessId reused for another product line is not that line's
		// instance: a fresh id is bound.
		m := h.v1Create(t, v1With(v1New(order, a, "ppu-c"), "chargingMode", "0"))
		if id := strOf(m, "instanceId"); id == a || id == b || id == "" {
			t.Fatalf("third line answered %q", id)
		}
	})
	t.Run("concurrent duplicates create one instance", func(t *testing.T) {
		order := uid("CS")
		var wg sync.WaitGroup
		ids := make([]string, 6)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.v1do(t, v1New(order, uid("biz"), "p"))
				ids[i] = strOf(r.m, "instanceId")
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("instance ids %v", ids)
			}
		}
	})
	t.Run("AES-128 route: mobilePhone decrypts with the 128-bit key, appInfo encrypted likewise", func(t *testing.T) {
		order, biz := uid("CS"), uid("biz")
		m := h.v1Create(t, v1With(v1New(order, biz, "p"), "mobilePhone", "abcdefghijklmnopqr4VtCpHjkbgVeBS5Zc9VA=="), v1Path(pathV1AES128))
		if strOf(m, "encryptType") != "2" {
			t.Fatalf("encryptType %v", m)
		}
		decryptApp(t, keyMain, koogallery.EncryptAES128, m["appInfo"])
		if got := h.state(t, biz).V1.MobilePhone; got != "15905222222" {
			t.Fatalf("mobilePhone = %q", got)
		}
		// The AES-256 ciphertext does not decrypt with the 128-bit key.
		h.v1invalid(t, "mobilePhone", v1With(v1New(uid("CS"), uid("biz"), "p"), "mobilePhone", "abcdefghijklmnoph3kq9XJOHaCkd4GZf35aQg=="), v1Path(pathV1AES128))
	})
	t.Run("a saasExtendParams that does not decode is kept raw and does not fail the call", func(t *testing.T) {
		order, biz := uid("CS"), uid("biz")
		h.v1Create(t, v1With(v1New(order, biz, "p"), "saasExtendParams", "not-base64!"))
		if st := h.state(t, biz); st.V1.ExtendParamsRaw != "not-base64!" || st.V1.ExtendParams != nil {
			t.Fatalf("raw extend params = %+v", st.V1)
		}
	})
	t.Run("field rules name the field", func(t *testing.T) {
		base := v1New(uid("CS"), uid("biz"), "p")
		cases := []fieldCase{
			{"customerId missing", v1Without(base, "customerId"), "customerId"},
			{"customerId too long", v1With(base, "customerId", strings.Repeat("c", 101)), "customerId"},
			{"customerName too long", v1With(base, "customerName", strings.Repeat("n", 65)), "customerName"},
			{"userId too long", v1With(base, "userId", strings.Repeat("u", 65)), "userId"},
			{"userName too long", v1With(base, "userName", strings.Repeat("u", 65)), "userName"},
			{"businessId missing", v1Without(base, "businessId"), "businessId"},
			{"businessId too long", v1With(base, "businessId", strings.Repeat("b", 65)), "businessId"},
			{"orderId missing", v1Without(base, "orderId"), "orderId"},
			{"orderId too long", v1With(base, "orderId", strings.Repeat("o", 65)), "orderId"},
			{"productId missing", v1Without(base, "productId"), "productId"},
			{"skuCode too long", v1With(base, "skuCode", strings.Repeat("s", 65)), "skuCode"},
			{"trialFlag", v1With(base, "trialFlag", "2"), "trialFlag"},
			{"expireTime", v1With(base, "expireTime", "2020-07-27"), "expireTime"},
			{"expireTime 15 digits", v1With(base, "expireTime", "202007271531560"), "expireTime"},
			{"chargingMode unknown", v1With(base, "chargingMode", "2"), "chargingMode"},
			{"chargingMode text", v1With(base, "chargingMode", "PERIOD"), "chargingMode"},
			{"periodType too long", v1With(base, "periodType", "yearlyyearly"), "periodType"},
			{"periodNumber 3 digits", v1With(base, "periodNumber", "100"), "periodNumber"},
			{"periodNumber text", v1With(base, "periodNumber", "two"), "periodNumber"},
			{"orderAmount negative", v1With(base, "orderAmount", "-1"), "orderAmount"},
			{"orderAmount 4 decimals", v1With(base, "orderAmount", "1.2345"), "orderAmount"},
			{"orderAmount float syntax", v1With(base, "orderAmount", "1e3"), "orderAmount"},
			{"orderAmount too long", v1With(base, "orderAmount", strings.Repeat("9", 21)), "orderAmount"},
			{"amount", v1With(base, "amount", "1.5"), "amount"},
			{"diskSize", v1With(base, "diskSize", "-3"), "diskSize"},
			{"bandWidth", v1With(base, "bandWidth", "x"), "bandWidth"},
			{"saasExtendParams too long", v1With(base, "saasExtendParams", strings.Repeat("A", 2049)), "saasExtendParams"},
			{"mobilePhone", v1With(base, "mobilePhone", "not-a-ciphertext"), "mobilePhone"},
			{"email", v1With(base, "email", "abcdefghijklmnop"+"AAAA"), "email"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				h.v1invalid(t, c.field, c.params)
				h.v1invalid(t, c.field, v1With(c.params, "testFlag", "1")) // debug calls are validated too
			})
		}
		if recs := h.events(t, instance.Kind, base["businessId"]); len(recs) != 0 {
			t.Fatalf("an invalid call stored %v", typesOf(recs))
		}
		// Accepted edge values.
		h.v1expect(t, "000000", v1With(base, "orderAmount", "0", "expireTime", "20300727153156123", "chargingMode", "5", "testFlag", "1"))
		h.v1expect(t, "000000", v1With(base, "orderAmount", "12345678901234567.89", "trialFlag", "0", "testFlag", "1"))
	})
}

// usageTable is a UsageSource answering fixed values per instance.
type usageTable struct {
	mu sync.Mutex
	m  map[string][]server.UsageInfo
}

func (u *usageTable) Usage(_ context.Context, st instance.State) ([]server.UsageInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.m[st.ID]
	if !ok {
		return nil, errors.New("meter unavailable")
	}
	return v, nil
}

func TestV1Lifecycle(t *testing.T) {
	usage := &usageTable{m: map[string][]server.UsageInfo{}}
	h := newHarness(t, withUsage(usage), withPolicy(refusePolicy{sku: "sku-full"}))
	newPeriod := func(t *testing.T) string {
		biz := uid("biz")
		h.v1Create(t, v1With(v1New(uid("CS"), biz, "p"), "chargingMode", "1", "expireTime", "20300101000000"))
		return biz
	}
	types := func(id string) string { return fmt.Sprint(typesOf(h.instanceEvents(t, id))) }

	t.Run("expireInstance freezes and keeps the data; refreshInstance reactivates", func(t *testing.T) {
		id := newPeriod(t)
		for i := 0; i < 2; i++ {
			h.v1expect(t, "000000", sp{"activity": "expireInstance", "instanceId": id})
		}
		st := h.state(t, id)
		if st.Status != instance.StatusFrozen || st.FrozenReason != instance.FrozenExpired || st.AppInfo == nil {
			t.Fatalf("after expiry: %+v", st)
		}
		if n := countType(h.instanceEvents(t, id), instance.TypeFrozen); n != 1 {
			t.Fatalf("frozen %d times", n)
		}
		// queryInstance still shows it (the data is kept).
		if m := h.v1expect(t, "000000", sp{"activity": "queryInstance", "instanceId": id}); infos(t, m)[0]["appInfo"] == nil {
			t.Fatalf("query of an expired instance: %v", m)
		}
		renew := sp{"activity": "refreshInstance", "orderId": uid("CS-renew"), "instanceId": id, "expireTime": "20310101000000",
			"periodType": "year", "periodNumber": "1", "orderAmount": "99.900"}
		for i := 0; i < 2; i++ {
			h.v1expect(t, "000000", renew)
		}
		st = h.state(t, id)
		if st.Status != instance.StatusActive || st.ExpireTime.Year() != 2031 || st.FrozenReason != "" {
			t.Fatalf("after renewal: %+v", st)
		}
		if got, want := types(id), "[InstanceCreated InstanceProvisioned InstanceFrozen InstanceRefreshed InstanceUnfrozen]"; got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
		// A cancellation with a negative amount is accepted.
		h.v1expect(t, "000000", v1With(renew, "orderId", uid("CS-cancel"), "orderAmount", "-99.9", "expireTime", "20300101000000"))
		h.v1invalid(t, "orderAmount", v1With(renew, "orderAmount", "-1.2345"))
	})
	t.Run("trialToFormal, productId and field rules of refreshInstance", func(t *testing.T) {
		id := newPeriod(t)
		conv := sp{"activity": "refreshInstance", "orderId": uid("CS-formal"), "instanceId": id, "expireTime": "20310101000000123",
			"trialToFormal": "1", "productId": "p-year"}
		h.v1expect(t, "000000", conv)
		if st := h.state(t, id); !st.Formal || st.ProductID != "p-year" {
			t.Fatalf("after conversion: %+v", st)
		}
		for _, c := range []fieldCase{
			{"orderId", v1Without(conv, "orderId"), "orderId"},
			{"instanceId", v1Without(conv, "instanceId"), "instanceId"},
			{"expireTime missing", v1Without(conv, "expireTime"), "expireTime"},
			{"expireTime bad", v1With(conv, "expireTime", "tomorrow"), "expireTime"},
			{"trialToFormal", v1With(conv, "trialToFormal", "yes"), "trialToFormal"},
			{"productId", v1With(conv, "productId", strings.Repeat("p", 65)), "productId"},
			{"periodNumber", v1With(conv, "periodNumber", "123"), "periodNumber"},
		} {
			h.v1invalid(t, c.field, c.params)
		}
	})
	t.Run("instanceStatus FREEZE and NORMAL, idempotent; other values are 000002", func(t *testing.T) {
		biz := uid("biz")
		h.v1Create(t, v1With(v1New(uid("CS"), biz, "ppu"), "chargingMode", "0"))
		for _, s := range []string{"FREEZE", "FREEZE", "NORMAL", "NORMAL"} {
			h.v1expect(t, "000000", sp{"activity": "instanceStatus", "instanceId": biz, "instanceStatus": s})
		}
		if got, want := types(biz), "[InstanceCreated InstanceProvisioned InstanceFrozen InstanceUnfrozen]"; got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
		h.v1invalid(t, "instanceStatus", sp{"activity": "instanceStatus", "instanceId": biz, "instanceStatus": "UNFREEZE"})
		h.v1invalid(t, "instanceStatus", sp{"activity": "instanceStatus", "instanceId": biz})
		h.v1invalid(t, "instanceId", sp{"activity": "instanceStatus", "instanceStatus": "FREEZE"})
	})
	t.Run("queryInstance: usageInfo for metered instances, batches, unknown ids", func(t *testing.T) {
		ppu, pkg, period := uid("biz-ppu"), uid("biz-pkg"), newPeriod(t)
		h.v1Create(t, v1With(v1New(uid("CS"), ppu, "ppu"), "chargingMode", "0"))
		h.v1Create(t, v1With(v1New(uid("CS"), pkg, "pkg"), "chargingMode", "5"))
		usage.mu.Lock()
		usage.m[ppu] = []server.UsageInfo{{UsageValue: "12.5"}}
		usage.m[pkg] = []server.UsageInfo{{RelatedInstanceID: ppu, UsageValue: "3"}, {RelatedInstanceID: "other", UsageValue: "0.0001"}}
		usage.mu.Unlock()
		m := h.v1expect(t, "000000", sp{"activity": "queryInstance", "instanceId": ppu + "," + uid("unknown") + "," + pkg + "," + period})
		info := infos(t, m)
		if len(info) != 3 || strOf(m, "encryptType") != "1" {
			t.Fatalf("info = %v", m["info"])
		}
		raw, _ := json.Marshal(info)
		for _, want := range []string{`"usageInfo":[{"usageValue":12.5}]`, `"usageInfo":[{"relatedInstanceId":"` + ppu + `","usageValue":3},{"relatedInstanceId":"other","usageValue":0.0001}]`} {
			if !strings.Contains(string(raw), want) {
				t.Fatalf("info %s lacks %s", raw, want)
			}
		}
		if _, has := info[2]["usageInfo"]; has {
			t.Fatalf("a period instance carries usageInfo: %v", info[2])
		}
		for _, i := range info {
			decryptApp(t, keyMain, koogallery.EncryptAES256, i["appInfo"])
		}
		// A meter that fails is 000005, one that answers nonsense too.
		usage.mu.Lock()
		delete(usage.m, ppu)
		usage.m[pkg] = []server.UsageInfo{{UsageValue: "-1"}}
		usage.mu.Unlock()
		h.v1expect(t, "000005", sp{"activity": "queryInstance", "instanceId": ppu})
		h.v1expect(t, "000005", sp{"activity": "queryInstance", "instanceId": pkg})
		// Rules shared with V2.
		h.v1expect(t, "000003", sp{"activity": "queryInstance", "instanceId": uid("unknown")})
		h.v1invalid(t, "instanceId", sp{"activity": "queryInstance", "instanceId": " , "})
		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprintf("id-%d", i)
		}
		h.v1invalid(t, "instanceId", sp{"activity": "queryInstance", "instanceId": strings.Join(many, ","), "testFlag": "1"})
		h.v1invalid(t, "instanceId", sp{"activity": "queryInstance", "instanceId": strings.Repeat("i", 65)})
	})
	t.Run("upgrade: applied once per order, refused by the policy with 000100", func(t *testing.T) {
		id := newPeriod(t)
		up := sp{"activity": "upgrade", "instanceId": id, "orderId": uid("CS-up"), "skuCode": "sku-2", "productId": "p-2",
			"amount": "20", "diskSize": "200", "bandWidth": "10", "saasExtendParams": extendB64}
		for i := 0; i < 2; i++ {
			h.v1expect(t, "000000", up)
		}
		st := h.state(t, id)
		if st.Upgrades != 1 || st.SKUCode != "sku-2" || st.ProductID != "p-2" || *st.V1.Amount != 20 || *st.V1.DiskSize != 200 ||
			*st.V1.BandWidth != 10 || st.V1.ExtendParams["idNum"] != "352255555555656" {
			t.Fatalf("after upgrade: %+v %+v", st, st.V1)
		}
		m := h.v1expect(t, "000100", v1With(up, "orderId", uid("CS-up"), "skuCode", "sku-full"))
		if !strings.Contains(msgOf(m), "full") {
			t.Fatalf("refusal message %q", msgOf(m))
		}
		for _, c := range []fieldCase{
			{"skuCode", v1Without(up, "skuCode"), "skuCode"},
			{"productId", v1Without(up, "productId"), "productId"},
			{"orderId", v1Without(up, "orderId"), "orderId"},
			{"instanceId", v1Without(up, "instanceId"), "instanceId"},
			{"amount", v1With(up, "amount", "12345678"), "amount"},
			{"diskSize", v1With(up, "diskSize", "1.5"), "diskSize"},
			{"bandWidth", v1With(up, "bandWidth", "-1"), "bandWidth"},
		} {
			h.v1invalid(t, c.field, c.params)
		}
	})
	t.Run("releaseInstance: idempotent; afterwards the instance is unknown", func(t *testing.T) {
		id := newPeriod(t)
		rel := sp{"activity": "releaseInstance", "instanceId": id, "orderAmount": "0.5"}
		for i := 0; i < 2; i++ {
			h.v1expect(t, "000000", rel)
		}
		if n := countType(h.instanceEvents(t, id), instance.TypeReleased); n != 1 {
			t.Fatalf("released %d times", n)
		}
		h.v1expect(t, "000003", sp{"activity": "queryInstance", "instanceId": id})
		h.v1expect(t, "000003", sp{"activity": "refreshInstance", "orderId": uid("CS"), "instanceId": id, "expireTime": "20310101000000"})
		h.v1expect(t, "000003", sp{"activity": "expireInstance", "instanceId": id})
		h.v1invalid(t, "orderAmount", v1With(rel, "orderAmount", "-1"))
	})
	t.Run("unknown ids are 000003, never for a debug call", func(t *testing.T) {
		unknown := uid("unknown")
		for _, p := range []sp{
			{"activity": "refreshInstance", "orderId": uid("CS"), "instanceId": unknown, "expireTime": "20310101000000"},
			{"activity": "expireInstance", "instanceId": unknown},
			{"activity": "releaseInstance", "instanceId": unknown},
			{"activity": "instanceStatus", "instanceId": unknown, "instanceStatus": "FREEZE"},
			{"activity": "upgrade", "instanceId": unknown, "orderId": uid("CS"), "skuCode": "s", "productId": "p"},
			{"activity": "queryInstance", "instanceId": unknown},
		} {
			h.v1expect(t, "000003", p)
			h.v1expect(t, "000000", v1With(p, "testFlag", "1"))
		}
		if recs := h.instanceEvents(t, unknown); len(recs) != 0 {
			t.Fatalf("stored %v", typesOf(recs))
		}
	})
	t.Run("debug calls change nothing on a real instance", func(t *testing.T) {
		id := newPeriod(t)
		before := types(id)
		for _, p := range []sp{
			{"activity": "expireInstance", "instanceId": id},
			{"activity": "instanceStatus", "instanceId": id, "instanceStatus": "FREEZE"},
			{"activity": "refreshInstance", "orderId": uid("CS"), "instanceId": id, "expireTime": "20310101000000"},
			{"activity": "upgrade", "instanceId": id, "orderId": uid("CS"), "skuCode": "s", "productId": "p"},
			{"activity": "releaseInstance", "instanceId": id},
		} {
			h.v1expect(t, "000000", v1With(p, "testFlag", "1"))
		}
		if after := types(id); after != before {
			t.Fatalf("debug calls changed the instance: %s → %s", before, after)
		}
	})
}

// refusePolicy refuses changes to one SKU.
type refusePolicy struct{ sku string }

func (p refusePolicy) CheckChange(_ context.Context, _ instance.State, target server.ProductInfo) error {
	if target.SKUCode == p.sku {
		return errors.New("the target specification is full")
	}
	return nil
}
