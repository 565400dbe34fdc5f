package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// UsageInfo is one usage entry of a pay-per-use or on-demand-package
// instance in queryInstance (saas-v2.md §10.3). UsageValue is a decimal of
// at most 4 decimals, written as a JSON number.
type UsageInfo struct {
	RelatedInstanceID string      `json:"relatedInstanceId,omitempty"`
	UsageValue        json.Number `json:"usageValue"`
}

// UsageSource reports the real-time usage of a metered (pay-per-use or
// package) SaaS V1 instance for queryInstance. Gallerist keeps no usage
// itself: the vendor plugs its meter in here (server.Deps.Usage).
type UsageSource interface {
	Usage(ctx context.Context, st instance.State) ([]UsageInfo, error)
}

// usageValueRE is Double(12,4): at most 12 digits, at most 4 decimals.
var usageValueRE = regexp.MustCompile(`^[0-9]{1,8}(\.[0-9]{1,4})?$`)

type v1ActivityHandler func(s *Server, ctx context.Context, cl *call, p v1params) any

// saasV1Activities is the SaaS V1 activity set (saas-v1.md §2,
// codes-and-rules.md §9), with each activity's maximum length.
var saasV1Activities = map[string]struct {
	h      v1ActivityHandler
	maxLen int
}{
	"newInstance":     {(*Server).v1NewInstance, 20},
	"refreshInstance": {(*Server).v1RefreshInstance, 20},
	"expireInstance":  {(*Server).v1ExpireInstance, 20},
	"releaseInstance": {(*Server).v1ReleaseInstance, 20},
	"upgrade":         {(*Server).v1Upgrade, 20},
	"instanceStatus":  {(*Server).v1InstanceStatus, 32},
	"queryInstance":   {(*Server).v1QueryInstance, 20},
}

// V1 answers (saas-v1.md): the envelope, plus encryptType, instanceId and
// appInfo for newInstance, encryptType and info for queryInstance.
type v1NewInstanceResponse struct {
	ResultCode  string   `json:"resultCode"`
	ResultMsg   string   `json:"resultMsg"`
	EncryptType string   `json:"encryptType"`
	InstanceID  string   `json:"instanceId,omitempty"`
	AppInfo     *appInfo `json:"appInfo,omitempty"`
}

type v1InstanceInfo struct {
	InstanceID string       `json:"instanceId"`
	AppInfo    *appInfo     `json:"appInfo,omitempty"`
	UsageInfo  *[]UsageInfo `json:"usageInfo,omitempty"`
}

type v1QueryResponse struct {
	ResultCode  string           `json:"resultCode"`
	ResultMsg   string           `json:"resultMsg"`
	EncryptType string           `json:"encryptType"`
	Info        []v1InstanceInfo `json:"info,omitempty"`
}

func (r v1NewInstanceResponse) code() string { return r.ResultCode }
func (r v1QueryResponse) code() string       { return r.ResultCode }

// serveV1 serves a SaaS V1 route: GET with the parameters in the query, or
// the POST-body variant (auth.md §3.3).
func (s *Server) serveV1(ep *endpoint) gin.HandlerFunc { return s.serveAuthToken(ep, s.handleV1) }

// serveAuthToken serves a route authenticated with the V1 authToken (SaaS
// V1 and License A): GET with the query, or the POST-body variant; handle
// runs after authentication.
func (s *Server) serveAuthToken(ep *endpoint, handle func(context.Context, *call, v1Auth) any) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		cl := &call{ep: ep, activity: "unknown"}
		var (
			a   v1Auth
			err error
		)
		if c.Request.Method == http.MethodPost {
			raw, tooLarge, rerr := readBody(c.Request, s.opts.BodyLimit)
			if tooLarge {
				s.writePlain(c, ep, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", s.opts.BodyLimit))
				return
			}
			if err = rerr; err == nil {
				a, err = parseV1Body(ep.keys, raw, c.GetHeader("authToken"))
			} else {
				err = koogallery.Invalid("body", "body could not be read")
			}
		} else {
			a, err = parseV1Query(ep.keys, c.Request.URL.RawQuery)
		}
		var resp any
		if err != nil {
			resp = errorResult(err)
		} else {
			ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
			resp = handle(ctx, cl, a)
			cancel()
		}
		s.write(c, ep, cl.keyIdx, resp)
		s.observe(cl, resp, time.Since(start))
	}
}

