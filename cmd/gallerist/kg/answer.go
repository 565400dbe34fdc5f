package kg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// ErrBodySign is wrapped by the error of a call whose answer's Body-Sign is
// missing or wrong.
var ErrBodySign = errors.New("answer's Body-Sign is missing or wrong")

// ErrDecrypt is wrapped by the error of a call whose answer carries an
// encrypted field the key cannot decrypt.
var ErrDecrypt = errors.New("answer has a field the key cannot decrypt")

// SignCheck is the verdict on an answer's Body-Sign.
type SignCheck struct {
	Present bool   `json:"present"`
	Valid   bool   `json:"valid"`
	Error   string `json:"error,omitempty"`
}

// Decrypted is one encrypted answer field and its plaintext.
type Decrypted struct {
	Path       string `json:"path"` // e.g. info[0].appInfo.password
	Ciphertext string `json:"ciphertext"`
	Plaintext  string `json:"plaintext,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Answer is a production address's answer as KooGallery checks it.
type Answer struct {
	Status      int               `json:"status"`
	Headers     map[string]string `json:"headers"`
	Body        string            `json:"body"`
	BodySign    SignCheck         `json:"bodySign"`
	ResultCode  string            `json:"resultCode,omitempty"`
	ResultMsg   string            `json:"resultMsg,omitempty"`
	InstanceID  string            `json:"instanceId,omitempty"`
	EncryptType string            `json:"encryptType,omitempty"` // the one used to decrypt
	// Decoded is the JSON answer with every decrypted field renamed
	// "<name> (decrypted)" and holding the plaintext.
	Decoded   any         `json:"decoded,omitempty"`
	Decrypted []Decrypted `json:"decrypted,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
}

// answerHeaders are the answer headers worth showing.
var answerHeaders = []string{"Content-Type", koogallery.BodySignHeader, "Allow", "Content-Length"}

// checkAnswer verifies the Body-Sign of an answer with the key and decrypts
// the app info (userName, password: auth.md §5.1) wherever it appears.
func checkAnswer(t target, status int, header http.Header, body []byte) Answer {
	a := Answer{Status: status, Headers: map[string]string{}, Body: string(body)}
	for _, h := range answerHeaders {
		if v := header.Get(h); v != "" {
			a.Headers[h] = v
		}
	}
	a.BodySign = checkBodySign(t.key, header, body)

	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		a.Notes = append(a.Notes, "the answer is not JSON: "+err.Error())
		return a
	}
	obj, ok := v.(map[string]any)
	if !ok {
		a.Notes = append(a.Notes, "the answer is not a JSON object")
		return a
	}
	a.ResultCode, _ = obj["resultCode"].(string)
	a.ResultMsg, _ = obj["resultMsg"].(string)
	a.InstanceID, _ = obj["instanceId"].(string)
	if a.ResultCode == "" {
		a.Notes = append(a.Notes, "the answer has no resultCode string")
	}

	et := t.encryptForced
	answered, _ := obj["encryptType"].(string)
	if et == "" {
		et = koogallery.EncryptType(answered)
		if et != "" && !et.Valid() {
			a.Notes = append(a.Notes, fmt.Sprintf("the answer's encryptType %q is not 1 or 2", answered))
			et = ""
		}
		if et != "" && t.encryptRoute != "" && et != t.encryptRoute {
			a.Notes = append(a.Notes, fmt.Sprintf("the answer's encryptType %s differs from the route's %s", et, t.encryptRoute))
		}
	}
	if et == "" {
		et = t.encryptRoute
	}
	if et == "" {
		et = koogallery.EncryptAES256
	}
	a.EncryptType = string(et)
	c, err := koogallery.NewCipher(t.key, et)
	if err != nil {
		a.Notes = append(a.Notes, "cannot decrypt: "+err.Error())
		a.Decoded = v
		return a
	}
	a.Decoded = decryptAppInfo(v, "", false, c, &a.Decrypted)
	return a
}

func checkBodySign(key []byte, header http.Header, body []byte) SignCheck {
	v := header.Values(koogallery.BodySignHeader)
	switch {
	case len(v) == 0 || v[0] == "":
		// KooGallery's debugger words it so.
		return SignCheck{Error: "no Body-Sign header (KooGallery: http header->bodySign is empty.)"}
	case len(v) > 1:
		return SignCheck{Present: true, Error: fmt.Sprintf("%d Body-Sign headers", len(v))}
	}
	if err := koogallery.VerifyBodySign(key, body, v[0]); err != nil {
		msg := koogallery.MessageOf(err)
		if u := errors.Unwrap(err); u != nil {
			msg += ": " + u.Error()
		}
		return SignCheck{Present: true, Error: msg}
	}
	return SignCheck{Present: true, Valid: true}
}

// decryptAppInfo returns a copy of v in which the userName and password of
// every appInfo object are decrypted, renamed "<name> (decrypted)", and
// listed in out.
func decryptAppInfo(v any, path string, inAppInfo bool, c *koogallery.Cipher, out *[]Decrypted) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			s, isString := x.(string)
			if inAppInfo && isString && (k == "userName" || k == "password") {
				d := Decrypted{Path: p, Ciphertext: s}
				pt, err := c.Decrypt(s)
				if err != nil {
					d.Error = err.Error()
					m[k] = x
				} else {
					d.Plaintext = pt
					m[k+" (decrypted)"] = pt
				}
				*out = append(*out, d)
				continue
			}
			m[k] = decryptAppInfo(x, p, k == "appInfo", c, out)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = decryptAppInfo(x, path+"["+strconv.Itoa(i)+"]", false, c, out)
		}
		return s
	}
	return v
}

// problem is the error a call ends with: a missing or wrong Body-Sign or an
// undecryptable field (nil when the answer checks out).
func (a Answer) problem() error {
	if !a.BodySign.Valid {
		return fmt.Errorf("kg: %w: %s", ErrBodySign, a.BodySign.Error)
	}
	for _, d := range a.Decrypted {
		if d.Error != "" {
			return fmt.Errorf("kg: %w: %s: %s (wrong key or encryptType?)", ErrDecrypt, d.Path, d.Error)
		}
	}
	return nil
}
