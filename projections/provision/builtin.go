package provision

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gallerist/gallerist/domain/instance"
)

// BuiltinConfig configures the built-in provisioner. Every field is a
// template in which these placeholders are replaced by plain text
// substitution (no escaping, no other syntax):
//
//	{instanceId}   the instance id
//	{orderId}      the KooGallery order id
//	{orderLineId}  the KooGallery order line id
//	{businessId}   the businessId of the first newInstance
//	{short}        the first 8 hex digits of SHA-256(instance id)
//
// An empty field is left out of the app info (FrontEndURL is required).
// DefaultBuiltinConfig returns the defaults.
type BuiltinConfig struct {
	// FrontEndURL is the buyer's URL; it must expand to an absolute http(s)
	// URL of at most MaxURLLen characters.
	FrontEndURL string
	// AdminURL is the admin console URL; same rules, optional.
	AdminURL string
	// UserName is the initial admin account; it must expand to at most
	// MaxSecretBytes UTF-8 bytes.
	UserName string
	// Memo is extra text for the buyer; at most MaxMemoLen characters once
	// non-ASCII characters are \uXXXX-escaped.
	Memo string
}

// DefaultBuiltinConfig returns the defaults: per-instance URLs under
// app.example.com and admin.example.com, user name "admin-{short}", no memo.
func DefaultBuiltinConfig() BuiltinConfig {
	return BuiltinConfig{
		FrontEndURL: "https://app.example.com/{instanceId}",
		AdminURL:    "https://admin.example.com/{instanceId}",
		UserName:    "admin-{short}",
	}
}

// sample is what Validate expands templates with: ids as long as typical
// KooGallery ids. Ids are up to 64 characters, so a template that passes
// Validate can still expand too long for a real instance; Provision checks
// every result again.
var sample = Request{
	InstanceID: "9f3a1c2e-5b7d-4e8f-a1b2-c3d4e5f60718", BusinessID: "9f3a1c2e-5b7d-4e8f-a1b2-c3d4e5f60718",
	OrderID: "CS2501011234ABCDE", OrderLineID: "CS2501011234ABCDE-000001",
}

var placeholderRE = regexp.MustCompile(`\{[A-Za-z]+\}`)

// Validate checks the templates: FrontEndURL is required; every field must
// expand (with a sample instance) to a value within KooGallery's limits and
// contain no unknown {placeholder}.
func (c BuiltinConfig) Validate() error {
	if c.FrontEndURL == "" {
		return errors.New("provision: builtin: FrontEndURL is required")
	}
	for _, f := range []struct{ name, tmpl string }{
		{"FrontEndURL", c.FrontEndURL}, {"AdminURL", c.AdminURL}, {"UserName", c.UserName}, {"Memo", c.Memo},
	} {
		if p := placeholderRE.FindString(ExpandTemplate(f.tmpl, sample)); p != "" {
			return fmt.Errorf("provision: builtin: %s: unknown placeholder %s", f.name, p)
		}
	}
	if err := ValidateAppInfo(c.appInfo(sample)); err != nil {
		return fmt.Errorf("provision: builtin: templates expanded for a sample instance: %w", err)
	}
	return nil
}

// Builtin provisions locally: app info from templates and a fresh random
// password. It creates nothing at the vendor; it is the zero-code default.
// It is safe for concurrent use.
type Builtin struct{ cfg BuiltinConfig }

// NewBuiltin validates cfg and returns the provisioner.
func NewBuiltin(cfg BuiltinConfig) (*Builtin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Builtin{cfg: cfg}, nil
}

// Provision implements Provisioner. It fails (with an error wrapping
// ErrAppInfoTooLong or ErrAppInfoInvalid, never a refusal) when the
// templates expand beyond KooGallery's limits for this instance: that is a
// configuration error to fix, not the buyer's fault.
func (b *Builtin) Provision(ctx context.Context, req Request) (instance.AppInfo, error) {
	if err := ctx.Err(); err != nil {
		return instance.AppInfo{}, err
	}
	app := b.cfg.appInfo(req)
	if err := ValidateAppInfo(app); err != nil {
		return instance.AppInfo{}, fmt.Errorf("builtin provisioner, instance %s: %w", req.InstanceID, err)
	}
	pw, err := NewPassword()
	if err != nil {
		return instance.AppInfo{}, err
	}
	app.Password = pw
	return app, nil
}

func (c BuiltinConfig) appInfo(req Request) instance.AppInfo {
	return instance.AppInfo{
		FrontEndURL: ExpandTemplate(c.FrontEndURL, req),
		AdminURL:    ExpandTemplate(c.AdminURL, req),
		UserName:    ExpandTemplate(c.UserName, req),
		Memo:        ExpandTemplate(c.Memo, req),
	}
}

// ExpandTemplate replaces the placeholders {instanceId}, {orderId},
// {orderLineId}, {businessId} and {short} (8 hex characters of the SHA-256
// of the instance id) in tmpl.
func ExpandTemplate(tmpl string, req Request) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	sum := sha256.Sum256([]byte(req.InstanceID))
	return strings.NewReplacer(
		"{instanceId}", req.InstanceID,
		"{orderId}", req.OrderID,
		"{orderLineId}", req.OrderLineID,
		"{businessId}", req.BusinessID,
		"{short}", hex.EncodeToString(sum[:4]),
	).Replace(tmpl)
}

// The password alphabet: no look-alikes (0 O o, 1 l I) and no characters
// that JSON or HTML escape or that break quoting: no quotes, backslash,
// backquote, space, '$', '&', '<', '>' or '|'.
const (
	pwUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwLower   = "abcdefghijkmnpqrstuvwxyz"
	pwDigits  = "23456789"
	pwSymbols = "#%*+-=?@^_~"
	pwAll     = pwUpper + pwLower + pwDigits + pwSymbols
	// PasswordLen is the length of generated passwords (ASCII, so also
	// their size in bytes): about 146 bits of entropy.
	PasswordLen = 24
)

// NewPassword returns a password of PasswordLen characters from crypto/rand
// with at least one upper-case letter, lower-case letter, digit and symbol,
// and no ambiguous characters.
func NewPassword() (string, error) {
	r := &randBytes{}
	out := make([]byte, PasswordLen)
	for i, set := range []string{pwUpper, pwLower, pwDigits, pwSymbols} {
		c, err := r.pick(set)
		if err != nil {
			return "", err
		}
		out[i] = c
	}
	for i := 4; i < len(out); i++ {
		c, err := r.pick(pwAll)
		if err != nil {
			return "", err
		}
		out[i] = c
	}
	// Fisher–Yates, so the guaranteed classes are not always in front.
	for i := len(out) - 1; i > 0; i-- {
		j, err := r.intn(i + 1)
		if err != nil {
			return "", err
		}
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// randBytes draws uniform small integers from crypto/rand.
type randBytes struct {
	buf [64]byte
	n   int // bytes left at the end of buf
}

func (r *randBytes) byte() (byte, error) {
	if r.n == 0 {
		if _, err := rand.Read(r.buf[:]); err != nil {
			return 0, fmt.Errorf("provision: random password: %w", err)
		}
		r.n = len(r.buf)
	}
	r.n--
	return r.buf[r.n], nil
}

// intn returns a uniform int in [0, n), 0 < n ≤ 256, by rejection sampling.
func (r *randBytes) intn(n int) (int, error) {
	limit := 256 - 256%n
	for {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if int(b) < limit {
			return int(b) % n, nil
		}
	}
}

func (r *randBytes) pick(set string) (byte, error) {
	i, err := r.intn(len(set))
	if err != nil {
		return 0, err
	}
	return set[i], nil
}
