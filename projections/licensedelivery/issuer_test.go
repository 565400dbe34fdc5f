package licensedelivery

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

func TestBuiltinIssue(t *testing.T) {
	b, err := NewBuiltin(testKey, 30*24*time.Hour, map[string]string{"edition": "pro", FingerprintFeature: "configured"})
	if err != nil {
		t.Fatal(err)
	}
	if !b.PublicKey().Equal(testKey.Public()) {
		t.Fatal("public key")
	}
	start := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	st := instance.Fold(
		instance.Created{InstanceID: "i-1", OrderID: "o-1", OrderLineID: "l-1", BusinessID: "i-1"},
		instance.OrderQueried{Info: instance.OrderInfo{OrderID: "o-1", ProductID: "p-1", SKUCode: "s-1", CustomerID: "c-1",
			ChargingMode: "PERIOD", ExpireTime: start.AddDate(0, 0, 10)}},
	)
	req := Request{Route: route, InstanceID: "i-1", EventID: "ev-1", Fingerprint: "FP", EffectiveTime: start.Add(500 * time.Millisecond),
		RequestedAt: start.Add(-time.Minute), Instance: st}
	a, err := b.Issue(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Issue(t.Context(), req)
	if err != nil || again != a {
		t.Fatalf("the same request gave another license: %v", err)
	}
	l, err := licensetoken.Verify(b.PublicKey(), []byte(a.Text), start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// No expireTime: the configured validity, cut at the order's end.
	if l.ID != a.LicenseID || l.InstanceID != "i-1" || l.OrderID != "o-1" || l.ProductID != "p-1" || l.SKUCode != "s-1" ||
		l.CustomerID != "c-1" || !l.NotBefore.Equal(start) || !l.NotAfter.Equal(start.AddDate(0, 0, 10)) ||
		!l.IssuedAt.Equal(start.Add(-time.Minute)) || l.Features["edition"] != "pro" || l.Features[FingerprintFeature] != "FP" {
		t.Fatalf("license %+v", l)
	}
	// Another application of the instance gets another id.
	req.EventID = "ev-2"
	req.ExpireTime = start.AddDate(0, 0, 3)
	other, err := b.Issue(t.Context(), req)
	if err != nil || other.LicenseID == a.LicenseID {
		t.Fatalf("second license %v %v", other, err)
	}
	l2, err := licensetoken.Verify(b.PublicKey(), []byte(other.Text), start.Add(time.Hour))
	if err != nil || !l2.NotAfter.Equal(start.AddDate(0, 0, 3)) {
		t.Fatalf("%+v %v", l2, err)
	}
	// Issued after its end (a late retry): still authentic, issued a second
	// before it.
	req.RequestedAt = start.AddDate(0, 0, 5)
	late, err := b.Issue(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := licensetoken.Verify(b.PublicKey(), []byte(late.Text), start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestIssuersFromRoutes(t *testing.T) {
	t.Setenv("GALLERIST_TEST_LICENSEDELIVERY_KEY", config.EncodeLicensePrivateKey(testKey))
	routes := []config.Route{
		{Path: "/a", Family: config.FamilyLicenseA},
		{Path: "/c", Family: config.FamilyLicenseC, Issuer: &config.Issuer{Builtin: &config.BuiltinIssuer{PrivateKeyEnv: "GALLERIST_TEST_LICENSEDELIVERY_KEY"}}},
	}
	res, err := IssuersFromRoutes(routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res("/a"); ok {
		t.Error("a License A route has a License C issuer")
	}
	iss, ok := res("/c")
	b, isBuiltin := iss.(*Builtin)
	if !ok || !isBuiltin || !b.PublicKey().Equal(testKey.Public()) || b.validity != config.DefaultLicenseValidity {
		t.Fatalf("issuer of /c: %v %T", ok, iss)
	}
	extra := &Builtin{}
	if res, err = IssuersFromRoutes(routes, map[string]Issuer{"/c": extra}); err != nil {
		t.Fatal(err)
	}
	if got, _ := res("/c"); got != extra {
		t.Error("extra issuers do not replace the configured ones")
	}
	routes[1].Issuer.Builtin.PrivateKeyEnv = "GALLERIST_TEST_LICENSEDELIVERY_UNSET"
	if _, err := IssuersFromRoutes(routes, nil); err == nil {
		t.Error("a missing key is accepted")
	}
	if _, err := NewBuiltin(ed25519.PrivateKey{1, 2}, 0, nil); err == nil {
		t.Error("a short key is accepted")
	}
	if _, err := NewBuiltin(testKey, -time.Second, nil); err == nil {
		t.Error("a negative validity is accepted")
	}
}
