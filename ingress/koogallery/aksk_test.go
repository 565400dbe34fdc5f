package koogallery_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// vectors.md §9, first part: the canonical request.
func TestAKSKCanonicalRequestVector(t *testing.T) {
	r, err := http.NewRequest(http.MethodGet, "https://c967a237-cd6c-470e-906f-a8655461897e.apigw.exampleRegion.com/app1?b=2&a=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-Sdk-Date", "20191111T093443Z")
	want := "GET\n/app1/\na=1&b=2\nhost:c967a237-cd6c-470e-906f-a8655461897e.apigw.exampleRegion.com\nx-sdk-date:20191111T093443Z\n\nhost;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	got := koogallery.CanonicalRequest(r, []string{"x-sdk-date", "Host"}, nil)
	if got != want {
		t.Fatalf("canonical request:\n got %q\nwant %q", got, want)
	}
	sum := sha256.Sum256([]byte(got))
	if h := hex.EncodeToString(sum[:]); h != "af71c5a7ef45310b8dc05ab15f7da50189ffa81a95cc284379ebaa5eb61155c0" {
		t.Fatalf("SHA-256 = %s", h)
	}
	if sts := koogallery.StringToSign("20191111T093443Z", got); sts != "SDK-HMAC-SHA256\n20191111T093443Z\naf71c5a7ef45310b8dc05ab15f7da50189ffa81a95cc284379ebaa5eb61155c0" {
		t.Fatalf("StringToSign = %q", sts)
	}
}

// vectors.md §9, second part: the HMAC step and the Authorization header.
func TestAKSKSignatureVector(t *testing.T) {
	const sk = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
	sts := "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
	sig := koogallery.AKSKSignature(sk, sts)
	if sig != "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe" {
		t.Fatalf("signature = %s", sig)
	}
	auth := koogallery.AKSKAuthorization("QTWAOYTTINDUT2QVKYUC", []string{"content-type", "host", "x-sdk-date"}, sig)
	if auth != "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe" {
		t.Fatalf("Authorization = %s", auth)
	}
	a, err := koogallery.ParseAKSKAuthorization(auth)
	if err != nil || a.Access != "QTWAOYTTINDUT2QVKYUC" || a.Signature != sig || strings.Join(a.SignedHeaders, ";") != "content-type;host;x-sdk-date" {
		t.Fatalf("ParseAKSKAuthorization = %+v, %v", a, err)
	}
}

func TestAKSKCanonicalDetails(t *testing.T) {
	r, _ := http.NewRequest(http.MethodPost, "https://mkt.example.com/api/a%20b/c~d/?z=%2B1&a=x+y&a=b&e=", nil)
	r.Header.Set("Content-Type", " application/json ")
	r.Header.Add("X-Multi", "2")
	r.Header.Add("X-Multi", "1")
	got := koogallery.CanonicalRequest(r, []string{"content-type", "host", "x-multi"}, []byte(`{}`))
	sum := sha256.Sum256([]byte(`{}`))
	want := "POST\n/api/a%20b/c~d/\na=b&a=x%20y&e=&z=%2B1\ncontent-type:application/json\nhost:mkt.example.com\nx-multi:1\nx-multi:2\n\ncontent-type;host;x-multi\n" + hex.EncodeToString(sum[:])
	if got != want {
		t.Fatalf("canonical request:\n got %q\nwant %q", got, want)
	}
	r.Header.Set(koogallery.SDKContentSHA256Header, koogallery.UnsignedPayload)
	if got := koogallery.CanonicalRequest(r, nil, []byte(`{}`)); !strings.HasSuffix(got, "\nUNSIGNED-PAYLOAD") {
		t.Fatalf("unsigned payload: %q", got)
	}
	r2, _ := http.NewRequest(http.MethodGet, "https://h.example.com", nil)
	if got := koogallery.CanonicalRequest(r2, []string{"host"}, nil); !strings.HasPrefix(got, "GET\n/\n\nhost:h.example.com\n\nhost\n") {
		t.Fatalf("root path: %q", got)
	}
}