// checkAuthToken notes the key and decoding that verified an authToken
// call and checks its optional timeStamp window (SaaS V1, License A).
func (s *Server) checkAuthToken(cl *call, a v1Auth) error {
	cl.keyIdx, cl.form = a.keyIdx, koogallery.Form(a.decoding)
	if _, seen := cl.ep.formSeen.LoadOrStore(cl.form, true); !seen {
		// Which decoding KooGallery's tokens need is worth one line
		// (auth.md §3.2); every call logs it at debug level.
		s.log.Info("authToken verified", "route", cl.ep.route.Path, "decoding", a.decoding, "keyIndex", a.keyIdx)
	}
	ts := a.params["timeStamp"]
	if w := cl.ep.route.V1Window(); w > 0 {
		t, err := koogallery.ParseV1TimeStamp(ts)
		if err != nil {
			return err
		}
		if d := s.opts.Now().Sub(t); d > w || d < -w {
			return koogallery.AuthFailed("timeStamp is outside the window")
		}
	} else if n := len(ts); n > 20 {
		return koogallery.Invalid("timeStamp", "timeStamp is %d characters, at most 20 allowed", n)
	}
	return nil
}

// handleV1 is the V1 pipeline after authentication.
func (s *Server) handleV1(ctx context.Context, cl *call, a v1Auth) any {
	if err := s.checkAuthToken(cl, a); err != nil {
		return errorResult(err)
	}
	p := a.params
	activity, err := p.str("activity", true, 32)
	if err != nil {
		return errorResult(err)
	}
	act, ok := saasV1Activities[activity]
	if !ok || len(activity) > act.maxLen {
		return errorResult(koogallery.Invalid("activity", "activity %q is not a SaaS V1 activity", truncate(activity, 40)))
	}
	cl.activity = activity
	if cl.debug, err = p.testFlag(); err != nil {
		return errorResult(err)
	}
	return act.h(s, ctx, cl, p)
}

func (s *Server) v1Cause(cl *call, orderID, businessID string) event.Causation {
	return event.Causation{Activity: cl.activity, OrderID: orderID, BusinessID: businessID, Route: cl.ep.route.Path}
}

// v1NewInstance: saas-v1.md §3.
func (s *Server) v1NewInstance(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("customerId", 100), o("customerName", 64), o("userId", 64), o("userName", 64),
		m("businessId", 64), m("orderId", 64), o("skuCode", 64), m("productId", 64))
	if err != nil {
		return errorResult(err)
	}
	order := instance.V1Order{
		CustomerID: f["customerId"], CustomerName: f["customerName"], UserID: f["userId"], UserName: f["userName"],
		ProductID: f["productId"], SKUCode: f["skuCode"],
	}
	if order.Trial, err = p.flag("trialFlag"); err != nil {
		return errorResult(err)
	}
	if v := p["expireTime"]; v != "" {
		if order.ExpireTime, err = koogallery.ParseExpireTime(v); err != nil {
			return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
		}
	}
	cm, err := p.integer("chargingMode", 3)
	if err != nil {
		return errorResult(err)
	}
	if cm != nil {
		mode := instance.ChargingMode(*cm)
		if !mode.Valid() {
			return errorResult(koogallery.Invalid("chargingMode", "chargingMode %d is not one of 0, 1, 3, 5", *cm))
		}
		order.ChargingMode = &mode
	}
	if err := s.v1Period(p, &order.PeriodType, &order.PeriodNumber); err != nil {
		return errorResult(err)
	}
	if order.OrderAmount, err = p.amount("orderAmount", false); err != nil {
		return errorResult(err)
	}
	for name, dst := range map[string]**int64{"amount": &order.Amount, "diskSize": &order.DiskSize, "bandWidth": &order.BandWidth} {
		if *dst, err = p.integer(name, maxV1Digits); err != nil {
			return errorResult(err)
		}
	}
	if order.ExtendParams, order.ExtendParamsRaw, err = s.v1ExtendParams(cl, p); err != nil {
		return errorResult(err)
	}
	// Decrypted only now, after the authToken check (saas-v1.md §3). Their
	// length is not settled: none is enforced (the body limit bounds them).
	for name, dst := range map[string]*string{"mobilePhone": &order.MobilePhone, "email": &order.Email} {
		v, err := p.base64Text(name, int(s.opts.BodyLimit))
		if err != nil {
			return errorResult(err)
		}
		if v == "" {
			continue
		}
		if *dst, err = cl.ep.ciphers[cl.keyIdx].Decrypt(v); err != nil {
			return errorResult(koogallery.Invalid(name, "%s does not decrypt with the route key (encryptType %s)", name, cl.ep.encrypt))
		}
	}
	enc := string(cl.ep.encrypt)
	if cl.debug {
		a, err := s.appInfoFor(cl, mockAppInfo(cl, f["businessId"]))
		if err != nil {
			return errorResult(err)
		}
		return v1NewInstanceResponse{ResultCode: string(koogallery.CodeSuccess), ResultMsg: koogallery.CodeSuccess.DefaultMessage(),
			EncryptType: enc, InstanceID: f["businessId"], AppInfo: a}
	}
	st, err := s.deps.Instances.CreateV1(ctx, f["orderId"], f["businessId"], order, s.v1Cause(cl, f["orderId"], f["businessId"]), s.opts.ProvisionBudget)
	if err != nil {
		r := errorResult(err)
		resp := v1NewInstanceResponse{ResultCode: r.ResultCode, ResultMsg: r.ResultMsg, EncryptType: enc}
		if st.ID != "" && st.OrderID == f["orderId"] && st.V1 != nil {
			resp.InstanceID = st.ID // never another order's instance
		}
		return resp
	}
	resp := v1NewInstanceResponse{ResultCode: string(koogallery.CodeSuccess), EncryptType: enc, InstanceID: st.ID}
	switch {
	case st.Status == instance.StatusReleased:
		// A re-call for a released instance: the same id, nothing to show.
	case s.ready(cl, st):
		// The current app info: also what the buyer's "View Resource
		// Details" re-call gets.
		if resp.AppInfo, err = s.appInfoFor(cl, *st.AppInfo); err != nil {
			return errorResult(err)
		}
	default:
		resp.ResultCode = string(koogallery.CodeProcessing)
	}
	resp.ResultMsg = koogallery.Code(resp.ResultCode).DefaultMessage()
	return resp
}

