package licenses

// The outgoing License B calls (outgoing.md §6–§8) made on behalf of the
// vendor's software, so that the software never holds the AK/SK: activate
// a code once, query it (the daily heartbeat) and report software usage.
// KooGallery's verdicts are recorded on the code's aggregate as facts
// (RecordActivation, RecordQuery, RecordUsage); calls that got no verdict
// (transport failures, 5xx, internal errors) record nothing and are
// answered as temporary.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/projections/openapi"
)

// KooGallery is the License B side of KooGallery's open API, AK/SK signed;
// *openapi.Client implements it.
type KooGallery interface {
	ActivateLicense(ctx context.Context, license string, realEffectTime time.Time) (openapi.LicenseActivation, error)
	QueryLicense(ctx context.Context, license string, hb *openapi.HeartbeatInfo) (openapi.LicenseInfo, error)
	ReportSoftwareUsage(ctx context.Context, usage []openapi.SoftwareUsage) (openapi.SoftwareUsageResult, error)
}

var _ KooGallery = (*openapi.Client)(nil)

// Errors of the outgoing calls besides *Refusal and licensecode.ErrInvalid.
var (
	// ErrNoKooGallery: the service has no open-API client (AK/SK not
	// configured); nothing was called.
	ErrNoKooGallery = errors.New("licenses: KooGallery's open API is not configured (AK/SK)")
	// ErrTemporary: the call got no verdict (no host answered, HTTP 5xx or
	// 429, internal error 92020001, an unreadable answer); nothing was
	// recorded and trying again later can help.
	ErrTemporary = errors.New("licenses: KooGallery is temporarily unavailable")
	// ErrKooGallery: KooGallery answered something that is no verdict on
	// the code (authentication failed, an unexpected answer, a request it
	// could not read); nothing was recorded. A configuration or protocol
	// problem, logged.
	ErrKooGallery = errors.New("licenses: KooGallery answered unexpectedly")
)

// Refusal is KooGallery's verdict refusing an outgoing call (outgoing.md
// §9.2): 92020002 invalid param, 92020003 illegal state (e.g. activated
// already), 92020004 not received yet, 92020005 no such code, 92020011 not
// activated, 92020020 invalid code in a batch, or the gateway's 95000001
// (a parameter's pattern or length).
type Refusal struct {
	// API is the call refused: activate, heartbeat or usage.
	API string
	// Code and Message are KooGallery's error_code and error_msg.
	Code    string
	Message string
	// HTTPStatus is the answer's status (200 for the 9202… codes).
	HTTPStatus int
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("licenses: KooGallery refused %s: %s %s", r.API, r.Code, r.Message)
}

// Conflict reports whether the refusal is about the code's state at
// KooGallery (92020003, 92020004, 92020011) rather than about the request
// or the code itself.
func (r *Refusal) Conflict() bool {
	switch r.Code {
	case openapi.CodeLicenseIllegalState, openapi.CodeLicenseNotReceived, openapi.CodeLicenseNotActivated:
		return true
	}
	return false
}

// provesCode reports whether a verdict shows that KooGallery knows the
// code: success, or a refusal about its state. Such a verdict registers a
// code Gallerist does not know yet, so that KooGallery's later refresh,
// status and release calls find it; other refusals are recorded only on a
// code already known.
func provesCode(code string) bool {
	switch code {
	case licensecode.APISuccess, openapi.CodeLicenseIllegalState, openapi.CodeLicenseNotReceived, openapi.CodeLicenseNotActivated:
		return true
	}
	return false
}

// classify turns an open-API error into ErrTemporary, a *Refusal,
// licensecode.ErrInvalid or ErrKooGallery.
func classify(api string, err error) error {
	var ae *openapi.APIError
	switch {
	case errors.Is(err, openapi.ErrInvalidRequest):
		return fmt.Errorf("%w: %w", licensecode.ErrInvalid, err)
	case openapi.IsTemporary(err):
		return fmt.Errorf("%w: %w", ErrTemporary, err)
	case errors.As(err, &ae) && ae.Err == nil && isRefusalCode(ae.ResultCode) &&
		ae.HTTPStatus != http.StatusUnauthorized && ae.HTTPStatus != http.StatusForbidden:
		return &Refusal{API: api, Code: ae.ResultCode, Message: ae.ResultMsg, HTTPStatus: ae.HTTPStatus}
	}
	return fmt.Errorf("%w: %w", ErrKooGallery, err)
}

