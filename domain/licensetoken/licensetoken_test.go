package licensetoken_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/domain/licensetoken"
)

// Test key: the RFC 8032-style seed 00 01 … 1f.
func testKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func pubOf(priv ed25519.PrivateKey) ed25519.PublicKey { return priv.Public().(ed25519.PublicKey) }

var (
	issuedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	notAfter = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	golden   = licensetoken.License{ID: "b-1", InstanceID: "b-1", OrderID: "CS2601020304", ProductID: "p-1", SKUCode: "s-1",
		CustomerID: "c-1", IssuedAt: issuedAt, NotAfter: notAfter, Features: map[string]string{"seats": "10", "edition": "pro"}}
)

// goldenText is golden signed with testKey. It pins the format: it was
// also verified independently (Python "cryptography", Ed25519 over
// "gallerist-license-v1." + payload segment).
const (
	goldenText = "eyJ2IjoxLCJsaWNlbnNlSWQiOiJiLTEiLCJpbnN0YW5jZUlkIjoiYi0xIiwib3JkZXJJZCI6IkNTMjYwMTAyMDMwNCIsInByb2R1Y3RJZCI6InAtMSIsInNrdUNvZGUiOiJzLTEiLCJjdXN0b21lcklkIjoiYy0xIiwiaXNzdWVkQXQiOiIyMDI2LTAxLTAyVDAzOjA0OjA1WiIsIm5vdEFmdGVyIjoiMjAyNy0wMS0wMlQwMzowNDowNVoiLCJmZWF0dXJlcyI6eyJlZGl0aW9uIjoicHJvIiwic2VhdHMiOiIxMCJ9fQ" +
		".Otuw8YOleVBYWCwKpfmW3ZpxnaZRQU_eng5zdJB2WMwDPyzcq7ZId8Pm8eHHaHJyHxt6-qVT6NWQASngaXRTCw"
	goldenPub = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
)

func TestGoldenVector(t *testing.T) {
	priv := testKey()
	text, err := licensetoken.Sign(priv, golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(text) != goldenText {
		t.Fatalf("Sign = %s\nwant   %s", text, goldenText)
	}
	if got := licensetoken.EncodePublicKey(pubOf(priv)); got != goldenPub {
		t.Fatalf("EncodePublicKey = %s, want %s", got, goldenPub)
	}
	pub, err := licensetoken.ParsePublicKey(goldenPub)
	if err != nil {
		t.Fatal(err)
	}
	l, err := licensetoken.Verify(pub, []byte(goldenText), issuedAt)
	if err != nil || !reflect.DeepEqual(l, golden) {
		t.Fatalf("Verify = %+v, %v", l, err)
	}
}

// genLicense draws licenses with arbitrary (valid UTF-8) strings and times
// at any sub-second precision and zone.
func genLicense() *rapid.Generator[licensetoken.License] {
	zones := []*time.Location{time.UTC, time.FixedZone("CST", 8*3600), time.FixedZone("X", -(3*3600 + 30*60))}
	str := rapid.OneOf(rapid.String(), rapid.SampledFrom([]string{"", "中文", "😀", "\x00", "\"\\<>&", "\u2028"}))
	return rapid.Custom(func(t *rapid.T) licensetoken.License {
		zone := rapid.SampledFrom(zones).Draw(t, "zone")
		iat := time.Unix(rapid.Int64Range(0, 7e9).Draw(t, "iat"), rapid.Int64Range(0, 999999999).Draw(t, "iatNanos")).In(zone)
		l := licensetoken.License{
			ID: rapid.StringMatching(`.+`).Draw(t, "id"), InstanceID: str.Draw(t, "instance"), OrderID: str.Draw(t, "order"),
			ProductID: str.Draw(t, "product"), SKUCode: str.Draw(t, "sku"), CustomerID: str.Draw(t, "customer"),
			IssuedAt: iat,
			NotAfter: iat.Add(time.Duration(rapid.Int64Range(1, 50*365*24*3600).Draw(t, "validity")) * time.Second),
			Features: rapid.MapOfN(str, str, 0, 5).Draw(t, "features"),
		}
		if rapid.Bool().Draw(t, "hasNotBefore") {
			l.NotBefore = iat.Add(time.Duration(rapid.Int64Range(-3600, 0).Draw(t, "nbf")) * time.Second)
		}
		return l
	})
}

// normalised is what Verify gives back for l: times to the second in UTC,
// no empty feature map.
func normalised(l licensetoken.License) licensetoken.License {
	l.IssuedAt = l.IssuedAt.UTC().Truncate(time.Second)
	l.NotAfter = l.NotAfter.UTC().Truncate(time.Second)
	if !l.NotBefore.IsZero() {
		l.NotBefore = l.NotBefore.UTC().Truncate(time.Second)
	}
	if len(l.Features) == 0 {
		l.Features = nil
	}
	return l
}

func TestPropertySignVerifyRoundTrip(t *testing.T) {
	priv := testKey()
	pub := pubOf(priv)
	rapid.Check(t, func(t *rapid.T) {
		l := genLicense().Draw(t, "license")
		text, err := licensetoken.Sign(priv, l)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		again, _ := licensetoken.Sign(priv, l)
		if !bytes.Equal(text, again) {
			t.Fatal("Sign is not deterministic")
		}
		want := normalised(l)
		start := want.IssuedAt
		if !want.NotBefore.IsZero() {
			start = want.NotBefore
		}
		now := start.Add(time.Duration(rapid.Int64Range(0, int64(want.NotAfter.Sub(start))-1).Draw(t, "now")))
		got, err := licensetoken.Verify(pub, text, now)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
		}
		// White space around a license (a file's final newline) is fine.
		if _, err := licensetoken.Verify(pub, append(append([]byte(" \r\n\t"), text...), '\n'), now); err != nil {
			t.Fatalf("Verify with surrounding white space: %v", err)
		}
	})
}

