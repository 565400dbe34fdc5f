package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// License B open APIs (outgoing.md §6–§8): activate an authorization code,
// query it (the heartbeat) and report software usage. The paths are
// spelled out here rather than taken from the client package, so that the
// stand-in checks the client against the documentation. Only the v1
// activate/heartbeat and the v2 usage API are served: the v2 batch
// activate/heartbeat schemas are not published (outgoing.md §6, §7
// UNCERTAIN), so those paths answer the gateway's 404.
const (
	PathLicenseActivate  = "/api/mkp-openapi-public/global/v1/license/activate"
	PathLicenseHeartbeat = "/api/mkp-openapi-public/global/v1/license/heartbeat"
	PathLicenseUsage     = "/api/mkp-openapi-public/global/v2/license/software-usage-info"
)

// License B result codes (outgoing.md §9.2), with the HTTP status the
// stand-in answers them with.
const (
	// CodeLicenseSuccess (200): success.
	CodeLicenseSuccess = "92020000"
	// CodeLicenseUnauthorized (403, "Unauthorized"): the stand-in answers it
	// when a verified AK uses a code owned by another AK (LicenseCode.Owner).
	// One copy of the table lists 92020001 as 403 Unauthorized and as 500
	// internal error (UNCERTAIN); the stand-in uses only the 403 reading.
	CodeLicenseUnauthorized = "92020001"
	// CodeLicenseInvalidParam (200): a well-formed request whose values do
	// not fit, e.g. real_effect_time before the order time.
	CodeLicenseInvalidParam = "92020002"
	// CodeLicenseIllegalState (200): activating a code that is already
	// activated, expired or released.
	CodeLicenseIllegalState = "92020003"
	// CodeLicenseNotReceived (200): the buyer has not received the code yet.
	CodeLicenseNotReceived = "92020004"
	// CodeLicenseNotExist (200): no such code.
	CodeLicenseNotExist = "92020005"
	// CodeLicenseNotActivated (200): querying a code never activated.
	CodeLicenseNotActivated = "92020011"
	// CodeLicenseInvalidInBatch (200): a usage report names a code that does
	// not exist or was never activated.
	CodeLicenseInvalidInBatch = "92020020"
	// CodeReqParamInvalid (400): a field is missing, too long or of the
	// wrong pattern.
	CodeReqParamInvalid = "95000001"
	// CodeMethodNotSupported (405): not POST.
	CodeMethodNotSupported = "95000002"
	// CodeContentTypeNotSupported (415): Content-Type is not application/json.
	CodeContentTypeNotSupported = "95000003"
	// CodeReqNotReadable (400): the body is not a JSON object of the
	// documented shape (bad JSON, a field of the wrong JSON type).
	CodeReqNotReadable = "95000004"
)

// licenseMsgs are the documented error_msg texts (outgoing.md §9.2).
var licenseMsgs = map[string]string{
	CodeLicenseSuccess:          "success",
	CodeLicenseUnauthorized:     "Unauthorized",
	CodeLicenseInvalidParam:     "invalid param",
	CodeLicenseIllegalState:     "illegal state",
	CodeLicenseNotReceived:      "can not active before user received.",
	CodeLicenseNotExist:         "license code notexist",
	CodeLicenseNotActivated:     "license code has been not activated.",
	CodeLicenseInvalidInBatch:   "Invalid license code exists.",
	CodeReqParamInvalid:         "req param is invalid",
	CodeMethodNotSupported:      "Request method not supported",
	CodeContentTypeNotSupported: "Content type not supported",
	CodeReqNotReadable:          "req message is not readable",
}

// licenseStatus is the HTTP status of each code.
var licenseStatus = map[string]int{
	CodeLicenseUnauthorized:     http.StatusForbidden,
	CodeReqParamInvalid:         http.StatusBadRequest,
	CodeMethodNotSupported:      http.StatusMethodNotAllowed,
	CodeContentTypeNotSupported: http.StatusUnsupportedMediaType,
	CodeReqNotReadable:          http.StatusBadRequest,
}

// Authorization code statuses (outgoing.md §7).
const (
	LicenseAlive    = "ALIVE"
	LicenseExpired  = "EXPIRED"
	LicenseReleased = "RELEASED"
)

// licenseTimeFormat is yyyyMMddHHmmss, UTC: real_effect_time and
// expire_time as documented; the stand-in also uses it for activate_time,
// whose format is not published.
const licenseTimeFormat = "20060102150405"

