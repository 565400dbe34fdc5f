package koogallery_test

import (
	"encoding/json"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// vectors.md §7.
func TestEscapeNonASCII(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"memo":"中文"}`, `{"memo":"\u4e2d\u6587"}`},
		{`{"memo":"开通成功"}`, `{"memo":"\u5f00\u901a\u6210\u529f"}`},
		{`{"memo":"😀"}`, `{"memo":"\ud83d\ude00"}`},
		{`{"memo":"é\u00e9 ASCII <&>"}`, `{"memo":"\u00e9\u00e9 ASCII <&>"}`},
		{`{"memo":"￿ 𐀀 􏿿"}`, `{"memo":"\uffff \ud800\udc00 \udbff\udfff"}`},
		{"{\"memo\":\"a\xffb\"}", `{"memo":"a\ufffdb"}`},
		{`{}`, `{}`},
		{``, ``},
	} {
		got := koogallery.EscapeNonASCII([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("EscapeNonASCII(%q) = %s, want %s", tc.in, got, tc.want)
		}
		// Same value, when the input is valid JSON with valid UTF-8.
		var a, b any
		if json.Unmarshal([]byte(tc.in), &a) == nil {
			if err := json.Unmarshal(got, &b); err != nil {
				t.Errorf("escaped output is not JSON: %v", err)
			}
			if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb {
				t.Errorf("value changed: %s vs %s", ja, jb)
			}
		}
	}
}

func TestMarshalResponse(t *testing.T) {
	out, err := koogallery.MarshalResponse(map[string]any{
		"resultCode": "000000",
		"resultMsg":  "success.",
		"appInfo":    map[string]string{"frontEndUrl": "https://x.example.com/a?b=1&c=<2>", "memo": "开通成功 😀"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"appInfo":{"frontEndUrl":"https://x.example.com/a?b=1&c=<2>","memo":"\u5f00\u901a\u6210\u529f \ud83d\ude00"},"resultCode":"000000","resultMsg":"success."}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	if _, err := koogallery.MarshalResponse(map[string]any{"f": func() {}}); err == nil {
		t.Fatal("unmarshalable value accepted")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