// v1Period reads periodType (String 10) and periodNumber (Integer 2).
func (s *Server) v1Period(p v1params, typ *string, num *int) error {
	var err error
	if *typ, err = p.str("periodType", false, 10); err != nil {
		return err
	}
	n, err := p.integer("periodNumber", 2)
	if err != nil {
		return err
	}
	if n != nil {
		*num = int(*n)
	}
	return nil
}

// v1ExtendParams decodes saasExtendParams (codes-and-rules.md §10); a value
// that does not decode is logged and kept raw, it does not fail the call.
func (s *Server) v1ExtendParams(cl *call, p v1params) (map[string]string, string, error) {
	v, err := p.base64Text("saasExtendParams", 2048)
	if err != nil || v == "" {
		return nil, "", err
	}
	m, err := koogallery.DecodeExtendParams(v)
	if err != nil {
		s.log.Warn("saasExtendParams does not decode; kept raw", "route", cl.ep.route.Path, "activity", cl.activity, "err", err)
		return nil, v, nil
	}
	return m, "", nil
}

// v1QueryInstance: saas-v1.md §9, the rules of SaaS V2 queryInstance plus
// usageInfo for metered instances.
func (s *Server) v1QueryInstance(ctx context.Context, cl *call, p v1params) any {
	info, states, code, err := s.queryInstances(ctx, cl, p["instanceId"])
	if err != nil {
		return errorResult(err)
	}
	var v1 []v1InstanceInfo
	if info != nil {
		v1 = make([]v1InstanceInfo, len(info))
	}
	for i, ii := range info {
		v1[i] = v1InstanceInfo{InstanceID: ii.InstanceID, AppInfo: ii.AppInfo}
		if states[i].V1.Metered() {
			u, err := s.usageOf(ctx, cl, states[i])
			if err != nil {
				return errorResult(err)
			}
			v1[i].UsageInfo = &u
		}
	}
	return v1QueryResponse{ResultCode: string(code), ResultMsg: code.DefaultMessage(), EncryptType: string(cl.ep.encrypt), Info: v1}
}

// usageOf asks the usage source; without one, a metered instance reports an
// empty usageInfo list (no usage known).
func (s *Server) usageOf(ctx context.Context, cl *call, st instance.State) ([]UsageInfo, error) {
	if s.deps.Usage == nil {
		return []UsageInfo{}, nil
	}
	u, err := s.deps.Usage.Usage(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", st.ID, err)
	}
	for _, e := range u {
		if !usageValueRE.MatchString(e.UsageValue.String()) || len(e.RelatedInstanceID) > 64 {
			s.log.Error("the usage source answered a value queryInstance cannot carry (usageValue Double(12,4) ≥ 0, relatedInstanceId ≤ 64)",
				"route", cl.ep.route.Path, "instanceId", st.ID, "usageValue", e.UsageValue.String())
			return nil, fmt.Errorf("usage of %s: invalid usageValue %q", st.ID, e.UsageValue.String())
		}
	}
	if u == nil {
		u = []UsageInfo{}
	}
	return u, nil
}

