package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/licenses"
)

// LicenseCodes makes the outgoing License B calls (outgoing.md §6–§8) for
// the vendor's software, which thus never holds the AK/SK, and reads the
// codes (package licenses' Service implements it). Its errors:
// *licenses.Refusal (answered 409 or 422 with KooGallery's code),
// *licenses.UsageError and licensecode.ErrInvalid (400),
// licensecode.ErrNotFound (404), licenses.ErrTemporary and
// licenses.ErrNoKooGallery (503), licenses.ErrKooGallery (502); others 500.
type LicenseCodes interface {
	// Activate activates a code once; a repeat answers the record.
	Activate(ctx context.Context, code string, req licenses.ActivateRequest, cause event.Causation) (licenses.Outcome, error)
	// Heartbeat queries a code's status and records it.
	Heartbeat(ctx context.Context, code string, req licenses.HeartbeatRequest, cause event.Causation) (licenses.Outcome, error)
	// ReportUsage reports the software usage of up to 100 codes.
	ReportUsage(ctx context.Context, items []licenses.UsageItem, cause event.Causation) (licenses.UsageResult, error)
	// CodeAt returns a code, fresh from the log, and the stream sequence
	// it reflects.
	CodeAt(ctx context.Context, code string) (licensecode.State, uint64, error)
}

var _ LicenseCodes = (*licenses.Service)(nil)

// Bounds of the license-code routes.
const (
	// licenseCallTimeout bounds one call (KooGallery's hosts in turn, then
	// the recording).
	licenseCallTimeout = time.Minute
	// maxLicenseBody bounds a request body (a usage report of 100 codes of
	// 100 entries fits).
	maxLicenseBody = 4 << 20
)

// LicenseActivateRequest is the (optional) body of POST
// /v1/license-codes/{code}/activate.
type LicenseActivateRequest struct {
	RealEffectTime string `json:"realEffectTime,omitempty" doc:"real_effect_time: when the software was actually delivered or took effect, not before the order time; yyyyMMddHHmmss (UTC) or RFC 3339. Omitted: not sent."`
	Reference      string `json:"reference,omitempty" doc:"Your own note on the code (e.g. the customer account it was entered in), kept when the activation makes the code known to Gallerist; at most 256 bytes."`
}

// LicenseHeartbeatRequest is the (optional) body of POST
// /v1/license-codes/{code}/heartbeat.
type LicenseHeartbeatRequest struct {
	ThirdPartyAccount string `json:"thirdPartyAccount,omitempty" doc:"heartbeatInfo.thirdPartyAccount: the end user or device (at most 256 characters). Being retired by KooGallery in favour of usage reports; omit it unless your software already sends it."`
	IP                string `json:"ip,omitempty" doc:"heartbeatInfo.ip: the client's login IP (at most 32 characters); needs thirdPartyAccount."`
}

// LicenseUsageReport is the body of POST /v1/license-codes/usage.
type LicenseUsageReport struct {
	UsageInfo []LicenseUsageItem `json:"usageInfo" doc:"The codes, 1..100, each at most once."`
}

// LicenseUsageItem is one code of a usage report.
type LicenseUsageItem struct {
	License           string              `json:"license" doc:"The authorization code."`
	SoftwareUsageInfo []LicenseUsageEntry `json:"softwareUsageInfo" doc:"1..100 entries, each with exactly one of id and activeNum."`
}

// LicenseUsageEntry is one software_usage_Info entry.
type LicenseUsageEntry struct {
	ID        string `json:"id,omitempty" doc:"One client (account id or device code), at most 256 characters: KooGallery counts the distinct ids."`
	ActiveNum *int   `json:"activeNum,omitempty" doc:"The day's total of active clients, 0..999999999."`
}

