package koogallery_test

import (
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

func BenchmarkV2Verify(b *testing.B) {
	v := testVerifier(false)
	q := v2Query(strings.ToUpper(v2Signature), v2Timestamp, v2Nonce)
	body := []byte(v2Body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(q, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkV2VerifyFormC measures the worst accepted case without form d:
// a and b are built and tried before c matches.
func BenchmarkV2VerifyFormC(b *testing.B) {
	v := testVerifier(false)
	q := v2Query("2d06e131f76cf5d32b3da3eb3e3bf1f85d47ab5f87b4f229f32e47ff188b2f40", v2Timestamp, v2Nonce)
	body := []byte(nestedBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(q, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalResponse(b *testing.B) {
	type appInfo struct {
		FrontEndURL string `json:"frontEndUrl"`
		AdminURL    string `json:"adminUrl"`
		UserName    string `json:"userName"`
		Password    string `json:"password"`
		Memo        string `json:"memo"`
	}
	type inst struct {
		InstanceID string  `json:"instanceId"`
		AppInfo    appInfo `json:"appInfo"`
	}
	resp := struct {
		ResultCode  string `json:"resultCode"`
		ResultMsg   string `json:"resultMsg"`
		EncryptType string `json:"encryptType"`
		Info        []inst `json:"info"`
	}{"000000", "success.", "1", []inst{{"10e758d0-31ad-4c4b-8f1b-81d03469a10e", appInfo{
		"https://app.example.com/login?a=1&b=2", "https://app.example.com/admin",
		"abcdefghijklmnoph3kq9XJOHaCkd4GZf35aQg==", "abcdefghijklmnoph3kq9XJOHaCkd4GZf35aQg==", "开通成功，请登录 😀",
	}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := koogallery.MarshalResponse(resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	c, err := koogallery.NewCipher(key(), koogallery.EncryptAES256)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt("admin@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}
