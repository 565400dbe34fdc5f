package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/server"
)

// FuzzV2Body signs arbitrary bodies with the route key (so they pass
// authentication) and serves them through the real handler: never a 5xx or
// a panic, always a signed JSON answer with a 6-digit resultCode.
func FuzzV2Body(f *testing.F) {
	seed := func(b any) {
		raw, err := bodyBytes(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, b := range validBodies("huaweitest123456") {
		seed(b)
		seed(debug(b))
		seed(with(b, "testFlag", 1))
	}
	for _, s := range []string{
		vecBody,
		`{"testFlag":"1","productInfo":{"skuCode":"s","productId":"p"},"activity":"changeInstanceCheck","instanceId":"i"}`,
		`{"activity":"changeInstanceCheck","instanceId":"i","productInfo":{"productId":"p","skuCode":"s","productName":"n","linearValue":1e400}}`,
		`{"activity":"queryInstance","instanceId":",,,,"}`,
		`{"activity":"queryInstance","instanceId":"a,b,c","testFlag":"1"}`,
		`{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"99999999999999999"}`,
		`{"activity":"updateInstanceStatus","instanceId":"\u0000\ud800","status":"FREEZE"}`,
		`{"activity":"newInstance","orderId":"o.*>","orderLineId":"l l","businessId":"b\u4e2d%41"}`,
		`{"activity":"newInstance","activity":"queryInstance","instanceId":"x"}`,
		`{"activity":null,"testFlag":null}`,
		`{"testFlag":true,"activity":"orderNotify","orderId":"o"}`,
		`{"testFlag":[],"activity":"orderNotify","orderId":"o"}`,
		`{"activity":"orderNotify","orderId":"o","testFlag":-0}`,
		`{}`, `[]`, `null`, `"x"`, ``, `{`, `{"a":1}{"b":2}`, "\xff\xfe{}", ` {"activity" : "queryInstance" , "instanceId" : "x" } `,
	} {
		f.Add([]byte(s))
	}

	env := newEnv(f)
	srv, err := server.New(env.routes, server.Deps{Instances: env.svc, Store: env.store, Nonces: env.guard}, server.Options{
		ProvisionBudget: 20 * time.Millisecond,
	}, env.log)
	if err != nil {
		f.Fatal(err)
	}
	handler := srv.Handler()
	h := &harness{env: env, keys: map[string][][]byte{pathMain: {[]byte(keyMain)}}}
	key := []byte(keyMain)

	f.Fuzz(func(t *testing.T, body []byte) {
		q := koogallery.SignV2Request(key, body, time.Now(), koogallery.NewNonce())
		req := httptest.NewRequest(http.MethodPost, pathMain+"?"+q.Encode(), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json;charset=utf8")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		res := rec.Result()
		raw, _ := io.ReadAll(res.Body)
		r := &response{path: pathMain, answerKey: key, status: res.StatusCode, hdr: res.Header, raw: raw, sent: body}
		if r.status != http.StatusOK {
			t.Fatalf("HTTP %d for body %q: %s", r.status, body, raw)
		}
		if err := h.check(r); err != nil {
			t.Fatalf("body %q → %s:\n%v", body, raw, err)
		}
		switch code := codeOf(r.m); code {
		case "000001":
			// A validly signed body must never fail authentication: every
			// JSON object has a form (a), and the nonce is fresh.
			var v any
			if dec := json.NewDecoder(bytes.NewReader(body)); dec.Decode(&v) == nil {
				if _, isObj := v.(map[string]any); isObj && !dec.More() {
					t.Fatalf("signed JSON object %q answered 000001: %s", body, raw)
				}
			}
		case "000005":
			t.Fatalf("internal error for client input %q: %s", body, raw)
		}
		if p := env.logs.matching("panic"); len(p) > 0 {
			t.Fatalf("panic while serving %q: %v", body, p)
		}
	})
}