// LicenseCode is an authorization code as Gallerist knows it.
type LicenseCode struct {
	License         string          `json:"license" doc:"The authorization code."`
	Status          string          `json:"status" doc:"Its status at the vendor, as KooGallery's refresh, status and release calls drive it."`
	Reference       string          `json:"reference,omitempty" doc:"Your note on the code."`
	Activation      string          `json:"activation" doc:"pending (no activation verdict yet), confirmed (activated, or a query reported an activation time) or refused (the last activation was refused)."`
	ActivatedAt     *time.Time      `json:"activatedAt,omitempty" doc:"When the activation was recorded (or the activation time a query reported)."`
	ActivationError *LicenseVerdict `json:"activationError,omitempty" doc:"The last refused activation, while the code is not activated."`
	ExpireTime      *time.Time      `json:"expireTime,omitempty" doc:"The latest known expiry: KooGallery's refresh or query; the activation's estimate only while there is none."`
	ProductID       string          `json:"productId,omitempty" doc:"The product, when known."`
	OrderID         string          `json:"orderId,omitempty" doc:"The order, from the activation's license_code_info."`
	Amount          int             `json:"amount,omitempty" doc:"The quantity-type pricing attribute, from the activation."`
	LastQuery       *LicenseQuery   `json:"lastQuery,omitempty" doc:"The last recorded query (heartbeat) verdict."`
	LastUsage       *LicenseVerdict `json:"lastUsage,omitempty" doc:"The last recorded usage-report verdict."`
	UsageReports    int             `json:"usageReports" doc:"Usage-report verdicts recorded."`
	Renewals        int             `json:"renewals" doc:"Renewals (refreshLicenseCode) applied."`
	ConsistentTo    uint64          `json:"consistentTo,omitempty" doc:"GET only: the code reflects its events up to this stream sequence."`
}

// LicenseVerdict is KooGallery's verdict on one outgoing call.
type LicenseVerdict struct {
	At            time.Time `json:"at" doc:"When KooGallery answered."`
	ResultCode    string    `json:"resultCode" doc:"KooGallery's error_code: 92020000 is success (outgoing.md §9.2)."`
	ResultMessage string    `json:"resultMessage,omitempty" doc:"KooGallery's error_msg."`
}

// LicenseQuery is a recorded query verdict.
type LicenseQuery struct {
	At            time.Time  `json:"at" doc:"When KooGallery answered."`
	ResultCode    string     `json:"resultCode" doc:"KooGallery's error_code: 92020000 is success."`
	ResultMessage string     `json:"resultMessage,omitempty" doc:"KooGallery's error_msg."`
	RemoteStatus  string     `json:"remoteStatus,omitempty" doc:"For a success: the code's status at KooGallery, ALIVE, EXPIRED or RELEASED (others kept as received)."`
	ActivateTime  *time.Time `json:"activateTime,omitempty" doc:"For a success: when the code was activated."`
	ExpireTime    *time.Time `json:"expireTime,omitempty" doc:"For a success: the code's expiry at KooGallery (authoritative)."`
}

// LicenseActivation is the answer of POST /v1/license-codes/{code}/activate.
type LicenseActivation struct {
	Source string      `json:"source" doc:"koogallery: activated now; recorded: activated before, KooGallery was not called again (an activation cannot be repeated); query: KooGallery refused as already activated (92020003) and a query confirmed the activation (recorded)."`
	State  LicenseCode `json:"state" doc:"The code after the activation."`
}

// LicenseHeartbeat is the answer of POST /v1/license-codes/{code}/heartbeat.
type LicenseHeartbeat struct {
	RemoteStatus string      `json:"remoteStatus" doc:"The code's status at KooGallery: ALIVE (use allowed until expireTime), EXPIRED or RELEASED."`
	ActivateTime *time.Time  `json:"activateTime,omitempty" doc:"When the code was activated."`
	ExpireTime   *time.Time  `json:"expireTime,omitempty" doc:"The code's expiry, when KooGallery reported one."`
	State        LicenseCode `json:"state" doc:"The code after the query was recorded."`
}

// LicenseUsageResult is the answer of POST /v1/license-codes/usage.
type LicenseUsageResult struct {
	ResultCode    string                   `json:"resultCode" doc:"KooGallery's error_code for the report: 92020000, or 92020020 when some codes were refused."`
	ResultMessage string                   `json:"resultMessage,omitempty" doc:"KooGallery's error_msg."`
	Items         []LicenseUsageItemResult `json:"items" doc:"One per reported code, in order."`
}

// LicenseUsageItemResult is the verdict on one code of a report.
type LicenseUsageItemResult struct {
	License    string `json:"license" doc:"The code."`
	Accepted   bool   `json:"accepted" doc:"KooGallery took the code's usage."`
	ResultCode string `json:"resultCode" doc:"92020000 when accepted, else the report's code (92020020)."`
	Recorded   bool   `json:"recorded" doc:"The verdict was recorded on the code (not for a refused code Gallerist does not know)."`
}

