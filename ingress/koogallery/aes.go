package koogallery

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// EncryptType is the `encryptType` of a product: which AES key size protects
// AppInfo.userName/password and the V1 mobilePhone/email (auth.md §5.4).
type EncryptType string

// The encryptType values.
const (
	// EncryptAES256 is AES256_CBC_PKCS5Padding, the default.
	EncryptAES256 EncryptType = "1"
	// EncryptAES128 is AES128_CBC_PKCS5Padding.
	EncryptAES128 EncryptType = "2"
)

// Valid reports whether t is "1" or "2".
func (t EncryptType) Valid() bool { return t == EncryptAES256 || t == EncryptAES128 }

// Bits returns the AES key size of t: 256 for "1", 128 for "2", 0 otherwise.
func (t EncryptType) Bits() int {
	switch t {
	case EncryptAES256:
		return 256
	case EncryptAES128:
		return 128
	}
	return 0
}

// IVLen is the length of the IV prefix of an encrypted value: 16 characters
// from A–Z a–z 0–9.
const IVLen = 16

// MaxAppInfoCipherLen is the length limit KooGallery applies to the
// encrypted AppInfo userName and password, IV included (auth.md §5.4).
const MaxAppInfoCipherLen = 128

// ErrCiphertext is wrapped by every Decrypt failure caused by the input
// (bad length, Base64, padding or UTF-8). The caller answers it with
// Invalid(<field>, ...).
var ErrCiphertext = errors.New("koogallery: malformed ciphertext")

const ivAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// DeriveKey derives the AES key from a key seed the way Java's
// KeyGenerator.getInstance("AES") initialised with a SHA1PRNG SecureRandom
// seeded with seed does (auth.md §5.2): state = SHA-1(seed); repeatedly
// block = SHA-1(state), append block, state = state + block + 1 with signed
// byte arithmetic (byte 0 least significant), and state[0]++ if nothing
// changed. It returns the first bits/8 bytes (16 for AES-128, 32 for
// AES-256); the AES-128 key is a prefix of the AES-256 key.
func DeriveKey(seed []byte, bits int) []byte {
	n := bits / 8
	if n <= 0 {
		return nil
	}
	state := sha1.Sum(seed)
	out := make([]byte, 0, n+sha1.Size)
	for len(out) < n {
		block := sha1.Sum(state[:])
		out = append(out, block[:]...)
		carry := 1
		changed := false
		for i := range state {
			v := int(int8(state[i])) + int(int8(block[i])) + carry
			t := byte(v)
			if t != state[i] {
				changed = true
			}
			state[i] = t
			carry = v >> 8
		}
		if !changed {
			state[0]++
		}
	}
	return out[:n]
}

// Cipher encrypts and decrypts protocol fields with AES-CBC/PKCS#7 under a
// key derived once from the family's key (auth.md §5.3). Values are
// iv + Base64(ciphertext) with a 16-character ASCII IV. A Cipher is safe for
// concurrent use.
type Cipher struct {
	block cipher.Block
	typ   EncryptType
}

// NewCipher derives the AES key from seed (the decoded key bytes) for
// encryptType t; an empty t means the default EncryptAES256.
func NewCipher(seed []byte, t EncryptType) (*Cipher, error) {
	if t == "" {
		t = EncryptAES256
	}
	if !t.Valid() {
		return nil, fmt.Errorf("koogallery: new cipher: unknown encryptType %q", string(t))
	}
	if len(seed) == 0 {
		return nil, errors.New("koogallery: new cipher: empty key")
	}
	block, err := aes.NewCipher(DeriveKey(seed, t.Bits()))
	if err != nil {
		return nil, fmt.Errorf("koogallery: new cipher: %w", err)
	}
	return &Cipher{block: block, typ: t}, nil
}

// Type returns the cipher's encryptType.
func (c *Cipher) Type() EncryptType { return c.typ }

// Encrypt encrypts plaintext (UTF-8) with a fresh random IV of 16 characters
// from A–Z a–z 0–9 drawn from crypto/rand, and returns iv + Base64(ct).
func (c *Cipher) Encrypt(plaintext string) (string, error) {
	return c.EncryptWithIV(plaintext, newIV())
}

// EncryptWithIV is Encrypt with a given IV, which must be 16 bytes (the
// protocol's IVs are 16 ASCII characters). For tests and vectors.
func (c *Cipher) EncryptWithIV(plaintext, iv string) (string, error) {
	if len(iv) != IVLen {
		return "", fmt.Errorf("koogallery: encrypt: IV must be %d bytes, got %d", IVLen, len(iv))
	}
	if !utf8.ValidString(plaintext) {
		return "", errors.New("koogallery: encrypt: plaintext is not valid UTF-8")
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, []byte(iv)).CryptBlocks(buf, buf)
	return iv + base64.StdEncoding.EncodeToString(buf), nil
}

// Decrypt reverses Encrypt: the first 16 bytes are the IV, the rest is
// standard padded Base64 of the AES-CBC ciphertext, PKCS#7 padding is
// removed, and the result must be UTF-8. The value must already be
// URL-decoded; as a guard against the '+' pitfall of auth.md §3.2, spaces
// in the Base64 part are read as '+'. Every input failure wraps
// ErrCiphertext; Decrypt never panics.
func (c *Cipher) Decrypt(value string) (string, error) {
	if len(value) <= IVLen {
		return "", fmt.Errorf("%w: %d characters is too short", ErrCiphertext, len(value))
	}
	iv, b64 := value[:IVLen], value[IVLen:]
	if strings.IndexByte(b64, ' ') >= 0 {
		b64 = strings.ReplaceAll(b64, " ", "+")
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("%w: bad Base64: %v", ErrCiphertext, err)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return "", fmt.Errorf("%w: ciphertext length %d is not a positive multiple of %d", ErrCiphertext, len(ct), aes.BlockSize)
	}
	cipher.NewCBCDecrypter(c.block, []byte(iv)).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize {
		return "", fmt.Errorf("%w: bad padding", ErrCiphertext)
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return "", fmt.Errorf("%w: bad padding", ErrCiphertext)
		}
	}
	pt := ct[:len(ct)-pad]
	if !utf8.Valid(pt) {
		return "", fmt.Errorf("%w: plaintext is not valid UTF-8", ErrCiphertext)
	}
	return string(pt), nil
}

// EncryptedLen returns the length of Encrypt's output for a plaintext of n
// bytes: 16 IV characters plus the Base64 length of the PKCS#7-padded
// ciphertext.
func EncryptedLen(n int) int {
	padded := (n/aes.BlockSize + 1) * aes.BlockSize
	return IVLen + base64.StdEncoding.EncodedLen(padded)
}

// FitsAppInfo reports whether plaintext, once encrypted, fits the
// MaxAppInfoCipherLen limit of AppInfo.userName/password: at most 79 UTF-8
// bytes (auth.md §5.4). The result is the same for both key sizes.
func (c *Cipher) FitsAppInfo(plaintext string) bool {
	return EncryptedLen(len(plaintext)) <= MaxAppInfoCipherLen
}

// newIV returns 16 random characters from A–Z a–z 0–9, by rejection
// sampling of crypto/rand bytes (no modulo bias).
func newIV() string {
	const limit = 256 - 256%len(ivAlphabet) // 248
	var iv [IVLen]byte
	var rnd [32]byte
	n := 0
	for n < IVLen {
		_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
		for _, b := range rnd {
			if int(b) >= limit {
				continue
			}
			iv[n] = ivAlphabet[int(b)%len(ivAlphabet)]
			n++
			if n == IVLen {
				break
			}
		}
	}
	return string(iv[:])
}