func isRefusalCode(code string) bool {
	if code == openapi.CodeReqParamInvalid {
		return true
	}
	return strings.HasPrefix(code, "9202") && code != openapi.CodeLicenseSuccess && code != openapi.CodeLicenseInternal
}

// Activation sources: where an Activate's answer comes from.
const (
	// SourceKooGallery: KooGallery activated the code on this call.
	SourceKooGallery = "koogallery"
	// SourceRecorded: the activation was recorded before; KooGallery was
	// not called again (an activation cannot be repeated).
	SourceRecorded = "recorded"
	// SourceQuery: KooGallery answered 92020003 (illegal state) and a
	// query showed the code activated (e.g. an activation whose answer was
	// lost); the query is recorded and confirms the activation.
	SourceQuery = "query"
)

// ActivateRequest is what the vendor's software adds to an activation.
type ActivateRequest struct {
	// RealEffectTime is real_effect_time (outgoing.md §6), the actual
	// delivery time, not before the order time; zero leaves it out.
	RealEffectTime time.Time
	// Reference is the vendor's note on the code, kept when the activation
	// registers it.
	Reference string
}

// Outcome is a code after an outgoing call.
type Outcome struct {
	State licensecode.State
	// Source says where an activation's answer comes from (Source…);
	// empty for other calls.
	Source string
}

// HeartbeatRequest is the optional heartbeatInfo of a query (outgoing.md
// §7, being retired in favour of usage statistics). Zero sends none.
type HeartbeatRequest struct {
	ThirdPartyAccount string
	IP                string
}

// UsageItem is one code of a software usage report (outgoing.md §8): 1 to
// licensecode.MaxUsageEntries entries, each with exactly one of ID and
// ActiveNum.
type UsageItem struct {
	Code    string
	Entries []licensecode.UsageEntry
}

// Limits of a usage report (outgoing.md §8).
const (
	MaxUsageCodes = 100
	MaxUsageIDLen = 256
	MaxActiveNum  = 999999999
	// MaxThirdPartyAccount and MaxHeartbeatIP bound heartbeatInfo (§7).
	MaxThirdPartyAccount = 256
	MaxHeartbeatIP       = 32
)

// UsageResult is KooGallery's answer to a usage report, per code.
type UsageResult struct {
	// Code and Message are the batch's error_code and error_msg: 92020000,
	// or 92020020 when some codes were refused.
	Code    string
	Message string
	Items   []UsageItemResult
}

// UsageItemResult is the verdict on one code of a report.
type UsageItemResult struct {
	Code string
	// Accepted: KooGallery took the code's usage.
	Accepted bool
	// ErrorCode is the code's verdict: 92020000 when accepted, else the
	// batch's code.
	ErrorCode string
	// Recorded: the verdict was recorded on the code (false for a refused
	// code Gallerist does not know).
	Recorded bool
}

// UsageError is an invalid usage report; it wraps licensecode.ErrInvalid.
// Item and Entry are -1 when the error is not about one.
type UsageError struct {
	Item, Entry int
	// Field is "license", "entries", "id" or "activeNum"; "" for the item
	// (or the report) as a whole.
	Field string
	Msg   string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%v: usage item %d entry %d %s: %s", licensecode.ErrInvalid, e.Item, e.Entry, e.Field, e.Msg)
}

// Unwrap makes a UsageError a licensecode.ErrInvalid.
func (e *UsageError) Unwrap() error { return licensecode.ErrInvalid }

// CheckUsage validates a usage report as KooGallery documents it: 1 to 100
// distinct codes, each with 1 to 100 entries setting exactly one of an id
// (at most 256 characters) and an active count (0 to 999999999).
func CheckUsage(items []UsageItem) *UsageError {
	if n := len(items); n == 0 || n > MaxUsageCodes {
		return &UsageError{Item: -1, Entry: -1, Msg: fmt.Sprintf("a report carries 1 to %d codes, not %d", MaxUsageCodes, n)}
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if _, err := licensecode.ParseCode(it.Code); err != nil {
			return &UsageError{Item: i, Entry: -1, Field: "license", Msg: strings.TrimPrefix(err.Error(), licensecode.ErrInvalid.Error()+": ")}
		}
		if seen[it.Code] {
			return &UsageError{Item: i, Entry: -1, Field: "license", Msg: "the code appears twice in the report"}
		}
		seen[it.Code] = true
		if n := len(it.Entries); n == 0 || n > licensecode.MaxUsageEntries {
			return &UsageError{Item: i, Entry: -1, Field: "entries", Msg: fmt.Sprintf("1 to %d entries, not %d", licensecode.MaxUsageEntries, n)}
		}
		for j, e := range it.Entries {
			switch {
			case (e.ID == "") == (e.ActiveNum == nil):
				return &UsageError{Item: i, Entry: j, Msg: "set exactly one of id and activeNum"}
			case !utf8.ValidString(e.ID) || utf8.RuneCountInString(e.ID) > MaxUsageIDLen:
				return &UsageError{Item: i, Entry: j, Field: "id", Msg: fmt.Sprintf("at most %d characters of UTF-8", MaxUsageIDLen)}
			case e.ActiveNum != nil && (*e.ActiveNum < 0 || *e.ActiveNum > MaxActiveNum):
				return &UsageError{Item: i, Entry: j, Field: "activeNum", Msg: fmt.Sprintf("0 to %d", MaxActiveNum)}
			}
		}
	}
	return nil
}

