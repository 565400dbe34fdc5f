package koogallery_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

var trickyStrings = []string{"", "中文", "开通成功", "😀", "<a href=\"x\">&amp;</a>", "/path\\to", "\x00\x01\x1f\x7f", "\u2028\u2029", "\t\n\r\b\f", "Ａ", "é"}

// genString draws strings including non-ASCII, escapes and control
// characters.
func genString() *rapid.Generator[string] {
	return rapid.OneOf(rapid.String(), rapid.SampledFrom(trickyStrings), rapid.StringMatching(`[a-zA-Z0-9 <>&/"\\中😀-]{0,12}`))
}

// genNumber draws JSON number literals, including ones whose text differs
// from their shortest float form.
func genNumber() *rapid.Generator[json.Number] {
	return rapid.OneOf(
		rapid.Map(rapid.Int64(), func(i int64) json.Number { return json.Number(strconv.FormatInt(i, 10)) }),
		rapid.Map(rapid.Float64Range(-1e9, 1e9), func(f float64) json.Number { return json.Number(strconv.FormatFloat(f, 'g', -1, 64)) }),
		rapid.SampledFrom([]json.Number{"1.50", "-0", "1E5", "0.0", "1e-7", "12345678901234567890"}),
	)
}

// genValue draws a JSON value (strings, numbers, booleans, nulls, nested
// objects and arrays) up to depth levels deep.
func genValue(depth int) *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		max := 3
		if depth > 0 {
			max = 5
		}
		switch rapid.IntRange(0, max).Draw(t, "kind") {
		case 0:
			return genString().Draw(t, "string")
		case 1:
			return genNumber().Draw(t, "number")
		case 2:
			return rapid.Bool().Draw(t, "bool")
		case 3:
			return nil
		case 4:
			return genObject(depth-1).Draw(t, "object")
		default:
			return rapid.SliceOfN(genValue(depth-1), 0, 4).Draw(t, "array")
		}
	})
}

func genObject(depth int) *rapid.Generator[map[string]any] {
	return rapid.MapOfN(genString(), genValue(depth), 0, 6)
}

// marshalBody serialises an object as a sender might: compact or indented,
// with or without HTML escaping.
func marshalBody(t *rapid.T, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(rapid.Bool().Draw(t, "escapeHTML"))
	if rapid.Bool().Draw(t, "indent") {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return buf.Bytes()
}

func TestPropertyV2RoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		obj := genObject(3).Draw(t, "body")
		body := marshalBody(t, obj)
		k := rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "key")
		ts := time.UnixMilli(rapid.Int64Range(1e12, 4e12).Draw(t, "ts"))
		nonce := koogallery.NewNonce()
		q := koogallery.SignV2Request(k, body, ts, nonce)
		v := &koogallery.V2Verifier{Keys: [][]byte{k}, Now: fixedClock(ts)}
		res, err := v.Verify(q, body)
		if err != nil {
			t.Fatalf("Verify: %v\nbody %s", err, body)
		}
		if res.Form != koogallery.FormA || res.KeyIndex != 0 || res.Nonce != nonce || !res.Timestamp.Equal(ts) {
			t.Fatalf("verified %+v", res)
		}
		// Any canonical form the signer might use also verifies, labelled.
		f := rapid.SampledFrom([]koogallery.Form{koogallery.FormB, koogallery.FormC, koogallery.FormDA, koogallery.FormDB, koogallery.FormDC}).Draw(t, "form")
		q, err = koogallery.SignV2RequestForm(k, body, ts, nonce, f)
		if err != nil {
			t.Fatal(err)
		}
		v.AllowPlainSHA256 = true
		res, err = v.Verify(q, body)
		if err != nil {
			t.Fatalf("Verify form %s: %v", f, err)
		}
		// Forms coincide on some bodies; the first matching one is reported.
		if res.Form != f {
			pf, _ := koogallery.CanonicalPayload(body, f)
			pr, _ := koogallery.CanonicalPayload(body, res.Form)
			if !bytes.Equal(pf, pr) || f.PlainSHA256() != res.Form.PlainSHA256() {
				t.Fatalf("signed as %s, verified as %s with a different payload", f, res.Form)
			}
		}
	})
}