func TestSignAndVerifyAKSK(t *testing.T) {
	const ak, sk = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
	now := time.Date(2024, 3, 6, 1, 2, 3, 0, time.UTC)
	body := []byte(`{"usage_records":[]}`)
	newReq := func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://mkt-intl.myhuaweicloud.com/api/mkp-openapi-public/global/v1/order/query?orderId=CS1&b=2", nil)
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	r := newReq()
	if err := koogallery.SignAKSK(ak, sk, r, body, now); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("X-Sdk-Date") != "20240306T010203Z" {
		t.Fatalf("X-Sdk-Date = %q", r.Header.Get("X-Sdk-Date"))
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "SDK-HMAC-SHA256 Access="+ak+", SignedHeaders=content-type;host;x-sdk-date, Signature=") {
		t.Fatalf("Authorization = %q", auth)
	}
	// The signature is the documented chain.
	cr := koogallery.CanonicalRequest(r, []string{"content-type", "host", "x-sdk-date"}, body)
	if want := koogallery.AKSKSignature(sk, koogallery.StringToSign("20240306T010203Z", cr)); !strings.HasSuffix(auth, "Signature="+want) {
		t.Fatalf("signature does not follow the chain: %s", auth)
	}
	got, err := koogallery.VerifyAKSK(sk, r, body, now.Add(10*time.Minute), 0)
	if err != nil || got != ak {
		t.Fatalf("VerifyAKSK = %q, %v", got, err)
	}
	// Server side: Host moves from the URL to r.Host.
	srv := r.Clone(r.Context())
	srv.Host = srv.URL.Host
	srv.URL.Host = ""
	if _, err := koogallery.VerifyAKSK(sk, srv, body, now, 0); err != nil {
		t.Fatalf("server-side request: %v", err)
	}
	fail := []struct {
		name   string
		mutate func(r *http.Request) ([]byte, time.Time, string)
	}{
		{"body changed", func(r *http.Request) ([]byte, time.Time, string) { return []byte(`{}`), now, sk }},
		{"wrong SK", func(r *http.Request) ([]byte, time.Time, string) { return body, now, sk + "x" }},
		{"clock 16 min off", func(r *http.Request) ([]byte, time.Time, string) { return body, now.Add(16 * time.Minute), sk }},
		{"signed header changed", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("Content-Type", "text/plain")
			return body, now, sk
		}},
		{"query changed", func(r *http.Request) ([]byte, time.Time, string) {
			r.URL.RawQuery = "orderId=CS2&b=2"
			return body, now, sk
		}},
		{"no Authorization", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Del("Authorization")
			return body, now, sk
		}},
		{"x-sdk-date not signed", func(r *http.Request) ([]byte, time.Time, string) {
			a, _ := koogallery.ParseAKSKAuthorization(r.Header.Get("Authorization"))
			r.Header.Set("Authorization", koogallery.AKSKAuthorization(a.Access, []string{"content-type", "host"}, a.Signature))
			return body, now, sk
		}},
		{"malformed date", func(r *http.Request) ([]byte, time.Time, string) {
			r.Header.Set("X-Sdk-Date", "2024-03-06T01:02:03Z")
			return body, now, sk
		}},
	}
	for _, tc := range fail {
		t.Run(tc.name, func(t *testing.T) {
			r := newReq()
			if err := koogallery.SignAKSK(ak, sk, r, body, now); err != nil {
				t.Fatal(err)
			}
			b, at, key := tc.mutate(r)
			got, err := koogallery.VerifyAKSK(key, r, b, at, 0)
			wantCode(t, err, koogallery.CodeAuthFailed)
			if got != "" {
				t.Fatalf("AK %q returned on failure", got)
			}
		})
	}
	if err := koogallery.SignAKSK("", sk, newReq(), body, now); err == nil {
		t.Fatal("empty AK accepted")
	}
	for _, bad := range []string{"", "SDK-HMAC-SHA256", "AWS4 Access=a, SignedHeaders=host, Signature=00", "SDK-HMAC-SHA256 Access=a, SignedHeaders=host", "SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=host, Signature=00", "SDK-HMAC-SHA256 Access=a, Foo=b, SignedHeaders=host, Signature=00"} {
		if _, err := koogallery.ParseAKSKAuthorization(bad); err == nil {
			t.Errorf("ParseAKSKAuthorization(%q) accepted", bad)
		}
	}
}
