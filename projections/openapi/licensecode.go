package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// License B open API paths (outgoing.md §6–§8). Gallerist uses v1 of
// activate and query: the v2 batch schemas are not published.
const (
	PathLicenseActivate  = "/api/mkp-openapi-public/global/v1/license/activate"
	PathLicenseHeartbeat = "/api/mkp-openapi-public/global/v1/license/heartbeat"
	PathLicenseUsage     = "/api/mkp-openapi-public/global/v2/license/software-usage-info"
)

// License B result codes (outgoing.md §9.2), the ResultCode of an
// *APIError. Only CodeLicenseInternal (with an HTTP status other than 403)
// is temporary; with 403 it means the authentication failed.
const (
	CodeLicenseSuccess          = "92020000"
	CodeLicenseInternal         = "92020001" // internal error (200/500), or 403 Unauthorized
	CodeLicenseInvalidParam     = "92020002"
	CodeLicenseIllegalState     = "92020003" // e.g. activated twice
	CodeLicenseNotReceived      = "92020004" // the buyer has not received the code
	CodeLicenseNotExist         = "92020005"
	CodeLicenseNotActivated     = "92020011"
	CodeLicenseInvalidInBatch   = "92020020"
	CodeReqParamInvalid         = "95000001" // 400
	CodeMethodNotSupported      = "95000002" // 405
	CodeContentTypeNotSupported = "95000003" // 415
	CodeReqNotReadable          = "95000004" // 400
)

// Authorization code statuses (outgoing.md §7).
const (
	LicenseAlive    = "ALIVE"
	LicenseExpired  = "EXPIRED"
	LicenseReleased = "RELEASED"
)

// Documented License B limits.
const (
	maxLicenseLen        = 64
	maxThirdPartyAccount = 256
	maxHeartbeatIP       = 32
	maxLicenseUsageItems = 100
	maxLicenseUsageIDLen = 256
	maxActiveNum         = 999999999
)

// licenseTimeLayout is yyyyMMddHHmmss, UTC (real_effect_time).
const licenseTimeLayout = "20060102150405"

// LicenseCodeInfo is the activate answer's data.license_code_info, a JSON
// string holding an object (outgoing.md §6). ExpireTime is only an
// estimate; QueryLicense is authoritative.
type LicenseCodeInfo struct {
	Status     string
	ExpireTime time.Time
	ProductID  string
	OrderID    string
	// Amount is the quantity-type pricing attribute (0 when absent).
	Amount int
	// Raw is the decoded object as received.
	Raw json.RawMessage
}

// LicenseActivation is a successful activation.
type LicenseActivation struct {
	ResultCode string
	ResultMsg  string
	// Info is nil when the answer carries no (readable) data: data is
	// optional (outgoing.md §6 UNCERTAIN); the activation happened all the
	// same.
	Info *LicenseCodeInfo
}

// ActivateLicense activates an authorization code once (outgoing.md §6):
// POST PathLicenseActivate {"license":…[,"real_effect_time":…]}, AK/SK
// signed. realEffectTime is left out when zero and sent as yyyyMMddHHmmss
// UTC otherwise. It succeeds on HTTP 200 with error_code 92020000, whatever
// data holds.
//
// Errors: ErrInvalidRequest for bad arguments; an error wrapping
// ErrTransport when no host answered; *APIError otherwise, e.g. ResultCode
// CodeLicenseIllegalState for a code already activated (see IsTemporary).
func (c *Client) ActivateLicense(ctx context.Context, license string, realEffectTime time.Time) (LicenseActivation, error) {
	if err := checkLicense("activate license", license); err != nil {
		return LicenseActivation{}, err
	}
	req := struct {
		License        string `json:"license"`
		RealEffectTime string `json:"real_effect_time,omitempty"`
	}{License: license}
	if !realEffectTime.IsZero() {
		req.RealEffectTime = realEffectTime.UTC().Format(licenseTimeLayout)
	}
	log := c.log.With("api", string(APILicenseActivate), "license", license)
	a, top, err := c.licenseCall(ctx, log, APILicenseActivate, PathLicenseActivate, req)
	if err != nil {
		return LicenseActivation{}, err
	}
	out := LicenseActivation{ResultCode: top.str("error_code"), ResultMsg: top.str("error_msg")}
	var note string
	if data := top.obj("data"); data != nil && data.has("license_code_info") {
		info, err := decodeLicenseCodeInfo(data["license_code_info"])
		if err != nil {
			note = err.Error()
		} else {
			out.Info = &info
		}
	}
	level := slog.LevelInfo
	if note != "" {
		level = slog.LevelWarn
	}
	attrs := []any{"host", a.host, "error_code", out.ResultCode, "error_msg", out.ResultMsg, "note", note}
	if out.Info != nil {
		attrs = append(attrs, "status", out.Info.Status, "expire_time", out.Info.ExpireTime)
	} else {
		attrs = append(attrs, "raw", logged(a.body))
	}
	log.Log(ctx, level, "license activated", attrs...)
	return out, nil
}

