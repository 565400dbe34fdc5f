package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// BodySignHeader is the name of the response signature header (auth.md §4).
const BodySignHeader = "Body-Sign"

// BodySignType is the only sign_type of Body-Sign.
const BodySignType = "HMAC-SHA256"

// BodySignature returns Base64(HMAC-SHA256(key, body)) (standard alphabet,
// padded). key is the family's key alone, body the exact response bytes.
func BodySignature(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(mac.Sum(sum[:0]))
}

// BodySignValue returns the Body-Sign header value in the exact documented
// form, with the space after "signature=":
//
//	sign_type="HMAC-SHA256", signature= "<base64>"
func BodySignValue(key, body []byte) string {
	return `sign_type="` + BodySignType + `", signature= "` + BodySignature(key, body) + `"`
}

// ParseBodySign parses a Body-Sign header value into its sign_type and
// signature. Both parameters are required, once each, in any order, with
// their values in double quotes (KooGallery rejects a header without them);
// whitespace around the names, the '=' and the ',' is ignored, so the space
// after "signature=" may be present or absent. Any other parameter is an
// error.
func ParseBodySign(v string) (signType, signature string, err error) {
	var haveType, haveSig bool
	rest := strings.TrimSpace(v)
	if rest == "" {
		return "", "", fmt.Errorf("koogallery: Body-Sign is empty")
	}
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return "", "", fmt.Errorf("koogallery: Body-Sign %q: missing '='", v)
		}
		name := strings.TrimSpace(rest[:eq])
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		if !strings.HasPrefix(rest, `"`) {
			return "", "", fmt.Errorf("koogallery: Body-Sign %q: value of %q is not quoted", v, name)
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("koogallery: Body-Sign %q: unterminated quote in %q", v, name)
		}
		value := rest[1 : 1+end]
		rest = strings.TrimLeft(rest[end+2:], " \t")
		if rest != "" {
			if rest[0] != ',' {
				return "", "", fmt.Errorf("koogallery: Body-Sign %q: expected ',' after %q", v, name)
			}
			rest = strings.TrimLeft(rest[1:], " \t")
			if rest == "" {
				return "", "", fmt.Errorf("koogallery: Body-Sign %q: trailing ','", v)
			}
		}
		switch name {
		case "sign_type":
			if haveType {
				return "", "", fmt.Errorf("koogallery: Body-Sign %q: repeated sign_type", v)
			}
			haveType, signType = true, value
		case "signature":
			if haveSig {
				return "", "", fmt.Errorf("koogallery: Body-Sign %q: repeated signature", v)
			}
			haveSig, signature = true, value
		default:
			return "", "", fmt.Errorf("koogallery: Body-Sign %q: unknown parameter %q", v, name)
		}
	}
	if !haveType || !haveSig {
		return "", "", fmt.Errorf("koogallery: Body-Sign %q: needs sign_type and signature", v)
	}
	return signType, signature, nil
}

// VerifyBodySign checks a Body-Sign header value against body, as
// KooGallery's side (the emulator) does. A malformed header, a sign_type
// other than HMAC-SHA256, an empty signature or a mismatch is a
// CodeAuthFailed error.
func VerifyBodySign(key, body []byte, headerValue string) error {
	signType, sig, err := ParseBodySign(headerValue)
	if err != nil {
		e := AuthFailed("Body-Sign cannot be parsed")
		e.Err = err
		return e
	}
	if signType != BodySignType || sig == "" {
		return AuthFailed("Body-Sign sign_type is not " + BodySignType + " or signature is empty")
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		e := AuthFailed("Body-Sign signature is not Base64")
		e.Err = err
		return e
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return AuthFailed("Body-Sign signature does not match")
	}
	return nil
}
