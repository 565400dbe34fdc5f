package koogallery_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

func v2Query(sig, ts, nonce string) url.Values {
	q := url.Values{}
	if sig != "" {
		q.Set("signature", sig)
	}
	if ts != "" {
		q.Set("timestamp", ts)
	}
	if nonce != "" {
		q.Set("nonce", nonce)
	}
	return q
}

func testVerifier(plain bool) *koogallery.V2Verifier {
	return &koogallery.V2Verifier{Keys: [][]byte{key()}, AllowPlainSHA256: plain, Now: fixedClock(v2Time)}
}

// vectors.md §2: intermediate values.
func TestV2VectorIntermediates(t *testing.T) {
	payload, err := koogallery.CanonicalPayload([]byte(v2Body), koogallery.FormA)
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != v2PayloadA {
		t.Fatalf("payload a:\n got %s\nwant %s", payload, v2PayloadA)
	}
	if got := koogallery.V2Inner(key(), payload); got != v2Inner {
		t.Fatalf("inner = %s, want %s", got, v2Inner)
	}
	if got := koogallery.V2CanonicalRequest(key(), v2Nonce, v2Timestamp, v2Inner); got != v2Canonical {
		t.Fatalf("canonicalRequest = %s, want %s", got, v2Canonical)
	}
	if got := koogallery.SignV2(key(), v2Nonce, v2Timestamp, payload); got != v2Signature {
		t.Fatalf("signature = %s, want %s", got, v2Signature)
	}
	if got := koogallery.V2InnerPlainSHA256(payload); got != v2InnerDA {
		t.Fatalf("d-a inner = %s, want %s", got, v2InnerDA)
	}
	if got := koogallery.SignV2PlainSHA256(key(), v2Nonce, v2Timestamp, payload); got != v2SigDA {
		t.Fatalf("d-a signature = %s, want %s", got, v2SigDA)
	}
}

