// Package usage is the usage aggregate of pay-per-use and on-demand-package
// instances: the records the vendor reports, each pushed once to
// KooGallery's usage push (spec/outgoing.md §3) with a stable metering_sn,
// and the outcome KooGallery gave it. It is pure: Parse validates a reported
// record against an injected "now", Decide and Evolve fold the events.
//
// # One aggregate per instance
//
// The aggregate is the usage of one instance: every record of the instance
// lives in one stream, and each append carries the stream's expected
// sequence. Two concurrent reports of the same record (the same recordKey,
// hence the same metering_sn) cannot both append: the loser reloads, finds
// the metering_sn recorded and answers "duplicate" (or "conflict" when the
// content differs). One aggregate per record would make that check as
// cheap, but the pusher needs the instance's pending records together to
// form batches (≤ 1000 per push), and per-instance order is what the
// effects runner gives; one stream per instance serves both.
//
// # Streams
//
// The usage streams live in their own namespace of the event log, the
// subjects "<prefix>.usage.instance.<instanceId>" (Kind is "usage"): the
// instance aggregate's stream "<prefix>.instance.<instanceId>" refuses event
// types it does not know, and the usage events must not disturb the views
// or the other effects of instances. The effects runner of the pusher runs
// with the prefix "<prefix>.usage", where the usage streams look like
// instance streams (package projections/usagepush).
//
// # Events
//
// UsageRecorded carries the records one report added to the instance (one
// event per report and instance, not per record: a record is stored once,
// with its metering_sn, and a report of 1000 records is one append, all or
// nothing); UsagePushed the metering_sns KooGallery accepted in one push
// (batch id); UsageRejected the record-level errors (code and message), of
// KooGallery or of Gallerist's own last check before a push (Local).
package usage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is the namespace token of the usage streams in the event log
// ("<prefix>.usage.instance.<instanceId>").
const Kind = "usage"

// Field lengths of the usage push (outgoing.md §3).
const (
	MaxInstanceIDLen = 64
	MaxMeteringSNLen = 64
	MaxPkgLen        = 64
	// MaxValueLen is the mainland page's String 20.
	MaxValueLen = 20
	// MaxValueDecimals: "at most 4 decimals".
	MaxValueDecimals = 4
	// MaxRecordKeyLen bounds the vendor's record key (Gallerist's own).
	MaxRecordKeyLen = 128
	// MaxBatch is the most records one push may carry.
	MaxBatch = 1000
)

// WireTimeLayout is the usage push's time format, UTC (codes-and-rules.md
// §8): yyyyMMdd'T'HHmmss'Z', e.g. 20220809T091000Z.
const WireTimeLayout = "20060102T150405Z"

// Billing is how the usage is billed, which sets its reporting deadline
// (outgoing.md §3 "Reporting timing").
type Billing string

// The billings.
const (
	// BillingHourly: reported in real time, at the latest 2 hours after
	// the interval's end. An interval of at most one hour.
	BillingHourly Billing = "hourly"
	// BillingDaily: a daily aggregate, sent by 01:00 of the next day. An
	// interval within one day.
	BillingDaily Billing = "daily"
)

// Record is one usage record as stored and pushed. MeteringSN is derived
// from InstanceID and RecordKey ([MeteringSN]); UsageValue is the canonical
// decimal text of the value (never a float).
type Record struct {
	InstanceID string `json:"instanceId"`
	// RecordKey is the vendor's own key of the record (e.g. its meter
	// reading's id): reporting the same key again is idempotent.
	RecordKey  string    `json:"recordKey"`
	MeteringSN string    `json:"meteringSn"`
	RecordTime time.Time `json:"recordTime"`
	BeginTime  time.Time `json:"beginTime"`
	EndTime    time.Time `json:"endTime"`
	UsageValue string    `json:"usageValue"`
	// RelatePkgInstance is the package instance drawn down (mandatory for
	// use-until-exhausted packages; KooGallery checks that).
	RelatePkgInstance string  `json:"relatePkgInstance,omitempty"`
	Billing           Billing `json:"billing"`
}

// sameContent reports whether a and b report the same usage.
func sameContent(a, b Record) bool {
	return a.InstanceID == b.InstanceID && a.RecordKey == b.RecordKey && a.MeteringSN == b.MeteringSN &&
		a.RecordTime.Equal(b.RecordTime) && a.BeginTime.Equal(b.BeginTime) && a.EndTime.Equal(b.EndTime) &&
		a.UsageValue == b.UsageValue && a.RelatePkgInstance == b.RelatePkgInstance && a.Billing == b.Billing
}