// Documented limits (outgoing.md §6–§8).
const (
	maxLicenseLen        = 64
	maxThirdPartyAccount = 256
	maxHeartbeatIP       = 32
	maxLicenseUsageItems = 100
	maxLicenseUsageIDLen = 256
	maxActiveNum         = 999999999 // integer, 9 digits
	// maxKeptLicense bounds each list of recorded License B calls (the oldest go).
	maxKeptLicense = 1000
)

// LicenseCode is an authorization code the stand-in knows. The zero
// values are usable: a code that is received, not yet activated, not
// released, that never expires.
type LicenseCode struct {
	// Code is the authorization code (at most 64 characters).
	Code string
	// Owner, when set, is the only AK that may use the code; another
	// (verified) AK gets CodeLicenseUnauthorized.
	Owner string
	// NotReceived: the buyer has not received the code (activate answers
	// CodeLicenseNotReceived).
	NotReceived bool
	// Activated and ActivateTime: the code was activated (activate answers
	// CodeLicenseIllegalState; query answers it). Activating sets both.
	Activated    bool
	ActivateTime time.Time
	// RealEffectTime is the real_effect_time sent with the activation.
	RealEffectTime time.Time
	// Released: KooGallery released the code (status RELEASED).
	Released bool
	// OrderTime is when the code was bought; real_effect_time may not be
	// earlier. Zero: not checked.
	OrderTime time.Time
	// ExpireTime is the code's expiry: status EXPIRED from then on. Zero:
	// never expires (expire_time is then left out).
	ExpireTime time.Time
	// ProductID, OrderID and Amount are served in license_code_info (and by
	// the query, under the same names: a guess, outgoing.md §7).
	ProductID string
	OrderID   string
	Amount    int
}

// Status is the code's status at now: RELEASED, EXPIRED or ALIVE.
func (l LicenseCode) Status(now time.Time) string {
	switch {
	case l.Released:
		return LicenseReleased
	case !l.ExpireTime.IsZero() && !now.Before(l.ExpireTime):
		return LicenseExpired
	}
	return LicenseAlive
}

// LicenseHeartbeat is one successful query (heartbeat) call.
type LicenseHeartbeat struct {
	Time    time.Time
	AK      string
	License string
	// ThirdPartyAccount and IP are heartbeatInfo's, when sent.
	ThirdPartyAccount string
	IP                string
	// Status is the status answered.
	Status string
}

// LicenseUsageReport is one usage_info item the stand-in accepted (its code
// exists and is activated) from a software usage statistics call.
type LicenseUsageReport struct {
	Time    time.Time
	AK      string
	License string
	// Entries are software_usage_Info, in order.
	Entries []SoftwareUsage
}

// SoftwareUsage is one software_usage_Info element: exactly one of ID and
// ActiveNum is set.
type SoftwareUsage struct {
	ID        string `json:"id,omitempty"`
	ActiveNum *int   `json:"active_num,omitempty"`
}

// licenseState is the License B registry, guarded by its own lock.
type licenseState struct {
	mu         sync.Mutex
	codes      map[string]LicenseCode
	heartbeats []LicenseHeartbeat
	usage      []LicenseUsageReport
}

func newLicenseState() *licenseState {
	st := &licenseState{codes: map[string]LicenseCode{}}
	for _, l := range MockLicenseCodes() {
		st.codes[l.Code] = l
	}
	return st
}

// AddLicenseCode makes the stand-in know l (replacing a code with the same
// Code).
func (s *Server) AddLicenseCode(l LicenseCode) {
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	s.lic.codes[l.Code] = l
}

// LicenseCode returns what the stand-in knows of code now (e.g. whether an
// activation was recorded).
func (s *Server) LicenseCode(code string) (LicenseCode, bool) {
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	l, ok := s.lic.codes[code]
	return l, ok
}

// LicenseHeartbeats returns the successful query calls, oldest first (at
// most the last 1000).
func (s *Server) LicenseHeartbeats() []LicenseHeartbeat {
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	return slices.Clone(s.lic.heartbeats)
}

// LicenseUsageReports returns the accepted usage_info items, oldest first
// (at most the last 1000).
func (s *Server) LicenseUsageReports() []LicenseUsageReport {
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	out := slices.Clone(s.lic.usage)
	for i := range out {
		out[i].Entries = slices.Clone(out[i].Entries)
	}
	return out
}

// keepLast appends v to list, dropping the oldest beyond maxKeptLicense.
func keepLast[T any](list []T, v T) []T {
	list = append(list, v)
	if len(list) > maxKeptLicense {
		list = slices.Delete(list, 0, len(list)-maxKeptLicense)
	}
	return list
}

// licenseAnswer is the body of every License B answer.
type licenseAnswer struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	Data      any    `json:"data,omitempty"`
}

