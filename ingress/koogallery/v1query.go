package koogallery

import "net/url"

// ParsePercentQuery decodes a raw query string with percent-decoding only:
// a raw '+' stays '+' (the second pass of auth.md §3.2, the one
// VerifyAuthTokenQuery reports as DecodingPercent). Names and values are
// split on '&' and '='; a pair that does not decode is skipped and the
// first such error is returned with the rest of the values.
func ParsePercentQuery(rawQuery string) (url.Values, error) {
	return parsePercentQuery(rawQuery)
}
