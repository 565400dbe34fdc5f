package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// PathUsagePush is the new usage push's path (outgoing.md §3), spelled out
// here rather than taken from the client package.
const PathUsagePush = "/api/mkp-openapi-public/global/v1/isv/usage-data"

// Usage push codes (outgoing.md §9.1).
const (
	UsageSuccess        = "MKT.0000"
	UsageInternal       = "MKT.0999"
	UsageInvalidParam   = "MKT.0101"
	UsageInvalidSign    = "MKT.0102"
	UsageInvalidEntries = "MKT.9002"
	UsageTooMany        = "MKT.9003"
	UsageTooOld         = "MKT.9004"
)

// Record-level codes (outgoing.md §9.1).
const (
	RecordNoInstance    = "001"
	RecordBadTime       = "002"
	RecordBadValue      = "003"
	RecordNoSN          = "004"
	RecordSNDuplicated  = "005"
	RecordDelisted      = "006"
	RecordExpired       = "007"
	RecordNotVendors    = "009"
	RecordDuplicate     = "010"
	RecordBadRange      = "011"
	RecordNotPayPerUse  = "012"
	RecordStatusInvalid = "013"
)

// UsageConfig configures the usage push stand-in.
type UsageConfig struct {
	// Key is the vendor interconnection key the pushes are signed with.
	Key []byte
	// Instances, when not nil, are the pay-per-use instances that exist:
	// records of others get record code 001.
	Instances map[string]bool
	// MaxSkew bounds |ts − now|; 0 means 15 minutes (KooGallery publishes
	// no window for the usage push: a guess, like the gateway's).
	MaxSkew time.Duration
}

// UsageRecord is one record as the stand-in received it.
type UsageRecord struct {
	InstanceID        string `json:"instance_id"`
	RecordTime        string `json:"record_time"`
	BeginTime         string `json:"begin_time"`
	EndTime           string `json:"end_time"`
	UsageValue        any    `json:"usage_value"`
	MeteringSN        string `json:"metering_sn"`
	RelatePkgInstance string `json:"relate_pkg_instance,omitempty"`
}

// UsagePush is one push as received and answered.
type UsagePush struct {
	TS, Nonce, Signature string
	// Verified: the signature matched.
	Verified bool
	Records  []UsageRecord
	// Code is the overall error_code answered; Failed the record-level
	// errors.
	Code   string
	Failed []UsageRecordError
	Status int
}

// UsageRecordError is a record-level error as answered, in the member
// failed_records of the answer (the structure is not published: a guess,
// outgoing.md §3 UNCERTAIN).
type UsageRecordError struct {
	MeteringSN string `json:"metering_sn"`
	ErrorCode  string `json:"error_code"`
	ErrorMsg   string `json:"error_msg"`
}

type usageAnswer struct {
	ErrorCode     string             `json:"error_code"`
	ErrorMsg      string             `json:"error_msg"`
	FailedRecords []UsageRecordError `json:"failed_records,omitempty"`
}

type failure struct {
	status    int
	code, msg string
}

// Usage is the stand-in of the new usage push (outgoing.md §3). KooGallery
// authenticates it with its own headers (signature, ts, nonce over the
// vendor interconnection key, auth.md §7), not with the gateway's AK/SK,
// so it is served in front of the gateway: serve Handler.
//
// It answers like KooGallery as far as published: MKT.0102 (HTTP 400) for
// a missing or wrong signature, a stale ts or a replayed nonce; MKT.9003
// for more than 1000 records; MKT.9004 when a record begins more than 21
// days ago; MKT.0101 for a body that is not a usage push; otherwise
// MKT.0000 with the record-level errors (failed_records) of records it
// refuses: 002 bad time, 003 bad value, 004 no metering_sn, 011 end not
// after begin, 001 unknown instance (with Instances), 005 a metering_sn
// already accepted, and injected ones (FailRecord). Records without an
// error are accepted.
type Usage struct {
	gw  *Server
	cfg UsageConfig

	mu       sync.Mutex
	accepted map[string]UsageRecord
	pushes   []UsagePush
	nonces   map[string]bool
	records  map[string]failure // by metering_sn: injected record-level errors
	next     []failure          // injected overall failures
}

