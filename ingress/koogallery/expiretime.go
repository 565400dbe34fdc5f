package koogallery

import (
	"fmt"
	"strconv"
	"time"
)

// layout14 is yyyyMMddHHmmss in Go's layout notation.
const layout14 = "20060102150405"

// ParseExpireTime parses an `expireTime` (codes-and-rules.md §8): 14 digits
// yyyyMMddHHmmss or 17 digits yyyyMMddHHmmssSSS, always UTC; the last three
// digits of a 17-digit value are milliseconds.
func ParseExpireTime(s string) (time.Time, error) {
	if (len(s) != 14 && len(s) != 17) || !allDigits(s) {
		return time.Time{}, fmt.Errorf("koogallery: expireTime %q: want 14 or 17 digits (yyyyMMddHHmmss[SSS])", s)
	}
	t, err := parseDigitsTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("koogallery: expireTime %q: %w", s, err)
	}
	return t, nil
}

// FormatExpireTime writes t as a 14-digit yyyyMMddHHmmss in UTC, the
// documented expireTime format.
func FormatExpireTime(t time.Time) string {
	return t.UTC().Format(layout14)
}

// parseDigitsTime parses 14 digits yyyyMMddHHmmss optionally followed by 3
// digits of milliseconds, in UTC. The caller has checked the digits.
func parseDigitsTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(layout14, s[:14], time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	if len(s) > 14 {
		ms, err := strconv.Atoi(s[14:])
		if err != nil {
			return time.Time{}, err
		}
		t = t.Add(time.Duration(ms) * time.Millisecond)
	}
	return t, nil
}
