package config

import (
	"os"
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

func TestParseWebhook(t *testing.T) {
	f, err := Parse([]byte(`
routes:
  - path: /kg/a
    family: saas-v2
    keys: [{value: k}]
    webhook:
      url: https://vendor.example.com/gallerist
      secretEnv: VENDOR_WEBHOOK_SECRET
  - path: /kg/b
    family: saas-v2
    keys: [{value: k}]
    webhook: {url: "http://127.0.0.1:9000/hook?x=1", secretEnv: B_SECRET, timeout: 3s, provisioning: true}
  - path: /kg/c
    family: saas-v2
    keys: [{value: k}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := f.Routes[0].Webhook, f.Routes[1].Webhook, f.Routes[2].Webhook
	if a == nil || *a != (Webhook{URL: "https://vendor.example.com/gallerist", SecretEnv: "VENDOR_WEBHOOK_SECRET"}) {
		t.Errorf("route a: %+v", a)
	}
	if b == nil || *b != (Webhook{URL: "http://127.0.0.1:9000/hook?x=1", SecretEnv: "B_SECRET", Timeout: 3 * time.Second, Provisioning: true}) {
		t.Errorf("route b: %+v", b)
	}
	if c != nil {
		t.Errorf("route c has a webhook: %+v", c)
	}
}

func TestWebhookErrorsNameTheField(t *testing.T) {
	route := func(webhook string) string {
		return `routes: [{path: /kg, family: saas-v2, keys: [{value: k}], webhook: ` + webhook + `}]`
	}
	cases := []struct{ text, want string }{
		{route(`{secretEnv: S}`), "webhook.url is required"},
		{route(`{url: "/relative", secretEnv: S}`), "webhook.url"},
		{route(`{url: "ftp://vendor.example.com/", secretEnv: S}`), "webhook.url"},
		{route(`{url: "https://", secretEnv: S}`), "webhook.url"},
		{route(`{url: "https://vendor.example.com:bad/", secretEnv: S}`), "webhook.url"},
		{route(`{url: "https://user:pw@vendor.example.com/", secretEnv: S}`), "webhook.url must not carry user info"},
		{route(`{url: "https://vendor.example.com/"}`), "webhook.secretEnv is required"},
		{route(`{url: "https://vendor.example.com/", secretEnv: "  "}`), "webhook.secretEnv is required"},
		{route(`{url: "https://vendor.example.com/", secretEnv: "A=B"}`), "webhook.secretEnv"},
		{route(`{url: "https://vendor.example.com/", secretEnv: S, timeout: -1s}`), "webhook.timeout must not be negative"},
		{route(`{url: "https://vendor.example.com/", secretEnv: S, secret: inline}`), "secret"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.text))
		if err == nil {
			t.Errorf("%s: accepted", tc.text)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/kg") && tc.want != "secret" {
			t.Errorf("%s: error %q does not name %q and the route", tc.text, err, tc.want)
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error %q repeats the user info", tc.text, err)
		}
	}
}

// The example file parses, also with its commented webhook block enabled.
func TestExampleFile(t *testing.T) {
	t.Setenv("KOOGALLERY_KEY", "example-key")
	raw, err := os.ReadFile("../../examples/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(raw); err != nil {
		t.Fatalf("examples/config.yaml: %v", err)
	}
	var out []string
	inBlock := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "    # webhook:") {
			inBlock = true
		}
		if inBlock {
			if rest, ok := strings.CutPrefix(line, "    # "); ok && !strings.HasPrefix(strings.TrimSpace(rest), "#") {
				line = "    " + rest
			}
		}
		out = append(out, line)
	}
	if !inBlock {
		t.Fatal("examples/config.yaml has no commented webhook block")
	}
	f, err := Parse([]byte(strings.Join(out, "\n")))
	if err != nil {
		t.Fatalf("examples/config.yaml with the webhook block: %v", err)
	}
	w := f.Routes[0].Webhook
	if w == nil || w.URL != "https://vendor.example.com/gallerist" || w.SecretEnv != "VENDOR_WEBHOOK_SECRET" || w.Timeout != 10*time.Second {
		t.Fatalf("webhook block: %+v", w)
	}
}

func TestParseSaaSV1(t *testing.T) {
	f, err := Parse([]byte(`
routes:
  - path: /kg/v1
    family: saas-v1
    keys: [{value: v1-key}, {value: v1-old}]
    encryptType: "2"
  - path: /kg/v1-window
    family: saas-v1
    keys: [{value: v1-key}]
    timestampWindow: 5m
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Routes[0], f.Routes[1]
	if a.Family != FamilySaaSV1 || a.Encrypt() != "2" || len(a.Keys) != 2 {
		t.Fatalf("route a: %+v", a)
	}
	if a.V1Window() != 0 || b.V1Window() != 5*time.Minute {
		t.Fatalf("V1 windows: %v %v, want 0 (no skew rejection) and 5m", a.V1Window(), b.V1Window())
	}
	for want, text := range map[string]string{
		"allowPlainSHA256": `routes: [{path: /kg, family: saas-v1, keys: [{value: k}], allowPlainSHA256: true}]`,
		"one or two keys":  `routes: [{path: /kg, family: saas-v1, keys: [{value: a}, {value: b}, {value: c}]}]`,
		"saas-v1":          `routes: [{path: /kg, family: saas-v0, keys: [{value: k}]}]`,
	} {
		if _, err := Parse([]byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v", want, err)
		}
	}
}