// decodeLicenseCodeInfo reads license_code_info: a JSON string holding an
// object, as documented, or (tolerated) the object itself.
func decodeLicenseCodeInfo(v json.RawMessage) (LicenseCodeInfo, error) {
	raw := bytes.TrimSpace(v)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return LicenseCodeInfo{}, fmt.Errorf("license_code_info is not readable: %w", err)
		}
		raw = bytes.TrimSpace([]byte(s))
	}
	o, ok := parseObject(raw)
	if !ok {
		return LicenseCodeInfo{}, errors.New("license_code_info is not a JSON object")
	}
	info := LicenseCodeInfo{Status: o.str("status"), ProductID: o.str("product_id"), OrderID: o.str("order_id"), Raw: bytes.Clone(raw)}
	info.Amount, _ = o.int("amount")
	info.ExpireTime, _ = parseTime(o.str("expire_time"))
	return info, nil
}

// HeartbeatInfo is the query's optional heartbeatInfo (being retired in
// favour of ReportSoftwareUsage).
type HeartbeatInfo struct {
	// ThirdPartyAccount identifies the end user or device (required, at
	// most 256 characters).
	ThirdPartyAccount string `json:"thirdPartyAccount"`
	// IP is the client's login IP (optional, at most 32 characters).
	IP string `json:"ip,omitempty"`
}

// LicenseInfo is the query answer's data (outgoing.md §7). LicenseCode,
// Status and ActivateTime are documented; the rest of the table is cut
// off, so ExpireTime (expire_time), ProductID (product_id), OrderID
// (order_id) and Amount (amount) are read under guessed names, and Raw
// keeps data as received.
type LicenseInfo struct {
	LicenseCode  string
	Status       string
	ActivateTime time.Time
	ExpireTime   time.Time
	ProductID    string
	OrderID      string
	Amount       int
	Raw          json.RawMessage
}

// QueryLicense asks for an activated code's status (outgoing.md §7, the
// daily heartbeat): POST PathLicenseHeartbeat {"license":…[,"heartbeatInfo":
// {…}]}, AK/SK signed; hb may be nil. It succeeds on HTTP 200 with
// error_code 92020000 and a data object with a status; the caller decides
// from Status (ALIVE, EXPIRED, RELEASED) and ExpireTime whether use is
// allowed.
//
// Errors: as ActivateLicense; CodeLicenseNotActivated for a code never
// activated; a success answer without data or status, or about another
// code, is an *APIError with cause ErrUnexpectedAnswer.
func (c *Client) QueryLicense(ctx context.Context, license string, hb *HeartbeatInfo) (LicenseInfo, error) {
	if err := checkLicense("query license", license); err != nil {
		return LicenseInfo{}, err
	}
	if hb != nil {
		switch {
		case hb.ThirdPartyAccount == "" || utf8.RuneCountInString(hb.ThirdPartyAccount) > maxThirdPartyAccount:
			return LicenseInfo{}, fmt.Errorf("%w: query license: heartbeatInfo.thirdPartyAccount is required, at most %d characters", ErrInvalidRequest, maxThirdPartyAccount)
		case len(hb.IP) > maxHeartbeatIP:
			return LicenseInfo{}, fmt.Errorf("%w: query license: heartbeatInfo.ip is at most %d characters", ErrInvalidRequest, maxHeartbeatIP)
		}
	}
	req := struct {
		License       string         `json:"license"`
		HeartbeatInfo *HeartbeatInfo `json:"heartbeatInfo,omitempty"`
	}{license, hb}
	log := c.log.With("api", string(APILicenseHeartbeat), "license", license)
	a, top, err := c.licenseCall(ctx, log, APILicenseHeartbeat, PathLicenseHeartbeat, req)
	if err != nil {
		return LicenseInfo{}, err
	}
	unexpected := func(why string) (LicenseInfo, error) {
		ae := apiErrorOf(APILicenseHeartbeat, a, fmt.Errorf("%w: %s", ErrUnexpectedAnswer, why))
		log.Warn("query license failed", "host", a.host, "status", ae.HTTPStatus, "error_code", ae.ResultCode,
			"error_msg", ae.ResultMsg, "cause", ae.Err, "raw", logged(a.body))
		return LicenseInfo{}, ae
	}
	data := top.obj("data")
	if data == nil {
		return unexpected("no data")
	}
	info := LicenseInfo{
		LicenseCode: data.str("license_code"), Status: data.str("status"),
		ProductID: data.str("product_id"), OrderID: data.str("order_id"),
		Raw: bytes.Clone(bytes.TrimSpace(top["data"])),
	}
	switch {
	case info.Status == "":
		return unexpected("data has no status")
	case info.LicenseCode == "":
		info.LicenseCode = license
	case info.LicenseCode != license:
		return unexpected(fmt.Sprintf("answer is about code %q", info.LicenseCode))
	}
	var notes []string
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"activate_time", &info.ActivateTime}, {"expire_time", &info.ExpireTime}} {
		if s := data.str(f.name); s != "" {
			if t, ok := parseLicenseTime(s); ok {
				*f.t = t
			} else {
				notes = append(notes, fmt.Sprintf("unreadable %s %q", f.name, s))
			}
		}
	}
	info.Amount, _ = data.int("amount")
	level := slog.LevelInfo
	if len(notes) > 0 || (info.Status != LicenseAlive && info.Status != LicenseExpired && info.Status != LicenseReleased) {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "license queried", "host", a.host, "error_code", top.str("error_code"), "status", info.Status,
		"expire_time", info.ExpireTime, "notes", notes)
	return info, nil
}