// Any change of any single byte is rejected, as malformed or as a bad
// signature, never accepted.
func TestPropertyTamperedRejected(t *testing.T) {
	priv := testKey()
	pub := pubOf(priv)
	rapid.Check(t, func(t *rapid.T) {
		l := genLicense().Draw(t, "license")
		text, err := licensetoken.Sign(priv, l)
		if err != nil {
			t.Fatal(err)
		}
		i := rapid.IntRange(0, len(text)-1).Draw(t, "index")
		b := rapid.Byte().Filter(func(b byte) bool { return b != text[i] }).Draw(t, "byte")
		tampered := bytes.Clone(text)
		tampered[i] = b
		_, err = licensetoken.Verify(pub, tampered, l.IssuedAt)
		if !errors.Is(err, licensetoken.ErrBadSignature) && !errors.Is(err, licensetoken.ErrMalformed) {
			t.Fatalf("tampered text (byte %d: %q → %q): err = %v", i, text[i], b, err)
		}
	})
}

func TestWrongKeyRejected(t *testing.T) {
	other, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = licensetoken.Verify(other, []byte(goldenText), issuedAt)
	if !errors.Is(err, licensetoken.ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature", err)
	}
	// A valid payload with the signature of another valid license.
	l2 := golden
	l2.Features = map[string]string{"seats": "1000"}
	text2, _ := licensetoken.Sign(testKey(), l2)
	seg, _, _ := strings.Cut(string(text2), ".")
	_, sig, _ := strings.Cut(goldenText, ".")
	if _, err := licensetoken.Verify(pubOf(testKey()), []byte(seg+"."+sig), issuedAt); !errors.Is(err, licensetoken.ErrBadSignature) {
		t.Fatalf("spliced signature: err = %v", err)
	}
}