// NewUsage builds the usage push stand-in in front of gateway gw (whose
// clock it uses, and where it records its requests too).
func NewUsage(gw *Server, cfg UsageConfig) *Usage {
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 15 * time.Minute
	}
	return &Usage{gw: gw, cfg: cfg, accepted: map[string]UsageRecord{}, nonces: map[string]bool{}, records: map[string]failure{}}
}

// Handler serves POST PathUsagePush here and everything else by the
// gateway.
func (u *Usage) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathUsagePush {
			u.ServeHTTP(w, r)
			return
		}
		u.gw.ServeHTTP(w, r)
	})
}

// FailRecord makes every later push answer record code (and msg) for the
// record with metering_sn sn, until ClearRecordFailures.
func (u *Usage) FailRecord(sn, code, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.records[sn] = failure{code: code, msg: msg}
}

// ClearRecordFailures forgets the injected record-level errors.
func (u *Usage) ClearRecordFailures() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.records = map[string]failure{}
}

// FailNextPush answers the next n pushes (after the signature check) with
// HTTP status and the overall code and msg, accepting none of their
// records, e.g. 500 MKT.0999 (retried by the vendor) or 500 MKT.9001.
func (u *Usage) FailNextPush(n, status int, code, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for range n {
		u.next = append(u.next, failure{status: status, code: code, msg: msg})
	}
}

// Pushes returns every push received, oldest first.
func (u *Usage) Pushes() []UsagePush {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]UsagePush, len(u.pushes))
	copy(out, u.pushes)
	return out
}

// Accepted returns the accepted records by metering_sn.
func (u *Usage) Accepted() map[string]UsageRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]UsageRecord, len(u.accepted))
	for k, v := range u.accepted {
		out[k] = v
	}
	return out
}

var wireTime = regexp.MustCompile(`^\d{8}T\d{6}Z$`)

// usageValue matches a positive decimal with at most 4 decimals.
var usageValue = regexp.MustCompile(`^\d{1,16}(\.\d{1,4})?$`)

