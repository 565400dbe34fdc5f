package server_test

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// vectors.md §2.
const (
	vecNonce     = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"
	vecTimestamp = 1680508066618
	vecBody      = `{"testFlag":"1","activity":"newInstance","orderLineId":"CS2211181819B4LVS-000001","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS"}`
	vecSigUpper  = "D7A889127DC8B3776C62C433801317726D73CC49FFF36A9749D941C50474F187"
	vecSigDA     = "2597c4bb84e188b612af5ddebc3f303b7332eee1235db5ff050b8776d0f73937"
	vecBusiness  = "87b94795-0603-4e24-8ae5-69420d60e3c8"
)

// fakeClock is a settable server clock.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) set(ms int64)      { c.ms.Store(ms) }
func (c *fakeClock) Now() time.Time    { return time.UnixMilli(c.ms.Load()) }
func newFakeClock(ms int64) *fakeClock { c := &fakeClock{}; c.set(ms); return c }
func vecQuery(sig, ts, nonce string) string {
	return "signature=" + sig + "&timestamp=" + ts + "&nonce=" + nonce
}

// secondsSigner signs like KooGallery but with a timestamp in seconds.
func secondsSigner(key, body []byte, ts time.Time, nonce string) url.Values {
	p, err := koogallery.CanonicalPayload(body, koogallery.FormA)
	if err != nil {
		panic(err)
	}
	tsText := strconv.FormatInt(ts.Unix(), 10)
	return url.Values{"signature": {koogallery.SignV2(key, nonce, tsText, p)}, "timestamp": {tsText}, "nonce": {nonce}}
}

