// Package config holds the production routes: which URL path serves which
// KooGallery product family with which key(s). It is read from a YAML file;
// secrets may come from the environment.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Family is a KooGallery product family; it fixes the method, the
// authentication and the activity set of a route.
type Family string

// Families served today.
const (
	FamilySaaSV2 Family = "saas-v2"
	// FamilySaaSV1 is the SaaS V1 family: GET (or the POST-body variant)
	// authenticated with the V1 authToken (auth.md §3).
	FamilySaaSV1 Family = "saas-v1"
	// FamilyLicenseA is the legacy joint-operation License family
	// (license.md §2): GET with the V1 authToken; the route needs an issuer.
	FamilyLicenseA Family = "license-a"
	// FamilyLicenseB is the License 2.0 authorization-code family
	// (license.md §3): POST with the V2 signature.
	FamilyLicenseB Family = "license-b"
	// FamilyLicenseC is the online-activation License family (license.md
	// §4): POST with the V2 signature; the route needs an issuer.
	FamilyLicenseC Family = "license-c"
)

// Key is one production key of a route. Two keys may be active during a
// rotation; the first is the primary (used to sign answers to requests that
// did not authenticate).
type Key struct {
	// Value is the key as the seller console shows it. Prefer ValueEnv.
	Value string `yaml:"value,omitempty"`
	// ValueEnv names an environment variable holding the key.
	ValueEnv string `yaml:"valueEnv,omitempty"`
	// Base64 marks a key the console shows base64-encoded (international and
	// EU sites): it is decoded once at start and the decoded bytes are used
	// everywhere (auth.md §1).
	Base64 bool `yaml:"base64,omitempty"`
}

// Provisioner configures the built-in provisioner for a route.
type Provisioner struct {
	FrontEndURL string `yaml:"frontEndUrl,omitempty"`
	AdminURL    string `yaml:"adminUrl,omitempty"`
	UserName    string `yaml:"userName,omitempty"`
	Memo        string `yaml:"memo,omitempty"`
}

// Webhook is a route's vendor webhook: every lifecycle event of the
// route's instances is POSTed, signed, to URL; with Provisioning the vendor
// also creates the tenant and answers the creation with the app info
// (package projections/webhook has the wire contract). The HMAC secret
// never appears in the file: SecretEnv names the environment variable that
// holds it, read when the service starts.
type Webhook struct {
	// URL receives the POSTs: an absolute http(s) URL (https outside
	// tests: bodies carry the buyer's initial credentials).
	URL string `yaml:"url"`
	// SecretEnv names the environment variable holding the HMAC-SHA256
	// secret (at least 16 bytes).
	SecretEnv string `yaml:"secretEnv"`
	// Timeout bounds one call (0: the webhook's default, 10s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Provisioning makes the vendor create the tenant: the provisioning
	// effect POSTs InstanceCreated and takes the app info (or a refusal)
	// from the answer instead of using the built-in provisioner.
	Provisioning bool `yaml:"provisioning,omitempty"`
}

// Validate checks the webhook's fields; errors name the field.
func (w Webhook) Validate() error {
	if w.URL == "" {
		return errors.New("webhook.url is required")
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil:
		// *url.Error repeats the URL, which may carry a token: say why only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("webhook.url does not parse: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Hostname() == "":
		return fmt.Errorf("webhook.url %q must be an absolute http:// or https:// URL", redactURL(u))
	case u.User != nil:
		return errors.New("webhook.url must not carry user info (the secret comes from webhook.secretEnv)")
	}
	switch {
	case strings.TrimSpace(w.SecretEnv) == "":
		return errors.New("webhook.secretEnv is required: the name of the environment variable holding the HMAC secret")
	case strings.ContainsAny(w.SecretEnv, "= \t\r\n\x00"):
		return fmt.Errorf("webhook.secretEnv %q is not an environment variable name", w.SecretEnv)
	}
	if w.Timeout < 0 {
		return fmt.Errorf("webhook.timeout must not be negative, got %s", w.Timeout)
	}
	return nil
}

// redactURL is u without user info, query and fragment, for messages.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment, c.RawFragment = nil, "", "", ""
	return c.String()
}

