package licenses

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

// IssueRequest is what an issuer is asked to license: the order of a
// getLicense (license.md §2.1) and the instance id it is bound to.
type IssueRequest struct {
	// Route is the production address the getLicense came in on.
	Route      string
	InstanceID string
	OrderID    string
	BusinessID string
	Customer   license.Customer
	Purchase   license.Purchase
}

// Issuer produces the license text of a License A order. It is called
// once per order in the common case; a crash or a concurrent duplicate on
// another replica may call it again for the same order, and then only the
// first text recorded is ever handed out.
type Issuer interface {
	Issue(ctx context.Context, r IssueRequest) (string, error)
}

// IssuerFunc adapts a function to Issuer.
type IssuerFunc func(ctx context.Context, r IssueRequest) (string, error)

// Issue implements Issuer.
func (f IssuerFunc) Issue(ctx context.Context, r IssueRequest) (string, error) { return f(ctx, r) }

// Builtin is the built-in issuer: an Ed25519-signed licensetoken the
// vendor's software verifies offline with the public key.
type Builtin struct {
	key      ed25519.PrivateKey
	validity time.Duration
	features map[string]string
	now      func() time.Time
	newID    func() string
}

// NewBuiltin builds the built-in issuer. validity applies when the order
// names no expireTime (0: config.DefaultLicenseValidity); features are
// written into every license; now nil means time.Now.
func NewBuiltin(key ed25519.PrivateKey, validity time.Duration, features map[string]string, now func() time.Time) (*Builtin, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("licenses: built-in issuer: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if validity < 0 {
		return nil, errors.New("licenses: built-in issuer: negative validity")
	}
	if validity == 0 {
		validity = config.DefaultLicenseValidity
	}
	if now == nil {
		now = time.Now
	}
	return &Builtin{key: key, validity: validity, features: maps.Clone(features), now: now,
		newID: func() string { return uuid.Must(uuid.NewV7()).String() }}, nil
}

// BuiltinFromConfig builds the built-in issuer of a route from its
// configuration (the private key from the environment).
func BuiltinFromConfig(c config.BuiltinIssuer, now func() time.Time) (*Builtin, error) {
	k, err := c.PrivateKey()
	if err != nil {
		return nil, err
	}
	return NewBuiltin(k, c.LicenseValidity(), c.Features, now)
}

// PublicKey is the key the vendor's software verifies with.
func (b *Builtin) PublicKey() ed25519.PublicKey { return b.key.Public().(ed25519.PublicKey) }

// Issue implements Issuer. The license is valid until the order's
// expireTime when getLicense carried one, else for the configured validity
// from now. An expireTime already past still gives an authentic license,
// expired (issued one second before its end).
func (b *Builtin) Issue(_ context.Context, r IssueRequest) (string, error) {
	now := b.now().UTC().Truncate(time.Second)
	notAfter := r.Purchase.ExpireTime.UTC().Truncate(time.Second)
	if r.Purchase.ExpireTime.IsZero() {
		notAfter = now.Add(b.validity)
	}
	issuedAt := now
	if !notAfter.After(issuedAt) {
		issuedAt = notAfter.Add(-time.Second)
	}
	text, err := licensetoken.Sign(b.key, licensetoken.License{
		ID: b.newID(), InstanceID: r.InstanceID, OrderID: r.OrderID, ProductID: r.Purchase.ProductID,
		SKUCode: r.Purchase.SKUCode, CustomerID: r.Customer.ID, IssuedAt: issuedAt, NotAfter: notAfter,
		Features: b.features,
	})
	if err != nil {
		return "", fmt.Errorf("licenses: built-in issuer: %w", err)
	}
	return string(text), nil
}