// LicenseRefusal is the answer when KooGallery refused a call (409, 422).
type LicenseRefusal struct {
	Error         string `json:"error" doc:"What happened, for a human."`
	ResultCode    string `json:"resultCode" doc:"KooGallery's error_code (outgoing.md §9.2): 92020002 invalid param, 92020003 illegal state, 92020004 not received by the buyer yet, 92020005 no such code, 92020011 not activated, 92020020 invalid code in the report, 95000001 parameter pattern or length."`
	ResultMessage string `json:"resultMessage,omitempty" doc:"KooGallery's error_msg."`
	License       string `json:"license,omitempty" doc:"The code, for a call about one."`
}

func init() {
	for t, name := range map[reflect.Type]string{
		reflect.TypeFor[LicenseActivateRequest]():  "LicenseActivateRequest",
		reflect.TypeFor[LicenseHeartbeatRequest](): "LicenseHeartbeatRequest",
		reflect.TypeFor[LicenseUsageReport]():      "LicenseUsageReport",
		reflect.TypeFor[LicenseUsageItem]():        "LicenseUsageItem",
		reflect.TypeFor[LicenseUsageEntry]():       "LicenseUsageEntry",
		reflect.TypeFor[LicenseCode]():             "LicenseCode",
		reflect.TypeFor[LicenseVerdict]():          "LicenseVerdict",
		reflect.TypeFor[LicenseQuery]():            "LicenseQuery",
		reflect.TypeFor[LicenseActivation]():       "LicenseActivation",
		reflect.TypeFor[LicenseHeartbeat]():        "LicenseHeartbeat",
		reflect.TypeFor[LicenseUsageResult]():      "LicenseUsageResult",
		reflect.TypeFor[LicenseUsageItemResult]():  "LicenseUsageItemResult",
		reflect.TypeFor[LicenseRefusal]():          "LicenseRefusal",
	} {
		componentNames[t] = name
	}
	codeStatuses := []string{string(licensecode.StatusActive), string(licensecode.StatusFrozen), string(licensecode.StatusReleased)}
	activations := []string{string(licensecode.ActivationPending), string(licensecode.ActivationConfirmed), string(licensecode.ActivationRefused)}
	fieldDocs["LicenseCode.status"] = obj{"enum": codeStatuses}
	fieldDocs["LicenseCode.activation"] = obj{"enum": activations}
	fieldDocs["LicenseActivation.source"] = obj{"enum": []string{licenses.SourceKooGallery, licenses.SourceRecorded, licenses.SourceQuery}}
	fieldDocs["LicenseUsageEntry.activeNum"] = obj{"minimum": 0, "maximum": licenses.MaxActiveNum}
}

var licenseCodeParam = param{name: "code", in: "path", kind: kindText, required: true, example: "PLMOCKNEW",
	desc: "The authorization code (1 to 64 characters, no control characters)."}

// licenseCodeOf reads and checks the path's code; it answers 400 itself.
func licenseCodeOf(c *gin.Context) (string, bool) {
	if _, ferr := parseQuery(c, nil); ferr != nil {
		writeFieldError(c, ferr)
		return "", false
	}
	code, err := licensecode.ParseCode(c.Param("code"))
	if err != nil {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("must be 1 to %d characters without control characters", licensecode.MaxCodeLen), "code")
		return "", false
	}
	return code, true
}

func (s *Server) licenseCodesOff(c *gin.Context) bool {
	if s.cfg.LicenseCodes == nil {
		writeError(c, http.StatusServiceUnavailable, "license codes are not available on this server", "")
		return true
	}
	return false
}

func apiCause(c *gin.Context) event.Causation {
	token, _ := c.Get(tokenKey)
	return event.Causation{Actor: fmt.Sprintf("api:token%v", token)}
}