// Route is one production address.
type Route struct {
	// Path is the URL path KooGallery calls, e.g. /koogallery/product-a.
	Path   string `yaml:"path"`
	Family Family `yaml:"family"`
	Keys   []Key  `yaml:"keys"`
	// EncryptType is "1" (AES-256, default) or "2" (AES-128), as chosen when
	// the product was published.
	EncryptType string `yaml:"encryptType,omitempty"`
	// TimestampWindow is the V2 freshness window (default 60s). On a SaaS
	// V1 route it is optional and off by default (auth.md §3.4): when set,
	// a timeStamp that is not 17 digits is 000002 and one outside the
	// window 000001.
	TimestampWindow time.Duration `yaml:"timestampWindow,omitempty"`
	// AllowPlainSHA256 enables signature form (d), the plain-SHA-256 inner
	// hash reading of the spec (auth.md §2.2). Default off.
	AllowPlainSHA256 bool `yaml:"allowPlainSHA256,omitempty"`
	// Provisioner configures the built-in provisioner for this route.
	Provisioner Provisioner `yaml:"provisioner,omitempty"`
	// Webhook, when set, notifies the vendor of every lifecycle event (and,
	// with provisioning, has the vendor create the tenant).
	Webhook *Webhook `yaml:"webhook,omitempty"`
	// Issuer produces the licenses of a license-a or license-c route
	// (license.go).
	Issuer *Issuer `yaml:"issuer,omitempty"`
	// RequireFingerprint (license-c only): getLicenseAsync without a
	// deviceFingerprint is refused with 000903 (license.md §4.6).
	RequireFingerprint bool `yaml:"requireFingerprint,omitempty"`
}

// File is the whole configuration file.
type File struct {
	Routes []Route `yaml:"routes"`
}

// Load reads and validates a YAML file.
func Load(path string) (File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	return Parse(raw)
}

// Parse reads and validates YAML text. Unknown fields are errors, so that a
// typo never silently disables a setting.
func Parse(raw []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	if err := f.Validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// Validate checks every route.
func (f File) Validate() error {
	if len(f.Routes) == 0 {
		return errors.New("config: no routes")
	}
	seen := map[string]bool{}
	for i, r := range f.Routes {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("config: routes[%d]: %w", i, err)
		}
		if seen[r.Path] {
			return fmt.Errorf("config: routes[%d]: path %s configured twice", i, r.Path)
		}
		seen[r.Path] = true
	}
	return nil
}

// Validate checks one route.
func (r Route) Validate() error {
	if !strings.HasPrefix(r.Path, "/") {
		return fmt.Errorf("path %q must start with /", r.Path)
	}
	switch r.Family {
	case FamilySaaSV2, FamilySaaSV1, FamilyLicenseA, FamilyLicenseB, FamilyLicenseC:
	default:
		return fmt.Errorf("path %s: unknown family %q (supported: %s, %s, %s, %s, %s)", r.Path, r.Family,
			FamilySaaSV2, FamilySaaSV1, FamilyLicenseA, FamilyLicenseB, FamilyLicenseC)
	}
	if r.RequireFingerprint && r.Family != FamilyLicenseC {
		return fmt.Errorf("path %s: requireFingerprint is a %s setting, not one of %s", r.Path, FamilyLicenseC, r.Family)
	}
	if len(r.Keys) < 1 || len(r.Keys) > 2 {
		return fmt.Errorf("path %s: needs one or two keys, has %d", r.Path, len(r.Keys))
	}
	for i, k := range r.Keys {
		if _, err := k.Bytes(); err != nil {
			return fmt.Errorf("path %s: keys[%d]: %w", r.Path, i, err)
		}
	}
	switch r.EncryptType {
	case "", "1", "2":
	default:
		return fmt.Errorf("path %s: encryptType must be \"1\" or \"2\", got %q", r.Path, r.EncryptType)
	}
	if r.TimestampWindow < 0 {
		return fmt.Errorf("path %s: timestampWindow must not be negative", r.Path)
	}
	if (r.Family == FamilySaaSV1 || r.Family == FamilyLicenseA) && r.AllowPlainSHA256 {
		return fmt.Errorf("path %s: allowPlainSHA256 is a V2 signature setting; a %s route authenticates with the V1 authToken", r.Path, r.Family)
	}
	if err := r.validateIssuer(); err != nil {
		return fmt.Errorf("path %s: %w", r.Path, err)
	}
	if r.Webhook != nil {
		if err := r.Webhook.Validate(); err != nil {
			return fmt.Errorf("path %s: %w", r.Path, err)
		}
	}
	return nil
}

// V1Window returns the optional SaaS V1 (and License A) timeStamp window: 0 (the default)
// means no skew rejection (auth.md §3.4).
func (r Route) V1Window() time.Duration { return r.TimestampWindow }

// Window returns the timestamp window with its default.
func (r Route) Window() time.Duration {
	if r.TimestampWindow == 0 {
		return 60 * time.Second
	}
	return r.TimestampWindow
}

// Encrypt returns the encryptType with its default.
func (r Route) Encrypt() string {
	if r.EncryptType == "" {
		return "1"
	}
	return r.EncryptType
}

// Bytes resolves the key: from ValueEnv or Value, base64-decoded if marked.
func (k Key) Bytes() ([]byte, error) {
	v := k.Value
	if k.ValueEnv != "" {
		env, ok := os.LookupEnv(k.ValueEnv)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", k.ValueEnv)
		}
		v = env
	}
	if v == "" {
		return nil, errors.New("empty key (set value or valueEnv)")
	}
	if !k.Base64 {
		return []byte(v), nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return nil, fmt.Errorf("key marked base64 does not decode: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("key decodes to nothing")
	}
	return b, nil
}