// codeLocks serialises the activations of one code in this process, so
// that concurrent duplicates wait for the first and answer its record
// instead of calling KooGallery again (which would answer 92020003).
type codeLocks struct {
	mu sync.Mutex
	m  map[string]*codeLock
}

type codeLock struct {
	sem  chan struct{}
	refs int
}

func (k *codeLocks) lock(ctx context.Context, code string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*codeLock{}
	}
	l := k.m[code]
	if l == nil {
		l = &codeLock{sem: make(chan struct{}, 1)}
		k.m[code] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, code)
		}
		k.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("licenses: waiting for the activation of %s: %w", code, ctx.Err())
	}
}

func (s *Service) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

// answerTime is the time of a verdict: now, but after prev (the last
// verdict recorded), since the aggregate takes a verdict not newer than the
// last for a redelivery.
func (s *Service) answerTime(prev time.Time) time.Time {
	at := s.now()
	if !at.After(prev) {
		at = prev.Add(time.Nanosecond)
	}
	return at
}

func (s *Service) kooGallery() (KooGallery, error) {
	if s.cfg.KooGallery == nil {
		return nil, ErrNoKooGallery
	}
	return s.cfg.KooGallery, nil
}

// CodeAt returns authorization code code and the stream sequence it
// reflects; one never seen is licensecode.ErrNotFound.
func (s *Service) CodeAt(ctx context.Context, code string) (licensecode.State, uint64, error) {
	if _, err := licensecode.ParseCode(code); err != nil {
		return licensecode.State{}, 0, err
	}
	st, seq, err := s.codes.Get(ctx, code, true)
	if err == nil && !st.Status.Exists() {
		err = licensecode.ErrNotFound
	}
	return st, seq, err
}

// record runs cmd on code, registering the code first when Gallerist does
// not know it and the verdict proves it (provesCode). It returns false,
// and records nothing, for an unknown code the verdict does not prove.
func (s *Service) record(ctx context.Context, st licensecode.State, code, reference string, proven bool, cmd licensecode.Command, cause event.Causation) (licensecode.State, bool, error) {
	if !st.Status.Exists() {
		if !proven {
			return st, false, nil
		}
		if _, _, err := s.codes.Execute(ctx, code, licensecode.Register{Code: code, Reference: reference}, cause); err != nil {
			return st, false, fmt.Errorf("licenses: register %s: %w", code, err)
		}
	}
	out, _, err := s.codes.Execute(ctx, code, cmd, cause)
	if err != nil {
		return out, false, fmt.Errorf("licenses: record %s on %s: %w", licensecode.Name(cmd), code, err)
	}
	return out, true, nil
}

