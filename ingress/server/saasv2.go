package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/gallerist/gallerist/bus/nonce"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/provision"
)

type activityHandler func(s *Server, ctx context.Context, cl *call, b body) any

// saasV2Activities is the SaaS V2 activity set (saas-v2.md, spec README §4).
var saasV2Activities = map[string]activityHandler{
	"newInstance":          (*Server).newInstance,
	"queryInstance":        (*Server).queryInstance,
	"refreshInstance":      (*Server).refreshInstance,
	"updateInstanceStatus": (*Server).updateInstanceStatus,
	"releaseInstance":      (*Server).releaseInstance,
	"upgradeInstance":      (*Server).upgradeInstance,
	"changeInstanceCheck":  (*Server).changeInstanceCheck,
	"orderNotify":          (*Server).orderNotify,
}

func isReplay(err error) bool { return errors.Is(err, nonce.ErrReplay) }

// maxQueryIDs is the most instance ids one queryInstance may carry.
const maxQueryIDs = 100

type newInstanceResponse struct {
	ResultCode  string `json:"resultCode"`
	ResultMsg   string `json:"resultMsg"`
	InstanceID  string `json:"instanceId,omitempty"`
	EncryptType string `json:"encryptType"`
}

type appInfo struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Password    string `json:"password,omitempty"`
	Memo        string `json:"memo,omitempty"`
}

type instanceInfo struct {
	InstanceID string   `json:"instanceId"`
	AppInfo    *appInfo `json:"appInfo,omitempty"`
}

type queryResponse struct {
	ResultCode  string         `json:"resultCode"`
	ResultMsg   string         `json:"resultMsg"`
	EncryptType string         `json:"encryptType"`
	Info        []instanceInfo `json:"info,omitempty"`
}

func ok() result {
	return result{ResultCode: string(koogallery.CodeSuccess), ResultMsg: koogallery.CodeSuccess.DefaultMessage()}
}

func (s *Server) cause(cl *call, orderID, orderLineID, businessID string) event.Causation {
	return event.Causation{
		Activity: cl.activity, OrderID: orderID, OrderLineID: orderLineID, BusinessID: businessID,
		Nonce: cl.nonce, Route: cl.ep.route.Path,
	}
}

// fields reads the string fields of an activity in table order; the first
// failing rule wins.
type fieldRule struct {
	name      string
	mandatory bool
	maxLen    int
}

func (b body) fields(rules ...fieldRule) (map[string]string, error) {
	out := make(map[string]string, len(rules))
	for _, r := range rules {
		v, err := b.str(r.name, r.mandatory, r.maxLen)
		if err != nil {
			return nil, err
		}
		out[r.name] = v
	}
	return out, nil
}

func m(name string, n int) fieldRule { return fieldRule{name, true, n} }
func o(name string, n int) fieldRule { return fieldRule{name, false, n} }

// newInstance: saas-v2.md §3.
func (s *Server) newInstance(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("orderId", 64), m("orderLineId", 64), m("businessId", 64))
	if err != nil {
		return errorResult(err)
	}
	enc := string(cl.ep.encrypt)
	if cl.debug {
		return newInstanceResponse{ResultCode: string(koogallery.CodeSuccess), ResultMsg: koogallery.CodeSuccess.DefaultMessage(), InstanceID: f["businessId"], EncryptType: enc}
	}
	st, err := s.deps.Instances.Create(ctx, f["orderId"], f["orderLineId"], f["businessId"],
		s.cause(cl, f["orderId"], f["orderLineId"], f["businessId"]), s.opts.ProvisionBudget)
	if err != nil {
		r := errorResult(err)
		resp := newInstanceResponse{ResultCode: r.ResultCode, ResultMsg: r.ResultMsg, EncryptType: enc}
		if st.ID != "" && st.OrderID == f["orderId"] && st.OrderLineID == f["orderLineId"] {
			resp.InstanceID = st.ID // never another order's instance
		}
		return resp
	}
	code := koogallery.CodeSuccess
	if st.Status != instance.StatusReleased && !s.ready(cl, st) {
		code = koogallery.CodeProcessing
	}
	return newInstanceResponse{ResultCode: string(code), ResultMsg: code.DefaultMessage(), InstanceID: st.ID, EncryptType: enc}
}

// ready reports whether the instance's app info can be handed out: it is
// provisioned and its account fits KooGallery's ciphertext limit (a value
// that does not is a vendor configuration error: logged, not ready).
func (s *Server) ready(cl *call, st instance.State) bool {
	if !st.Provisioned || st.AppInfo == nil {
		return false
	}
	c := cl.ep.ciphers[cl.keyIdx]
	if !c.FitsAppInfo(st.AppInfo.UserName) || !c.FitsAppInfo(st.AppInfo.Password) {
		s.log.Error("app info does not fit KooGallery's 128-character ciphertext limit: fix the provisioner",
			"instanceId", st.ID, "route", cl.ep.route.Path)
		return false
	}
	return true
}