func (s *Server) getLicenseCode(c *gin.Context) {
	code, ok := licenseCodeOf(c)
	if !ok || s.licenseCodesOff(c) {
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	st, seq, err := s.cfg.LicenseCodes.CodeAt(ctx, code)
	if err != nil {
		s.licenseFailed(c, code, err)
		return
	}
	out := licenseCodeOut(st)
	out.ConsistentTo = seq
	setConsistency(c, seq)
	writeJSON(c, http.StatusOK, out)
}

func (s *Server) activateLicenseCode(c *gin.Context) {
	code, ok := licenseCodeOf(c)
	if !ok {
		return
	}
	m, ferr := readFlatBody(c.Request, "realEffectTime", "reference")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	req := licenses.ActivateRequest{Reference: m["reference"]}
	if ferr := checkText("reference", req.Reference); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if v := m["realEffectTime"]; v != "" {
		t, err := parseEffectTime(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, "must be yyyyMMddHHmmss (UTC) or RFC 3339", "realEffectTime")
			return
		}
		req.RealEffectTime = t
	}
	if s.licenseCodesOff(c) {
		return
	}
	ctx, cancel := withTimeout(c, licenseCallTimeout)
	defer cancel()
	out, err := s.cfg.LicenseCodes.Activate(ctx, code, req, apiCause(c))
	if err != nil {
		s.licenseFailed(c, code, err)
		return
	}
	writeJSON(c, http.StatusOK, LicenseActivation{Source: out.Source, State: licenseCodeOut(out.State)})
}

// parseEffectTime reads yyyyMMddHHmmss (UTC) or RFC 3339.
func parseEffectTime(v string) (time.Time, error) {
	if len(v) == 14 {
		return time.ParseInLocation("20060102150405", v, time.UTC)
	}
	t, err := time.Parse(time.RFC3339, v)
	return t.UTC(), err
}

func (s *Server) heartbeatLicenseCode(c *gin.Context) {
	code, ok := licenseCodeOf(c)
	if !ok {
		return
	}
	m, ferr := readFlatBody(c.Request, "thirdPartyAccount", "ip")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	req := licenses.HeartbeatRequest{ThirdPartyAccount: m["thirdPartyAccount"], IP: m["ip"]}
	switch {
	case len([]rune(req.ThirdPartyAccount)) > licenses.MaxThirdPartyAccount:
		writeError(c, http.StatusBadRequest, fmt.Sprintf("at most %d characters", licenses.MaxThirdPartyAccount), "thirdPartyAccount")
		return
	case len(req.IP) > licenses.MaxHeartbeatIP:
		writeError(c, http.StatusBadRequest, fmt.Sprintf("at most %d characters", licenses.MaxHeartbeatIP), "ip")
		return
	case req.IP != "" && req.ThirdPartyAccount == "":
		writeError(c, http.StatusBadRequest, "is required with ip", "thirdPartyAccount")
		return
	}
	if s.licenseCodesOff(c) {
		return
	}
	ctx, cancel := withTimeout(c, licenseCallTimeout)
	defer cancel()
	out, err := s.cfg.LicenseCodes.Heartbeat(ctx, code, req, apiCause(c))
	if err != nil {
		s.licenseFailed(c, code, err)
		return
	}
	hb := LicenseHeartbeat{State: licenseCodeOut(out.State)}
	if q := out.State.Query; q != nil {
		hb.RemoteStatus = string(q.Info.Status)
		hb.ActivateTime, hb.ExpireTime = timePtr(q.Info.ActivateTime), timePtr(q.Info.ExpireTime)
	}
	writeJSON(c, http.StatusOK, hb)
}

func (s *Server) reportLicenseUsage(c *gin.Context) {
	if _, ferr := parseQuery(c, nil); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	items, ferr := readLicenseUsage(c.Request)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if ue := licenses.CheckUsage(items); ue != nil {
		writeFieldError(c, usageFieldError(ue))
		return
	}
	if s.licenseCodesOff(c) {
		return
	}
	ctx, cancel := withTimeout(c, licenseCallTimeout)
	defer cancel()
	res, err := s.cfg.LicenseCodes.ReportUsage(ctx, items, apiCause(c))
	if err != nil {
		s.licenseFailed(c, "", err)
		return
	}
	out := LicenseUsageResult{ResultCode: res.Code, ResultMessage: res.Message, Items: make([]LicenseUsageItemResult, len(res.Items))}
	for i, r := range res.Items {
		out.Items[i] = LicenseUsageItemResult{License: r.Code, Accepted: r.Accepted, ResultCode: r.ErrorCode, Recorded: r.Recorded}
	}
	writeJSON(c, http.StatusOK, out)
}