func TestExpiryEdges(t *testing.T) {
	priv := testKey()
	pub := pubOf(priv)
	l := golden
	l.NotBefore = issuedAt.Add(time.Hour)
	text, err := licensetoken.Sign(priv, l)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		now  time.Time
		want error
	}{
		{"long before", time.Time{}, licensetoken.ErrNotYetValid},
		{"at issue, before notBefore", issuedAt, licensetoken.ErrNotYetValid},
		{"1ns before notBefore", l.NotBefore.Add(-1), licensetoken.ErrNotYetValid},
		{"at notBefore (inclusive)", l.NotBefore, nil},
		{"in a local zone", l.NotBefore.In(time.FixedZone("CST", 8*3600)), nil},
		{"1ns before notAfter", notAfter.Add(-1), nil},
		{"at notAfter (exclusive)", notAfter, licensetoken.ErrExpired},
		{"long after", notAfter.AddDate(100, 0, 0), licensetoken.ErrExpired},
	}
	for _, c := range cases {
		got, err := licensetoken.Verify(pub, text, c.now)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		// Authentic but out of its validity: the license comes back too.
		if got.ID != "b-1" || !got.NotAfter.Equal(notAfter) {
			t.Errorf("%s: license %+v not returned", c.name, got)
		}
		if c.want != nil && errors.Is(err, licensetoken.ErrBadSignature) {
			t.Errorf("%s: a validity error is not a signature error", c.name)
		}
	}
	// Without notBefore a license is valid before its issue time (clock
	// skew between issuer and user).
	if _, err := licensetoken.Verify(pub, []byte(goldenText), issuedAt.Add(-time.Hour)); err != nil {
		t.Fatalf("no notBefore: %v", err)
	}
	if err := golden.CheckTime(notAfter); !errors.Is(err, licensetoken.ErrExpired) {
		t.Fatalf("CheckTime at notAfter = %v", err)
	}
}

// signRaw signs an arbitrary payload the way Sign does, to test what
// Verify makes of authentic but malformed content.
func signRaw(payload string) []byte {
	seg := base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig := ed25519.Sign(testKey(), []byte(licensetoken.SigningContext+seg))
	return []byte(seg + "." + base64.RawURLEncoding.EncodeToString(sig))
}