// vectors.md §2 checks.
func TestV2VectorChecks(t *testing.T) {
	upper := strings.ToUpper(v2Signature)
	// The URL of the vector, parsed as the ingress will parse it.
	u, err := url.Parse("https://www.isvwebsite.com/saasproduce?signature=D7A889127DC8B3776C62C433801317726D73CC49FFF36A9749D941C50474F187&timestamp=1680508066618&nonce=50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA")
	if err != nil {
		t.Fatal(err)
	}
	res, err := testVerifier(false).Verify(u.Query(), []byte(v2Body))
	if err != nil {
		t.Fatalf("vector URL: %v", err)
	}
	want := koogallery.V2Verified{KeyIndex: 0, Form: koogallery.FormA, Timestamp: v2Time.UTC(), Nonce: v2Nonce}
	if res != want {
		t.Fatalf("verified = %+v, want %+v", res, want)
	}
	// Lower-case hex is accepted as well.
	if _, err := testVerifier(false).Verify(v2Query(v2Signature, v2Timestamp, v2Nonce), []byte(v2Body)); err != nil {
		t.Fatalf("lower-case signature: %v", err)
	}

	tests := []struct {
		name  string
		v     *koogallery.V2Verifier
		query url.Values
		body  string
		code  koogallery.Code
		field string
		form  koogallery.Form
	}{
		{"d-a with switch off", testVerifier(false), v2Query(v2SigDA, v2Timestamp, v2Nonce), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"d-a with switch on", testVerifier(true), v2Query(v2SigDA, v2Timestamp, v2Nonce), v2Body, koogallery.CodeSuccess, "", koogallery.FormDA},
		{"missing timestamp", testVerifier(false), v2Query(upper, "", v2Nonce), v2Body, koogallery.CodeInvalidParam, "timestamp", ""},
		{"timestamp not decimal", testVerifier(false), v2Query(upper, "1680508066618x", v2Nonce), v2Body, koogallery.CodeInvalidParam, "timestamp", ""},
		{"negative timestamp", testVerifier(false), v2Query(upper, "-1680508066618", v2Nonce), v2Body, koogallery.CodeInvalidParam, "timestamp", ""},
		{"missing nonce", testVerifier(false), v2Query(upper, v2Timestamp, ""), v2Body, koogallery.CodeInvalidParam, "nonce", ""},
		{"missing signature", testVerifier(false), v2Query("", v2Timestamp, v2Nonce), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"changed body value", testVerifier(false), v2Query(upper, v2Timestamp, v2Nonce), strings.Replace(v2Body, "newInstance", "newInstancf", 1), koogallery.CodeAuthFailed, "", ""},
		{"changed nonce", testVerifier(false), v2Query(upper, v2Timestamp, "0"+v2Nonce[1:]), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"changed timestamp spelling", testVerifier(false), v2Query(upper, "0"+v2Timestamp, v2Nonce), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"signature not hex", testVerifier(false), v2Query(strings.Repeat("Z", 64), v2Timestamp, v2Nonce), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"body not JSON", testVerifier(false), v2Query(upper, v2Timestamp, v2Nonce), `activity=newInstance`, koogallery.CodeInvalidParam, "body", ""},
		{"body a JSON array", testVerifier(false), v2Query(upper, v2Timestamp, v2Nonce), `[` + v2Body + `]`, koogallery.CodeInvalidParam, "body", ""},
		{"body null", testVerifier(false), v2Query(upper, v2Timestamp, v2Nonce), `null`, koogallery.CodeInvalidParam, "body", ""},
		{"body with trailing data", testVerifier(false), v2Query(upper, v2Timestamp, v2Nonce), v2Body + `{}`, koogallery.CodeInvalidParam, "body", ""},
		{"wrong key", &koogallery.V2Verifier{Keys: [][]byte{[]byte("OTHER")}, Now: fixedClock(v2Time)}, v2Query(upper, v2Timestamp, v2Nonce), v2Body, koogallery.CodeAuthFailed, "", ""},
		{"no keys", &koogallery.V2Verifier{Now: fixedClock(v2Time)}, v2Query(upper, v2Timestamp, v2Nonce), v2Body, koogallery.CodeInternal, "", ""},
		// Validation order (auth.md §2.5): earlier steps win.
		{"order: bad timestamp before missing nonce", testVerifier(false), v2Query("", "x", ""), `x`, koogallery.CodeInvalidParam, "timestamp", ""},
		{"order: window before missing nonce", testVerifier(false), v2Query("", "1680508000000", ""), `x`, koogallery.CodeAuthFailed, "", ""},
		{"order: missing nonce before missing signature", testVerifier(false), v2Query("", v2Timestamp, ""), `x`, koogallery.CodeInvalidParam, "nonce", ""},
		{"order: missing signature before bad body", testVerifier(false), v2Query("", v2Timestamp, v2Nonce), `x`, koogallery.CodeAuthFailed, "", ""},
		{"order: bad body before bad signature", testVerifier(false), v2Query("nothex", v2Timestamp, v2Nonce), `x`, koogallery.CodeInvalidParam, "body", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.v.Verify(tc.query, []byte(tc.body))
			wantCode(t, err, tc.code)
			if tc.field != "" {
				wantField(t, err, tc.field)
			}
			if tc.code == koogallery.CodeSuccess && res.Form != tc.form {
				t.Fatalf("form = %q, want %q", res.Form, tc.form)
			}
		})
	}
}

// vectors.md §2: the clock more than 60 s away (either side) is 000001; the
// window edge and a configured window are honoured.
func TestV2Window(t *testing.T) {
	q := v2Query(v2Signature, v2Timestamp, v2Nonce)
	for _, tc := range []struct {
		name   string
		offset time.Duration
		window time.Duration
		code   koogallery.Code
	}{
		{"exactly 60 s later", 60 * time.Second, 0, koogallery.CodeSuccess},
		{"exactly 60 s earlier", -60 * time.Second, 0, koogallery.CodeSuccess},
		{"61 s later", 61 * time.Second, 0, koogallery.CodeAuthFailed},
		{"61 s earlier", -61 * time.Second, 0, koogallery.CodeAuthFailed},
		{"60.001 s later", 60*time.Second + time.Millisecond, 0, koogallery.CodeAuthFailed},
		{"an hour later", time.Hour, 0, koogallery.CodeAuthFailed},
		{"5 min later, window 10 min", 5 * time.Minute, 10 * time.Minute, koogallery.CodeSuccess},
		{"11 s later, window 10 s", 11 * time.Second, 10 * time.Second, koogallery.CodeAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &koogallery.V2Verifier{Keys: [][]byte{key()}, Window: tc.window, Now: fixedClock(v2Time.Add(tc.offset))}
			_, err := v.Verify(q, []byte(v2Body))
			wantCode(t, err, tc.code)
		})
	}
}

