package koogallery_test

import (
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// vectors.md §8.
func TestUsagePushSignature(t *testing.T) {
	const (
		ts    = "1709690865879"
		nonce = "6c63c221-1f6b-4141-8ff4-22f5dfe82b65"
		body  = `{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3","record_time":"20220809T091000Z","usage_value":"99"}]}`
		want  = "wXRRgC+QCBCOQ3HAESyWqr+sX1ciQnXIfkvruOFh4Dw="
	)
	if got := koogallery.UsagePushSignature(key(), ts, nonce, []byte(body)); got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
	// The signed string is "ts=…&nonce=…&body=…": the same HMAC as Body-Sign
	// over that string.
	signed := "ts=" + ts + "&nonce=" + nonce + "&body=" + body
	if got := koogallery.BodySignature(key(), []byte(signed)); got != want {
		t.Fatalf("signed string mismatch: %s", got)
	}
	if err := koogallery.VerifyUsagePush(key(), ts, nonce, []byte(body), want); err != nil {
		t.Fatal(err)
	}
	wantCode(t, koogallery.VerifyUsagePush(key(), ts, nonce+"x", []byte(body), want), koogallery.CodeAuthFailed)
	wantCode(t, koogallery.VerifyUsagePush(key(), ts, nonce, []byte(body), ""), koogallery.CodeAuthFailed)
}