// parseLicenseTime reads a KooGallery time (parseTime) or epoch
// milliseconds, the other likely spelling of the unpublished
// activate_time.
func parseLicenseTime(s string) (time.Time, bool) {
	if t, ok := parseTime(s); ok {
		return t, true
	}
	if len(s) == 13 {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
			return time.UnixMilli(ms).UTC(), true
		}
	}
	return time.Time{}, false
}

// SoftwareUsage is one usage_info item (outgoing.md §8): a code and its
// clients.
type SoftwareUsage struct {
	// License is the authorization code.
	License string `json:"license"`
	// Entries are software_usage_Info (1 to 100, spelled with a capital
	// I); each sets exactly one of ID and ActiveNum (UsageClient,
	// UsageActiveClients).
	Entries []SoftwareUsageEntry `json:"software_usage_Info"`
}

// SoftwareUsageEntry is one software_usage_Info element.
type SoftwareUsageEntry struct {
	// ID identifies one client (account ID or device code), at most 256
	// characters.
	ID string `json:"id,omitempty"`
	// ActiveNum is the day's total of active clients (0 to 999999999).
	ActiveNum *int `json:"active_num,omitempty"`
}

// UsageClient is an entry counting the client id.
func UsageClient(id string) SoftwareUsageEntry { return SoftwareUsageEntry{ID: id} }

// UsageActiveClients is an entry giving the day's total of active clients.
func UsageActiveClients(n int) SoftwareUsageEntry { return SoftwareUsageEntry{ActiveNum: &n} }

// SoftwareUsageResult is the usage statistics answer.
type SoftwareUsageResult struct {
	ResultCode string
	ResultMsg  string
	// CheckFailed lists the codes the answer's data reports as failing
	// validation: the strings (or the license members of objects) of
	// data's first member whose name begins "check_fail" (its full name is
	// not published, outgoing.md §8 UNCERTAIN).
	CheckFailed []string
}

// ReportSoftwareUsage reports the day's software usage of up to 100 codes
// (outgoing.md §8): POST PathLicenseUsage {"usage_info":[{"license":…,
// "software_usage_Info":[{"id":…}|{"active_num":…}]}]}, AK/SK signed. It
// succeeds on HTTP 200 with error_code 92020000.
//
// Errors: as ActivateLicense. With CodeLicenseInvalidInBatch (a code in
// the batch is invalid) the result is returned too, CheckFailed naming
// the failing codes when the answer lists them.
func (c *Client) ReportSoftwareUsage(ctx context.Context, usage []SoftwareUsage) (SoftwareUsageResult, error) {
	if err := checkSoftwareUsage(usage); err != nil {
		return SoftwareUsageResult{}, err
	}
	req := struct {
		UsageInfo []SoftwareUsage `json:"usage_info"`
	}{usage}
	log := c.log.With("api", string(APILicenseUsage), "codes", len(usage))
	a, top, err := c.licenseCall(ctx, log, APILicenseUsage, PathLicenseUsage, req)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.ResultCode == CodeLicenseInvalidInBatch {
			if o, ok := parseObject(ae.Raw); ok {
				return SoftwareUsageResult{ResultCode: ae.ResultCode, ResultMsg: ae.ResultMsg, CheckFailed: checkFailed(o.obj("data"))}, err
			}
		}
		return SoftwareUsageResult{}, err
	}
	out := SoftwareUsageResult{ResultCode: top.str("error_code"), ResultMsg: top.str("error_msg"), CheckFailed: checkFailed(top.obj("data"))}
	level := slog.LevelInfo
	if len(out.CheckFailed) > 0 {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "software usage reported", "host", a.host, "error_code", out.ResultCode, "check_fail", out.CheckFailed)
	return out, nil
}