// vectors.md §3: every form of the nested body, with its label.
func TestV2NestedForms(t *testing.T) {
	rows := []struct {
		form    koogallery.Form
		payload string
		inner   string
		sig     string
	}{
		{koogallery.FormA, `{"activity":"changeInstanceCheck","instanceId":"i","productInfo":{"skuCode":"s","productId":"p"},"testFlag":"1"}`, "c1059cb49d3a563c0e2731401a46d9599fedb1c5eb4eb81309e579b4fe9664e5", "4812a03ef0a54de1fd7e30baeb0b0ffa362ea55b5ee8e9d7c646272ab0113542"},
		{koogallery.FormB, `{"activity":"changeInstanceCheck","instanceId":"i","productInfo":{"productId":"p","skuCode":"s"},"testFlag":"1"}`, "dbcb73651013d8ea30a594168ddc0f90bd996abc6bf8b7155b5d6096ba5b7e9c", "a7776755f53e7d4e2c4946554d322cd53d29b3cf656b67de7f39fe7e54cc4fe8"},
		{koogallery.FormC, nestedBody, "4c128ac920c89913db4986fc6d8382457e2747471e3880ad5d6cf9a3f1954190", "2d06e131f76cf5d32b3da3eb3e3bf1f85d47ab5f87b4f229f32e47ff188b2f40"},
		{koogallery.FormDA, "", "26546ef7ac4ee5dc507f5f7bccb7aff8ec7a36ae25a4a7de5cfee117a2debebb", "736a60fa4a57a16bbd9df8c81e26f79092043657578529fe2dac0e0fe45023ea"},
		{koogallery.FormDB, "", "38c271ed6accc4c12ae3c2a586a11ca8af6373a4f713c37f95082057965a672d", "07844b492fd2e6a7923416281d63904adc5d240c03b15654ad0e250e1324b933"},
		{koogallery.FormDC, "", "ea9814936342e536c06ad4ef87757bb78a7c6da8a99216b7bd0ac6ba1f2b085c", "31430e03861d154daf19ed0bb2855e36f656249b006824345fd4621db7815bf8"},
	}
	payloads := map[koogallery.Form]string{}
	for _, r := range rows {
		t.Run(string(r.form), func(t *testing.T) {
			p, err := koogallery.CanonicalPayload([]byte(nestedBody), r.form)
			if err != nil {
				t.Fatal(err)
			}
			if r.payload != "" {
				payloads[r.form] = r.payload
				if string(p) != r.payload {
					t.Fatalf("payload:\n got %s\nwant %s", p, r.payload)
				}
			} else if want := payloads[r.form.Payload()]; string(p) != want {
				t.Fatalf("payload of %s = %s, want payload of %s %s", r.form, p, r.form.Payload(), want)
			}
			var inner, sig string
			if r.form.PlainSHA256() {
				inner = koogallery.V2InnerPlainSHA256(p)
				sig = koogallery.SignV2PlainSHA256(key(), v2Nonce, v2Timestamp, p)
			} else {
				inner = koogallery.V2Inner(key(), p)
				sig = koogallery.SignV2(key(), v2Nonce, v2Timestamp, p)
			}
			if inner != r.inner {
				t.Fatalf("inner = %s, want %s", inner, r.inner)
			}
			if sig != r.sig {
				t.Fatalf("signature = %s, want %s", sig, r.sig)
			}
			for _, plain := range []bool{false, true} {
				for _, s := range []string{r.sig, strings.ToUpper(r.sig)} {
					res, err := testVerifier(plain).Verify(v2Query(s, v2Timestamp, v2Nonce), []byte(nestedBody))
					if r.form.PlainSHA256() && !plain {
						wantCode(t, err, koogallery.CodeAuthFailed)
						continue
					}
					if err != nil {
						t.Fatalf("plain=%v: %v", plain, err)
					}
					if res.Form != r.form {
						t.Fatalf("plain=%v: form = %q, want %q", plain, res.Form, r.form)
					}
				}
			}
		})
	}
}

// A rotated key in second position is accepted and reported as KeyIndex 1.
func TestV2RotatedKey(t *testing.T) {
	v := &koogallery.V2Verifier{Keys: [][]byte{[]byte("NEW-KEY-AFTER-ROTATION"), key()}, Now: fixedClock(v2Time)}
	res, err := v.Verify(v2Query(v2Signature, v2Timestamp, v2Nonce), []byte(v2Body))
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyIndex != 1 || res.Form != koogallery.FormA {
		t.Fatalf("verified = %+v, want KeyIndex 1, form a", res)
	}
	// Signed with the new key: KeyIndex 0.
	q := koogallery.SignV2Request([]byte("NEW-KEY-AFTER-ROTATION"), []byte(v2Body), v2Time, v2Nonce)
	res, err = v.Verify(q, []byte(v2Body))
	if err != nil || res.KeyIndex != 0 {
		t.Fatalf("new key: %+v, %v", res, err)
	}
	// Many keys (more than the verifier's inline MAC array).
	many := [][]byte{[]byte("k0"), []byte("k1"), []byte("k2"), []byte("k3"), []byte("k4"), key()}
	v = &koogallery.V2Verifier{Keys: many, Now: fixedClock(v2Time)}
	if res, err = v.Verify(v2Query(v2Signature, v2Timestamp, v2Nonce), []byte(v2Body)); err != nil || res.KeyIndex != 5 {
		t.Fatalf("six keys: %+v, %v", res, err)
	}
}

