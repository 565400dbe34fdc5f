package server

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// v1params are the parameters of a SaaS V1 request after authentication:
// name → first value, decoded. Field rules (mandatory, maximum length,
// type, enumeration) are checked per activity; every failure is 000002
// naming the field. An empty value counts as absent.
type v1params map[string]string

// str reads a string parameter; mandatory: absent or "" is an error.
func (p v1params) str(name string, mandatory bool, maxLen int) (string, error) {
	v := p[name]
	if v == "" {
		if mandatory {
			return "", koogallery.Invalid(name, "%s is mandatory", name)
		}
		return "", nil
	}
	if n := utf8.RuneCountInString(v); n > maxLen {
		return "", koogallery.Invalid(name, "%s is %d characters, at most %d allowed", name, n, maxLen)
	}
	return v, nil
}

// fields reads string parameters in table order; the first failing rule wins.
func (p v1params) fields(rules ...fieldRule) (map[string]string, error) {
	out := make(map[string]string, len(rules))
	for _, r := range rules {
		v, err := p.str(r.name, r.mandatory, r.maxLen)
		if err != nil {
			return nil, err
		}
		out[r.name] = v
	}
	return out, nil
}

// maxV1Digits bounds the integer parameters whose length the spec does not
// settle (amount, diskSize, bandWidth): enough for any int64 quantity.
const maxV1Digits = 18

// integer reads an optional non-negative Integer parameter of at most
// maxDigits digits; nil when absent.
func (p v1params) integer(name string, maxDigits int) (*int64, error) {
	v := p[name]
	if v == "" {
		return nil, nil
	}
	if len(v) > maxDigits || strings.TrimLeft(v, "0123456789") != "" {
		return nil, koogallery.Invalid(name, "%s must be a non-negative integer of at most %d digits", name, maxDigits)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, koogallery.Invalid(name, "%s is out of range", name)
	}
	return &n, nil
}

// flag reads an optional String(2) flag: "1" is set; absent, "" or "0" is
// not; anything else is 000002 (trialFlag, trialToFormal).
func (p v1params) flag(name string) (bool, error) {
	switch p[name] {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, koogallery.Invalid(name, "%s must be 1 or 0", name)
}

// testFlag reads the debug marker (codes-and-rules.md §7): "1" is a debug
// request; absent, "", "0" or another short value a real one; more than two
// characters is 000002 (String 2).
func (p v1params) testFlag() (bool, error) {
	v := p["testFlag"]
	if n := utf8.RuneCountInString(v); n > 2 {
		return false, koogallery.Invalid("testFlag", "testFlag is %d characters, at most 2 allowed", n)
	}
	return v == "1", nil
}

// base64Text reads a Base64-bearing parameter (mobilePhone, email,
// saasExtendParams). A raw '+' that a form decoder turned into a space is
// read as '+' again (auth.md §3.2); Base64 has no spaces.
func (p v1params) base64Text(name string, maxLen int) (string, error) {
	v, err := p.str(name, false, maxLen)
	return strings.ReplaceAll(v, " ", "+"), err
}

// decimalRE is a bigdecimal of at most 3 decimals (orderAmount).
var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,3})?$`)

// maxAmountLen is the documented length of orderAmount (bigdecimal, 20).
const maxAmountLen = 20

// amount reads an optional orderAmount as exact decimal text (never a
// float): digits with at most 3 decimals, at most 20 characters; negative
// only where allowed (a renewal cancellation).
func (p v1params) amount(name string, negative bool) (string, error) {
	v := p[name]
	if v == "" {
		return "", nil
	}
	if len(v) > maxAmountLen || !decimalRE.MatchString(v) || (!negative && v[0] == '-') {
		sign := "≥ 0 "
		if negative {
			sign = ""
		}
		return "", koogallery.Invalid(name, "%s must be a decimal %swith at most 3 decimals and %d characters", name, sign, maxAmountLen)
	}
	return v, nil
}