// MeteringSN derives the record's metering_sn from the instance and the
// vendor's record key: 32 lower-case hex digits of SHA-256 over a
// versioned, unambiguous encoding. The same key always gives the same
// metering_sn, so a re-report (or a retried push) is de-duplicated, here
// and by KooGallery.
func MeteringSN(instanceID, recordKey string) string {
	h := sha256.New()
	fmt.Fprintf(h, "gallerist-usage-v1\x00%d:%s\x00%d:%s", len(instanceID), instanceID, len(recordKey), recordKey)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Input is a record as the vendor reports it: text, before validation.
// Times are the usage push's yyyyMMdd'T'HHmmss'Z' or RFC 3339, whole
// seconds; UsageValue is decimal text.
type Input struct {
	InstanceID        string
	RecordKey         string
	RecordTime        string
	BeginTime         string
	EndTime           string
	UsageValue        string
	RelatePkgInstance string
	// Billing is "hourly", "daily" or empty (inferred: an interval of at
	// most one hour is hourly, a longer one daily).
	Billing string
}

// Field names of Input in errors (the query API's JSON names).
const (
	FieldInstanceID        = "instanceId"
	FieldRecordKey         = "recordKey"
	FieldRecordTime        = "recordTime"
	FieldBeginTime         = "beginTime"
	FieldEndTime           = "endTime"
	FieldUsageValue        = "usageValue"
	FieldRelatePkgInstance = "relatePkgInstance"
	FieldBilling           = "billing"
)

// FieldError is a validation error naming the field at fault.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Rules are the time rules of outgoing.md §3. The zero value is not
// usable; start from DefaultRules.
type Rules struct {
	// MaxAge: a record whose beginTime is older is refused (KooGallery
	// answers MKT.9004 beyond 21 days).
	MaxAge time.Duration
	// HourlyDeadline: hourly usage is reported at the latest this long
	// after the interval's end.
	HourlyDeadline time.Duration
	// DailyDeadline: a daily aggregate is reported at the latest this long
	// after the end of its day (01:00 of the next day).
	DailyDeadline time.Duration
	// Location is where days begin for daily usage. KooGallery does not say
	// (UNCERTAIN); the default is UTC, like every time on the wire.
	Location *time.Location
	// ClockSkew is how far in the future an interval's end or a record
	// time may be (the vendor's clock against ours).
	ClockSkew time.Duration
	// AllowLate accepts records past their reporting deadline (KooGallery
	// still takes them within 21 days; the deduction slips by a day). By
	// default they are refused, so the vendor learns of the delay.
	AllowLate bool
}

// DefaultRules returns the documented rules: 21 days, 2 hours, 01:00 of the
// next day (UTC), 5 minutes of skew, late records refused.
func DefaultRules() Rules {
	return Rules{MaxAge: 21 * 24 * time.Hour, HourlyDeadline: 2 * time.Hour, DailyDeadline: time.Hour,
		Location: time.UTC, ClockSkew: 5 * time.Minute}
}

// Deadline is the last moment r may be reported under rules.
func (rules Rules) Deadline(r Record) time.Time {
	if r.Billing == BillingDaily {
		return dayStart(r.BeginTime, rules.loc()).AddDate(0, 0, 1).Add(rules.DailyDeadline)
	}
	return r.EndTime.Add(rules.HourlyDeadline)
}

// TooOld reports whether r's beginTime is beyond MaxAge at now (KooGallery
// would refuse it with MKT.9004).
func (rules Rules) TooOld(r Record, now time.Time) bool {
	return r.BeginTime.Before(now.Add(-rules.MaxAge))
}

func (rules Rules) loc() *time.Location {
	if rules.Location == nil {
		return time.UTC
	}
	return rules.Location
}

func dayStart(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

// Parse validates a reported record at now and returns it with its
// metering_sn. Errors name the field.
func Parse(in Input, rules Rules, now time.Time) (Record, *FieldError) {
	var r Record
	if err := checkText(FieldInstanceID, in.InstanceID, MaxInstanceIDLen, true); err != nil {
		return r, err
	}
	if err := checkText(FieldRecordKey, in.RecordKey, MaxRecordKeyLen, true); err != nil {
		return r, err
	}
	v, err := CanonicalValue(in.UsageValue)
	if err != nil {
		return r, err
	}
	if err := checkText(FieldRelatePkgInstance, in.RelatePkgInstance, MaxPkgLen, false); err != nil {
		return r, err
	}
	r = Record{InstanceID: in.InstanceID, RecordKey: in.RecordKey, UsageValue: v, RelatePkgInstance: in.RelatePkgInstance,
		MeteringSN: MeteringSN(in.InstanceID, in.RecordKey)}
	for _, f := range []struct {
		name string
		text string
		dst  *time.Time
	}{{FieldRecordTime, in.RecordTime, &r.RecordTime}, {FieldBeginTime, in.BeginTime, &r.BeginTime}, {FieldEndTime, in.EndTime, &r.EndTime}} {
		t, err := ParseTime(f.name, f.text)
		if err != nil {
			return r, err
		}
		*f.dst = t
	}
	if !r.EndTime.After(r.BeginTime) {
		return r, fieldErr(FieldEndTime, "must be after beginTime (%s)", FormatTime(r.BeginTime))
	}
	if r.EndTime.After(now.Add(rules.ClockSkew)) {
		return r, fieldErr(FieldEndTime, "is in the future (now is %s): report usage once its interval has ended", FormatTime(now))
	}
	if r.RecordTime.After(now.Add(rules.ClockSkew)) {
		return r, fieldErr(FieldRecordTime, "is in the future (now is %s)", FormatTime(now))
	}
	switch b := Billing(in.Billing); b {
	case "":
		r.Billing = BillingHourly
		if r.EndTime.Sub(r.BeginTime) > time.Hour {
			r.Billing = BillingDaily
		}
	case BillingHourly, BillingDaily:
		r.Billing = b
	default:
		return r, fieldErr(FieldBilling, "must be hourly or daily (or omitted: inferred from the interval)")
	}
	switch r.Billing {
	case BillingHourly:
		if r.EndTime.Sub(r.BeginTime) > time.Hour {
			return r, fieldErr(FieldEndTime, "an hourly record covers at most one hour (beginTime %s)", FormatTime(r.BeginTime))
		}
	case BillingDaily:
		if day := dayStart(r.BeginTime, rules.loc()); r.EndTime.After(day.AddDate(0, 0, 1)) {
			return r, fieldErr(FieldEndTime, "a daily record lies within one day (%s)", day.Format(time.DateOnly))
		}
	}
	if rules.TooOld(r, now) {
		return r, fieldErr(FieldBeginTime, "is more than %s before now (%s): KooGallery refuses such records (MKT.9004)",
			days(rules.MaxAge), FormatTime(now))
	}
	if d := rules.Deadline(r); !rules.AllowLate && now.After(d) {
		what := fmt.Sprintf("%s after endTime", rules.HourlyDeadline)
		if r.Billing == BillingDaily {
			what = fmt.Sprintf("%s after the end of its day", rules.DailyDeadline)
		}
		return r, fieldErr(FieldEndTime, "the reporting deadline of %s usage (%s) was %s; now is %s",
			r.Billing, what, FormatTime(d), FormatTime(now))
	}
	return r, nil
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// checkText checks a text field: required or not, at most max bytes, no
// control characters, valid UTF-8, no surrounding spaces.
func checkText(field, s string, max int, required bool) *FieldError {
	switch {
	case s == "" && required:
		return fieldErr(field, "is required")
	case len(s) > max:
		return fieldErr(field, "is longer than %d bytes", max)
	case !utf8.ValidString(s):
		return fieldErr(field, "is not valid UTF-8")
	case strings.TrimSpace(s) != s:
		return fieldErr(field, "has leading or trailing spaces")
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fieldErr(field, "contains a control character")
		}
	}
	return nil
}

// ParseTime reads a time of field: the usage push's yyyyMMdd'T'HHmmss'Z'
// (UTC) or RFC 3339 with an offset, in whole seconds.
func ParseTime(field, s string) (time.Time, *FieldError) {
	if s == "" {
		return time.Time{}, fieldErr(field, "is required")
	}
	t, err := time.Parse(WireTimeLayout, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, fieldErr(field, "must be yyyyMMddTHHmmssZ (e.g. 20220809T091000Z) or RFC 3339")
		}
	}
	if t.Nanosecond() != 0 {
		return time.Time{}, fieldErr(field, "must be whole seconds (the usage push has no fractions)")
	}
	if t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, fieldErr(field, "is out of range")
	}
	return t.UTC(), nil
}