// usageFieldError names the field of an invalid usage report.
func usageFieldError(ue *licenses.UsageError) *fieldError {
	field := "usageInfo"
	if ue.Item >= 0 {
		field += fmt.Sprintf("[%d]", ue.Item)
		if ue.Entry >= 0 {
			field += fmt.Sprintf(".softwareUsageInfo[%d]", ue.Entry)
		}
		switch ue.Field {
		case "entries":
			field += ".softwareUsageInfo"
		case "":
		default:
			field += "." + ue.Field
		}
	}
	return badField(field, ue.Msg)
}

// licenseFailed answers an error of LicenseCodes.
func (s *Server) licenseFailed(c *gin.Context, code string, err error) {
	var ref *licenses.Refusal
	var ue *licenses.UsageError
	switch {
	case errors.As(err, &ref):
		status := http.StatusUnprocessableEntity
		if ref.Conflict() {
			status = http.StatusConflict
		}
		writeJSON(c, status, LicenseRefusal{Error: "KooGallery refused the " + ref.API + " call", ResultCode: ref.Code,
			ResultMessage: ref.Message, License: code})
	case errors.As(err, &ue):
		writeFieldError(c, usageFieldError(ue))
	case errors.Is(err, licensecode.ErrInvalid):
		writeError(c, http.StatusBadRequest, err.Error(), "code")
	case errors.Is(err, licensecode.ErrNotFound):
		writeError(c, http.StatusNotFound, "Gallerist does not know this authorization code", "code")
	case errors.Is(err, licenses.ErrNoKooGallery):
		writeError(c, http.StatusServiceUnavailable, "KooGallery's open API is not configured on this server (AK/SK)", "")
	case errors.Is(err, licenses.ErrTemporary):
		s.logger.Warn("KooGallery unavailable for a license call", "path", c.Request.URL.Path, "err", err)
		c.Header("Retry-After", "60")
		writeError(c, http.StatusServiceUnavailable, "KooGallery is temporarily unavailable; nothing was recorded, try again later", "")
	case errors.Is(err, licenses.ErrKooGallery):
		s.logger.Error("KooGallery answered a license call unexpectedly", "path", c.Request.URL.Path, "err", err)
		writeError(c, http.StatusBadGateway, "KooGallery answered unexpectedly (logged); nothing was recorded", "")
	default:
		s.failed(c, "license code", err)
	}
}

func licenseCodeOut(st licensecode.State) LicenseCode {
	out := LicenseCode{
		License: st.Code, Status: string(st.Status), Reference: st.Reference, Activation: string(st.Activation),
		ActivatedAt: timePtr(st.ActivatedAt), ExpireTime: timePtr(st.ExpireTime), ProductID: st.ProductID, OrderID: st.OrderID,
		Amount: st.Amount, UsageReports: st.UsageReports, Renewals: st.Renewals,
	}
	if a := st.ActivationError; a != nil {
		out.ActivationError = &LicenseVerdict{At: a.At, ResultCode: a.ErrorCode, ResultMessage: a.ErrorMessage}
	}
	if a := st.Usage; a != nil {
		out.LastUsage = &LicenseVerdict{At: a.At, ResultCode: a.ErrorCode, ResultMessage: a.ErrorMessage}
	}
	if q := st.Query; q != nil {
		out.LastQuery = &LicenseQuery{At: q.Answer.At, ResultCode: q.Answer.ErrorCode, ResultMessage: q.Answer.ErrorMessage,
			RemoteStatus: string(q.Info.Status), ActivateTime: timePtr(q.Info.ActivateTime), ExpireTime: timePtr(q.Info.ExpireTime)}
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// readBody reads a bounded body; an empty one is nil.
func readBody(r *http.Request) ([]byte, *fieldError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLicenseBody+1))
	if err != nil {
		return nil, badField("", "the body could not be read")
	}
	if len(body) > maxLicenseBody {
		return nil, badField("", fmt.Sprintf("the body exceeds %d bytes", maxLicenseBody))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return body, nil
}

// readObject decodes body as exactly one JSON object.
func readObject(body []byte, at, shape string) (map[string]json.RawMessage, *fieldError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, badField(at, "must be a JSON object"+shape)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField(at, "must be one JSON object")
	}
	return m, nil
}

