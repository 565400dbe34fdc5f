package licensedelivery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

// Request is what an issuer is asked to license: one getLicenseAsync
// application (license.md §4.6) of an instance.
type Request struct {
	// Route is the production address the application came in on.
	Route       string
	InstanceID  string
	EventID     string
	Fingerprint string
	// EffectiveTime and ExpireTime are the requested validity; ExpireTime
	// is zero when the application carried none.
	EffectiveTime time.Time
	ExpireTime    time.Time
	// RequestedAt is when the application was recorded.
	RequestedAt time.Time
	// Instance is the instance's state (order, product, Query Order's
	// answer, expiry) when the License is generated.
	Instance instance.State
}

// Issued is a generated License: its id and its text (what is uploaded).
type Issued struct {
	LicenseID string
	Text      string
}

// Issuer generates the License of an application. The effect calls it
// once per application in the common case and records the first License
// recorded for it; a crash or a concurrent replica may call it again, and
// then only the first text recorded is ever uploaded.
type Issuer interface {
	Issue(ctx context.Context, r Request) (Issued, error)
}

// Resolver returns the issuer of a production route (the Causation.Route of
// the application's event); false when the route has none.
type Resolver func(route string) (Issuer, bool)

// FingerprintFeature is the feature under which the built-in issuer writes
// the application's device fingerprint into the License (licensetoken has
// no member of its own for it); it replaces a configured feature of that
// name.
const FingerprintFeature = "deviceFingerprint"

// licenseIDSpace is the UUID namespace of built-in License ids: the id of
// an application's License is derived from its instance and eventId.
var licenseIDSpace = uuid.MustParse("6d1c0f1e-3f5b-5c55-9a55-6c6963656e43")

// Builtin is the built-in issuer of License C: an Ed25519-signed
// licensetoken (the format of License A's built-in issuer) that the
// vendor's software verifies offline with the public key.
type Builtin struct {
	key      ed25519.PrivateKey
	validity time.Duration
	features map[string]string
}

// NewBuiltin builds the built-in issuer. validity applies when an
// application carries no expireTime (0: config.DefaultLicenseValidity);
// features are written into every License.
func NewBuiltin(key ed25519.PrivateKey, validity time.Duration, features map[string]string) (*Builtin, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("licensedelivery: built-in issuer: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if validity < 0 {
		return nil, errors.New("licensedelivery: built-in issuer: negative validity")
	}
	if validity == 0 {
		validity = config.DefaultLicenseValidity
	}
	return &Builtin{key: key, validity: validity, features: maps.Clone(features)}, nil
}

// BuiltinFromConfig builds the built-in issuer of a route from its
// configuration (issuer.builtin: the private key from the environment).
func BuiltinFromConfig(c config.BuiltinIssuer) (*Builtin, error) {
	k, err := c.PrivateKey()
	if err != nil {
		return nil, err
	}
	return NewBuiltin(k, c.LicenseValidity(), c.Features)
}

// IssuersFromRoutes builds the built-in issuer of every license-c route
// (reading the private keys from the environment now) and returns their
// resolver. extra adds or replaces issuers by route path.
func IssuersFromRoutes(routes []config.Route, extra map[string]Issuer) (Resolver, error) {
	byRoute := map[string]Issuer{}
	for _, r := range routes {
		if r.Family != config.FamilyLicenseC || extra[r.Path] != nil {
			continue
		}
		if r.Issuer == nil || r.Issuer.Builtin == nil {
			return nil, fmt.Errorf("licensedelivery: route %s: no issuer configured", r.Path)
		}
		b, err := BuiltinFromConfig(*r.Issuer.Builtin)
		if err != nil {
			return nil, fmt.Errorf("licensedelivery: route %s: %w", r.Path, err)
		}
		byRoute[r.Path] = b
	}
	maps.Copy(byRoute, extra)
	return func(route string) (Issuer, bool) {
		i, ok := byRoute[route]
		return i, ok
	}, nil
}

// PublicKey is the key the vendor's software verifies with.
func (b *Builtin) PublicKey() ed25519.PublicKey { return b.key.Public().(ed25519.PublicKey) }

// Issue implements Issuer. The License is valid from the application's
// effectiveTime until its expireTime; without one, for the configured
// validity, but not past the end of the instance's current order when that
// is known. It carries the instance, its order, product, SKU and customer
// (from Query Order when recorded), the configured features and the
// device fingerprint (FingerprintFeature). Its id is derived from the
// instance and the eventId, and it is issued at RequestedAt: the same
// request and key give the same text.
func (b *Builtin) Issue(_ context.Context, r Request) (Issued, error) {
	st := r.Instance
	notBefore := r.EffectiveTime.UTC().Truncate(time.Second)
	notAfter := r.ExpireTime.UTC().Truncate(time.Second)
	if r.ExpireTime.IsZero() {
		notAfter = notBefore.Add(b.validity)
		if end := st.ValidUntil().UTC().Truncate(time.Second); !end.IsZero() && end.After(notBefore) && end.Before(notAfter) {
			notAfter = end
		}
	}
	if !notAfter.After(notBefore) {
		notAfter = notBefore.Add(time.Second)
	}
	issuedAt := r.RequestedAt.UTC().Truncate(time.Second)
	if issuedAt.IsZero() || !notAfter.After(issuedAt) {
		issuedAt = notAfter.Add(-time.Second)
	}
	features := maps.Clone(b.features)
	if r.Fingerprint != "" {
		if features == nil {
			features = map[string]string{}
		}
		features[FingerprintFeature] = r.Fingerprint
	}
	l := licensetoken.License{
		ID:         uuid.NewSHA1(licenseIDSpace, []byte(r.InstanceID+"\x00"+r.EventID)).String(),
		InstanceID: r.InstanceID, OrderID: st.OrderID, ProductID: st.ProductID, SKUCode: st.SKUCode,
		IssuedAt: issuedAt, NotBefore: notBefore, NotAfter: notAfter, Features: features,
	}
	if o := st.Order; o != nil {
		l.CustomerID = o.CustomerID
		if l.SKUCode == "" {
			l.SKUCode = o.SKUCode
		}
		if l.ProductID == "" {
			l.ProductID = o.ProductID
		}
	}
	text, err := licensetoken.Sign(b.key, l)
	if err != nil {
		return Issued{}, fmt.Errorf("licensedelivery: built-in issuer: %w", err)
	}
	return Issued{LicenseID: l.ID, Text: string(text)}, nil
}
