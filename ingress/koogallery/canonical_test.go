package koogallery_test

import (
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

func TestCanonicalPayloadForms(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		a, b, c string
	}{
		{
			name: "scalars: numbers keep literal text, booleans, nulls dropped at top level only",
			body: `{ "z": 1.50, "y": true, "x": null, "w": -0, "v": 1E5, "u": {"n": null, "m": 2.0, "l": false} }`,
			a:    `{"u":{"n":null,"m":2.0,"l":false},"v":"1E5","w":"-0","y":"true","z":"1.50"}`,
			b:    `{"u":{"l":false,"m":2.0,"n":null},"v":1E5,"w":-0,"y":true,"z":1.50}`,
			c:    `{"z":1.50,"y":true,"x":null,"w":-0,"v":1E5,"u":{"n":null,"m":2.0,"l":false}}`,
		},
		{
			name: "Jackson escaping: / < > & and non-ASCII raw, received escapes normalised in a and b",
			body: `{"k":"a/b<c>&d\/e\u4e2d文\"\\","n":{"s":"\u003c\/x\u003e"}}`,
			a:    `{"k":"a/b<c>&d/e中文\"\\","n":{"s":"</x>"}}`,
			b:    `{"k":"a/b<c>&d/e中文\"\\","n":{"s":"</x>"}}`,
			c:    `{"k":"a/b<c>&d\/e\u4e2d文\"\\","n":{"s":"\u003c\/x\u003e"}}`,
		},
		{
			name: "control characters: short escapes and upper-case \\u00XX",
			body: "{\"k\":\"\\b\\t\\n\\f\\r\\u0001\\u001f\\u007f\\u2028\"}",
			a:    "{\"k\":\"\\b\\t\\n\\f\\r\\u0001\\u001F\x7f\u2028\"}",
			b:    "{\"k\":\"\\b\\t\\n\\f\\r\\u0001\\u001F\x7f\u2028\"}",
			c:    "{\"k\":\"\\b\\t\\n\\f\\r\\u0001\\u001f\\u007f\\u2028\"}",
		},
		{
			name: "arrays keep order; nested objects in arrays sorted only in b",
			body: `{"arr":[3,"x",{"b":1,"a":[true,null]}],"e":[],"o":{}}`,
			a:    `{"arr":[3,"x",{"b":1,"a":[true,null]}],"e":[],"o":{}}`,
			b:    `{"arr":[3,"x",{"a":[true,null],"b":1}],"e":[],"o":{}}`,
			c:    `{"arr":[3,"x",{"b":1,"a":[true,null]}],"e":[],"o":{}}`,
		},
		{
			name: "keys sorted by UTF-16 code units: U+1F600 sorts before U+FF21",
			body: `{"Ａ":"1","😀":"2","b":"3","B":"4"}`,
			a:    `{"B":"4","b":"3","😀":"2","Ａ":"1"}`,
			b:    `{"B":"4","b":"3","😀":"2","Ａ":"1"}`,
			c:    `{"Ａ":"1","😀":"2","b":"3","B":"4"}`,
		},
		{
			name: "escaped member names are decoded and re-escaped",
			body: `{"\u0061":"x","b\"":"y"}`,
			a:    `{"a":"x","b\"":"y"}`,
			b:    `{"a":"x","b\"":"y"}`,
			c:    `{"\u0061":"x","b\"":"y"}`,
		},
		{
			name: "empty object and whitespace",
			body: " \r\n\t{ } \n",
			a:    `{}`,
			b:    `{}`,
			c:    `{}`,
		},
		{
			name: "only nulls",
			body: `{"a":null}`,
			a:    `{}`,
			b:    `{}`,
			c:    `{"a":null}`,
		},
		{
			name: "repeated top-level name: last value in a and b",
			body: `{"a":"1","a":"2","n":{"x":1,"x":2}}`,
			a:    `{"a":"2","n":{"x":1,"x":2}}`,
			b:    `{"a":"2","n":{"x":2}}`,
			c:    `{"a":"1","a":"2","n":{"x":1,"x":2}}`,
		},
		{
			name: "invalid UTF-8 read as U+FFFD in a and b",
			body: "{\"k\":\"a\xffb\",\"n\":[\"\xfe\"]}",
			a:    "{\"k\":\"a\uFFFDb\",\"n\":[\"\uFFFD\"]}",
			b:    "{\"k\":\"a\uFFFDb\",\"n\":[\"\uFFFD\"]}",
			c:    "{\"k\":\"a\xffb\",\"n\":[\"\xfe\"]}",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []struct {
				form koogallery.Form
				want string
			}{{koogallery.FormA, tc.a}, {koogallery.FormB, tc.b}, {koogallery.FormC, tc.c}, {koogallery.FormDA, tc.a}, {koogallery.FormDB, tc.b}, {koogallery.FormDC, tc.c}} {
				got, err := koogallery.CanonicalPayload([]byte(tc.body), f.form)
				if err != nil {
					t.Fatalf("form %s: %v", f.form, err)
				}
				if string(got) != f.want {
					t.Errorf("form %s:\n got %q\nwant %q", f.form, got, f.want)
				}
			}
		})
	}
}

func TestCanonicalPayloadRejectsNonObjects(t *testing.T) {
	for _, body := range []string{``, ` `, `null`, `[]`, `"x"`, `1`, `true`, `{`, `{"a":}`, `{"a":1}x`, `{"a":1} {}`, `{'a':1}`, "\xef\xbb\xbf{}", `{"a":1,}`} {
		for _, f := range []koogallery.Form{koogallery.FormA, koogallery.FormB, koogallery.FormC} {
			_, err := koogallery.CanonicalPayload([]byte(body), f)
			wantField(t, err, "body")
		}
	}
	if _, err := koogallery.CanonicalPayload([]byte(`{}`), "x"); err == nil {
		t.Fatal("unknown form accepted")
	}
}

func TestFormHelpers(t *testing.T) {
	for _, tc := range []struct {
		f       koogallery.Form
		valid   bool
		plain   bool
		payload koogallery.Form
	}{
		{koogallery.FormA, true, false, koogallery.FormA},
		{koogallery.FormB, true, false, koogallery.FormB},
		{koogallery.FormC, true, false, koogallery.FormC},
		{koogallery.FormDA, true, true, koogallery.FormA},
		{koogallery.FormDB, true, true, koogallery.FormB},
		{koogallery.FormDC, true, true, koogallery.FormC},
		{"d", false, false, "d"},
	} {
		if tc.f.Valid() != tc.valid || tc.f.PlainSHA256() != tc.plain || tc.f.Payload() != tc.payload {
			t.Errorf("%q: Valid=%v PlainSHA256=%v Payload=%q", tc.f, tc.f.Valid(), tc.f.PlainSHA256(), tc.f.Payload())
		}
	}
}