// readFlatBody reads an optional body: nothing, or a JSON object whose
// members are among names, each a string.
func readFlatBody(r *http.Request, names ...string) (map[string]string, *fieldError) {
	body, ferr := readBody(r)
	if ferr != nil || body == nil {
		return map[string]string{}, ferr
	}
	m, ferr := readObject(body, "", "")
	if ferr != nil {
		return nil, ferr
	}
	out := make(map[string]string, len(m))
	for _, name := range sortedKeys(m) {
		if !slices.Contains(names, name) {
			return nil, badField(truncate(name, 64), "unknown field")
		}
		var v string
		if err := json.Unmarshal(m[name], &v); err != nil || string(bytes.TrimSpace(m[name])) == "null" {
			return nil, badField(name, "must be a string")
		}
		out[name] = v
	}
	return out, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// readLicenseUsage reads a usage report strictly; errors name
// usageInfo[i].softwareUsageInfo[j].member.
func readLicenseUsage(r *http.Request) ([]licenses.UsageItem, *fieldError) {
	body, ferr := readBody(r)
	if ferr != nil {
		return nil, ferr
	}
	if body == nil {
		return nil, badField("", `the body must be a JSON object: {"usageInfo": [{"license": …, "softwareUsageInfo": [{"id": …} | {"activeNum": …}]}]}`)
	}
	top, ferr := readObject(body, "", `: {"usageInfo": […]}`)
	if ferr != nil {
		return nil, ferr
	}
	for _, name := range sortedKeys(top) {
		if name != "usageInfo" {
			return nil, badField(truncate(name, 64), "unknown field")
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["usageInfo"], &raws); err != nil || raws == nil {
		return nil, badField("usageInfo", "must be an array of codes")
	}
	if len(raws) == 0 || len(raws) > licenses.MaxUsageCodes {
		return nil, badField("usageInfo", fmt.Sprintf("must hold 1 to %d codes, not %d", licenses.MaxUsageCodes, len(raws)))
	}
	items := make([]licenses.UsageItem, len(raws))
	for i, raw := range raws {
		at := fmt.Sprintf("usageInfo[%d]", i)
		m, ferr := readObject(raw, at, "")
		if ferr != nil {
			return nil, ferr
		}
		if _, ok := m["license"]; !ok {
			return nil, badField(at+".license", "is required")
		}
		if _, ok := m["softwareUsageInfo"]; !ok {
			return nil, badField(at+".softwareUsageInfo", "is required")
		}
		for _, name := range sortedKeys(m) {
			v := m[name]
			switch name {
			case "license":
				if err := json.Unmarshal(v, &items[i].Code); err != nil || string(bytes.TrimSpace(v)) == "null" {
					return nil, badField(at+".license", "must be a string")
				}
			case "softwareUsageInfo":
				entries, ferr := readUsageEntries(v, at+".softwareUsageInfo")
				if ferr != nil {
					return nil, ferr
				}
				items[i].Entries = entries
			default:
				return nil, badField(at+"."+truncate(name, 64), "unknown field")
			}
		}
	}
	return items, nil
}

func readUsageEntries(raw json.RawMessage, at string) ([]licensecode.UsageEntry, *fieldError) {
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil || raws == nil {
		return nil, badField(at, "must be an array of entries")
	}
	out := make([]licensecode.UsageEntry, len(raws))
	for j, r := range raws {
		eat := fmt.Sprintf("%s[%d]", at, j)
		m, ferr := readObject(r, eat, "")
		if ferr != nil {
			return nil, ferr
		}
		for _, name := range sortedKeys(m) {
			v := bytes.TrimSpace(m[name])
			switch name {
			case "id":
				if err := json.Unmarshal(v, &out[j].ID); err != nil || string(v) == "null" {
					return nil, badField(eat+".id", "must be a string")
				}
			case "activeNum":
				var n json.Number // a JSON number only: json.Number also takes a quoted one
				if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &n) != nil {
					return nil, badField(eat+".activeNum", "must be an integer")
				}
				k, err := n.Int64()
				if err != nil || k < 0 || k > licenses.MaxActiveNum {
					return nil, badField(eat+".activeNum", fmt.Sprintf("must be an integer from 0 to %d", licenses.MaxActiveNum))
				}
				num := int(k)
				out[j].ActiveNum = &num
			default:
				return nil, badField(eat+"."+truncate(name, 64), "unknown field")
			}
		}
	}
	return out, nil
}

// licenseCodePathDocs documents the /v1/license-codes routes.
func licenseCodePathDocs(g *schemaGen, jsonBody func(reflect.Type, string) obj, common func(obj) obj) obj {
	errContent := obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[ErrorBody]())}}
	refusal := func(desc string) obj {
		return obj{"description": desc, "content": obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[LicenseRefusal]())}}}
	}
	answer := func(t reflect.Type, desc string) obj {
		return obj{"description": desc, "content": obj{"application/json": obj{"schema": g.ref(t)}}}
	}
	calls := func(ok obj, refusals bool) obj {
		r := obj{
			"200": ok,
			"502": obj{"description": "KooGallery answered something that is no verdict (e.g. authentication failed: check the AK/SK); nothing was recorded.", "content": errContent},
		}
		if refusals {
			r["409"] = refusal("KooGallery refused the call because of the code's state: 92020003 (illegal state), 92020004 (not received by the buyer yet), 92020011 (not activated). Recorded on the code when Gallerist knows it (or the refusal shows the code exists).")
			r["422"] = refusal("KooGallery refused the call: 92020002 (invalid param, e.g. realEffectTime before the order time), 92020005 (no such code), 95000001 (parameter pattern or length). Recorded on the code when Gallerist knows it.")
		}
		return common(r)
	}
	body := func(t reflect.Type, required bool) obj {
		return obj{"required": required, "content": obj{"application/json": obj{"schema": g.ref(t)}}}
	}
	params := paramDocs([]param{licenseCodeParam})
	const unavailable = " A 503 means KooGallery could not be reached (or the AK/SK are not configured): nothing was recorded, try again later."
	return obj{
		"/v1/license-codes/{code}": obj{"get": obj{
			"operationId": "getLicenseCode", "summary": "An authorization code's state", "tags": []string{"license-codes"},
			"description": "The code as Gallerist knows it, fresh from the event log: its status at the vendor, its activation and the last " +
				"query and usage verdicts KooGallery gave.",
			"parameters": params,
			"responses": common(obj{
				"200": jsonBody(reflect.TypeFor[LicenseCode](), "The code."),
				"404": obj{"description": "Gallerist does not know the code.", "content": errContent},
			}),
		}},
		"/v1/license-codes/{code}/activate": obj{"post": obj{
			"operationId": "activateLicenseCode", "summary": "Activate an authorization code at KooGallery (once)", "tags": []string{"license-codes"},
			"description": "Calls KooGallery's activate API (AK/SK signed; your software never holds them) and records the verdict. " +
				"A successful activation of a code Gallerist does not know yet makes it known, so KooGallery's renewal, status and release " +
				"calls find it. An activation cannot be repeated at KooGallery: a code already activated is answered from the record " +
				"(source recorded) without calling KooGallery." + unavailable,
			"parameters":  params,
			"requestBody": body(reflect.TypeFor[LicenseActivateRequest](), false),
			"responses":   calls(answer(reflect.TypeFor[LicenseActivation](), "The code is activated."), true),
		}},
		"/v1/license-codes/{code}/heartbeat": obj{"post": obj{
			"operationId": "heartbeatLicenseCode", "summary": "Query an authorization code at KooGallery (the daily heartbeat)", "tags": []string{"license-codes"},
			"description": "Calls KooGallery's query API (at the software's first use each day) and records the verdict; remoteStatus and " +
				"expireTime decide whether use is allowed." + unavailable,
			"parameters":  params,
			"requestBody": body(reflect.TypeFor[LicenseHeartbeatRequest](), false),
			"responses":   calls(answer(reflect.TypeFor[LicenseHeartbeat](), "KooGallery's answer."), true),
		}},
		"/v1/license-codes/usage": obj{"post": obj{
			"operationId": "reportLicenseUsage", "summary": "Report the software usage of authorization codes", "tags": []string{"license-codes"},
			"description": "Calls KooGallery's software usage statistics API for up to 100 codes and records the verdict on each code. " +
				"A report KooGallery answers 92020020 (some codes invalid) is answered 200 with each code's verdict; a report refused " +
				"whole is 409/422." + unavailable,
			"requestBody": body(reflect.TypeFor[LicenseUsageReport](), true),
			"responses":   calls(answer(reflect.TypeFor[LicenseUsageResult](), "The verdict on each code."), true),
		}},
	}
}