// formCount reads gallerist_signature_form_total{form,route} from /metrics.
func formCount(t *testing.T, h *harness, route, form string) int {
	t.Helper()
	st, text := h.get(t, "/metrics")
	if st != http.StatusOK {
		t.Fatalf("GET /metrics: %d", st)
	}
	re := regexp.MustCompile(`(?m)^gallerist_signature_form_total\{form="` + regexp.QuoteMeta(form) +
		`",route="` + regexp.QuoteMeta(route) + `"\} ([0-9]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestAuthVectors(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock(vecTimestamp)
	h := newHarness(t, onEnv(e), withClock(clock.Now))

	t.Run("vector §2 upper-case URL verifies and answers the debug newInstance", func(t *testing.T) {
		clock.set(vecTimestamp)
		m := h.expect(t, "000000", []byte(vecBody), withRawQuery(vecQuery(vecSigUpper, strconv.Itoa(vecTimestamp), vecNonce)))
		if got := strOf(m, "instanceId"); got != vecBusiness {
			t.Errorf("instanceId = %q, want the businessId %q", got, vecBusiness)
		}
		if got := strOf(m, "encryptType"); got != "1" {
			t.Errorf("encryptType = %q, want 1", got)
		}
		if n := formCount(t, h, pathMain, "a"); n != 1 {
			t.Errorf(`gallerist_signature_form_total{form="a"} = %d, want 1 (the vector matches form a)`, n)
		}
		if n := len(e.indexEvents(t, "CS2211181819B4LVS", "CS2211181819B4LVS-000001")); n != 0 {
			t.Errorf("the debug request bound the order line (%d events)", n)
		}
		if n := len(e.instanceEvents(t, vecBusiness)); n != 0 {
			t.Errorf("the debug request created instance events (%d)", n)
		}

		t.Run("the same request again is a nonce replay", func(t *testing.T) {
			m := h.expect(t, "000001", []byte(vecBody), withRawQuery(vecQuery(vecSigUpper, strconv.Itoa(vecTimestamp), vecNonce)))
			if !strings.Contains(msgOf(m), "nonce") {
				t.Errorf("resultMsg %q does not say the nonce was used", msgOf(m))
			}
		})
	})

	t.Run("vector §2 outside the window is 000001", func(t *testing.T) {
		for _, off := range []int64{-61_000, 61_000, -3_600_000} {
			clock.set(vecTimestamp + off)
			// A fresh nonce: the vector's was used above, and a replay would
			// hide what this checks.
			h.expect(t, "000001", []byte(vecBody), withRawQuery(vecQuery(vecSigUpper, strconv.Itoa(vecTimestamp), koogallery.NewNonce())))
		}
	})

	t.Run("vector §2 d-a signature: 000001 without the switch, accepted with it", func(t *testing.T) {
		clock.set(vecTimestamp)
		q := vecQuery(vecSigDA, strconv.Itoa(vecTimestamp), vecNonce)
		h.expect(t, "000001", []byte(vecBody), withRawQuery(q))
		before := formCount(t, h, pathPlain, "d-a")
		m := h.expect(t, "000000", []byte(vecBody), withPath(pathPlain), withRawQuery(q))
		if got := strOf(m, "instanceId"); got != vecBusiness {
			t.Errorf("instanceId = %q, want %q", got, vecBusiness)
		}
		if n := formCount(t, h, pathPlain, "d-a"); n != before+1 {
			t.Errorf(`form metric d-a on %s = %d, want %d`, pathPlain, n, before+1)
		}
		if n := formCount(t, h, pathMain, "d-a"); n != 0 {
			t.Errorf("form d-a recorded on %s, where the switch is off", pathMain)
		}
	})

	t.Run("vectors §11.1 example requests are 000001", func(t *testing.T) {
		examples := []struct{ name, sig, ts, nonce, body string }{
			{"newInstance", "11C4CD6279191DE931DEF5C51531DFFA9D37969F4E356B8A3A6D8DE4FB357A48", "1680508066618", vecNonce,
				`{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
			{"newInstance testFlag 0", "11C4CD6279191DE931DEF5C51531DFFA9D37969F4E356B8A3A6D8DE4FB357A48", "1680508066618", vecNonce,
				`{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}`},
			{"queryInstance", "9C61F188C3C2889C2DD201B00E42041BDCE4751F31E35805DE412969F0A7829C", "1680508237508", "9FB42E04DF4594B1FAA50B304E647AD7154AB9B4F144A65F1168886540A8B24C",
				`{"activity":"queryInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","testFlag":"1"}`},
			{"refreshInstance", "3F6E6652B7BE26B27ABFC3D11214D04BFD8D2CF8AC21603D85620174FE8DE062", "1680509496350", "8BF8496A350E37BDB0E8956D39D433ED417C3FC9459DCFFE7F03BFBF69B12085",
				`{"activity":"refreshInstance","expireTime":"20221124023618256","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","productId":"OFFI461867333479178240","scene":"RENEWAL","testFlag":"1"}`},
			{"updateInstanceStatus", "95DD9FA6A8C660C9C7F9CFDE97C42535290919BCA3F78B9A254428A692CDF26E", "1680509558159", "9F26B85CAEB3A8439221BA293E9250BC5EA689225B523C291EA75CC76B469510",
				`{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"FREEZE","testFlag":"1"}`},
			{"releaseInstance", "C4E5F264C92F737DEBECB8D27D84684F38BF01D2917880202B59027CEEFC4932", "1680509885590", "A49E8F86EE5BCAFBDFD3E53F1E09A29C6D9E8DACC67382EBCDD02CD55CBBB7AE",
				`{"activity":"releaseInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
			{"upgradeInstance", "9D49F9BF09D69F7A98B847978D6091A9ADF3B40E07AF95FEE9E5BEF5218DA407", "1680510876429", "D8FE86FA6ABE90CA63A72B3256743D3D869648FE99A96354E635F032629F6C21",
				`{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}`},
			{"changeInstanceCheck (upgrade triple re-used)", "9D49F9BF09D69F7A98B847978D6091A9ADF3B40E07AF95FEE9E5BEF5218DA407", "1680510876429", "D8FE86FA6ABE90CA63A72B3256743D3D869648FE99A96354E635F032629F6C21",
				`{"activity":"changeInstanceCheck","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","productInfo":{"productId":"p","skuCode":"s","productName":"n"},"testFlag":"1"}`},
			{"orderNotify", "31BACBD867C7652D7581E8577A46D8FE778F3BC02553C4F130170613CD8C32F9", "1729566664115", "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
				`{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
			{"lower-case placeholder signature", "af71c5a7ef45310b8dc05ab15f7da50189ffa81a95cc284379ebaa5eb61155c0", "1716363778801", "RLLUammMSInlrNWb",
				`{"activity":"newInstance","buyerInfo":{"customerId":"c"},"orderInfo":{"orderId":"o"},"testFlag":"1"}`},
		}
		for _, ex := range examples {
			t.Run(ex.name, func(t *testing.T) {
				ts, _ := strconv.ParseInt(ex.ts, 10, 64)
				clock.set(ts) // inside the window: the signature is what fails
				for _, path := range []string{pathMain, pathPlain, pathRotate} {
					m := h.expect(t, "000001", []byte(ex.body), withPath(path), withRawQuery(vecQuery(ex.sig, ex.ts, ex.nonce)))
					if strings.Contains(msgOf(m), "nonce") {
						t.Errorf("%s: failed as a replay (%q), want a signature mismatch", path, msgOf(m))
					}
				}
			})
		}
	})
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	dbg := func() obj { return debug(newInstanceBody(uid("CS"), uid("line"), uid("biz"))) }

	t.Run("a request signed as KooGallery does is accepted", func(t *testing.T) {
		b := dbg()
		m := h.expect(t, "000000", b)
		if got := strOf(m, "instanceId"); got != b["businessId"] {
			t.Errorf("instanceId = %q, want %q", got, b["businessId"])
		}
	})

	t.Run("lower-case signature hex is accepted", func(t *testing.T) {
		h.expect(t, "000000", dbg(), withQuery(func(q url.Values) { q.Set("signature", strings.ToLower(q.Get("signature"))) }))
	})

	t.Run("other query parameters and the request Content-Type are ignored", func(t *testing.T) {
		h.expect(t, "000000", dbg(), withQuery(func(q url.Values) {
			q.Set("contentType", "application/json")
			q.Set("foo", "bar")
		}), withHeader("Content-Type", "text/plain"))
	})

	t.Run("nonce replay is 000001", func(t *testing.T) {
		n := koogallery.NewNonce()
		b := dbg()
		h.expect(t, "000000", b, withNonce(n))
		h.expect(t, "000001", b, withNonce(n))
		// Another body with the same nonce is a replay too.
		h.expect(t, "000001", dbg(), withNonce(n))
	})

	t.Run("a replay of a real request changes nothing", func(t *testing.T) {
		n := koogallery.NewNonce()
		order, line, biz := uid("CS"), uid("line"), uid("biz")
		h.expectOneOf(t, []string{"000000", "000004"}, newInstanceBody(order, line, biz), withNonce(n))
		before := len(h.instanceEvents(t, biz))
		h.expect(t, "000001", newInstanceBody(order, line, biz), withNonce(n))
		if after := len(h.instanceEvents(t, biz)); after < before {
			t.Errorf("events went from %d to %d", before, after)
		}
	})

	t.Run("tampering is 000001", func(t *testing.T) {
		cases := map[string]mutator{
			"body value changed": tampered(func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"newInstance"`), []byte(`"newInstancf"`), 1)
			}),
			"member added": tampered(func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{`), []byte(`{"extra":"x",`), 1)
			}),
			"nonce changed": withQuery(func(q url.Values) { q.Set("nonce", koogallery.NewNonce()) }),
			"timestamp changed": withQuery(func(q url.Values) {
				ts, _ := strconv.ParseInt(q.Get("timestamp"), 10, 64)
				q.Set("timestamp", strconv.FormatInt(ts-1, 10))
			}),
			"signature truncated":  withQuery(func(q url.Values) { q.Set("signature", q.Get("signature")[:63]) }),
			"signature not hex":    withQuery(func(q url.Values) { q.Set("signature", strings.Repeat("Z", 64)) }),
			"wrong key":            withKey("WRONG-KEY-0000000000000000"),
			"key of another route": withKey(keyAES128),
		}
		for name, mut := range cases {
			t.Run(name, func(t *testing.T) {
				h.expect(t, "000001", dbg(), mut)
			})
		}
	})

	t.Run("a failed authentication does not burn the nonce", func(t *testing.T) {
		n := koogallery.NewNonce()
		b := dbg()
		h.expect(t, "000001", b, withNonce(n), withKey("FORGED-KEY-000000000000000"))
		h.expect(t, "000001", b, withNonce(n), tampered(func(b []byte) []byte { return append(b[:len(b)-1], []byte(`,"x":"y"}`)...) }))
		h.expect(t, "000000", b, withNonce(n))
		h.expect(t, "000001", b, withNonce(n))
	})

	t.Run("key rotation: the second key is accepted and signs the answer", func(t *testing.T) {
		r, err := h.do(debug(newInstanceBody(uid("CS"), uid("line"), uid("biz"))), withPath(pathRotate), withKey(keyRotateNew))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.check(r); err != nil {
			t.Fatal(err)
		}
		if codeOf(r.m) != "000000" {
			t.Fatalf("resultCode %s, want 000000: %s", codeOf(r.m), r.raw)
		}
		sign := r.hdr.Get(koogallery.BodySignHeader)
		if err := koogallery.VerifyBodySign([]byte(keyRotateNew), r.raw, sign); err != nil {
			t.Errorf("answer not signed with the second key: %v", err)
		}
		if err := koogallery.VerifyBodySign([]byte(keyRotateOld), r.raw, sign); err == nil {
			t.Errorf("answer to a request signed with the second key is signed with the first key")
		}
		// The first key keeps working and signs its own answers.
		h.expect(t, "000000", debug(newInstanceBody(uid("CS"), uid("line"), uid("biz"))), withPath(pathRotate), withKey(keyRotateOld))
		// A key of neither is refused, answered with the primary key.
		h.expect(t, "000001", debug(newInstanceBody(uid("CS"), uid("line"), uid("biz"))), withPath(pathRotate), withKey(keyMain), answeredWith(keyRotateOld))
	})

	t.Run("base64-marked key: the decoded key signs, the console text does not", func(t *testing.T) {
		h.expect(t, "000000", dbg(), withPath(pathB64), withKey(keyB64Plain))
		h.expect(t, "000001", dbg(), withPath(pathB64), withKeyBytes([]byte(h.keysText(pathB64))), answeredWith(keyB64Plain))
	})

	t.Run("timestamp window", func(t *testing.T) {
		for name, c := range map[string]struct {
			off  time.Duration
			code string
		}{
			"stale by 2 minutes":     {-2 * time.Minute, "000001"},
			"future by 2 minutes":    {2 * time.Minute, "000001"},
			"stale by an hour":       {-time.Hour, "000001"},
			"30 s old is accepted":   {-30 * time.Second, "000000"},
			"30 s ahead is accepted": {30 * time.Second, "000000"},
		} {
			t.Run(name, func(t *testing.T) {
				h.expect(t, c.code, dbg(), withTime(time.Now().Add(c.off)))
			})
		}
	})

	t.Run("a timestamp in seconds is accepted", func(t *testing.T) {
		var sent string
		h.expect(t, "000000", dbg(), signedWith(secondsSigner), withQuery(func(q url.Values) { sent = q.Get("timestamp") }))
		if len(sent) != 10 {
			t.Fatalf("test bug: sent timestamp %q is not in seconds", sent)
		}
		h.expect(t, "000001", dbg(), signedWith(secondsSigner), withTime(time.Now().Add(-5*time.Minute)))
	})

	t.Run("timestamp missing or not a decimal integer is 000002 naming timestamp", func(t *testing.T) {
		for name, v := range map[string]*string{
			"missing": nil, "empty": ptr(""), "letters": ptr("abc"), "decimal point": ptr("1680508066.618"),
			"negative": ptr("-1680508066618"), "leading space": ptr(" 1680508066618"), "hex": ptr("0x187"),
			"out of int64 range": ptr("99999999999999999999999"),
		} {
			t.Run(name, func(t *testing.T) {
				h.invalid(t, "timestamp", dbg(), withQuery(func(q url.Values) {
					if v == nil {
						q.Del("timestamp")
					} else {
						q.Set("timestamp", *v)
					}
				}))
			})
		}
	})

	t.Run("nonce missing is 000002 naming nonce", func(t *testing.T) {
		h.invalid(t, "nonce", dbg(), withQuery(func(q url.Values) { q.Del("nonce") }))
		h.invalid(t, "nonce", dbg(), withQuery(func(q url.Values) { q.Set("nonce", "") }))
	})

	t.Run("signature missing is 000001", func(t *testing.T) {
		h.expect(t, "000001", dbg(), withQuery(func(q url.Values) { q.Del("signature") }))
		h.expect(t, "000001", dbg(), withQuery(func(q url.Values) { q.Set("signature", "") }))
	})

	t.Run("body not a JSON object is 000002", func(t *testing.T) {
		for name, b := range map[string]string{
			"text": "not json", "array": `[{"activity":"newInstance"}]`, "string": `"newInstance"`,
			"truncated": `{"activity":"newInstance"`, "empty": "", "two objects": `{"a":"b"}{"c":"d"}`,
			"null": "null",
		} {
			t.Run(name, func(t *testing.T) {
				h.invalid(t, "body", []byte(b))
			})
		}
	})

	t.Run("validation order of auth.md §2.5", func(t *testing.T) {
		stale := withTime(time.Now().Add(-time.Hour))
		noNonce := withQuery(func(q url.Values) { q.Del("nonce") })
		noSig := withQuery(func(q url.Values) { q.Del("signature") })
		noTS := withQuery(func(q url.Values) { q.Del("timestamp") })
		h.invalid(t, "timestamp", []byte("not json"), noTS, noNonce, noSig)            // step 1 first
		h.expect(t, "000001", []byte("not json"), stale, noNonce, noSig)               // step 2 before 3
		h.invalid(t, "nonce", []byte("not json"), noNonce, noSig)                      // step 3 before 4
		h.expect(t, "000001", []byte("not json"), noSig)                               // step 4 before 5
		h.invalid(t, "body", []byte("not json"), withKey("WRONG-KEY-000000000000000")) // step 5 before 6
	})

	t.Run("form d only on a route with AllowPlainSHA256", func(t *testing.T) {
		beforeA, beforeC := formCount(t, h, pathPlain, "d-a"), formCount(t, h, pathPlain, "d-c")
		// Top-level members out of order, so that payload (c) differs from (a).
		unsorted := func() []byte {
			return []byte(`{"testFlag":"1","businessId":"` + uid("biz") + `","activity":"newInstance","orderLineId":"l","orderId":"o"}`)
		}
		for _, f := range []koogallery.Form{koogallery.FormDA, koogallery.FormDB, koogallery.FormDC} {
			h.expect(t, "000001", unsorted(), withForm(f))
		}
		h.expect(t, "000000", unsorted(), withForm(koogallery.FormDA), withPath(pathPlain))
		h.expect(t, "000000", unsorted(), withForm(koogallery.FormDC), withPath(pathPlain))
		if n := formCount(t, h, pathPlain, "d-a"); n != beforeA+1 {
			t.Errorf("d-a on %s = %d, want %d", pathPlain, n, beforeA+1)
		}
		if n := formCount(t, h, pathPlain, "d-c"); n != beforeC+1 {
			t.Errorf("d-c on %s = %d, want %d", pathPlain, n, beforeC+1)
		}
		for _, f := range []string{"d-a", "d-b", "d-c"} {
			if n := formCount(t, h, pathMain, f); n != 0 {
				t.Errorf("%s recorded on %s (switch off): %d", f, pathMain, n)
			}
		}
	})

	t.Run("the metric exposes the matched form", func(t *testing.T) {
		before := map[string]int{}
		for _, f := range []string{"a", "b", "c"} {
			before[f] = formCount(t, h, pathMain, f)
		}
		id := uid("i")
		// All forms agree on a sorted, compact, string-only body: a wins.
		h.expect(t, "000000", dbg(), withForm(koogallery.FormB))
		// A nested object out of order: only (b) sorts it.
		nested := []byte(`{"activity":"changeInstanceCheck","instanceId":"` + id + `","productInfo":{"skuCode":"s","productName":"n","productId":"p"},"testFlag":"1"}`)
		h.expect(t, "000000", nested, withForm(koogallery.FormB))
		// Top-level members out of order: only (c) keeps the received order.
		unsorted := []byte(`{"testFlag":"1","activity":"queryInstance","instanceId":"` + id + `"}`)
		h.expect(t, "000000", unsorted, withForm(koogallery.FormC))
		for f, want := range map[string]int{"a": before["a"] + 1, "b": before["b"] + 1, "c": before["c"] + 1} {
			if n := formCount(t, h, pathMain, f); n != want {
				t.Errorf(`gallerist_signature_form_total{form=%q,route=%q} = %d, want %d`, f, pathMain, n, want)
			}
		}
	})
}

