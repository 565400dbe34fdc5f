package koogallery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
)

// Header names of the new usage push (auth.md §7, outgoing.md §3).
const (
	UsageSignatureHeader = "signature"
	UsageTSHeader        = "ts"
	UsageNonceHeader     = "nonce"
)

// UsagePushSignature returns the `signature` header of the new usage push
// (auth.md §7): Base64(HMAC-SHA256(key, "ts=" + ts + "&nonce=" + nonce +
// "&body=" + body)). ts is Unix milliseconds as text; body is the exact
// request body, serialised once with member names sorted at every level.
func UsagePushSignature(key []byte, ts, nonce string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, "ts=")
	io.WriteString(mac, ts)
	io.WriteString(mac, "&nonce=")
	io.WriteString(mac, nonce)
	io.WriteString(mac, "&body=")
	mac.Write(body)
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(mac.Sum(sum[:0]))
}

// VerifyUsagePush checks a usage-push signature, as KooGallery (the
// emulator) does; a mismatch is CodeAuthFailed.
func VerifyUsagePush(key []byte, ts, nonce string, body []byte, signature string) error {
	if signature == "" {
		return AuthFailed("usage push signature is missing")
	}
	if !equalConstantTime(signature, UsagePushSignature(key, ts, nonce, body)) {
		return AuthFailed("usage push signature does not match")
	}
	return nil
}