// Activate activates code at KooGallery once (outgoing.md §6) and records
// the verdict. A code whose activation is recorded is answered from the
// record without calling KooGallery (SourceRecorded). A successful
// activation of a code Gallerist does not know registers it first
// (req.Reference), so that KooGallery's later calls find it.
//
// Errors: licensecode.ErrInvalid for a malformed code; *Refusal for
// KooGallery's refusal (recorded as ActivationFailed when the code is known
// or the refusal proves it); ErrTemporary (nothing recorded);
// ErrNoKooGallery; ErrKooGallery.
func (s *Service) Activate(ctx context.Context, code string, req ActivateRequest, cause event.Causation) (Outcome, error) {
	if _, err := licensecode.ParseCode(code); err != nil {
		return Outcome{}, err
	}
	kg, err := s.kooGallery()
	if err != nil {
		return Outcome{}, err
	}
	unlock, err := s.activating.lock(ctx, code)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	st, _, err := s.codes.Get(ctx, code, true)
	if err != nil {
		return Outcome{}, err
	}
	if st.Activation == licensecode.ActivationConfirmed {
		return Outcome{State: st, Source: SourceRecorded}, nil
	}
	act, callErr := kg.ActivateLicense(ctx, code, req.RealEffectTime)
	at := s.answerTime(st.LastActivationAt)
	if callErr == nil {
		cmd := licensecode.RecordActivation{Answer: licensecode.Answer{At: at, ErrorCode: act.ResultCode, ErrorMessage: act.ResultMsg},
			EffectTime: req.RealEffectTime}
		if i := act.Info; i != nil {
			cmd.Info = &licensecode.CodeInfo{Status: licensecode.RemoteStatus(i.Status), ExpireTime: i.ExpireTime,
				ProductID: i.ProductID, OrderID: i.OrderID, Amount: max(i.Amount, 0)}
		}
		out, _, err := s.record(ctx, st, code, req.Reference, true, cmd, cause)
		if err != nil {
			// KooGallery activated the code: the next Activate gets 92020003
			// and recovers the activation with a query.
			s.log.Error("KooGallery activated a code but recording it failed", "license", code, "err", err)
			return Outcome{}, err
		}
		s.log.Info("license code activated", "license", code)
		return Outcome{State: out, Source: SourceKooGallery}, nil
	}
	err = classify("activate", callErr)
	var ref *Refusal
	if !errors.As(err, &ref) {
		return Outcome{}, err
	}
	cmd := licensecode.RecordActivation{Answer: licensecode.Answer{At: at, ErrorCode: ref.Code, ErrorMessage: ref.Message}}
	st, _, rerr := s.record(ctx, st, code, req.Reference, provesCode(ref.Code), cmd, cause)
	if rerr != nil {
		return Outcome{}, rerr
	}
	s.log.Info("license code activation refused", "license", code, "error_code", ref.Code, "error_msg", ref.Message)
	if ref.Code == openapi.CodeLicenseIllegalState {
		if out, ok := s.recoverActivation(ctx, kg, st, code, cause); ok {
			return out, nil
		}
	}
	return Outcome{}, ref
}

// recoverActivation queries a code KooGallery refused to activate for its
// state (92020003): when the query reports an activation time, the
// activation happened (on an earlier call whose answer was lost, or by
// other means) and the recorded query confirms it.
func (s *Service) recoverActivation(ctx context.Context, kg KooGallery, st licensecode.State, code string, cause event.Causation) (Outcome, bool) {
	info, err := kg.QueryLicense(ctx, code, nil)
	if err != nil || info.ActivateTime.IsZero() {
		return Outcome{}, false
	}
	out, ok, err := s.recordQuery(ctx, st, code, info, cause)
	if err != nil || !ok || out.Activation != licensecode.ActivationConfirmed {
		return Outcome{}, false
	}
	s.log.Info("license code activation confirmed by a query", "license", code, "status", info.Status)
	return Outcome{State: out, Source: SourceQuery}, true
}

func (s *Service) recordQuery(ctx context.Context, st licensecode.State, code string, info openapi.LicenseInfo, cause event.Causation) (licensecode.State, bool, error) {
	var prev time.Time
	if st.Query != nil {
		prev = st.Query.Answer.At
	}
	cmd := licensecode.RecordQuery{
		Answer: licensecode.Answer{At: s.answerTime(prev), ErrorCode: licensecode.APISuccess},
		Info:   &licensecode.QueryInfo{Status: licensecode.RemoteStatus(info.Status), ActivateTime: info.ActivateTime, ExpireTime: info.ExpireTime},
	}
	return s.record(ctx, st, code, "", true, cmd, cause)
}

