package server

import (
	"context"

	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// licenseBActivities is the License B activity set (license.md §3,
// codes-and-rules.md §9). KooGallery never announces a purchase: a code is
// known once the vendor's software handed it over (licenses.Service.RegisterCode).
var licenseBActivities = map[string]activityHandler{
	"refreshLicenseCode":      (*Server).refreshLicenseCode,
	"updateLicenseCodeStatus": (*Server).updateLicenseCodeStatus,
	"releaseLicenseCode":      (*Server).releaseLicenseCode,
}

// v2Activities returns the activity set of a route authenticated with the
// V2 signature, and the family's name for messages.
func v2Activities(f config.Family) (map[string]activityHandler, string) {
	switch f {
	case config.FamilyLicenseB:
		return licenseBActivities, "License B"
	case config.FamilyLicenseC:
		return licenseCActivities, "License C"
	}
	return saasV2Activities, "SaaS V2"
}

// licenseCode reads the mandatory license field (the authorization code,
// String 64, no control characters).
func licenseCode(b body) (string, error) {
	v, err := b.str("license", true, licensecode.MaxCodeLen)
	if err != nil {
		return "", err
	}
	if _, err := licensecode.ParseCode(v); err != nil {
		return "", koogallery.Invalid("license", "license must not contain control characters")
	}
	return v, nil
}

// refreshLicenseCode: license.md §3.2. The expiry is absolute; a repeat of
// the same scene and order is a no-op success. It does not unfreeze.
func (s *Server) refreshLicenseCode(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("scene", 64), m("orderId", 64), m("orderLineId", 64))
	if err != nil {
		return errorResult(err)
	}
	code, err := licenseCode(b)
	if err != nil {
		return errorResult(err)
	}
	g, err := b.fields(o("productId", 64), m("expireTime", 20))
	if err != nil {
		return errorResult(err)
	}
	scene, err := licensecode.ParseScene(f["scene"])
	if err != nil {
		return errorResult(koogallery.Invalid("scene", "scene %q is not one of RENEWAL, UNSUBSCRIBE_RENEWAL_PERIOD", truncate(f["scene"], 40)))
	}
	exp, err := koogallery.ParseExpireTime(g["expireTime"])
	if err != nil {
		return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.ExecuteCode(ctx, code, licensecode.Refresh{
		Scene: scene, OrderID: f["orderId"], OrderLineID: f["orderLineId"], ProductID: g["productId"], ExpireTime: exp,
	}, s.cause(cl, f["orderId"], f["orderLineId"], ""))
	return errorResult(err)
}

// updateLicenseCodeStatus: license.md §3.3 — FREEZE or UNFREEZE; setting
// the current status again is success.
func (s *Server) updateLicenseCodeStatus(ctx context.Context, cl *call, b body) any {
	code, err := licenseCode(b)
	if err != nil {
		return errorResult(err)
	}
	f, err := b.fields(m("status", 32))
	if err != nil {
		return errorResult(err)
	}
	target, err := licensecode.ParseTarget(f["status"])
	if err != nil {
		return errorResult(koogallery.Invalid("status", "status %q is not FREEZE or UNFREEZE", truncate(f["status"], 40)))
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.ExecuteCode(ctx, code, licensecode.SetStatus{Target: target}, s.cause(cl, "", "", ""))
	return errorResult(err)
}

// releaseLicenseCode: license.md §3.4. Releasing a released code is
// success; orderId/orderLineId name the unsubscription when one caused it.
func (s *Server) releaseLicenseCode(ctx context.Context, cl *call, b body) any {
	code, err := licenseCode(b)
	if err != nil {
		return errorResult(err)
	}
	f, err := b.fields(o("orderId", 64), o("orderLineId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.ExecuteCode(ctx, code, licensecode.Release{OrderID: f["orderId"], OrderLineID: f["orderLineId"]},
		s.cause(cl, f["orderId"], f["orderLineId"], ""))
	return errorResult(err)
}