// checkFailed reads the codes of data's check_fail… member.
func checkFailed(data object) []string {
	if data == nil {
		return nil
	}
	names := make([]string, 0, len(data))
	for k := range data {
		if strings.HasPrefix(k, "check_fail") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		var raws []json.RawMessage
		if json.Unmarshal(data[k], &raws) != nil {
			continue
		}
		out := []string{}
		for _, r := range raws {
			if s, ok := scalar(r); ok && s != "" {
				out = append(out, s)
			} else if o, ok := parseObject(r); ok {
				if s := o.str("license", "license_code"); s != "" {
					out = append(out, s)
				}
			}
		}
		return out
	}
	return nil
}

func checkSoftwareUsage(usage []SoftwareUsage) error {
	if n := len(usage); n == 0 || n > maxLicenseUsageItems {
		return fmt.Errorf("%w: software usage: 1 to %d codes per call, got %d", ErrInvalidRequest, maxLicenseUsageItems, n)
	}
	for i, u := range usage {
		if err := checkLicense(fmt.Sprintf("software usage [%d]", i), u.License); err != nil {
			return err
		}
		if n := len(u.Entries); n == 0 || n > maxLicenseUsageItems {
			return fmt.Errorf("%w: software usage [%d]: 1 to %d entries, got %d", ErrInvalidRequest, i, maxLicenseUsageItems, n)
		}
		for j, e := range u.Entries {
			switch {
			case (e.ID == "") == (e.ActiveNum == nil):
				return fmt.Errorf("%w: software usage [%d][%d]: set exactly one of ID and ActiveNum", ErrInvalidRequest, i, j)
			case utf8.RuneCountInString(e.ID) > maxLicenseUsageIDLen:
				return fmt.Errorf("%w: software usage [%d][%d]: ID is at most %d characters", ErrInvalidRequest, i, j, maxLicenseUsageIDLen)
			case e.ActiveNum != nil && (*e.ActiveNum < 0 || *e.ActiveNum > maxActiveNum):
				return fmt.Errorf("%w: software usage [%d][%d]: ActiveNum must be 0 to %d", ErrInvalidRequest, i, j, maxActiveNum)
			}
		}
	}
	return nil
}

func checkLicense(op, license string) error {
	if license == "" || utf8.RuneCountInString(license) > maxLicenseLen {
		return fmt.Errorf("%w: %s: the code is required, at most %d characters", ErrInvalidRequest, op, maxLicenseLen)
	}
	return nil
}

// licenseCall sends a License B request and returns the answer when it is
// HTTP 200 with error_code CodeLicenseSuccess; any other answer is an
// *APIError (logged with the raw body).
func (c *Client) licenseCall(ctx context.Context, log *slog.Logger, api API, path string, req any) (answer, object, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return answer{}, nil, fmt.Errorf("%w: %s: %w", ErrInvalidRequest, api, err)
	}
	a, err := c.do(ctx, call{api: api, method: http.MethodPost, path: path, body: body})
	if err != nil {
		log.Warn("open API call failed", "err", err)
		return answer{}, nil, err
	}
	fail := func(ae *APIError) (answer, object, error) {
		log.Warn("open API call failed", "host", a.host, "status", ae.HTTPStatus, "error_code", ae.ResultCode,
			"error_msg", ae.ResultMsg, "temporary", ae.Temporary(), "cause", ae.Err, "raw", logged(a.body))
		return answer{}, nil, ae
	}
	if a.status != http.StatusOK {
		return fail(apiErrorOf(api, a, nil))
	}
	top, ok := parseObject(a.body)
	if !ok {
		return fail(apiErrorOf(api, a, fmt.Errorf("%w: body is not a JSON object", ErrMalformedAnswer)))
	}
	if code := top.str("error_code"); code != CodeLicenseSuccess {
		var cause error
		if code == "" {
			cause = fmt.Errorf("%w: no error_code", ErrMalformedAnswer)
		}
		return fail(apiErrorOf(api, a, cause))
	}
	return a, top, nil
}