// appInfoFor encrypts userName and password with the key that
// authenticated the request.
func (s *Server) appInfoFor(cl *call, a instance.AppInfo) (*appInfo, error) {
	out := &appInfo{FrontEndURL: a.FrontEndURL, AdminURL: a.AdminURL, Memo: a.Memo}
	c := cl.ep.ciphers[cl.keyIdx]
	var err error
	if a.UserName != "" {
		if out.UserName, err = c.Encrypt(a.UserName); err != nil {
			return nil, err
		}
	}
	if a.Password != "" {
		if out.Password, err = c.Encrypt(a.Password); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// queryInstance: saas-v2.md §4 and its Gallerist rules.
func (s *Server) queryInstance(ctx context.Context, cl *call, b body) any {
	raw, err := b.str("instanceId", true, 64*maxQueryIDs+maxQueryIDs)
	if err != nil {
		return errorResult(err)
	}
	info, _, code, err := s.queryInstances(ctx, cl, raw)
	if err != nil {
		return errorResult(err)
	}
	return queryResponse{ResultCode: string(code), ResultMsg: code.DefaultMessage(), EncryptType: string(cl.ep.encrypt), Info: info}
}

// queryInstances applies queryInstance's rules (saas-v2.md §3, shared by
// every family that has it) to raw, the comma-separated ids: the instances
// to list (with their states, zero for a debug call's mock answers) and the
// result code; info is nil when nothing is listed.
func (s *Server) queryInstances(ctx context.Context, cl *call, raw string) (info []instanceInfo, states []instance.State, code koogallery.Code, err error) {
	var ids []string
	for _, id := range strings.Split(raw, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil, "", koogallery.Invalid("instanceId", "instanceId is mandatory")
	}
	if len(ids) > maxQueryIDs {
		return nil, nil, "", koogallery.Invalid("instanceId", "instanceId carries %d ids, at most %d allowed", len(ids), maxQueryIDs)
	}
	for _, id := range ids {
		if len([]rune(id)) > 64 {
			return nil, nil, "", koogallery.Invalid("instanceId", "instanceId %q is longer than 64 characters", truncate(id, 16))
		}
	}
	if cl.debug {
		info = make([]instanceInfo, 0, len(ids))
		for _, id := range ids {
			a, err := s.appInfoFor(cl, mockAppInfo(cl, id))
			if err != nil {
				return nil, nil, "", err
			}
			info = append(info, instanceInfo{InstanceID: id, AppInfo: a})
		}
		return info, make([]instance.State, len(info)), koogallery.CodeSuccess, nil
	}
	var (
		pending int
		failed  *instance.Failure
	)
	for _, id := range ids {
		st, err := s.deps.Instances.Get(ctx, id)
		if errors.Is(err, instance.ErrNotFound) || (err == nil && st.Status == instance.StatusReleased) {
			continue // unknown ids are left out
		}
		if err != nil {
			return nil, nil, "", err
		}
		if st.Status == instance.StatusFailed {
			failed = st.Failure
			continue
		}
		ii := instanceInfo{InstanceID: st.ID}
		if s.ready(cl, st) {
			if ii.AppInfo, err = s.appInfoFor(cl, *st.AppInfo); err != nil {
				return nil, nil, "", err
			}
		} else {
			pending++
		}
		info, states = append(info, ii), append(states, st)
	}
	switch {
	case len(info) == 0 && len(ids) == 1 && failed != nil:
		return nil, nil, "", &instance.RefusedError{Failure: *failed}
	case len(info) == 0:
		return nil, nil, koogallery.CodeNotFound, nil
	case pending == len(info):
		return info, states, koogallery.CodeProcessing, nil
	}
	return info, states, koogallery.CodeSuccess, nil
}

// mockAppInfo answers debug queries: plausible, clearly marked, nothing
// read. The route's templates are expanded with the requested id and mock
// order ids; if that does not give valid app info, a generic URL is used.
func mockAppInfo(cl *call, id string) instance.AppInfo {
	req := provision.Request{InstanceID: id, OrderID: "debug-order", OrderLineID: "debug-order-line", BusinessID: id}
	p := cl.ep.route.Provisioner
	a := instance.AppInfo{
		FrontEndURL: provision.ExpandTemplate(p.FrontEndURL, req),
		AdminURL:    provision.ExpandTemplate(p.AdminURL, req),
		UserName:    "debug-admin",
		Password:    "Debug-Passw0rd!",
		Memo:        "debug request (testFlag=1): no data was read or changed",
	}
	if a.FrontEndURL == "" || provision.ValidateAppInfo(a) != nil {
		a.FrontEndURL, a.AdminURL = "https://app.example.com/"+url.PathEscape(id), ""
	}
	return a
}

// refreshInstance: saas-v2.md §5.
func (s *Server) refreshInstance(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("scene", 64), m("orderId", 64), m("orderLineId", 64), m("instanceId", 64), o("productId", 64), m("expireTime", 20))
	if err != nil {
		return errorResult(err)
	}
	scene, err := instance.ParseScene(f["scene"])
	if err != nil {
		return errorResult(koogallery.Invalid("scene", "scene %q is not one of TRIAL_TO_FORMAL, RENEWAL, UNSUBSCRIBE_RENEWAL_PERIOD, RENEWAL_CHANGE", truncate(f["scene"], 40)))
	}
	exp, err := koogallery.ParseExpireTime(f["expireTime"])
	if err != nil {
		return errorResult(koogallery.Invalid("expireTime", "expireTime must be 14 or 17 digits (yyyyMMddHHmmss[SSS], UTC)"))
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.Refresh{
		Scene: scene, OrderID: f["orderId"], OrderLineID: f["orderLineId"], ProductID: f["productId"], ExpireTime: exp,
	}, s.cause(cl, f["orderId"], f["orderLineId"], ""))
	return errorResult(err)
}

// updateInstanceStatus: saas-v2.md §6.
func (s *Server) updateInstanceStatus(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("instanceId", 64), m("status", 32))
	if err != nil {
		return errorResult(err)
	}
	target, err := instance.ParseTarget(f["status"])
	if err != nil {
		return errorResult(koogallery.Invalid("status", "status %q is not FREEZE or UNFREEZE", truncate(f["status"], 40)))
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.SetStatus{Target: target}, s.cause(cl, "", "", ""))
	return errorResult(err)
}