func TestMalformed(t *testing.T) {
	pub := pubOf(testKey())
	seg, sig, _ := strings.Cut(goldenText, ".")
	ok := `"licenseId":"x","issuedAt":"2026-01-02T03:04:05Z","notAfter":"2027-01-02T03:04:05Z"`
	cases := map[string][]byte{
		"empty":              nil,
		"blank":              []byte(" \n"),
		"dot":                []byte("."),
		"no signature":       []byte(seg),
		"empty signature":    []byte(seg + "."),
		"empty payload":      []byte("." + sig),
		"three segments":     []byte(goldenText + ".x"),
		"padding":            []byte(seg + "." + sig + "=="),
		"std alphabet":       []byte(strings.NewReplacer("-", "+", "_", "/").Replace(goldenText)),
		"inner newline":      []byte(seg[:10] + "\n" + seg[10:] + "." + sig),
		"short signature":    []byte(seg + "." + sig[:40]),
		"long signature":     []byte(seg + "." + sig + "AAAA"),
		"non-canonical b64":  []byte(seg + "." + sig[:len(sig)-1] + "D"),
		"too long":           append([]byte(goldenText), bytes.Repeat([]byte(" "), licensetoken.MaxTextLen)...),
		"not json":           signRaw("hello"),
		"json array":         signRaw(`[1]`),
		"trailing data":      signRaw(`{"v":1,` + ok + `} {}`),
		"unknown member":     signRaw(`{"v":1,` + ok + `,"deviceFingerprint":"X"}`),
		"version 2":          signRaw(`{"v":2,` + ok + `}`),
		"no version":         signRaw(`{` + ok + `}`),
		"no licenseId":       signRaw(`{"v":1,"issuedAt":"2026-01-02T03:04:05Z","notAfter":"2027-01-02T03:04:05Z"}`),
		"no issuedAt":        signRaw(`{"v":1,"licenseId":"x","notAfter":"2027-01-02T03:04:05Z"}`),
		"no notAfter":        signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T03:04:05Z"}`),
		"offset time":        signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T11:04:05+08:00","notAfter":"2027-01-02T03:04:05Z"}`),
		"fractional time":    signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T03:04:05.5Z","notAfter":"2027-01-02T03:04:05Z"}`),
		"lower-case z":       signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T03:04:05z","notAfter":"2027-01-02T03:04:05Z"}`),
		"bad notBefore":      signRaw(`{"v":1,` + ok + `,"notBefore":"soon"}`),
		"notAfter ≤ issued":  signRaw(`{"v":1,"licenseId":"x","issuedAt":"2026-01-02T03:04:05Z","notAfter":"2026-01-02T03:04:05Z"}`),
		"notAfter ≤ nbf":     signRaw(`{"v":1,` + ok + `,"notBefore":"2027-01-02T03:04:05Z"}`),
		"feature not string": signRaw(`{"v":1,` + ok + `,"features":{"seats":10}}`),
		"invalid utf-8":      signRaw(`{"v":1,` + ok + `,"orderId":"` + "\xff" + `"}`),
	}
	for name, text := range cases {
		l, err := licensetoken.Verify(pub, text, issuedAt)
		if !errors.Is(err, licensetoken.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
		if !reflect.DeepEqual(l, licensetoken.License{}) {
			t.Errorf("%s: license %+v returned with a malformed text", name, l)
		}
	}
	// The helper itself makes acceptable licenses.
	if _, err := licensetoken.Verify(pub, signRaw(`{"v":1,`+ok+`,"features":{}}`), issuedAt); err != nil {
		t.Fatalf("signRaw: %v", err)
	}
}

func TestKeys(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := licensetoken.Verify(make([]byte, n), []byte(goldenText), issuedAt); !errors.Is(err, licensetoken.ErrBadKey) {
			t.Errorf("Verify with a %d-byte key: err = %v", n, err)
		}
	}
	for _, n := range []int{0, 32, 63, 65} {
		if _, err := licensetoken.Sign(make([]byte, n), golden); !errors.Is(err, licensetoken.ErrBadKey) {
			t.Errorf("Sign with a %d-byte key: err = %v", n, err)
		}
	}
	for _, bad := range []string{"", "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", "A6EH", "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbh"} {
		if _, err := licensetoken.ParsePublicKey(bad); !errors.Is(err, licensetoken.ErrBadKey) {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	if _, err := licensetoken.ParsePublicKey(" " + goldenPub + "\n"); err != nil {
		t.Errorf("ParsePublicKey with white space: %v", err)
	}
}

func TestSignRejectsInvalidLicenses(t *testing.T) {
	priv := testKey()
	mod := func(f func(*licensetoken.License)) licensetoken.License {
		l := golden
		f(&l)
		return l
	}
	cases := map[string]licensetoken.License{
		"no id":                  mod(func(l *licensetoken.License) { l.ID = "" }),
		"no issuedAt":            mod(func(l *licensetoken.License) { l.IssuedAt = time.Time{} }),
		"no notAfter":            mod(func(l *licensetoken.License) { l.NotAfter = time.Time{} }),
		"notAfter = issuedAt":    mod(func(l *licensetoken.License) { l.NotAfter = l.IssuedAt }),
		"notAfter within second": mod(func(l *licensetoken.License) { l.NotAfter = l.IssuedAt.Add(time.Second - 1) }),
		"notAfter ≤ notBefore":   mod(func(l *licensetoken.License) { l.NotBefore = l.NotAfter }),
		"year 10000":             mod(func(l *licensetoken.License) { l.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"invalid utf-8 id":       mod(func(l *licensetoken.License) { l.ID = "\xff" }),
		"invalid utf-8 feature":  mod(func(l *licensetoken.License) { l.Features = map[string]string{"k": "\xc3"} }),
		"invalid utf-8 key":      mod(func(l *licensetoken.License) { l.Features = map[string]string{"\xc3": "v"} }),
	}
	for name, l := range cases {
		if text, err := licensetoken.Sign(priv, l); !errors.Is(err, licensetoken.ErrInvalidLicense) {
			t.Errorf("%s: Sign = %s, %v; want ErrInvalidLicense", name, text, err)
		}
	}
}

// Vendors import this package into their own software: it must need
// nothing but the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: only the standard library is allowed", f, path)
			}
		}
	}
}