// Heartbeat queries code at KooGallery (outgoing.md §7, the daily
// heartbeat) and records the verdict; a success on a code Gallerist does
// not know registers it. The recorded query (State.Query) holds the
// status (ALIVE, EXPIRED, RELEASED) and expiry KooGallery reported, which
// decide whether the software may be used.
//
// Errors: as Activate (92020011 for a code never activated).
func (s *Service) Heartbeat(ctx context.Context, code string, req HeartbeatRequest, cause event.Causation) (Outcome, error) {
	if _, err := licensecode.ParseCode(code); err != nil {
		return Outcome{}, err
	}
	var hb *openapi.HeartbeatInfo
	if req != (HeartbeatRequest{}) {
		if req.ThirdPartyAccount == "" || utf8.RuneCountInString(req.ThirdPartyAccount) > MaxThirdPartyAccount || len(req.IP) > MaxHeartbeatIP {
			return Outcome{}, fmt.Errorf("%w: heartbeatInfo needs thirdPartyAccount (at most %d characters) and an ip of at most %d",
				licensecode.ErrInvalid, MaxThirdPartyAccount, MaxHeartbeatIP)
		}
		hb = &openapi.HeartbeatInfo{ThirdPartyAccount: req.ThirdPartyAccount, IP: req.IP}
	}
	kg, err := s.kooGallery()
	if err != nil {
		return Outcome{}, err
	}
	st, _, err := s.codes.Get(ctx, code, true)
	if err != nil {
		return Outcome{}, err
	}
	info, callErr := kg.QueryLicense(ctx, code, hb)
	if callErr == nil {
		out, _, err := s.recordQuery(ctx, st, code, info, cause)
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{State: out}, nil
	}
	err = classify("heartbeat", callErr)
	var ref *Refusal
	if !errors.As(err, &ref) {
		return Outcome{}, err
	}
	var prev time.Time
	if st.Query != nil {
		prev = st.Query.Answer.At
	}
	cmd := licensecode.RecordQuery{Answer: licensecode.Answer{At: s.answerTime(prev), ErrorCode: ref.Code, ErrorMessage: ref.Message}}
	if _, _, err := s.record(ctx, st, code, "", provesCode(ref.Code), cmd, cause); err != nil {
		return Outcome{}, err
	}
	return Outcome{}, ref
}

// ReportUsage reports the day's software usage of up to 100 codes
// (outgoing.md §8) and records the verdict on each code: accepted codes
// (registered when unknown), and refused ones Gallerist knows. A batch
// answered 92020020 (some codes invalid) is a result, not an error: the
// codes the answer lists failed, the others were accepted (when the answer
// lists none, every code is taken as refused).
//
// Errors: *UsageError (licensecode.ErrInvalid) for a malformed report;
// *Refusal for a batch refused whole (recorded on the known codes);
// ErrTemporary; ErrNoKooGallery; ErrKooGallery.
func (s *Service) ReportUsage(ctx context.Context, items []UsageItem, cause event.Causation) (UsageResult, error) {
	if uerr := CheckUsage(items); uerr != nil {
		return UsageResult{}, uerr
	}
	kg, err := s.kooGallery()
	if err != nil {
		return UsageResult{}, err
	}
	req := make([]openapi.SoftwareUsage, len(items))
	for i, it := range items {
		req[i].License = it.Code
		req[i].Entries = make([]openapi.SoftwareUsageEntry, len(it.Entries))
		for j, e := range it.Entries {
			req[i].Entries[j] = openapi.SoftwareUsageEntry{ID: e.ID, ActiveNum: e.ActiveNum}
		}
	}
	res, callErr := kg.ReportSoftwareUsage(ctx, req)
	out := UsageResult{Code: res.ResultCode, Message: res.ResultMsg, Items: make([]UsageItemResult, len(items))}
	var ref *Refusal
	if callErr != nil {
		err := classify("usage", callErr)
		if !errors.As(err, &ref) {
			return UsageResult{}, err
		}
		out.Code, out.Message = ref.Code, ref.Message
	}
	partial := ref != nil && ref.Code == openapi.CodeLicenseInvalidInBatch && len(res.CheckFailed) > 0
	failed := make(map[string]bool, len(res.CheckFailed))
	for _, c := range res.CheckFailed {
		failed[c] = true
	}
	for i, it := range items {
		r := UsageItemResult{Code: it.Code, Accepted: (ref == nil || partial) && !failed[it.Code]}
		msg := out.Message
		r.ErrorCode = out.Code
		if ref == nil && !r.Accepted {
			r.ErrorCode = openapi.CodeLicenseInvalidInBatch // listed as failing in a success answer
		}
		if r.Accepted {
			r.ErrorCode = licensecode.APISuccess
			if ref != nil {
				msg = "accepted; other codes of the batch were refused (" + ref.Code + ")"
			}
		}
		st, _, err := s.codes.Get(ctx, it.Code, true)
		if err != nil {
			return out, err
		}
		var prev time.Time
		if st.Usage != nil {
			prev = st.Usage.At
		}
		cmd := licensecode.RecordUsage{Answer: licensecode.Answer{At: s.answerTime(prev), ErrorCode: r.ErrorCode, ErrorMessage: msg}, Entries: it.Entries}
		if _, r.Recorded, err = s.record(ctx, st, it.Code, "", r.Accepted, cmd, cause); err != nil {
			return out, err
		}
		out.Items[i] = r
	}
	if ref != nil && ref.Code != openapi.CodeLicenseInvalidInBatch {
		return out, ref
	}
	return out, nil
}