// Seconds and milliseconds timestamps (auth.md §2.4).
func TestV2TimestampUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1680508066618", time.UnixMilli(1680508066618), true},
		{"1680508066", time.Unix(1680508066, 0), true},
		{"999999999999", time.Unix(999999999999, 0), true},
		{"1000000000000", time.UnixMilli(1000000000000), true},
		{"0", time.Unix(0, 0), true},
		{"01680508066618", time.UnixMilli(1680508066618), true},
		{"", time.Time{}, false},
		{"+1680508066", time.Time{}, false},
		{"1680508066.5", time.Time{}, false},
		{" 1680508066", time.Time{}, false},
		{"99999999999999999999", time.Time{}, false},
		{"１２３", time.Time{}, false},
	} {
		got, err := koogallery.ParseV2Timestamp(tc.in)
		if !tc.ok {
			wantField(t, err, "timestamp")
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseV2Timestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}

	// A request signed with a seconds timestamp verifies, and the signature
	// covers the literal text.
	tsSec := "1680508066"
	payload, _ := koogallery.CanonicalPayload([]byte(v2Body), koogallery.FormA)
	sig := koogallery.SignV2(key(), v2Nonce, tsSec, payload)
	res, err := testVerifier(false).Verify(v2Query(sig, tsSec, v2Nonce), []byte(v2Body))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Timestamp.Equal(time.Unix(1680508066, 0)) {
		t.Fatalf("timestamp = %v", res.Timestamp)
	}
	// The same instant in milliseconds is a different signed text.
	_, err = testVerifier(false).Verify(v2Query(sig, "1680508066000", v2Nonce), []byte(v2Body))
	wantCode(t, err, koogallery.CodeAuthFailed)
	// A seconds value read as milliseconds would be in 1970: outside the window.
	if got, _ := koogallery.ParseV2Timestamp(tsSec); got.Year() != 2023 {
		t.Fatalf("seconds timestamp parsed to %v", got)
	}
}

