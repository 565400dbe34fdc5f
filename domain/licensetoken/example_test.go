package licensetoken_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
)

// The vendor signs a license once (Gallerist does this with the vendor's
// private key) and its software verifies it offline with the public key it
// ships with.
func Example() {
	// Issuer side. A real key comes from ed25519.GenerateKey and is kept secret.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	text, err := licensetoken.Sign(priv, licensetoken.License{
		ID:         "61e834ba-7b97-4418-b8f7-e5345137278c",
		OrderID:    "CS2601020304",
		ProductID:  "00301-666666-0--0",
		CustomerID: "c-1",
		IssuedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		NotAfter:   time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
		Features:   map[string]string{"seats": "10"},
	})
	if err != nil {
		panic(err)
	}

	// Vendor software side: the public key is embedded as a string.
	embedded := licensetoken.EncodePublicKey(priv.Public().(ed25519.PublicKey))
	pub, err := licensetoken.ParsePublicKey(embedded)
	if err != nil {
		panic(err)
	}
	lic, err := licensetoken.Verify(pub, text, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println(lic.ID, lic.Features["seats"], lic.NotAfter.Format(time.DateOnly), err)

	_, err = licensetoken.Verify(pub, text, time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	fmt.Println(errors.Is(err, licensetoken.ErrExpired))

	text[10] ^= 1 // one changed bit
	_, err = licensetoken.Verify(pub, text, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println(errors.Is(err, licensetoken.ErrBadSignature) || errors.Is(err, licensetoken.ErrMalformed))
	// Output:
	// 61e834ba-7b97-4418-b8f7-e5345137278c 10 2027-01-02 <nil>
	// true
	// true
}