// writeLicense answers code with its documented status and message; detail
// is appended to the message.
func writeLicense(w http.ResponseWriter, code, detail string, data any) {
	status, ok := licenseStatus[code]
	if !ok {
		status = http.StatusOK
	}
	msg := licenseMsgs[code]
	if detail != "" {
		msg += ": " + detail
	}
	writeJSON(w, status, licenseAnswer{ErrorCode: code, ErrorMsg: msg, Data: data})
}

// licenseRequest checks what the License B APIs share (POST, JSON content
// type, a readable JSON object of the documented shape, decoded strictly
// into v) and answers the documented 95000002/95000003/95000004 itself;
// ok is false when it answered.
func licenseRequest(w http.ResponseWriter, r *http.Request, v any) (ak string, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeLicense(w, CodeMethodNotSupported, r.Method, nil)
		return "", false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeLicense(w, CodeContentTypeNotSupported, "want application/json", nil)
		return "", false
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		writeLicense(w, CodeReqNotReadable, "", nil)
		return "", false
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) == 0 || b[0] != '{' {
		writeLicense(w, CodeReqNotReadable, "body is not a JSON object", nil)
		return "", false
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		detail := "body is not valid JSON"
		if errors.As(err, &te) {
			detail = fmt.Sprintf("%s must be a JSON %s", te.Field, te.Type)
		}
		writeLicense(w, CodeReqNotReadable, detail, nil)
		return "", false
	}
	// encoding/json matches member names case-insensitively; KooGallery's
	// (Java) side does not, so a name in another case is as good as absent.
	if name, ok := wrongCase(b, v); !ok {
		writeLicense(w, CodeReqParamInvalid, fmt.Sprintf("unknown member %q (names are case-sensitive)", name), nil)
		return "", false
	}
	return akOf(r), true
}

// akOf is the (already verified) AK of the request.
func akOf(r *http.Request) string {
	a, err := koogallery.ParseAKSKAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return ""
	}
	return a.Access
}

// checkLicenseField validates a license value (M, String 64); detail is
// empty when it is fine.
func checkLicenseField(name, v string) string {
	switch {
	case v == "":
		return name + " is required"
	case len([]rune(v)) > maxLicenseLen:
		return fmt.Sprintf("%s is longer than %d characters", name, maxLicenseLen)
	}
	return ""
}

// activateRequest is the v1 activate body (outgoing.md §6).
type activateRequest struct {
	License        string `json:"license"`
	RealEffectTime string `json:"real_effect_time"`
}

// licenseCodeInfo is the object serialised into data.license_code_info.
type licenseCodeInfo struct {
	Status     string `json:"status"`
	ExpireTime string `json:"expire_time,omitempty"`
	ProductID  string `json:"product_id,omitempty"`
	Amount     int    `json:"amount"`
	OrderID    string `json:"order_id,omitempty"`
}

// activateData is the activate answer's data member.
type activateData struct {
	// LicenseCodeInfo is a JSON string, as documented.
	LicenseCodeInfo string `json:"license_code_info"`
}

// licenseActivate serves POST PathLicenseActivate (outgoing.md §6): a
// received code that is ALIVE and not yet activated is activated once.
func (s *Server) licenseActivate(w http.ResponseWriter, r *http.Request) {
	var req activateRequest
	ak, ok := licenseRequest(w, r, &req)
	if !ok {
		return
	}
	if d := checkLicenseField("license", req.License); d != "" {
		writeLicense(w, CodeReqParamInvalid, d, nil)
		return
	}
	var effect time.Time
	if req.RealEffectTime != "" {
		t, err := time.ParseInLocation(licenseTimeFormat, req.RealEffectTime, time.UTC)
		if err != nil || len(req.RealEffectTime) != len(licenseTimeFormat) {
			writeLicense(w, CodeReqParamInvalid, "real_effect_time must be yyyyMMddHHmmss (UTC)", nil)
			return
		}
		effect = t
	}
	now := s.clock()
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	l, found := s.lic.codes[req.License]
	switch {
	case !found:
		writeLicense(w, CodeLicenseNotExist, "", nil)
		return
	case l.Owner != "" && l.Owner != ak:
		writeLicense(w, CodeLicenseUnauthorized, "the code belongs to another account", nil)
		return
	case l.NotReceived:
		writeLicense(w, CodeLicenseNotReceived, "", nil)
		return
	case l.Activated:
		writeLicense(w, CodeLicenseIllegalState, "the code is already activated", nil)
		return
	case l.Status(now) != LicenseAlive:
		writeLicense(w, CodeLicenseIllegalState, "the code is "+l.Status(now), nil)
		return
	case !effect.IsZero() && !l.OrderTime.IsZero() && effect.Before(l.OrderTime):
		writeLicense(w, CodeLicenseInvalidParam, "real_effect_time is earlier than the order time", nil)
		return
	}
	l.Activated, l.ActivateTime, l.RealEffectTime = true, now.UTC(), effect
	s.lic.codes[l.Code] = l
	info := licenseCodeInfo{Status: l.Status(now), ProductID: l.ProductID, Amount: l.Amount, OrderID: l.OrderID}
	if !l.ExpireTime.IsZero() {
		info.ExpireTime = l.ExpireTime.UTC().Format(licenseTimeFormat)
	}
	b, err := json.Marshal(info)
	if err != nil {
		writeGatewayError(w, http.StatusInternalServerError, "APIGW.0000", "stand-in could not encode its answer")
		return
	}
	writeLicense(w, CodeLicenseSuccess, "", activateData{LicenseCodeInfo: string(b)})
}

