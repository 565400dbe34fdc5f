package koogallery_test

import (
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

const (
	bodySign1     = `{"resultCode":"000000","resultMsg":"success.","instanceId":"87b94795-0603-4e24-8ae5-69420d60e3c8"}`
	bodySign1Sig  = "hw6THzHhjw8HeqUa6a3iMDwU2Xq8ZMmTxPGGXhbtDDA="
	bodySign2     = `{"resultCode":"000000","resultMsg":"success.","info":[{"instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","appInfo":{"frontEndUrl":"https://app.example.com","memo":"\u4e2d\u6587"}}]}`
	bodySign2Sig  = "T1TcPvLFfRwdjnQ2BMFeG0CTNUW6WvUnMSk98u70nW4="
	bodySign2Bad  = "9KyeJc4HSw/yTa/grYe8dA1Pfbqiv5fP/BePoiZwLDE=" // signed before escaping
	bodySign2UTF8 = `{"resultCode":"000000","resultMsg":"success.","info":[{"instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","appInfo":{"frontEndUrl":"https://app.example.com","memo":"中文"}}]}`
)

// vectors.md §5.
func TestBodySignVectors(t *testing.T) {
	if got := koogallery.BodySignature(key(), []byte(bodySign1)); got != bodySign1Sig {
		t.Fatalf("body 1: %s, want %s", got, bodySign1Sig)
	}
	if got := koogallery.BodySignature(key(), []byte(bodySign2)); got != bodySign2Sig {
		t.Fatalf("body 2: %s, want %s", got, bodySign2Sig)
	}
	// The header, byte for byte.
	header := koogallery.BodySignHeader + ": " + koogallery.BodySignValue(key(), []byte(bodySign1))
	if want := `Body-Sign: sign_type="HMAC-SHA256", signature= "hw6THzHhjw8HeqUa6a3iMDwU2Xq8ZMmTxPGGXhbtDDA="`; header != want {
		t.Fatalf("header:\n got %s\nwant %s", header, want)
	}
	// The wrong value is what signing the unescaped body gives …
	if got := koogallery.BodySignature(key(), []byte(bodySign2UTF8)); got != bodySign2Bad {
		t.Fatalf("unescaped body: %s, want %s", got, bodySign2Bad)
	}
	// … and MarshalResponse + BodySignature does not produce it.
	type appInfo struct {
		FrontEndURL string `json:"frontEndUrl"`
		Memo        string `json:"memo"`
	}
	type inst struct {
		InstanceID string  `json:"instanceId"`
		AppInfo    appInfo `json:"appInfo"`
	}
	resp := struct {
		ResultCode string `json:"resultCode"`
		ResultMsg  string `json:"resultMsg"`
		Info       []inst `json:"info"`
	}{"000000", "success.", []inst{{"10e758d0-31ad-4c4b-8f1b-81d03469a10e", appInfo{"https://app.example.com", "中文"}}}}
	out, err := koogallery.MarshalResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != bodySign2 {
		t.Fatalf("MarshalResponse:\n got %s\nwant %s", out, bodySign2)
	}
	sig := koogallery.BodySignature(key(), out)
	if sig == bodySign2Bad || sig != bodySign2Sig {
		t.Fatalf("signature of marshalled response = %s", sig)
	}
}

func TestParseAndVerifyBodySign(t *testing.T) {
	body := []byte(bodySign1)
	good := []string{
		`sign_type="HMAC-SHA256", signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature="` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256",signature="` + bodySign1Sig + `"`,
		` signature = "` + bodySign1Sig + `" , sign_type = "HMAC-SHA256" `,
	}
	for _, h := range good {
		st, sig, err := koogallery.ParseBodySign(h)
		if err != nil || st != "HMAC-SHA256" || sig != bodySign1Sig {
			t.Errorf("ParseBodySign(%q) = %q, %q, %v", h, st, sig, err)
		}
		if err := koogallery.VerifyBodySign(key(), body, h); err != nil {
			t.Errorf("VerifyBodySign(%q): %v", h, err)
		}
	}
	bad := []string{
		``,
		`sign_type=HMAC-SHA256, signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature= ` + bodySign1Sig,
		`sign_type="HMAC-SHA256"`,
		`signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature= "` + bodySign1Sig,
		`sign_type="HMAC-SHA256" signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature= "` + bodySign1Sig + `",`,
		`sign_type="HMAC-SHA256", sign_type="HMAC-SHA256", signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature= "` + bodySign1Sig + `", extra="1"`,
	}
	for _, h := range bad {
		if _, _, err := koogallery.ParseBodySign(h); err == nil {
			t.Errorf("ParseBodySign(%q) accepted", h)
		}
		wantCode(t, koogallery.VerifyBodySign(key(), body, h), koogallery.CodeAuthFailed)
	}
	for _, h := range []string{
		`sign_type="HMAC-SHA1", signature= "` + bodySign1Sig + `"`,
		`sign_type="HMAC-SHA256", signature= ""`,
		`sign_type="HMAC-SHA256", signature= "not base64!"`,
		`sign_type="HMAC-SHA256", signature= "` + bodySign2Sig + `"`,
	} {
		wantCode(t, koogallery.VerifyBodySign(key(), body, h), koogallery.CodeAuthFailed)
	}
	wantCode(t, koogallery.VerifyBodySign(key(), append([]byte(bodySign1), ' '), koogallery.BodySignValue(key(), body)), koogallery.CodeAuthFailed)
}
