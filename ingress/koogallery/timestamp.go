package koogallery

import (
	"strconv"
	"time"
)

// v2MillisThreshold separates the two units of the V2 timestamp: a value of
// at least 1e12 is milliseconds, a smaller one seconds (auth.md §2.4).
const v2MillisThreshold = 1_000_000_000_000

// ParseV2Timestamp parses the V2 `timestamp` query parameter (auth.md §2.4):
// one or more decimal digits and nothing else; a value ≥ 1e12 is Unix time in
// milliseconds, a smaller one Unix time in seconds. A failure is a
// CodeInvalidParam error naming "timestamp".
func ParseV2Timestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, Invalid("timestamp", "is missing")
	}
	if !allDigits(s) {
		return time.Time{}, Invalid("timestamp", "is not a decimal integer")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, Invalid("timestamp", "is out of range: %w", err)
	}
	if n >= v2MillisThreshold {
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Unix(n, 0).UTC(), nil
}

// FormatV2Timestamp writes t as a V2 `timestamp`: Unix time in milliseconds.
func FormatV2Timestamp(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// v1TimeStampLen is the length of a V1 `timeStamp`, yyyyMMddHHmmssSSS.
const v1TimeStampLen = 17

// ParseV1TimeStamp parses a V1 `timeStamp` (auth.md §3.4): exactly 17 digits
// yyyyMMddHHmmssSSS, UTC. A failure is a CodeInvalidParam error naming
// "timeStamp".
func ParseV1TimeStamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, Invalid("timeStamp", "is missing")
	}
	if len(s) != v1TimeStampLen || !allDigits(s) {
		return time.Time{}, Invalid("timeStamp", "must be 17 digits yyyyMMddHHmmssSSS")
	}
	t, err := parseDigitsTime(s)
	if err != nil {
		return time.Time{}, Invalid("timeStamp", "is not a valid time: %w", err)
	}
	return t, nil
}

// FormatV1TimeStamp writes t as a V1 `timeStamp`: 17 digits
// yyyyMMddHHmmssSSS in UTC.
func FormatV1TimeStamp(t time.Time) string {
	t = t.UTC()
	return t.Format(layout14) + pad3(t.Nanosecond()/int(time.Millisecond))
}

// allDigits reports whether s is non-empty and consists of ASCII digits only.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pad3(n int) string {
	return string([]byte{byte('0' + n/100%10), byte('0' + n/10%10), byte('0' + n%10)})
}