// v1RefreshInstance: saas-v1.md §4. The renewal also reactivates an
// instance frozen by expireInstance.
func (s *Server) v1RefreshInstance(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("orderId", 64), m("instanceId", 64), o("productId", 64), m("expireTime", 20))
	if err != nil {
		return errorResult(err)
	}
	exp, err := koogallery.ParseExpireTime(f["expireTime"])
	if err != nil {
		return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
	}
	trialToFormal, err := p.flag("trialToFormal")
	if err != nil {
		return errorResult(err)
	}
	cmd := instance.Refresh{Scene: instance.SceneRenewal, OrderID: f["orderId"], ProductID: f["productId"], ExpireTime: exp, Reactivate: true}
	if trialToFormal {
		cmd.Scene = instance.SceneTrialToFormal
	}
	if err := s.v1Period(p, &cmd.PeriodType, &cmd.PeriodNumber); err != nil {
		return errorResult(err)
	}
	if cmd.OrderAmount, err = p.amount("orderAmount", true); err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Settle(ctx, f["instanceId"], cmd, s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// v1ExpireInstance: saas-v1.md §5 — freeze, keep the data.
func (s *Server) v1ExpireInstance(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("instanceId", 64), o("orderId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.SetStatus{Target: instance.TargetFreeze, Reason: instance.FrozenExpired},
		s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// v1ReleaseInstance: saas-v1.md §6.
func (s *Server) v1ReleaseInstance(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("instanceId", 64), o("orderId", 64))
	if err != nil {
		return errorResult(err)
	}
	amount, err := p.amount("orderAmount", false)
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.Release{OrderID: f["orderId"], OrderAmount: amount},
		s.v1Cause(cl, f["orderId"], ""))
	return errorResult(err)
}

// v1InstanceStatus: saas-v1.md §8 — FREEZE or NORMAL.
func (s *Server) v1InstanceStatus(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("instanceId", 64), m("instanceStatus", 32))
	if err != nil {
		return errorResult(err)
	}
	var target instance.Target
	switch f["instanceStatus"] {
	case "FREEZE":
		target = instance.TargetFreeze
	case "NORMAL":
		target = instance.TargetUnfreeze
	default:
		s.log.Warn("unknown SaaS V1 instanceStatus", "route", cl.ep.route.Path, "instanceStatus", truncate(f["instanceStatus"], 40))
		return errorResult(koogallery.Invalid("instanceStatus", "instanceStatus %q is not FREEZE or NORMAL", truncate(f["instanceStatus"], 40)))
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.SetStatus{Target: target}, s.v1Cause(cl, "", ""))
	return errorResult(err)
}

// v1Upgrade: saas-v1.md §7. The vendor's policy (Deps.Policy) may refuse
// the target specification: 000100 with its reason.
func (s *Server) v1Upgrade(ctx context.Context, cl *call, p v1params) any {
	f, err := p.fields(m("instanceId", 64), m("orderId", 64), m("skuCode", 64), m("productId", 64))
	if err != nil {
		return errorResult(err)
	}
	u := instance.V1Upgrade{SKUCode: f["skuCode"], ProductID: f["productId"]}
	for name, dst := range map[string]**int64{"amount": &u.Amount, "diskSize": &u.DiskSize, "bandWidth": &u.BandWidth} {
		if *dst, err = p.integer(name, 7); err != nil {
			return errorResult(err)
		}
	}
	if u.ExtendParams, u.ExtendParamsRaw, err = s.v1ExtendParams(cl, p); err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	cause := s.v1Cause(cl, f["orderId"], "")
	st, err := s.deps.Instances.Execute(ctx, f["instanceId"], instance.CheckChange{}, cause)
	if err != nil {
		return errorResult(err)
	}
	if !st.HasOrder("upgrade", f["orderId"], "") {
		if err := s.deps.Policy.CheckChange(ctx, st, ProductInfo{ProductID: u.ProductID, SKUCode: u.SKUCode, LinearValue: u.Amount}); err != nil {
			return errorResult(koogallery.Refused(koogallery.CodeNoResource, "upgrade refused: "+err.Error()))
		}
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.Upgrade{OrderID: f["orderId"], V1: &u}, cause)
	return errorResult(err)
}