// ServeHTTP answers one usage push.
func (u *Usage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := u.gw.clock()
	rec := Recorded{Time: now, Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}
	sw := &statusWriter{ResponseWriter: w}
	var push UsagePush
	defer func() {
		rec.Status, push.Status = sw.status, sw.status
		u.gw.mu.Lock()
		u.gw.requests = append(u.gw.requests, rec)
		u.gw.mu.Unlock()
		u.mu.Lock()
		u.pushes = append(u.pushes, push)
		u.mu.Unlock()
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeGatewayError(sw, http.StatusRequestEntityTooLarge, "APIGW.0201", "request body unreadable or too large")
		return
	}
	rec.Body = body
	u.gw.mu.Lock()
	inject, status := u.gw.failN > 0, u.gw.failStatus
	if inject {
		u.gw.failN--
	}
	u.gw.mu.Unlock()
	if inject {
		writeGatewayError(sw, status, CodeInjected, "injected failure")
		return
	}
	if r.Method != http.MethodPost {
		writeGatewayError(sw, http.StatusNotFound, CodeAPINotFound, "The API does not exist or has not been published in the environment")
		return
	}
	answer := func(status int, code, msg string) {
		push.Code = code
		writeJSON(sw, status, usageAnswer{ErrorCode: code, ErrorMsg: msg, FailedRecords: push.Failed})
	}
	push.TS, push.Nonce = r.Header.Get(koogallery.UsageTSHeader), r.Header.Get(koogallery.UsageNonceHeader)
	push.Signature = r.Header.Get(koogallery.UsageSignatureHeader)
	if err := u.verify(push, body, now); err != nil {
		rec.AuthError = err.Error()
		answer(http.StatusBadRequest, UsageInvalidSign, "Invalid body sign: "+err.Error())
		return
	}
	push.Verified, rec.Verified = true, true

	var req struct {
		UsageRecords []UsageRecord `json:"usage_records"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil || req.UsageRecords == nil {
		answer(http.StatusBadRequest, UsageInvalidParam, "Invalid parameter: the body must be {\"usage_records\": [...]}")
		return
	}
	push.Records = req.UsageRecords
	if len(req.UsageRecords) > 1000 {
		answer(http.StatusInternalServerError, UsageTooMany, "Usage records extends size limit.")
		return
	}
	if len(req.UsageRecords) == 0 {
		answer(http.StatusInternalServerError, UsageInvalidEntries, "Invalid usage enties.")
		return
	}
	for _, x := range req.UsageRecords {
		if t, err := time.Parse("20060102T150405Z", x.BeginTime); err == nil && t.Before(now.Add(-21*24*time.Hour)) {
			answer(http.StatusInternalServerError, UsageTooOld, "Record beginTime extends limit.")
			return
		}
	}
	u.mu.Lock()
	if len(u.next) > 0 {
		f := u.next[0]
		u.next = u.next[1:]
		u.mu.Unlock()
		answer(f.status, f.code, f.msg)
		return
	}
	for _, x := range req.UsageRecords {
		if code, msg := u.check(x); code != "" {
			push.Failed = append(push.Failed, UsageRecordError{MeteringSN: x.MeteringSN, ErrorCode: code, ErrorMsg: msg})
			continue
		}
		u.accepted[x.MeteringSN] = x
	}
	u.mu.Unlock()
	answer(http.StatusOK, UsageSuccess, "success")
}

// check returns the record-level error of x, if any; u.mu is held.
func (u *Usage) check(x UsageRecord) (code, msg string) {
	if f, ok := u.records[x.MeteringSN]; ok && x.MeteringSN != "" {
		return f.code, f.msg
	}
	switch {
	case x.MeteringSN == "":
		return RecordNoSN, "record unique ID missing"
	case u.cfg.Instances != nil && !u.cfg.Instances[x.InstanceID]:
		return RecordNoInstance, "instance does not exist"
	case !wireTime.MatchString(x.RecordTime) || !wireTime.MatchString(x.BeginTime) || !wireTime.MatchString(x.EndTime):
		return RecordBadTime, "bad time format"
	case x.EndTime <= x.BeginTime:
		return RecordBadRange, "invalid record time range"
	}
	v := fmt.Sprint(x.UsageValue)
	if _, isText := x.UsageValue.(string); !isText {
		if _, isNum := x.UsageValue.(json.Number); !isNum {
			v = ""
		}
	}
	if !usageValue.MatchString(v) || stripZeros(v) == "" {
		return RecordBadValue, "bad usage value"
	}
	if _, dup := u.accepted[x.MeteringSN]; dup {
		return RecordSNDuplicated, "record unique ID duplicated"
	}
	return "", ""
}

func stripZeros(v string) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] != '0' && v[i] != '.' {
			out = append(out, v[i])
		}
	}
	return string(out)
}

// verify checks the usage push's signature headers (auth.md §7).
func (u *Usage) verify(p UsagePush, body []byte, now time.Time) error {
	if p.TS == "" || p.Nonce == "" || p.Signature == "" {
		return fmt.Errorf("the %s, %s and %s headers are required", koogallery.UsageSignatureHeader, koogallery.UsageTSHeader, koogallery.UsageNonceHeader)
	}
	ms, err := strconv.ParseInt(p.TS, 10, 64)
	if err != nil {
		return fmt.Errorf("ts %q is not Unix milliseconds", p.TS)
	}
	if d := now.Sub(time.UnixMilli(ms)); d > u.cfg.MaxSkew || d < -u.cfg.MaxSkew {
		return fmt.Errorf("ts is %s away from now", d.Round(time.Second))
	}
	if err := koogallery.VerifyUsagePush(u.cfg.Key, p.TS, p.Nonce, body, p.Signature); err != nil {
		return fmt.Errorf("signature: %s", koogallery.MessageOf(err))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.nonces[p.Nonce] {
		return fmt.Errorf("nonce %q was used before", p.Nonce)
	}
	u.nonces[p.Nonce] = true
	return nil
}
