package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Issuer says how a license-a route produces the License getLicense
// answers with (license.md §2.1), and how a license-c route produces the
// License it uploads for getLicenseAsync (license.md §4.6). Exactly one way
// is configured: Builtin, Gallerist signs the license itself
// (domain/licensetoken).
type Issuer struct {
	Builtin *BuiltinIssuer `yaml:"builtin,omitempty"`
}

// BuiltinIssuer signs licenses with an Ed25519 private key. The key never
// appears in the file: PrivateKeyEnv names the environment variable holding
// it (what `gallerist license keygen` prints).
type BuiltinIssuer struct {
	// PrivateKeyEnv names the environment variable holding the private key:
	// base64 (standard or URL alphabet, padding optional) of the 32-byte
	// seed or of the 64-byte private key.
	PrivateKeyEnv string `yaml:"privateKeyEnv"`
	// Validity is how long a license is valid when getLicense (License
	// C: getLicenseAsync) carries no expireTime (default
	// DefaultLicenseValidity).
	Validity time.Duration `yaml:"validity,omitempty"`
	// Features are written into every license as its features (the
	// vendor's own entitlements, e.g. edition: pro).
	Features map[string]string `yaml:"features,omitempty"`
}

// DefaultLicenseValidity is the validity of a built-in license whose order
// names no expiry.
const DefaultLicenseValidity = 365 * 24 * time.Hour

// LicenseValidity returns Validity with its default.
func (b BuiltinIssuer) LicenseValidity() time.Duration {
	if b.Validity == 0 {
		return DefaultLicenseValidity
	}
	return b.Validity
}

// PrivateKey reads and parses the private key from the environment.
func (b BuiltinIssuer) PrivateKey() (ed25519.PrivateKey, error) {
	v, ok := os.LookupEnv(b.PrivateKeyEnv)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("issuer.builtin.privateKeyEnv: environment variable %s is not set", b.PrivateKeyEnv)
	}
	k, err := ParseLicensePrivateKey(v)
	if err != nil {
		return nil, fmt.Errorf("issuer.builtin.privateKeyEnv: environment variable %s: %w", b.PrivateKeyEnv, err)
	}
	return k, nil
}

// Validate checks the built-in issuer, including its key; errors name the
// field and never show the key.
func (b BuiltinIssuer) Validate() error {
	switch {
	case strings.TrimSpace(b.PrivateKeyEnv) == "":
		return errors.New("issuer.builtin.privateKeyEnv is required: the name of the environment variable holding the Ed25519 private key")
	case strings.ContainsAny(b.PrivateKeyEnv, "= \t\r\n\x00"):
		return fmt.Errorf("issuer.builtin.privateKeyEnv %q is not an environment variable name", b.PrivateKeyEnv)
	case b.Validity < 0:
		return fmt.Errorf("issuer.builtin.validity must not be negative, got %s", b.Validity)
	}
	for k, v := range b.Features {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("issuer.builtin.features: %q: names must be non-empty and names and values valid UTF-8", k)
		}
	}
	_, err := b.PrivateKey()
	return err
}

// validateIssuer: a license-a or license-c route needs an issuer; no other
// family has one.
func (r Route) validateIssuer() error {
	if r.Family != FamilyLicenseA && r.Family != FamilyLicenseC {
		if r.Issuer != nil {
			return fmt.Errorf("issuer is a %s or %s setting, not one of %s", FamilyLicenseA, FamilyLicenseC, r.Family)
		}
		return nil
	}
	if r.Issuer == nil || r.Issuer.Builtin == nil {
		return fmt.Errorf("a %s route needs issuer.builtin (issuer: {builtin: {privateKeyEnv: …}})", r.Family)
	}
	return r.Issuer.Builtin.Validate()
}

// ParseLicensePrivateKey reads an Ed25519 private key: base64 (standard or
// URL alphabet, padding optional, surrounding white space ignored) of the
// 32-byte seed or of the 64-byte private key (seed then public key; the
// public half must match the seed).
func ParseLicensePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	var b []byte
	var err error
	if strings.ContainsAny(s, "+/") {
		b, err = base64.RawStdEncoding.DecodeString(s)
	} else {
		b, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("the private key is not base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !bytes.Equal(k[ed25519.SeedSize:], b[ed25519.SeedSize:]) {
			return nil, errors.New("the private key's public half does not match its seed")
		}
		return k, nil
	}
	return nil, fmt.Errorf("the private key is %d bytes, want the %d-byte seed or the %d-byte key", len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// EncodeLicensePrivateKey writes k as ParseLicensePrivateKey reads it:
// base64url without padding of the 32-byte seed (43 characters).
func EncodeLicensePrivateKey(k ed25519.PrivateKey) string {
	return base64.RawURLEncoding.EncodeToString(k.Seed())
}
