package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	t.Setenv("KG_KEY_B", "c2VjcmV0LWtleQ==")
	f, err := Parse([]byte(`
routes:
  - path: /kg/a
    family: saas-v2
    keys: [{value: plain-key}]
  - path: /kg/b
    family: saas-v2
    keys:
      - {valueEnv: KG_KEY_B, base64: true}
      - {value: old-key}
    encryptType: "2"
    timestampWindow: 30s
    allowPlainSHA256: true
    provisioner: {frontEndUrl: "https://b.example.com/{instanceId}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Routes[0], f.Routes[1]
	if a.Encrypt() != "1" || a.Window() != 60*time.Second {
		t.Fatalf("defaults: %q %v", a.Encrypt(), a.Window())
	}
	if b.Encrypt() != "2" || b.Window() != 30*time.Second || !b.AllowPlainSHA256 {
		t.Fatalf("route b: %+v", b)
	}
	k, err := b.Keys[0].Bytes()
	if err != nil || string(k) != "secret-key" {
		t.Fatalf("base64 env key = %q, %v", k, err)
	}
	if b.Provisioner.FrontEndURL != "https://b.example.com/{instanceId}" {
		t.Fatalf("provisioner: %+v", b.Provisioner)
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	cases := map[string]string{
		"no routes":       `routes: []`,
		"start with /":    `routes: [{path: kg, family: saas-v2, keys: [{value: k}]}]`,
		"unknown family":  `routes: [{path: /kg, family: saas-v9, keys: [{value: k}]}]`,
		"one or two keys": `routes: [{path: /kg, family: saas-v2, keys: []}]`,
		"encryptType":     `routes: [{path: /kg, family: saas-v2, keys: [{value: k}], encryptType: "3"}]`,
		"configured twice": `routes: [{path: /kg, family: saas-v2, keys: [{value: k}]},
                                     {path: /kg, family: saas-v2, keys: [{value: k}]}]`,
		"not set":           `routes: [{path: /kg, family: saas-v2, keys: [{valueEnv: GALLERIST_TEST_UNSET_VAR}]}]`,
		"does not decode":   `routes: [{path: /kg, family: saas-v2, keys: [{value: "!!", base64: true}]}]`,
		"field typo":        `routes: [{path: /kg, family: saas-v2, keys: [{value: k}], encrypType: "1"}]`,
		"empty key":         `routes: [{path: /kg, family: saas-v2, keys: [{value: ""}]}]`,
		"must not be negat": `routes: [{path: /kg, family: saas-v2, keys: [{value: k}], timestampWindow: -1s}]`,
	}
	for want, text := range cases {
		_, err := Parse([]byte(text))
		if err == nil {
			t.Fatalf("%s: accepted", want)
		}
		if want != "field typo" && !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %q does not say so", want, err)
		}
	}
}