// releaseInstance: saas-v2.md §7.
func (s *Server) releaseInstance(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("instanceId", 64), o("orderId", 64), o("orderLineId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.Release{OrderID: f["orderId"], OrderLineID: f["orderLineId"]},
		s.cause(cl, f["orderId"], f["orderLineId"], ""))
	return errorResult(err)
}

// upgradeInstance: saas-v2.md §8.
func (s *Server) upgradeInstance(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("instanceId", 64), m("orderId", 64), m("orderLineId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	_, err = s.deps.Instances.Execute(ctx, f["instanceId"], instance.Upgrade{OrderID: f["orderId"], OrderLineID: f["orderLineId"]},
		s.cause(cl, f["orderId"], f["orderLineId"], ""))
	return errorResult(err)
}

// changeInstanceCheck: saas-v2.md §9.
func (s *Server) changeInstanceCheck(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("instanceId", 64))
	if err != nil {
		return errorResult(err)
	}
	p, err := parseProductInfo(b)
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	st, err := s.deps.Instances.Execute(ctx, f["instanceId"], instance.CheckChange{}, s.cause(cl, "", "", ""))
	if err != nil {
		return errorResult(err)
	}
	if err := s.deps.Policy.CheckChange(ctx, st, p); err != nil {
		return errorResult(koogallery.Refused(koogallery.CodeInvalidParam, "change refused: "+err.Error()))
	}
	return ok()
}

func parseProductInfo(b body) (ProductInfo, error) {
	var p ProductInfo
	if !b.present("productInfo") {
		return p, koogallery.Invalid("productInfo", "productInfo is mandatory")
	}
	var inner body
	if err := json.Unmarshal(b["productInfo"], &inner); err != nil || inner == nil {
		return p, koogallery.Invalid("productInfo", "productInfo must be an object")
	}
	for _, r := range []fieldRule{m("productId", 64), m("skuCode", 64), m("productName", 64)} {
		v, err := inner.strAs(r.name, "productInfo."+r.name, r.mandatory, r.maxLen)
		if err != nil {
			return p, err
		}
		switch r.name {
		case "productId":
			p.ProductID = v
		case "skuCode":
			p.SKUCode = v
		case "productName":
			p.ProductName = v
		}
	}
	if inner.present("linearValue") {
		var n int64
		if err := json.Unmarshal(inner["linearValue"], &n); err != nil {
			return p, koogallery.Invalid("productInfo.linearValue", "productInfo.linearValue must be an integer")
		}
		p.LinearValue = &n
	}
	return p, nil
}

// orderNotify: saas-v2.md §11 — authenticated, recorded, answered 000000.
func (s *Server) orderNotify(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("orderId", 64), o("orderLineId", 64))
	if err != nil {
		return errorResult(err)
	}
	if cl.debug {
		return ok()
	}
	return errorResult(s.recordNotification(ctx, cl, f["orderId"], f["orderLineId"]))
}
