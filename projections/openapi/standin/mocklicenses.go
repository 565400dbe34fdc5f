package standin

import "time"

// Mock authorization codes. KooGallery publishes no mock codes (real test
// codes are applied for in the seller console, outgoing.md §6); these are
// the stand-in's own, fixed so tests and a vendor's software can rely on
// them. Each covers one answer of the activate and query APIs.
const (
	// MockLicenseNew is received and not yet activated: the first activate
	// succeeds, later ones answer CodeLicenseIllegalState.
	MockLicenseNew = "PLMOCKNEW"
	// MockLicenseActive is already activated and ALIVE.
	MockLicenseActive = "PLMOCKACTIVE"
	// MockLicenseNotReceived has not reached the buyer: activate answers
	// CodeLicenseNotReceived.
	MockLicenseNotReceived = "PLMOCKNOTRECEIVED"
	// MockLicenseExpired was activated and has expired: query answers
	// status EXPIRED, activate CodeLicenseIllegalState.
	MockLicenseExpired = "PLMOCKEXPIRED"
	// MockLicenseReleased was activated and released: status RELEASED.
	MockLicenseReleased = "PLMOCKRELEASED"
	// MockLicenseProduct is the product of every mock code.
	MockLicenseProduct = "OFFI000000000000000201"
)

// MockLicenseCodes returns the mock codes, in the order above. All belong
// to product MockLicenseProduct, order MOCKLICENSE-<n>, amount 2; the
// order time is 2024-06-01 08:00 UTC; the live codes expire 2099-12-31,
// the expired one on 2024-07-01.
func MockLicenseCodes() []LicenseCode {
	order := time.Date(2024, 6, 1, 8, 0, 0, 0, time.UTC)
	activated := time.Date(2024, 6, 2, 8, 0, 0, 0, time.UTC)
	far := time.Date(2099, 12, 31, 16, 0, 0, 0, time.UTC)
	mk := func(n int, code string) LicenseCode {
		return LicenseCode{
			Code: code, OrderTime: order, ExpireTime: far,
			ProductID: MockLicenseProduct, OrderID: "MOCKLICENSE-" + string(rune('0'+n)), Amount: 2,
		}
	}
	out := []LicenseCode{
		mk(1, MockLicenseNew), mk(2, MockLicenseActive), mk(3, MockLicenseNotReceived),
		mk(4, MockLicenseExpired), mk(5, MockLicenseReleased),
	}
	out[1].Activated, out[1].ActivateTime = true, activated
	out[2].NotReceived = true
	out[3].Activated, out[3].ActivateTime, out[3].ExpireTime = true, activated, time.Date(2024, 7, 1, 8, 0, 0, 0, time.UTC)
	out[4].Activated, out[4].ActivateTime, out[4].Released = true, activated, true
	return out
}
