package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/licenses"
)

// keygen runs `license keygen` and returns the two keys it printed.
func keygen(t *testing.T) (priv ed25519.PrivateKey, privText, pubText string) {
	t.Helper()
	code, out, errOut := runCmd(t, "license", "keygen")
	if code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "LICENSE_PRIVATE_KEY=") || !strings.HasPrefix(lines[1], "LICENSE_PUBLIC_KEY=") {
		t.Fatalf("keygen printed %q", out)
	}
	if !strings.Contains(errOut, "privateKeyEnv") {
		t.Errorf("keygen's note on stderr does not say where the key goes: %q", errOut)
	}
	privText = strings.TrimPrefix(lines[0], "LICENSE_PRIVATE_KEY=")
	pubText = strings.TrimPrefix(lines[1], "LICENSE_PUBLIC_KEY=")
	priv, err := config.ParseLicensePrivateKey(privText)
	if err != nil {
		t.Fatalf("the printed private key does not parse: %v", err)
	}
	pub, err := licensetoken.ParsePublicKey(pubText)
	if err != nil {
		t.Fatalf("the printed public key does not parse: %v", err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("the printed keys are not a pair")
	}
	return priv, privText, pubText
}

func TestLicenseKeygen(t *testing.T) {
	_, a, _ := keygen(t)
	_, b, _ := keygen(t)
	if a == b {
		t.Fatal("two runs printed the same private key")
	}
	if code, _, errOut := runCmd(t, "license", "keygen", "extra"); code != 1 || !strings.Contains(errOut, "extra") {
		t.Fatalf("keygen extra: exit %d, %q", code, errOut)
	}
}

// issueWith signs a license the way the built-in issuer does.
func issueWith(t *testing.T, priv ed25519.PrivateKey, expire time.Time) string {
	t.Helper()
	b, err := licenses.NewBuiltin(priv, 0, map[string]string{"edition": "pro", "seats": "10"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	text, err := b.Issue(context.Background(), licenses.IssueRequest{
		InstanceID: "biz-1", OrderID: "CS2601", Customer: license.Customer{ID: "cust-1"},
		Purchase: license.Purchase{ProductID: "prod-1", SKUCode: "sku-1", ExpireTime: expire},
	})
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestLicenseVerify(t *testing.T) {
	priv, privText, pubText := keygen(t)
	t.Setenv("GALLERIST_TEST_CLI_LICENSE_KEY", privText)
	fromEnv, err := (config.BuiltinIssuer{PrivateKeyEnv: "GALLERIST_TEST_CLI_LICENSE_KEY"}).PrivateKey()
	if err != nil || !fromEnv.Equal(priv) {
		t.Fatalf("the printed private key read through the route configuration: %v", err)
	}
	text := issueWith(t, priv, time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC))
	file := filepath.Join(t.TempDir(), "license.lic")
	if err := os.WriteFile(file, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("a valid license from a file", func(t *testing.T) {
		code, out, errOut := runCmd(t, "license", "verify", "--public-key", pubText, "--file", file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"license valid", "instanceId: biz-1", "orderId:    CS2601", "productId:  prod-1",
			"skuCode:    sku-1", "customerId: cust-1", "notAfter:   2099-01-02T03:04:05Z", "features:   edition=pro, seats=10"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("from standard input", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if err := licenseCmd([]string{"verify", "--public-key", pubText, "-"}, strings.NewReader(text), &out, &errOut); err != nil {
			t.Fatalf("verify -: %v", err)
		}
		if !strings.Contains(out.String(), "license valid") {
			t.Fatalf("output %q", out.String())
		}
	})
	t.Run("the public key from the environment", func(t *testing.T) {
		t.Setenv("GALLERIST_PUBLIC_KEY", pubText)
		if code, _, errOut := runCmd(t, "license", "verify", "--file", file); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("expired: the fields, and a non-zero exit", func(t *testing.T) {
		code, out, errOut := runCmd(t, "license", "verify", "--public-key", pubText, "--file", file, "--at", "2100-01-01T00:00:00Z")
		if code != 1 || !strings.Contains(out, "not valid now") || !strings.Contains(out, "biz-1") || !strings.Contains(errOut, "expired") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("refusals exit non-zero", func(t *testing.T) {
		_, _, otherPub := keygen(t)
		tampered := filepath.Join(t.TempDir(), "tampered.lic")
		b := []byte(text)
		b[5] ^= 1
		if err := os.WriteFile(tampered, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"another key":    {[]string{"--public-key", otherPub, "--file", file}, "signature does not verify"},
			"tampered":       {[]string{"--public-key", pubText, "--file", tampered}, "licensetoken"},
			"no public key":  {[]string{"--file", file}, "--public-key is required"},
			"bad public key": {[]string{"--public-key", "abc", "--file", file}, "--public-key"},
			"no input":       {[]string{"--public-key", pubText}, "--file"},
			"both inputs":    {[]string{"--public-key", pubText, "--file", file, "-"}, "not both"},
			"missing file":   {[]string{"--public-key", pubText, "--file", file + ".none"}, "no such file"},
			"bad --at":       {[]string{"--public-key", pubText, "--file", file, "--at", "tomorrow"}, "--at"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Setenv("GALLERIST_PUBLIC_KEY", "")
				code, out, errOut := runCmd(t, append([]string{"license", "verify"}, tc.args...)...)
				if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(out, "license valid") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, tc.want)
				}
			})
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, errOut := runCmd(t, "license"); code != 1 || !strings.Contains(errOut, "keygen") {
			t.Fatalf("license: exit %d, %q", code, errOut)
		}
		if code, _, errOut := runCmd(t, "license", "frob"); code != 1 || !strings.Contains(errOut, "frob") {
			t.Fatalf("license frob: exit %d, %q", code, errOut)
		}
		if code, out, _ := runCmd(t, "help"); code != 0 || !strings.Contains(out, "license") {
			t.Fatalf("help: exit %d, %q", code, out)
		}
	})
}