func TestRequestMetrics(t *testing.T) {
	h := newHarness(t)
	count := func(activity, code, debug string) int {
		t.Helper()
		_, text := h.get(t, "/metrics")
		re := regexp.MustCompile(`(?m)^gallerist_requests_total\{activity="` + activity + `",code="` + code +
			`",debug="` + debug + `",route="` + regexp.QuoteMeta(pathMain) + `"\} ([0-9]+)$`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	h.expect(t, "000000", debug(queryBody(uid("q"))))
	h.expect(t, "000000", debug(queryBody(uid("q"))))
	h.expect(t, "000003", queryBody(uid("q")))
	if n := count("queryInstance", "000000", "1"); n != 2 {
		t.Errorf("debug queryInstance 000000 counted %d times, want 2", n)
	}
	if n := count("queryInstance", "000003", "0"); n != 1 {
		t.Errorf("real queryInstance 000003 counted %d times, want 1", n)
	}
	if n := count("queryInstance", "000000", "0"); n != 0 {
		t.Errorf("debug requests counted as real: %d", n)
	}
}

func ptr[T any](v T) *T { return &v }

// keysText returns the configured (console) text of a route's primary key.
func (h *harness) keysText(path string) string {
	for _, r := range h.routes {
		if r.Path == path {
			return r.Keys[0].Value
		}
	}
	return ""
}
