package koogallery_test

import (
	"encoding/base64"
	"maps"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// vectors.md §10.
func TestDecodeExtendParams(t *testing.T) {
	const signed = "W3sibmFtZSI6ImlkTnVtIiwidmFsdWUiOiIzNTIyNTU1NTU1NTU2NTYifSx7Im5hbWUiOiJ1c2VyTmFtZSIsInZhbHVlIjoiaHVhd2VpMTIzIn0seyJuYW1lIjoiY3VzdEVtYWlsIiwidmFsdWUiOiIxMjNAaHVhd2VpLmNvbSJ9XQ=="
	raw, _ := base64.StdEncoding.DecodeString(signed)
	if string(raw) != `[{"name":"idNum","value":"352255555555656"},{"name":"userName","value":"huawei123"},{"name":"custEmail","value":"123@huawei.com"}]` {
		t.Fatalf("decoded %s", raw)
	}
	want := map[string]string{"idNum": "352255555555656", "userName": "huawei123", "custEmail": "123@huawei.com"}
	for _, in := range []string{signed, strings.TrimRight(signed, "=")} {
		got, err := koogallery.DecodeExtendParams(in)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("DecodeExtendParams(%q) = %v, %v", in, got, err)
		}
	}

	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	got, err := koogallery.DecodeExtendParams(enc(`[{"name":"a","value":"1"},{"name":"a","value":"2"},{"name":"","value":"x"},{"name":"p","value":{"k":1}},{"name":"n","value":7},{"name":"platformParams","value":"{\"x\":\"y\"}"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "1", "p": `{"k":1}`, "n": "7", "platformParams": `{"x":"y"}`}; !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// '+' read as a space by a form decoder is restored.
	plus := enc(`[{"name":"k","value":">>>"}]`)
	if !strings.Contains(plus, "+") {
		t.Fatalf("test input %s has no '+'", plus)
	}
	if got, err := koogallery.DecodeExtendParams(strings.ReplaceAll(plus, "+", " ")); err != nil || got["k"] != ">>>" {
		t.Fatalf("space for '+': %v, %v", got, err)
	}
	for _, bad := range []string{"!!!", enc(`{"name":"a"}`), enc(`not json`)} {
		if _, err := koogallery.DecodeExtendParams(bad); err == nil {
			t.Errorf("DecodeExtendParams(%q) accepted", bad)
		}
	}
	if got, err := koogallery.DecodeExtendParams(""); err == nil && len(got) != 0 {
		t.Fatalf("empty: %v", got)
	}
}
