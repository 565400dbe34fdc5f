package server

import (
	"context"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/licenses"
)

// licenseAActivities is the License A activity set (license.md §2,
// codes-and-rules.md §9); every activity is String(20).
var licenseAActivities = map[string]v1ActivityHandler{
	"getLicense":     (*Server).getLicense,
	"refreshLicense": (*Server).refreshLicense,
	"expireLicense":  (*Server).expireLicense,
	"releaseLicense": (*Server).releaseLicense,
}

// getLicenseResponse is the answer of getLicense (license.md §2.1):
// resultMsg is mandatory there, and the License travels in the answer.
type getLicenseResponse struct {
	ResultCode string `json:"resultCode"`
	ResultMsg  string `json:"resultMsg"`
	InstanceID string `json:"instanceId,omitempty"`
	License    string `json:"license,omitempty"`
}

func (r getLicenseResponse) code() string { return r.ResultCode }

// getLicenseKnown are the getLicense parameters read with a meaning (the
// confirmed ones and those of SaaS V1 newInstance); every other parameter
// is stored with the order as received (license.md §2.1, UNCERTAIN).
var getLicenseKnown = map[string]bool{
	"activity": true, "timeStamp": true, "testFlag": true,
	"customerId": true, "customerName": true, "userId": true, "userName": true, "businessId": true, "orderId": true,
	"skuCode": true, "productId": true, "trialFlag": true, "expireTime": true, "chargingMode": true,
	"periodType": true, "periodNumber": true,
}

// serveLicenseA serves a License A route: GET with the parameters in the
// query, or the POST-body variant, both authenticated with the V1
// authToken and the route's Key (license.md §2, auth.md §3).
func (s *Server) serveLicenseA(ep *endpoint) gin.HandlerFunc {
	return s.serveAuthToken(ep, s.handleLicenseA)
}

// handleLicenseA is the License A pipeline after authentication: the
// optional timeStamp window, the activity, the debug marker.
func (s *Server) handleLicenseA(ctx context.Context, cl *call, a v1Auth) any {
	if err := s.checkAuthToken(cl, a); err != nil {
		return errorResult(err)
	}
	p := a.params
	activity, err := p.str("activity", true, 20)
	if err != nil {
		return errorResult(err)
	}
	h, ok := licenseAActivities[activity]
	if !ok {
		return errorResult(koogallery.Invalid("activity", "activity %q is not a License A activity", truncate(activity, 40)))
	}
	cl.activity = activity
	if cl.debug, err = p.testFlag(); err != nil {
		return errorResult(err)
	}
	return h(s, ctx, cl, p)
}

// getLicense: license.md §2.1. The License is answered synchronously; the
// same order always gets the same instanceId (the first businessId) and
// the same License. Never 000004: a License not ready within the
// provisioning budget is 000005 "license generation in progress".
func (s *Server) getLicense(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("customerId", 100), o("customerName", 64), m("businessId", 64), m("orderId", 64), o("skuCode", 64),
		o("productId", 64), o("userId", 64), o("userName", 64))
	if err != nil {
		return errorResult(err)
	}
	req := licenses.GetLicense{
		OrderID: f["orderId"], BusinessID: f["businessId"],
		Customer: license.Customer{ID: f["customerId"], Name: f["customerName"], UserID: f["userId"], UserName: f["userName"]},
		Purchase: license.Purchase{ProductID: f["productId"], SKUCode: f["skuCode"]},
	}
	if req.Purchase.Trial, err = p.flag("trialFlag"); err != nil {
		return errorResult(err)
	}
	if v := p["expireTime"]; v != "" {
		if req.Purchase.ExpireTime, err = koogallery.ParseExpireTime(v); err != nil {
			return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
		}
	}
	cm, err := p.integer("chargingMode", 3)
	if err != nil {
		return errorResult(err)
	}
	if cm != nil {
		switch *cm {
		case 0, 1, 3, 5:
			req.Purchase.ChargingMode = fmt.Sprint(*cm)
		default:
			return errorResult(koogallery.Invalid("chargingMode", "chargingMode %d is not one of 0, 1, 3, 5", *cm))
		}
	}
	if err := s.v1Period(p, &req.Purchase.PeriodType, &req.Purchase.PeriodNumber); err != nil {
		return errorResult(err)
	}
	for name, v := range p {
		if !getLicenseKnown[name] {
			if req.Purchase.Extra == nil {
				req.Purchase.Extra = map[string]string{}
			}
			req.Purchase.Extra[name] = v
		}
	}
	if cl.debug {
		return getLicenseResponse{ResultCode: string(koogallery.CodeSuccess), ResultMsg: koogallery.CodeSuccess.DefaultMessage(),
			InstanceID: f["businessId"], License: license.DebugText}
	}
	st, err := s.deps.Licenses.Issue(ctx, cl.ep.route.Path, req, s.v1Cause(cl, f["orderId"], f["businessId"]), s.opts.ProvisionBudget)
	if err != nil {
		r := errorResult(err)
		return getLicenseResponse{ResultCode: r.ResultCode, ResultMsg: r.ResultMsg}
	}
	return getLicenseResponse{ResultCode: string(koogallery.CodeSuccess), ResultMsg: koogallery.CodeSuccess.DefaultMessage(),
		InstanceID: st.ID, License: st.Text}
}

// refreshLicense: license.md §2.2. De-duplicated on the renewal orderId;
// it also makes a license frozen by expireLicense usable again.
func (s *Server) refreshLicense(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("orderId", 64), m("instanceId", 64), o("productId", 64), m("expireTime", 20))
	if err != nil {
		return errorResult(err)
	}
	exp, err := koogallery.ParseExpireTime(f["expireTime"])
	if err != nil {
		return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
	}
	cmd := license.Refresh{OrderID: f["orderId"], ProductID: f["productId"], ExpireTime: exp, Debug: cl.debug}
	if err := s.v1Period(p, &cmd.PeriodType, &cmd.PeriodNumber); err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.Execute(ctx, f["instanceId"], cmd, s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// expireLicense: license.md §2.3 — freeze, keep the data. Only instanceId
// is required; orderId is kept when sent.
func (s *Server) expireLicense(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("instanceId", 64), o("orderId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.Execute(ctx, f["instanceId"], license.Expire{OrderID: f["orderId"]}, s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// releaseLicense: license.md §2.4. orderId (the original purchase order)
// is mandatory as the table says; it is recorded, not checked.
func (s *Server) releaseLicense(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("orderId", 64), m("instanceId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Licenses.Execute(ctx, f["instanceId"], license.Release{OrderID: f["orderId"]}, s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// hasLicenseRoutes reports whether any route is of a License family.
func hasLicenseRoutes(routes []config.Route) bool {
	for _, r := range routes {
		if r.Family == config.FamilyLicenseA || r.Family == config.FamilyLicenseB {
			return true
		}
	}
	return false
}