// FormatTime writes t in the usage push's format (UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(WireTimeLayout) }

// CanonicalValue checks a usage value and returns its canonical text: a
// positive decimal with at most 4 decimals, digits and at most one '.', no
// sign, exponent or spaces; leading zeros and trailing fractional zeros are
// dropped ("007.50" → "7.5"), so equal values have equal text. The value
// stays text from the vendor to KooGallery: never a float.
func CanonicalValue(s string) (string, *FieldError) {
	if s == "" {
		return "", fieldErr(FieldUsageValue, "is required")
	}
	if len(s) > 64 {
		return "", fieldErr(FieldUsageValue, "is too long")
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if hasDot && frac == "" || intPart == "" {
		return "", fieldErr(FieldUsageValue, "must be a decimal number like 99 or 0.25")
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", fieldErr(FieldUsageValue, "must be a plain positive decimal (digits and one '.', no sign or exponent)")
			}
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > MaxValueDecimals {
		return "", fieldErr(FieldUsageValue, "has more than %d decimals", MaxValueDecimals)
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if strings.Trim(out, "0.") == "" {
		return "", fieldErr(FieldUsageValue, "must be greater than 0")
	}
	if len(out) > MaxValueLen {
		return "", fieldErr(FieldUsageValue, "is longer than %d characters", MaxValueLen)
	}
	return out, nil
}
