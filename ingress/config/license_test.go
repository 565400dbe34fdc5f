package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var testSeed = []byte("config-test-license-seed-0000032")

func TestLicenseRoutes(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(testSeed)
	t.Setenv("GALLERIST_TEST_LIC_KEY", EncodeLicensePrivateKey(priv))
	f, err := Parse([]byte(`
routes:
  - path: /kg/license-a
    family: license-a
    keys: [{value: v1-key}]
    issuer:
      builtin:
        privateKeyEnv: GALLERIST_TEST_LIC_KEY
        validity: 720h
        features: {edition: pro}
  - path: /kg/license-b
    family: license-b
    keys: [{value: v2-key}]
    timestampWindow: 30s
  - path: /kg/license-c
    family: license-c
    keys: [{value: v2-key-c}]
    requireFingerprint: true
    issuer:
      builtin:
        privateKeyEnv: GALLERIST_TEST_LIC_KEY
        features: {edition: industrial}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := f.Routes[0], f.Routes[1], f.Routes[2]
	if a.Family != FamilyLicenseA || b.Family != FamilyLicenseB || b.Window() != 30*time.Second {
		t.Fatalf("routes %+v %+v", a, b)
	}
	if c.Family != FamilyLicenseC || !c.RequireFingerprint || c.Issuer.Builtin.Features["edition"] != "industrial" ||
		c.Issuer.Builtin.LicenseValidity() != DefaultLicenseValidity || c.Window() != 60*time.Second {
		t.Fatalf("license-c route %+v", c)
	}
	bi := a.Issuer.Builtin
	k, err := bi.PrivateKey()
	if err != nil || !k.Equal(priv) || bi.LicenseValidity() != 720*time.Hour || bi.Features["edition"] != "pro" {
		t.Fatalf("issuer %+v, key %v", bi, err)
	}
	if (BuiltinIssuer{}).LicenseValidity() != DefaultLicenseValidity {
		t.Fatal("default validity")
	}
}

func TestLicenseRouteErrors(t *testing.T) {
	t.Setenv("GALLERIST_TEST_LIC_KEY", EncodeLicensePrivateKey(ed25519.NewKeyFromSeed(testSeed)))
	t.Setenv("GALLERIST_TEST_LIC_BAD", "not-a-key")
	cases := map[string]string{
		"needs issuer.builtin":        `routes: [{path: /a, family: license-a, keys: [{value: k}]}]`,
		"privateKeyEnv is required":   `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {}}}]`,
		"GALLERIST_TEST_LIC_UNSET":    `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_UNSET}}}]`,
		"GALLERIST_TEST_LIC_BAD":      `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_BAD}}}]`,
		"not an environment variable": `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {privateKeyEnv: "A B"}}}]`,
		"validity must not be":        `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_KEY, validity: -1h}}}]`,
		"issuer is a license-a":       `routes: [{path: /b, family: license-b, keys: [{value: k}], issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_KEY}}}]`,
		"allowPlainSHA256":            `routes: [{path: /a, family: license-a, keys: [{value: k}], allowPlainSHA256: true, issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_KEY}}}]`,
		"field privatekey":            `routes: [{path: /a, family: license-a, keys: [{value: k}], issuer: {builtin: {privatekey: x}}}]`,
		"a license-c route needs":     `routes: [{path: /c, family: license-c, keys: [{value: k}]}]`,
		"license-c: privateKeyEnv":    `routes: [{path: /c, family: license-c, keys: [{value: k}], issuer: {builtin: {}}}]`,
		"requireFingerprint is a":     `routes: [{path: /a, family: license-a, keys: [{value: k}], requireFingerprint: true, issuer: {builtin: {privateKeyEnv: GALLERIST_TEST_LIC_KEY}}}]`,
	}
	for want, yaml := range cases {
		_, err := Parse([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimPrefix(want, "field "), "license-c: ")) {
			t.Errorf("%s: err = %v", want, err)
		}
		if err != nil && strings.Contains(err.Error(), EncodeLicensePrivateKey(ed25519.NewKeyFromSeed(testSeed))) {
			t.Errorf("%s: the error shows the key", want)
		}
	}
}

func TestParseLicensePrivateKey(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(testSeed)
	for name, s := range map[string]string{
		"encoded":         EncodeLicensePrivateKey(priv),
		"seed std padded": base64.StdEncoding.EncodeToString(priv.Seed()),
		"full key std":    base64.StdEncoding.EncodeToString(priv),
		"full key url":    " " + base64.RawURLEncoding.EncodeToString(priv) + "\n",
	} {
		k, err := ParseLicensePrivateKey(s)
		if err != nil || !k.Equal(priv) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := append([]byte(nil), priv...)
	bad[40] ^= 1
	for name, s := range map[string]string{
		"mismatched public half": base64.StdEncoding.EncodeToString(bad),
		"short":                  base64.StdEncoding.EncodeToString(priv[:16]),
		"not base64":             "!!!",
		"empty":                  "",
	} {
		if _, err := ParseLicensePrivateKey(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