// heartbeatRequest is the v1 query body (outgoing.md §7).
type heartbeatRequest struct {
	License       string `json:"license"`
	HeartbeatInfo *struct {
		ThirdPartyAccount string `json:"thirdPartyAccount"`
		IP                string `json:"ip"`
	} `json:"heartbeatInfo"`
}

// licenseInfo is the query answer's data (LicenseInfo). license_code,
// status and activate_time are documented; the rest of the table is cut
// off, so expire_time (as in license_code_info), product_id, order_id and
// amount are guesses.
type licenseInfo struct {
	LicenseCode  string `json:"license_code"`
	Status       string `json:"status"`
	ActivateTime string `json:"activate_time"`
	ExpireTime   string `json:"expire_time,omitempty"`
	ProductID    string `json:"product_id,omitempty"`
	OrderID      string `json:"order_id,omitempty"`
	Amount       int    `json:"amount"`
}

// licenseHeartbeat serves POST PathLicenseHeartbeat (outgoing.md §7): the
// status of an activated code, whatever it is (the software decides).
func (s *Server) licenseHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req heartbeatRequest
	ak, ok := licenseRequest(w, r, &req)
	if !ok {
		return
	}
	if d := checkLicenseField("license", req.License); d != "" {
		writeLicense(w, CodeReqParamInvalid, d, nil)
		return
	}
	hb := LicenseHeartbeat{AK: ak, License: req.License}
	if h := req.HeartbeatInfo; h != nil {
		switch {
		case h.ThirdPartyAccount == "":
			writeLicense(w, CodeReqParamInvalid, "heartbeatInfo.thirdPartyAccount is required", nil)
			return
		case len([]rune(h.ThirdPartyAccount)) > maxThirdPartyAccount:
			writeLicense(w, CodeReqParamInvalid, fmt.Sprintf("heartbeatInfo.thirdPartyAccount is longer than %d characters", maxThirdPartyAccount), nil)
			return
		case len(h.IP) > maxHeartbeatIP:
			writeLicense(w, CodeReqParamInvalid, fmt.Sprintf("heartbeatInfo.ip is longer than %d characters", maxHeartbeatIP), nil)
			return
		}
		hb.ThirdPartyAccount, hb.IP = h.ThirdPartyAccount, h.IP
	}
	now := s.clock()
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	l, found := s.lic.codes[req.License]
	switch {
	case !found:
		writeLicense(w, CodeLicenseNotExist, "", nil)
		return
	case l.Owner != "" && l.Owner != ak:
		writeLicense(w, CodeLicenseUnauthorized, "the code belongs to another account", nil)
		return
	case !l.Activated:
		writeLicense(w, CodeLicenseNotActivated, "", nil)
		return
	}
	hb.Time, hb.Status = now, l.Status(now)
	s.lic.heartbeats = keepLast(s.lic.heartbeats, hb)
	info := licenseInfo{
		LicenseCode: l.Code, Status: hb.Status, ActivateTime: l.ActivateTime.UTC().Format(licenseTimeFormat),
		ProductID: l.ProductID, OrderID: l.OrderID, Amount: l.Amount,
	}
	if !l.ExpireTime.IsZero() {
		info.ExpireTime = l.ExpireTime.UTC().Format(licenseTimeFormat)
	}
	writeLicense(w, CodeLicenseSuccess, "", info)
}

// licenseUsageRequest is the software usage statistics body (outgoing.md §8).
type licenseUsageRequest struct {
	UsageInfo []struct {
		License string          `json:"license"`
		Entries []SoftwareUsage `json:"software_usage_Info"`
	} `json:"usage_info"`
}

