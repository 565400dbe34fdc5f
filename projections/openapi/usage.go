package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// PathUsagePush is the new usage push's path (outgoing.md §3).
const PathUsagePush = "/api/mkp-openapi-public/global/v1/isv/usage-data"

// MaxUsageRecords is the most records one usage push carries (§3).
const MaxUsageRecords = usage.MaxBatch

// Usage push result codes (outgoing.md §9.1).
const (
	UsageCodeSuccess        = "MKT.0000"
	UsageCodeInternal       = "MKT.0999"
	UsageCodeInputFailure   = "MKT.0100"
	UsageCodeInvalidParam   = "MKT.0101"
	UsageCodeInvalidSign    = "MKT.0102"
	UsageCodeRequestError   = "MKT.0199"
	UsageCodeNotVendors     = "MKT.0150"
	UsageCodeNotISV         = "MKT.0151"
	UsageCodeIllegalToken   = "MKT.0154"
	UsageCodeNoInstance     = "MKT.9001"
	UsageCodeInvalidEntries = "MKT.9002"
	UsageCodeTooMany        = "MKT.9003"
	UsageCodeTooOld         = "MKT.9004"
)

// Record-level codes that mean "KooGallery has this record already"
// (metering_sn duplicated, duplicate record): delivered (§3).
const (
	RecordCodeSNDuplicated = "005"
	RecordCodeDuplicate    = "010"
)

// UsageOptions tune one usage push.
type UsageOptions struct {
	// NumericValue sends usage_value as a JSON number (the international
	// page's Double (12,4)) instead of a string (the mainland page's, the
	// default). The number is the decimal text as is: never a float.
	NumericValue bool
}

// RecordError is a record-level error of a usage push answer.
type RecordError struct {
	MeteringSN string
	Code       string
	Message    string
}

// Delivered reports whether the code says KooGallery has the record
// already (005, 010): such a record counts as delivered.
func (e RecordError) Delivered() bool {
	return e.Code == RecordCodeSNDuplicated || e.Code == RecordCodeDuplicate
}

// UsageAnswer is KooGallery's answer to a usage push.
type UsageAnswer struct {
	// Host is the host that answered.
	Host       string
	HTTPStatus int
	// Code and Message are error_code and error_msg.
	Code    string
	Message string
	// Records are the record-level errors found in the answer.
	Records []RecordError
	// Raw is the answer's body.
	Raw []byte
}

// usageItem is one element of usage_records; the members are declared in
// ascending name order, so the body is serialised sorted at every level
// (auth.md §7).
type usageItem struct {
	BeginTime         string `json:"begin_time"`
	EndTime           string `json:"end_time"`
	InstanceID        string `json:"instance_id"`
	MeteringSN        string `json:"metering_sn"`
	RecordTime        string `json:"record_time"`
	RelatePkgInstance string `json:"relate_pkg_instance,omitempty"`
	UsageValue        any    `json:"usage_value"`
}

