package licensetoken_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
)

// FuzzVerify: Verify never panics, whatever the text and the key; every
// error is one of the documented ones; and whatever it accepts is exactly
// what Sign makes of the license it returned (no second encoding of the
// same license verifies).
func FuzzVerify(f *testing.F) {
	priv := testKey()
	withNbf := golden
	withNbf.NotBefore = issuedAt.Add(time.Hour)
	nbfText, _ := licensetoken.Sign(priv, withNbf)
	for _, seed := range [][]byte{
		[]byte(goldenText), nbfText, []byte(goldenText + "\n"), nil, []byte("."), []byte(".."), []byte("a.b"),
		signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T03:04:05Z","notAfter":"2027-01-02T03:04:05Z","features":{"a":"b"}}`),
		signRaw(`{"v":1}`), signRaw(`null`),
	} {
		f.Add(seed, []byte(pubOf(priv)), issuedAt.Unix())
	}
	f.Add([]byte(goldenText), []byte{1, 2, 3}, int64(0))
	f.Fuzz(func(t *testing.T, text, pub []byte, unix int64) {
		now := time.Unix(unix, 0)
		l, err := licensetoken.Verify(pub, text, now)
		switch {
		case err == nil:
		case errors.Is(err, licensetoken.ErrExpired), errors.Is(err, licensetoken.ErrNotYetValid):
			if l.ID == "" {
				t.Fatalf("validity error %v without the license", err)
			}
			return
		case errors.Is(err, licensetoken.ErrMalformed), errors.Is(err, licensetoken.ErrBadSignature), errors.Is(err, licensetoken.ErrBadKey):
			return
		default:
			t.Fatalf("undocumented error %v", err)
		}
		if !bytes.Equal(pub, pubOf(priv)) {
			return // a text the fuzzer signed itself cannot exist; nothing to compare
		}
		again, err := licensetoken.Sign(priv, l)
		if err != nil {
			t.Fatalf("an accepted license does not sign: %v", err)
		}
		if !bytes.Equal(again, bytes.TrimSpace(text)) {
			t.Fatalf("accepted a non-canonical text:\n%s\nSign gives\n%s", text, again)
		}
	})
}