// licenseUsageData is the usage answer's data member. Its documented name is cut
// off after "check_fail_" (outgoing.md §8 UNCERTAIN): check_fail_licenses,
// the codes that failed validation, is a guess.
type licenseUsageData struct {
	CheckFailLicenses []string `json:"check_fail_licenses"`
}

// licenseUsage serves POST PathLicenseUsage (outgoing.md §8). A malformed
// request is refused whole (95000001); codes that do not exist, are not
// activated or belong to another AK are listed in the answer's data with
// CodeLicenseInvalidInBatch, the other items being recorded all the same.
func (s *Server) licenseUsage(w http.ResponseWriter, r *http.Request) {
	var req licenseUsageRequest
	ak, ok := licenseRequest(w, r, &req)
	if !ok {
		return
	}
	if d := checkLicenseUsage(&req); d != "" {
		writeLicense(w, CodeReqParamInvalid, d, nil)
		return
	}
	now := s.clock()
	s.lic.mu.Lock()
	defer s.lic.mu.Unlock()
	failed := []string{}
	for _, it := range req.UsageInfo {
		l, found := s.lic.codes[it.License]
		if !found || !l.Activated || (l.Owner != "" && l.Owner != ak) {
			failed = append(failed, it.License)
			continue
		}
		s.lic.usage = keepLast(s.lic.usage, LicenseUsageReport{Time: now, AK: ak, License: it.License, Entries: slices.Clone(it.Entries)})
	}
	code := CodeLicenseSuccess
	if len(failed) > 0 {
		code = CodeLicenseInvalidInBatch
	}
	writeLicense(w, code, "", licenseUsageData{CheckFailLicenses: failed})
}

// checkLicenseUsage validates a usage report's shape; "" when it is fine.
func checkLicenseUsage(req *licenseUsageRequest) string {
	if n := len(req.UsageInfo); n == 0 || n > maxLicenseUsageItems {
		return fmt.Sprintf("usage_info must hold 1 to %d items, got %d", maxLicenseUsageItems, n)
	}
	for i, it := range req.UsageInfo {
		if d := checkLicenseField(fmt.Sprintf("usage_info[%d].license", i), it.License); d != "" {
			return d
		}
		if n := len(it.Entries); n == 0 || n > maxLicenseUsageItems {
			return fmt.Sprintf("usage_info[%d].software_usage_Info must hold 1 to %d items, got %d", i, maxLicenseUsageItems, n)
		}
		for j, e := range it.Entries {
			at := fmt.Sprintf("usage_info[%d].software_usage_Info[%d]", i, j)
			switch {
			case (e.ID == "") == (e.ActiveNum == nil):
				return at + " must set exactly one of id and active_num"
			case len([]rune(e.ID)) > maxLicenseUsageIDLen:
				return fmt.Sprintf("%s.id is longer than %d characters", at, maxLicenseUsageIDLen)
			case e.ActiveNum != nil && (*e.ActiveNum < 0 || *e.ActiveNum > maxActiveNum):
				return at + ".active_num must be an integer of at most 9 digits"
			}
		}
	}
	return ""
}

// wrongCase reports a member name of body (at any depth of the documented
// License B shapes) that differs from a documented name only in case; ok
// is false when it found one.
func wrongCase(body []byte, v any) (name string, ok bool) {
	var known [][]string
	switch v.(type) {
	case *activateRequest:
		known = [][]string{{"license", "real_effect_time"}}
	case *heartbeatRequest:
		known = [][]string{{"license", "heartbeatInfo"}, {"thirdPartyAccount", "ip"}}
	case *licenseUsageRequest:
		known = [][]string{{"usage_info"}, {"license", "software_usage_Info"}, {"id", "active_num"}}
	}
	return walkCase(body, known)
}

// walkCase checks the object members of raw against known[0] and descends
// into object and array members with known[1:].
func walkCase(raw []byte, known [][]string) (string, bool) {
	if len(known) == 0 {
		return "", true
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", true
	}
	switch raw[0] {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return "", true
		}
		for _, it := range items {
			if name, ok := walkCase(it, known); !ok {
				return name, false
			}
		}
	case '{':
		var members map[string]json.RawMessage
		if json.Unmarshal(raw, &members) != nil {
			return "", true
		}
		for name, val := range members {
			for _, k := range known[0] {
				if name != k && strings.EqualFold(name, k) {
					return name, false
				}
			}
			if slices.Contains(known[0], name) {
				if n, ok := walkCase(val, known[1:]); !ok {
					return n, false
				}
			}
		}
	}
	return "", true
}