// UsageBody returns the exact body of a usage push of recs: members sorted
// at every level, usage_value a string (or, with numeric, a JSON number
// written as the decimal text). It is what is signed and sent.
func UsageBody(recs []usage.Record, numeric bool) ([]byte, error) {
	items := make([]usageItem, len(recs))
	for i, r := range recs {
		var v any = r.UsageValue
		if numeric {
			v = json.Number(r.UsageValue)
		}
		items[i] = usageItem{BeginTime: usage.FormatTime(r.BeginTime), EndTime: usage.FormatTime(r.EndTime),
			InstanceID: r.InstanceID, MeteringSN: r.MeteringSN, RecordTime: usage.FormatTime(r.RecordTime),
			RelatePkgInstance: r.RelatePkgInstance, UsageValue: v}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		UsageRecords []usageItem `json:"usage_records"`
	}{items}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// PushUsage sends recs (1..MaxUsageRecords) with the new usage push
// (outgoing.md §3): POST PathUsagePush, signed with the vendor
// interconnection key (the `signature`, `ts` and `nonce` headers of
// auth.md §7, koogallery.UsagePushSignature), not with AK/SK. The hosts
// and the fallback rules are those of every API (APIUsagePush).
//
// A retry must send the same records: their metering_sn is what
// KooGallery de-duplicates on. ts and nonce are new on every call (and
// every host), the body is the same.
//
// It returns the answer whenever a host answered. The error is nil only
// for HTTP 200 with MKT.0000 (record-level errors may still be listed in
// the answer); otherwise it is ErrInvalidRequest (nothing sent), an error
// wrapping ErrTransport, or an *APIError (see (*APIError).Temporary and
// UsageRefusesRecords).
//
// Record-level errors: their codes are published (§9.1) but not the
// answer's structure (UNCERTAIN). They are read tolerantly from any array
// of objects under one of the members failed_records, fail_records,
// error_records, failed_list, usage_records, records, result, data or
// error_detail (also nested one level), an object counting when it names a
// metering_sn (metering_sn, meteringSn, sn) and a code (error_code,
// errorCode, code, result_code); the whole answer is logged whenever it
// carries any.
func (c *Client) PushUsage(ctx context.Context, key []byte, recs []usage.Record, opt UsageOptions) (UsageAnswer, error) {
	switch {
	case len(key) == 0:
		return UsageAnswer{}, fmt.Errorf("%w: usage push: the vendor interconnection key is required", ErrInvalidRequest)
	case len(recs) == 0:
		return UsageAnswer{}, fmt.Errorf("%w: usage push: no records", ErrInvalidRequest)
	case len(recs) > MaxUsageRecords:
		return UsageAnswer{}, fmt.Errorf("%w: usage push: %d records, at most %d per push", ErrInvalidRequest, len(recs), MaxUsageRecords)
	}
	for i, r := range recs {
		if r.InstanceID == "" || r.MeteringSN == "" || r.UsageValue == "" ||
			len(r.InstanceID) > usage.MaxInstanceIDLen || len(r.MeteringSN) > usage.MaxMeteringSNLen || len(r.RelatePkgInstance) > usage.MaxPkgLen {
			return UsageAnswer{}, fmt.Errorf("%w: usage push: record %d lacks instance_id, metering_sn or usage_value, or a field is too long", ErrInvalidRequest, i)
		}
	}
	body, err := UsageBody(recs, opt.NumericValue)
	if err != nil {
		return UsageAnswer{}, fmt.Errorf("%w: usage push: %w", ErrInvalidRequest, err)
	}
	log := c.log.With("api", string(APIUsagePush), "records", len(recs))
	sign := func(req *http.Request) {
		ts := strconv.FormatInt(c.now().UnixMilli(), 10)
		nonce := uuid.NewString()
		req.Header.Set(koogallery.UsageTSHeader, ts)
		req.Header.Set(koogallery.UsageNonceHeader, nonce)
		req.Header.Set(koogallery.UsageSignatureHeader, koogallery.UsagePushSignature(key, ts, nonce, body))
	}
	a, err := c.doSigned(ctx, call{api: APIUsagePush, method: http.MethodPost, path: PathUsagePush, body: body}, sign)
	if err != nil {
		log.Warn("usage push failed", "err", err)
		return UsageAnswer{}, err
	}
	ans := UsageAnswer{Host: a.host, HTTPStatus: a.status, Raw: a.body}
	top, ok := parseObject(a.body)
	if ok {
		ans.Code = top.str("error_code", "errorCode", "resultCode")
		ans.Message = top.str("error_msg", "errorMsg", "resultMsg")
		ans.Records = recordErrors(top)
	}
	if len(ans.Records) > 0 {
		log.Warn("usage push answered record-level errors", "host", a.host, "status", a.status, "code", ans.Code,
			"failed", len(ans.Records), "raw", logged(a.body))
	}
	if a.status == http.StatusOK && ans.Code == UsageCodeSuccess {
		log.Info("usage pushed", "host", a.host, "failed", len(ans.Records))
		return ans, nil
	}
	var cause error
	if !ok {
		cause = fmt.Errorf("%w: body is not a JSON object", ErrMalformedAnswer)
	} else if a.status == http.StatusOK && ans.Code == "" {
		cause = fmt.Errorf("%w: no error_code", ErrMalformedAnswer)
	}
	ae := apiErrorOf(APIUsagePush, a, cause)
	log.Warn("usage push refused", "host", a.host, "status", a.status, "code", ans.Code, "msg", ans.Message,
		"temporary", ae.Temporary(), "raw", logged(a.body))
	return ans, ae
}

// UsageRefusesRecords reports whether err is an answer that refuses the
// pushed records themselves (MKT.0100, MKT.0101, MKT.0199, MKT.9001–
// MKT.9004, whatever the HTTP status; not MKT.0999): retrying the same records cannot help, and the records are
// to be recorded as rejected. Authentication and authorization errors
// (MKT.0102, MKT.015x, the gateway's APIGW.*) are not: they are the
// deployment's to fix, after which the same records can be pushed.
func UsageRefusesRecords(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ResultCode { // whatever the HTTP status: §9.1 documents most of them with 500
	case UsageCodeInputFailure, UsageCodeInvalidParam, UsageCodeRequestError,
		UsageCodeNoInstance, UsageCodeInvalidEntries, UsageCodeTooMany, UsageCodeTooOld:
		return true
	}
	return false
}

// recordListKeys are the members searched for record-level errors.
var recordListKeys = []string{"failed_records", "fail_records", "error_records", "failed_list", "usage_records", "records", "result", "data", "error_detail"}

// recordErrors finds the record-level errors of an answer (see PushUsage).
func recordErrors(top object) []RecordError {
	read := func(o object) []RecordError {
		var out []RecordError
		for _, k := range recordListKeys {
			for _, e := range o.objs(k) {
				sn := e.str("metering_sn", "meteringSn", "sn")
				code := e.str("error_code", "errorCode", "code", "result_code")
				if sn == "" || code == "" {
					continue
				}
				out = append(out, RecordError{MeteringSN: sn, Code: code, Message: e.str("error_msg", "errorMsg", "message", "msg", "result_msg")})
			}
			if len(out) > 0 {
				return out
			}
		}
		return nil
	}
	if out := read(top); len(out) > 0 {
		return out
	}
	for _, k := range recordListKeys {
		if nested := top.obj(k); nested != nil {
			if out := read(nested); len(out) > 0 {
				return out
			}
		}
	}
	return nil
}

// doSigned is do for an API not signed with AK/SK: sign sets the
// request's authentication headers, per attempt.
func (c *Client) doSigned(ctx context.Context, cl call, sign func(*http.Request)) (answer, error) {
	hosts, err := c.cfg.hosts(cl.api)
	if err != nil {
		return answer{}, err
	}
	var last error
	for i, h := range hosts {
		if err := ctx.Err(); err != nil {
			if last == nil {
				return answer{}, fmt.Errorf("%w: %s: %w", ErrTransport, cl.api, err)
			}
			return answer{}, fmt.Errorf("%w: %s: %w (after: %v)", ErrTransport, cl.api, err, last)
		}
		log := c.log.With("api", string(cl.api), "host", h.Host, "attempt", i+1, "hosts", len(hosts))
		start := time.Now()
		a, err := c.attemptSigned(ctx, h, cl, sign)
		if err != nil {
			last = fmt.Errorf("%w: %s on %s: %w", ErrTransport, cl.api, h.Host, err)
			log.Warn("open API host failed", "err", err, "elapsed", time.Since(start), "next", i+1 < len(hosts))
			continue
		}
		switch a.status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			ae := apiErrorOf(cl.api, a, nil)
			last = ae
			log.Warn("open API host unavailable", "status", a.status, "resultCode", ae.ResultCode,
				"resultMsg", ae.ResultMsg, "raw", logged(a.body), "elapsed", time.Since(start), "next", i+1 < len(hosts))
			continue
		}
		log.Debug("open API answered", "status", a.status, "elapsed", time.Since(start))
		return a, nil
	}
	return answer{}, last
}

func (c *Client) attemptSigned(ctx context.Context, host *url.URL, cl call, sign func(*http.Request)) (answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := url.URL{Scheme: host.Scheme, Host: host.Host, Path: cl.path}
	req, err := http.NewRequestWithContext(actx, cl.method, u.String(), bytes.NewReader(cl.body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	sign(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return answer{host: host.Host, status: resp.StatusCode, body: body}, nil
}

// NewForUsage builds a client for the usage push alone, which is signed
// with the vendor interconnection key and needs no AK/SK: cfg's AK and SK
// may be empty (the client's AK/SK-signed calls then fail authentication).
func NewForUsage(cfg Config, log *slog.Logger, opts ...Option) (*Client, error) {
	if strings.TrimSpace(cfg.AK) == "" && strings.TrimSpace(cfg.SK) == "" {
		cfg.AK, cfg.SK = "-", "-"
	}
	return New(cfg, log, opts...)
}
