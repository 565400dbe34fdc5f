package koogallery_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

var fuzzBodies = []string{
	v2Body,
	nestedBody,
	bodySign1,
	bodySign2,
	`{"activity":"getLicenseAsync","eventId":"8****e5694*****c8","instanceId":"RA2****4LVS","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","deviceFingerprint":"8******6034e2*****60e1"}`,
	`{ "z": 1.50, "y": true, "x": null, "w": -0, "v": 1E5, "u": {"n": null, "m": 2.0, "l": false} }`,
	`{"k":"a/b<c>&d\/e\u4e2d文\"\\","n":{"s":"\u003c\/x\u003e"}}`,
	`{"Ａ":"1","😀":"2","b":"3","B":"4"}`,
	`{"a":"1","a":"2","n":{"x":1,"x":2}}`,
	"{\"k\":\"a\xffb\",\"n\":[\"\xfe\"]}",
	`{"s":"\ud800","t":"\udc00\ud800x"}`,
	`{}`, `[]`, `null`, `{`, ``,
}

// FuzzCanonicalPayload: never panics; the three forms agree on validity;
// (c) is valid JSON equal in value to the input; (a) and (b) are valid UTF-8
// JSON with the documented shape; every form is idempotent.
func FuzzCanonicalPayload(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, errA := koogallery.CanonicalPayload(body, koogallery.FormA)
		b, errB := koogallery.CanonicalPayload(body, koogallery.FormB)
		c, errC := koogallery.CanonicalPayload(body, koogallery.FormC)
		if (errA == nil) != (errB == nil) || (errA == nil) != (errC == nil) {
			t.Fatalf("forms disagree on validity: a=%v b=%v c=%v", errA, errB, errC)
		}
		if errA != nil {
			for _, err := range []error{errA, errB, errC} {
				if koogallery.CodeOf(err) != koogallery.CodeInvalidParam {
					t.Fatalf("error code %s: %v", koogallery.CodeOf(err), err)
				}
			}
			return
		}
		in := decodeAny(t, body)
		// (c): same value as the input.
		if !json.Valid(c) || !reflect.DeepEqual(decodeAny(t, c), in) {
			t.Fatalf("form c %q is not the input %q", c, body)
		}
		// (b): same value as the input without top-level nulls.
		inObj := in.(map[string]any)
		noNulls := map[string]any{}
		for k, v := range inObj {
			if v != nil {
				noNulls[k] = v
			}
		}
		if !utf8.Valid(b) || !reflect.DeepEqual(decodeAny(t, b), any(noNulls)) {
			t.Fatalf("form b %q is not the input %q without nulls", b, body)
		}
		// (a): top-level scalars become strings holding their literal text;
		// nested values are the same values.
		if !utf8.Valid(a) {
			t.Fatalf("form a %q is not UTF-8", a)
		}
		aObj, ok := decodeAny(t, a).(map[string]any)
		if !ok || len(aObj) != len(noNulls) {
			t.Fatalf("form a %q does not have the input's members", a)
		}
		for k, v := range noNulls {
			switch v := v.(type) {
			case json.Number:
				if aObj[k] != string(v) {
					t.Fatalf("member %q: %v, want %q", k, aObj[k], v)
				}
			case bool:
				if aObj[k] != map[bool]string{true: "true", false: "false"}[v] {
					t.Fatalf("member %q: %v, want %v", k, aObj[k], v)
				}
			default:
				if !reflect.DeepEqual(aObj[k], v) {
					t.Fatalf("member %q: %v, want %v", k, aObj[k], v)
				}
			}
		}
		// Idempotence.
		for _, p := range []struct {
			f   koogallery.Form
			out []byte
		}{{koogallery.FormA, a}, {koogallery.FormB, b}, {koogallery.FormC, c}} {
			again, err := koogallery.CanonicalPayload(p.out, p.f)
			if err != nil || !bytes.Equal(again, p.out) {
				t.Fatalf("form %s not idempotent: %q -> %q (%v)", p.f, p.out, again, err)
			}
		}
	})
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// FuzzV2Verify: never panics, answers only 000001/000002, accepts a
// signature only if it is the correct one for the reported form and key,
// and accepts the correct form-(a) signature of any valid body.
func FuzzV2Verify(f *testing.F) {
	f.Add([]byte(v2Body), strings.ToUpper(v2Signature), v2Timestamp, v2Nonce, false)
	f.Add([]byte(v2Body), v2SigDA, v2Timestamp, v2Nonce, true)
	f.Add([]byte(nestedBody), "07844b492fd2e6a7923416281d63904adc5d240c03b15654ad0e250e1324b933", v2Timestamp, v2Nonce, true)
	f.Add([]byte(nestedBody), "2d06e131f76cf5d32b3da3eb3e3bf1f85d47ab5f87b4f229f32e47ff188b2f40", "1680508066", v2Nonce, false)
	f.Add([]byte(`{"activity":"queryInstance"}`), "9C61F188C3C2889C2DD201B00E42041BDCE4751F31E35805DE412969F0A7829C", "1680508237508", "9FB42E04DF4594B1FAA50B304E647AD7154AB9B4F144A65F1168886540A8B24C", false)
	f.Add([]byte(`[]`), "", "x", "", false)
	f.Fuzz(func(t *testing.T, body []byte, sig, ts, nonce string, plain bool) {
		now := v2Time
		if parsed, err := koogallery.ParseV2Timestamp(ts); err == nil {
			now = parsed // reach the later steps
		}
		keys := [][]byte{key(), []byte("SECOND-KEY")}
		v := &koogallery.V2Verifier{Keys: keys, AllowPlainSHA256: plain, Now: fixedClock(now)}
		q := url.Values{"signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
		res, err := v.Verify(q, body)
		if err != nil {
			if c := koogallery.CodeOf(err); c != koogallery.CodeAuthFailed && c != koogallery.CodeInvalidParam {
				t.Fatalf("code %s: %v", c, err)
			}
		} else {
			if !res.Form.Valid() || (res.Form.PlainSHA256() && !plain) || res.KeyIndex < 0 || res.KeyIndex >= len(keys) {
				t.Fatalf("verified %+v", res)
			}
			payload, perr := koogallery.CanonicalPayload(body, res.Form)
			if perr != nil {
				t.Fatalf("accepted a body without payload: %v", perr)
			}
			want := koogallery.SignV2(keys[res.KeyIndex], nonce, ts, payload)
			if res.Form.PlainSHA256() {
				want = koogallery.SignV2PlainSHA256(keys[res.KeyIndex], nonce, ts, payload)
			}
			if !strings.EqualFold(sig, want) {
				t.Fatalf("accepted signature %q, correct one is %q", sig, want)
			}
		}
		// The correct signature of a valid body is accepted.
		if _, perr := koogallery.CanonicalPayload(body, koogallery.FormA); perr == nil && nonce != "" {
			parsed, terr := koogallery.ParseV2Timestamp(ts)
			if terr != nil {
				return
			}
			payload, _ := koogallery.CanonicalPayload(body, koogallery.FormA)
			good := url.Values{"signature": {koogallery.SignV2(keys[1], nonce, ts, payload)}, "timestamp": {ts}, "nonce": {nonce}}
			v.Now = fixedClock(parsed)
			if res, err := v.Verify(good, body); err != nil || res.KeyIndex != 1 {
				t.Fatalf("correct signature rejected: %+v %v", res, err)
			}
		}
	})
}

// FuzzDecrypt: never panics; whatever decrypts is UTF-8 and re-encrypts to
// something that decrypts to the same text.
func FuzzDecrypt(f *testing.F) {
	f.Add(aesCT128)
	f.Add(aesCT256)
	f.Add(aesIV)
	f.Add("")
	f.Add(aesIV + "AAAA")
	f.Add(aesIV + "qr4VtCpHjkbgVeBS5Zc9VA")
	f.Add("中中中中中中中中中中中中中中中中qr4VtCpHjkbgVeBS5Zc9VA==")
	c128, _ := koogallery.NewCipher(key(), koogallery.EncryptAES128)
	c256, _ := koogallery.NewCipher(key(), koogallery.EncryptAES256)
	f.Fuzz(func(t *testing.T, value string) {
		for _, c := range []*koogallery.Cipher{c128, c256} {
			pt, err := c.Decrypt(value)
			if err != nil {
				continue
			}
			if !utf8.ValidString(pt) {
				t.Fatalf("plaintext %q is not UTF-8", pt)
			}
			again, err := c.EncryptWithIV(pt, value[:koogallery.IVLen])
			if err != nil {
				t.Fatal(err)
			}
			if back, err := c.Decrypt(again); err != nil || back != pt {
				t.Fatalf("re-encryption: %q, %v", back, err)
			}
		}
	})
}

// FuzzAuthTokenQuery: never panics; an accepted query carries the correct
// token under the reported decoding; re-signing any form-decodable query
// makes it verify.
func FuzzAuthTokenQuery(f *testing.F) {
	f.Add(v1Encoded)
	f.Add(strings.Replace(v1Encoded, "Yo8569XTGL32Q9VPKu49b%2BDrHvoZnjykFxfaSLZIw%2FY%3D", v1Token, 1))
	f.Add("activity=refreshInstance&expireTime=20180725000000&instanceId=03pf80c2bae96vc49b80b917bea776d7&orderId=HWS001014ED483AA1E8&timeStamp=20170725025113409&testFlag=1&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=")
	f.Add("a=%zz&timeStamp=1&authToken=x")
	f.Add("timeStamp=1;x=2&authToken=y")
	f.Add("")
	f.Add("\xa0&\x99&timeStamp=7") // found by fuzzing: names that are invalid UTF-8 used to sort non-deterministically
	f.Fuzz(func(t *testing.T, rawQuery string) {
		d, err := koogallery.VerifyAuthTokenQuery(key(), rawQuery)
		if err != nil {
			if c := koogallery.CodeOf(err); c != koogallery.CodeAuthFailed && c != koogallery.CodeInvalidParam {
				t.Fatalf("code %s: %v", c, err)
			}
		} else {
			var q url.Values
			var tok string
			switch d {
			case koogallery.DecodingForm:
				q, _ = url.ParseQuery(rawQuery)
				tok = strings.ReplaceAll(q.Get("authToken"), " ", "+")
			case koogallery.DecodingPercent:
				q = percentDecode(rawQuery)
				tok = q.Get("authToken")
			default:
				t.Fatalf("decoding %q", d)
			}
			if want := koogallery.AuthToken(key(), q.Get("timeStamp"), q); tok != want {
				t.Fatalf("accepted token %q, correct one is %q", tok, want)
			}
		}
		// Round trip: sign whatever form decoding reads, then verify.
		q, perr := url.ParseQuery(rawQuery)
		if perr != nil || q.Get("timeStamp") == "" {
			return
		}
		q.Del("authToken")
		q.Set("authToken", koogallery.AuthToken(key(), q.Get("timeStamp"), q))
		if _, err := koogallery.VerifyAuthTokenQuery(key(), q.Encode()); err != nil {
			t.Fatalf("re-signed query %q rejected: %v", q.Encode(), err)
		}
	})
}

// percentDecode is an independent percent-only decoder for the fuzz check.
func percentDecode(raw string) url.Values {
	q := url.Values{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.PathUnescape(k)
		v, err2 := url.PathUnescape(v)
		if err1 == nil && err2 == nil {
			q[k] = append(q[k], v)
		}
	}
	return q
}