func TestPropertySingleByteChangeFails(t *testing.T) {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	rapid.Check(t, func(t *rapid.T) {
		obj := genObject(2).Draw(t, "body")
		target := rapid.StringMatching(`[A-Za-z0-9]{1,16}`).Draw(t, "target")
		nested := rapid.Bool().Draw(t, "nested")
		set := func(s string) map[string]any {
			m := make(map[string]any, len(obj)+1)
			for k, v := range obj {
				m[k] = v
			}
			if nested {
				m["~nest"] = map[string]any{"target": s, "other": "x"}
			} else {
				m["~target"] = s
			}
			return m
		}
		i := rapid.IntRange(0, len(target)-1).Draw(t, "index")
		c := rapid.SampledFrom([]byte(alnum)).Filter(func(c byte) bool { return c != target[i] }).Draw(t, "char")
		changed := target[:i] + string(c) + target[i+1:]

		body, _ := json.Marshal(set(target))
		body2, _ := json.Marshal(set(changed))
		if len(body) != len(body2) {
			t.Fatalf("not a single-byte change")
		}
		diff := 0
		for j := range body {
			if body[j] != body2[j] {
				diff++
			}
		}
		if diff != 1 {
			t.Fatalf("%d bytes differ", diff)
		}
		ts := time.UnixMilli(1680508066618)
		q := koogallery.SignV2Request(key(), body, ts, v2Nonce)
		v := &koogallery.V2Verifier{Keys: [][]byte{key()}, AllowPlainSHA256: true, Now: fixedClock(ts)}
		if _, err := v.Verify(q, body); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, err := v.Verify(q, body2)
		if koogallery.CodeOf(err) != koogallery.CodeAuthFailed {
			t.Fatalf("changed body: code %s (%v)", koogallery.CodeOf(err), err)
		}
	})
}

func TestPropertyAESRoundTrip(t *testing.T) {
	c128, _ := koogallery.NewCipher(key(), koogallery.EncryptAES128)
	c256, _ := koogallery.NewCipher(key(), koogallery.EncryptAES256)
	rapid.Check(t, func(t *rapid.T) {
		c := rapid.SampledFrom([]*koogallery.Cipher{c128, c256}).Draw(t, "cipher")
		pt := genString().Draw(t, "plaintext")
		v, err := c.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != koogallery.EncryptedLen(len(pt)) {
			t.Fatalf("length %d, want %d", len(v), koogallery.EncryptedLen(len(pt)))
		}
		got, err := c.Decrypt(v)
		if err != nil || got != pt {
			t.Fatalf("Decrypt = %q, %v; want %q", got, err, pt)
		}
		// A random seed works too.
		seed := rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, "seed")
		c2, err := koogallery.NewCipher(seed, c.Type())
		if err != nil {
			t.Fatal(err)
		}
		v2, _ := c2.Encrypt(pt)
		if got, err := c2.Decrypt(v2); err != nil || got != pt {
			t.Fatalf("random seed: %q, %v", got, err)
		}
	})
}

func TestPropertyMarshalResponseASCII(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genObject(3).Draw(t, "response")
		out, err := koogallery.MarshalResponse(v)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range out {
			if b >= 0x80 {
				t.Fatalf("byte %d is 0x%02x: %s", i, b, out)
			}
		}
		if bytes.HasSuffix(out, []byte("\n")) {
			t.Fatal("trailing newline")
		}
		if bytes.Contains(out, []byte(`\u003c`)) || bytes.Contains(out, []byte(`\u0026`)) {
			t.Fatalf("HTML escaping in %s", out)
		}
		ref, _ := json.Marshal(v)
		if !reflect.DeepEqual(decodeNumber(t, out), decodeNumber(t, ref)) {
			t.Fatalf("value changed:\n%s\n%s", out, ref)
		}
	})
}

func decodeNumber(t interface{ Fatalf(string, ...any) }, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}
