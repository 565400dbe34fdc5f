package koogallery_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

const (
	aes128Key  = "8d17d4d9121d6d9cd3fbfe161c4ceff2"
	aes256Key  = "8d17d4d9121d6d9cd3fbfe161c4ceff2ab82af4532984aa7c278dbd3ce9b01b4"
	aesWrong   = "8d17d4d9121d6d9cd3fbfe161c4ceff2ab82af45a40c829589c944b268799b96" // unsigned addition
	aesPlain   = "15905222222"
	aesIV      = "abcdefghijklmnop"
	aesCT128   = "abcdefghijklmnopqr4VtCpHjkbgVeBS5Zc9VA=="
	aesCT256   = "abcdefghijklmnoph3kq9XJOHaCkd4GZf35aQg=="
	ivAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// vectors.md §6.
func TestDeriveKeyVectors(t *testing.T) {
	k128 := hex.EncodeToString(koogallery.DeriveKey(key(), 128))
	k256 := hex.EncodeToString(koogallery.DeriveKey(key(), 256))
	if k128 != aes128Key {
		t.Fatalf("AES-128 key = %s, want %s", k128, aes128Key)
	}
	if k256 != aes256Key {
		t.Fatalf("AES-256 key = %s, want %s", k256, aes256Key)
	}
	if k256 == aesWrong {
		t.Fatal("derived the unsigned-addition key")
	}
	// The wrong vector really is what unsigned 160-bit addition gives, so the
	// check above discriminates.
	if got := hex.EncodeToString(deriveKeyUnsigned(key(), 32)); got != aesWrong {
		t.Fatalf("unsigned reference = %s, want %s", got, aesWrong)
	}
	if !strings.HasPrefix(k256, k128) {
		t.Fatal("AES-128 key is not the prefix of the AES-256 key")
	}
	// Longer outputs keep the prefix (more than two SHA-1 blocks).
	if k := hex.EncodeToString(koogallery.DeriveKey(key(), 512)); !strings.HasPrefix(k, aes256Key) || len(k) != 128 {
		t.Fatalf("512-bit output %s", k)
	}
	if koogallery.DeriveKey(key(), 0) != nil {
		t.Fatal("0 bits")
	}
}

// deriveKeyUnsigned is the mistaken SHA1PRNG state update (unsigned
// 160-bit addition of block + 1, byte 0 least significant).
func deriveKeyUnsigned(seed []byte, n int) []byte {
	state := sha1.Sum(seed)
	var out []byte
	for len(out) < n {
		block := sha1.Sum(state[:])
		out = append(out, block[:]...)
		carry := 1
		for i := range state {
			v := int(state[i]) + int(block[i]) + carry
			state[i] = byte(v)
			carry = v >> 8
		}
	}
	return out[:n]
}

func TestCipherVectors(t *testing.T) {
	for _, tc := range []struct {
		typ  koogallery.EncryptType
		bits int
		ct   string
	}{
		{koogallery.EncryptAES128, 128, aesCT128},
		{koogallery.EncryptAES256, 256, aesCT256},
		{"", 256, aesCT256}, // default
	} {
		c, err := koogallery.NewCipher(key(), tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		if tc.typ != "" && (c.Type() != tc.typ || tc.typ.Bits() != tc.bits || !tc.typ.Valid()) {
			t.Fatalf("type %q: Type=%q Bits=%d", tc.typ, c.Type(), tc.typ.Bits())
		}
		got, err := c.EncryptWithIV(aesPlain, aesIV)
		if err != nil || got != tc.ct {
			t.Fatalf("type %q: EncryptWithIV = %s, %v; want %s", tc.typ, got, err, tc.ct)
		}
		pt, err := c.Decrypt(tc.ct)
		if err != nil || pt != aesPlain {
			t.Fatalf("type %q: Decrypt = %q, %v", tc.typ, pt, err)
		}
		// Random IV round trip; the output starts with 16 IV characters.
		for range 50 {
			v, err := c.Encrypt(aesPlain)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Trim(v[:koogallery.IVLen], ivAlphabet) != "" {
				t.Fatalf("IV %q not from A–Z a–z 0–9", v[:koogallery.IVLen])
			}
			if pt, err := c.Decrypt(v); err != nil || pt != aesPlain {
				t.Fatalf("round trip: %q, %v", pt, err)
			}
		}
	}
	// The two key sizes do not decrypt each other's values.
	c128, _ := koogallery.NewCipher(key(), koogallery.EncryptAES128)
	if pt, err := c128.Decrypt(aesCT256); err == nil && pt == aesPlain {
		t.Fatal("AES-128 decrypted the AES-256 value")
	}
	if koogallery.EncryptType("3").Valid() || koogallery.EncryptType("3").Bits() != 0 {
		t.Fatal("encryptType 3")
	}
	if _, err := koogallery.NewCipher(key(), "3"); err == nil {
		t.Fatal("NewCipher accepted encryptType 3")
	}
	if _, err := koogallery.NewCipher(nil, koogallery.EncryptAES256); err == nil {
		t.Fatal("NewCipher accepted an empty key")
	}
}

func TestRandomIVsDiffer(t *testing.T) {
	c, _ := koogallery.NewCipher(key(), koogallery.EncryptAES256)
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 500 {
		v, _ := c.Encrypt("x")
		iv := v[:koogallery.IVLen]
		if seen[iv] {
			t.Fatalf("IV %q repeated", iv)
		}
		seen[iv] = true
		for _, r := range iv {
			counts[r]++
		}
	}
	// 8000 draws over 62 characters: every character appears.
	if len(counts) != len(ivAlphabet) {
		t.Fatalf("only %d distinct IV characters", len(counts))
	}
}

func TestDecryptFailures(t *testing.T) {
	c, _ := koogallery.NewCipher(key(), koogallery.EncryptAES256)
	ct, _ := base64.StdEncoding.DecodeString(aesCT256[16:])
	flipped := append([]byte(nil), ct...)
	flipped[len(flipped)-1] ^= 0x55
	for _, v := range []string{
		"",
		aesIV,
		aesIV + "!!!!",
		aesIV + "AAAA", // 3 bytes: not a block
		aesIV + base64.StdEncoding.EncodeToString(make([]byte, 32)), // padding byte 0x?? after decrypt of zeros
		aesIV + base64.StdEncoding.EncodeToString(flipped),          // bad padding
		aesCT256[:len(aesCT256)-2],                                  // Base64 without padding
	} {
		pt, err := c.Decrypt(v)
		if err == nil {
			// A random block can decrypt to valid padding by chance; the
			// fixed inputs here are known not to.
			t.Errorf("Decrypt(%q) = %q, want error", v, pt)
			continue
		}
		if !errors.Is(err, koogallery.ErrCiphertext) {
			t.Errorf("Decrypt(%q) error %v does not wrap ErrCiphertext", v, err)
		}
	}
	// The '+' pitfall: a space in the Base64 part is read as '+'.
	v, _ := c.EncryptWithIV("a+b", aesIV)
	for i := 0; !strings.Contains(v[16:], "+") && i < 1000; i++ {
		v, _ = c.Encrypt(strings.Repeat("x", i))
	}
	if strings.Contains(v[16:], "+") {
		want, _ := c.Decrypt(v)
		if got, err := c.Decrypt(strings.ReplaceAll(v, "+", " ")); err != nil || got != want {
			t.Fatalf("space for '+': %q, %v", got, err)
		}
	}
	if _, err := c.EncryptWithIV("x", "short"); err == nil {
		t.Fatal("short IV accepted")
	}
	if _, err := c.EncryptWithIV("\xff", aesIV); err == nil {
		t.Fatal("invalid UTF-8 plaintext accepted")
	}
}

// auth.md §5.4: 79 bytes fit in 128 characters, 80 do not.
func TestFitsAppInfo(t *testing.T) {
	for _, typ := range []koogallery.EncryptType{koogallery.EncryptAES128, koogallery.EncryptAES256} {
		c, _ := koogallery.NewCipher(key(), typ)
		for _, tc := range []struct {
			s    string
			fits bool
		}{
			{"", true},
			{strings.Repeat("a", 79), true},
			{strings.Repeat("a", 80), false},
			{strings.Repeat("中", 26) + "a", true}, // 79 bytes
			{strings.Repeat("中", 27), false},      // 81 bytes
		} {
			if got := c.FitsAppInfo(tc.s); got != tc.fits {
				t.Errorf("FitsAppInfo(%d bytes) = %v", len(tc.s), got)
			}
			v, err := c.Encrypt(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != koogallery.EncryptedLen(len(tc.s)) || (len(v) <= koogallery.MaxAppInfoCipherLen) != tc.fits {
				t.Errorf("%d bytes encrypt to %d characters (EncryptedLen %d)", len(tc.s), len(v), koogallery.EncryptedLen(len(tc.s)))
			}
		}
	}
	if koogallery.EncryptedLen(79) != 124 || koogallery.EncryptedLen(80) != 144 {
		t.Fatalf("EncryptedLen(79)=%d EncryptedLen(80)=%d", koogallery.EncryptedLen(79), koogallery.EncryptedLen(80))
	}
}
