package nonce

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// maxRawNonce is the longest nonce kept verbatim (base64url) in its key;
// longer nonces are keyed by their SHA-256 so keys stay short.
const maxRawNonce = 96

// key maps (scope, nonce) to a KV key, injectively and whatever the bytes:
//
//	<base64url(scope)>.n.<base64url(nonce)>        nonce ≤ 96 bytes
//	<base64url(scope)>.h.<base64url(sha256(nonce))> longer nonces
//
// base64url (no padding) uses only [A-Za-z0-9_-], all valid in KV keys, and
// never '.', so the tokens cannot run into each other.
func key(scope, nonce string) (string, error) {
	if scope == "" {
		return "", fmt.Errorf("%w: empty scope", ErrInvalidNonce)
	}
	if nonce == "" {
		return "", fmt.Errorf("%w: empty nonce", ErrInvalidNonce)
	}
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(scope))
	if len(nonce) <= maxRawNonce {
		return s + ".n." + enc.EncodeToString([]byte(nonce)), nil
	}
	sum := sha256.Sum256([]byte(nonce))
	return s + ".h." + enc.EncodeToString(sum[:]), nil
}