// SignV2Request produces what the vectors show, and NewNonce has the
// documented shape.
func TestSignV2Request(t *testing.T) {
	q := koogallery.SignV2Request(key(), []byte(v2Body), v2Time, v2Nonce)
	if got, want := q.Get("signature"), strings.ToUpper(v2Signature); got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
	if q.Get("timestamp") != v2Timestamp || q.Get("nonce") != v2Nonce {
		t.Fatalf("query = %v", q)
	}
	for _, f := range []koogallery.Form{koogallery.FormA, koogallery.FormB, koogallery.FormC, koogallery.FormDA, koogallery.FormDB, koogallery.FormDC} {
		q, err := koogallery.SignV2RequestForm(key(), []byte(nestedBody), v2Time, v2Nonce, f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := testVerifier(true).Verify(q, []byte(nestedBody))
		if err != nil || res.Form != f {
			t.Fatalf("form %s: %+v, %v", f, res, err)
		}
	}
	if _, err := koogallery.SignV2RequestForm(key(), []byte(nestedBody), v2Time, v2Nonce, "z"); err == nil {
		t.Fatal("unknown form accepted")
	}
	// A non-object body is still signed (over its raw bytes) and is then
	// rejected at step 5.
	q = koogallery.SignV2Request(key(), []byte(`[1]`), v2Time, v2Nonce)
	if len(q.Get("signature")) != 64 {
		t.Fatalf("signature of non-object body = %q", q.Get("signature"))
	}
	_, err := testVerifier(false).Verify(q, []byte(`[1]`))
	wantField(t, err, "body")

	seen := map[string]bool{}
	for range 100 {
		n := koogallery.NewNonce()
		if len(n) != 64 || strings.ToUpper(n) != n || strings.Trim(n, "0123456789ABCDEF") != "" {
			t.Fatalf("nonce %q has the wrong shape", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[n] = true
	}
}

// Verify does no replay check (step 7 is the caller's): the same request
// verifies twice with the same result.
func TestV2VerifyIsStateless(t *testing.T) {
	v := testVerifier(false)
	q := v2Query(v2Signature, v2Timestamp, v2Nonce)
	r1, err1 := v.Verify(q, []byte(v2Body))
	r2, err2 := v.Verify(q, []byte(v2Body))
	if err1 != nil || err2 != nil || r1 != r2 {
		t.Fatalf("%+v %v / %+v %v", r1, err1, r2, err2)
	}
}

// vectors.md §11.1 (and §11.2): the documented example requests are 000001
// with the test key.
func TestV2DocumentedExamplesFail(t *testing.T) {
	rows := []struct{ sig, ts, nonce, body string }{
		{"11C4CD6279191DE931DEF5C51531DFFA9D37969F4E356B8A3A6D8DE4FB357A48", "1680508066618", "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA", `{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
		{"11C4CD6279191DE931DEF5C51531DFFA9D37969F4E356B8A3A6D8DE4FB357A48", "1680508066618", "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA", `{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}`},
		{"9C61F188C3C2889C2DD201B00E42041BDCE4751F31E35805DE412969F0A7829C", "1680508237508", "9FB42E04DF4594B1FAA50B304E647AD7154AB9B4F144A65F1168886540A8B24C", `{"activity":"queryInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","testFlag":"1"}`},
		{"3F6E6652B7BE26B27ABFC3D11214D04BFD8D2CF8AC21603D85620174FE8DE062", "1680509496350", "8BF8496A350E37BDB0E8956D39D433ED417C3FC9459DCFFE7F03BFBF69B12085", `{"activity":"refreshInstance","expireTime":"20221124023618256","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","productId":"OFFI461867333479178240","scene":"RENEWAL","testFlag":"1"}`},
		{"95DD9FA6A8C660C9C7F9CFDE97C42535290919BCA3F78B9A254428A692CDF26E", "1680509558159", "9F26B85CAEB3A8439221BA293E9250BC5EA689225B523C291EA75CC76B469510", `{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"FREEZE","testFlag":"1"}`},
		{"C4E5F264C92F737DEBECB8D27D84684F38BF01D2917880202B59027CEEFC4932", "1680509885590", "A49E8F86EE5BCAFBDFD3E53F1E09A29C6D9E8DACC67382EBCDD02CD55CBBB7AE", `{"activity":"releaseInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
		{"9D49F9BF09D69F7A98B847978D6091A9ADF3B40E07AF95FEE9E5BEF5218DA407", "1680510876429", "D8FE86FA6ABE90CA63A72B3256743D3D869648FE99A96354E635F032629F6C21", `{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}`},
		{"31BACBD867C7652D7581E8577A46D8FE778F3BC02553C4F130170613CD8C32F9", "1729566664115", "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6", `{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`},
		{"11C4C*********31DEF5C515*******B8A3A6D8******7A48", "1680508066618", "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA", `{"activity":"getLicenseAsync","eventId":"8****e5694*****c8","instanceId":"RA2****4LVS","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","deviceFingerprint":"8******6034e2*****60e1"}`},
		{"af71c5a7ef45310b8dc05ab15f7da50189ffa81a95cc284379ebaa5eb61155c0", "1716363778801", "RLLUammMSInlrNWb", `{"activity":"newInstance","buyerInfo":{"customerId":"x"},"orderInfo":{"orderId":"y"},"testFlag":"1"}`},
		// §11.2 License B (masked).
		{"af71******a50189ffa81a95cc284379ebaa5eb61155c0", "1666677988730", "RLLUammMSInlrNWb", `{"activity":"refreshLicenseCode","expireTime":"20230523201932","license":"******","orderId":"******","orderLineId":"******","productId":"******","scene":"RENEWAL","testFlag":"1"}`},
		{"af71******a50189ffa81a95cc284379ebaa5eb61155c0", "1666677988730", "RLLUammMSInlrNWb", `{"activity":"updateLicenseCodeStatus","license":"******","status":"FREEZE","testFlag":"1"}`},
		{"af71******a50189ffa81a95cc284379ebaa5eb61155c0", "1666677988730", "RLLUammMSInlrNWb", `{"activity":"releaseLicenseCode","license":"*******","orderId":"******","orderLineId":"******","testFlag":"1"}`},
	}
	for _, r := range rows {
		ts, err := koogallery.ParseV2Timestamp(r.ts)
		if err != nil {
			t.Fatal(err)
		}
		v := &koogallery.V2Verifier{Keys: [][]byte{key()}, AllowPlainSHA256: true, Now: fixedClock(ts)}
		_, err = v.Verify(v2Query(r.sig, r.ts, r.nonce), []byte(r.body))
		wantCode(t, err, koogallery.CodeAuthFailed)
	}
}
