package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/gallerist/gallerist/domain/instance"
)

// checkPassword reports how p breaks the password policy, "" if it keeps it.
func checkPassword(p string) string {
	if len(p) != PasswordLen || PasswordLen < 20 {
		return "length " + p
	}
	var up, low, dig, sym bool
	for _, c := range p {
		switch {
		case strings.ContainsRune("0Oo1lI", c):
			return "ambiguous character in " + p
		case strings.ContainsRune(pwUpper, c):
			up = true
		case strings.ContainsRune(pwLower, c):
			low = true
		case strings.ContainsRune(pwDigits, c):
			dig = true
		case strings.ContainsRune(pwSymbols, c):
			sym = true
		default:
			return "character outside the alphabet in " + p
		}
	}
	if !up || !low || !dig || !sym {
		return "a character class is missing in " + p
	}
	return ""
}

func short(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])[:8]
}

func TestBuiltinDefaults(t *testing.T) {
	b, err := NewBuiltin(DefaultBuiltinConfig())
	if err != nil {
		t.Fatal(err)
	}
	req := Request{EventID: "e", InstanceID: "inst-1", OrderID: "o", OrderLineID: "l", BusinessID: "inst-1"}
	app, err := b.Provision(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := instance.AppInfo{
		FrontEndURL: "https://app.example.com/inst-1", AdminURL: "https://admin.example.com/inst-1",
		UserName: "admin-" + short("inst-1"), Password: app.Password,
	}
	if app != want {
		t.Fatalf("app info = %+v, want %+v", app, want)
	}
	if msg := checkPassword(app.Password); msg != "" {
		t.Fatal(msg)
	}
	again, err := b.Provision(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.UserName != app.UserName || again.Password == app.Password {
		t.Fatalf("user name must be stable and the password fresh: %+v then %+v", app, again)
	}
}

func TestBuiltinTemplates(t *testing.T) {
	b, err := NewBuiltin(BuiltinConfig{
		FrontEndURL: "http://{short}.example.com/o/{orderId}/{orderLineId}?i={instanceId}&b={businessId}",
		UserName:    "{orderLineId}@example.com",
		Memo:        "开通成功 {instanceId}",
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := b.Provision(context.Background(), Request{InstanceID: "i9", OrderID: "o9", OrderLineID: "l9", BusinessID: "b9"})
	if err != nil {
		t.Fatal(err)
	}
	want := instance.AppInfo{
		FrontEndURL: "http://" + short("i9") + ".example.com/o/o9/l9?i=i9&b=b9",
		UserName:    "l9@example.com", Password: app.Password, Memo: "开通成功 i9",
	}
	if app != want {
		t.Fatalf("app info = %+v, want %+v", app, want)
	}
}

func TestBuiltinCancelledContext(t *testing.T) {
	b, _ := NewBuiltin(DefaultBuiltinConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Provision(ctx, Request{InstanceID: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuiltinUserNameTooLong(t *testing.T) {
	// Two sample ids (36 bytes each) fit in 79 bytes, so the config is
	// valid; two 64-byte ids do not.
	b, err := NewBuiltin(BuiltinConfig{FrontEndURL: "https://x.example.com/", UserName: "{instanceId}{businessId}"})
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("a", 64)
	_, err = b.Provision(context.Background(), Request{InstanceID: id, BusinessID: id})
	if !errors.Is(err, ErrAppInfoTooLong) {
		t.Fatalf("err = %v, want ErrAppInfoTooLong", err)
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		t.Fatal("a vendor configuration error must not refuse the buyer")
	}
	// 79 bytes exactly still fit.
	id = strings.Repeat("b", 39)
	app, err := b.Provision(context.Background(), Request{InstanceID: id, BusinessID: id + "c"})
	if err != nil || len(app.UserName) != MaxSecretBytes {
		t.Fatalf("79-byte user name: %q, %v", app.UserName, err)
	}
}

func TestBuiltinConfigValidate(t *testing.T) {
	ok := DefaultBuiltinConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mod  func(*BuiltinConfig)
		want string
		is   error
	}{
		"no front-end url":   {func(c *BuiltinConfig) { c.FrontEndURL = "" }, "FrontEndURL is required", nil},
		"relative url":       {func(c *BuiltinConfig) { c.FrontEndURL = "/{instanceId}" }, "absolute", ErrAppInfoInvalid},
		"ftp url":            {func(c *BuiltinConfig) { c.FrontEndURL = "ftp://x.example.com/{instanceId}" }, "absolute", ErrAppInfoInvalid},
		"no host":            {func(c *BuiltinConfig) { c.FrontEndURL = "https:///{instanceId}" }, "absolute", ErrAppInfoInvalid},
		"space in url":       {func(c *BuiltinConfig) { c.FrontEndURL = "https://x.example.com/a b" }, "ASCII", ErrAppInfoInvalid},
		"chinese in url":     {func(c *BuiltinConfig) { c.FrontEndURL = "https://x.example.com/中文" }, "ASCII", ErrAppInfoInvalid},
		"url too long":       {func(c *BuiltinConfig) { c.FrontEndURL = "https://x.example.com/" + strings.Repeat("a", 500) }, "frontEndUrl is", ErrAppInfoTooLong},
		"bad admin url":      {func(c *BuiltinConfig) { c.AdminURL = "admin.example.com" }, "adminUrl", ErrAppInfoInvalid},
		"unknown placehold":  {func(c *BuiltinConfig) { c.FrontEndURL = "https://x.example.com/{instanceID}" }, "unknown placeholder {instanceID}", nil},
		"unknown in memo":    {func(c *BuiltinConfig) { c.Memo = "hello {name}" }, "Memo: unknown placeholder {name}", nil},
		"user name too long": {func(c *BuiltinConfig) { c.UserName = strings.Repeat("u", 72) + "{short}" }, "userName is 80", ErrAppInfoTooLong},
		"memo too long":      {func(c *BuiltinConfig) { c.Memo = strings.Repeat("中", 171) }, "memo is 1026", ErrAppInfoTooLong},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := DefaultBuiltinConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.is)
			}
			if _, err := NewBuiltin(c); err == nil {
				t.Fatal("NewBuiltin accepted an invalid config")
			}
		})
	}
	// Boundaries that are still fine.
	c := DefaultBuiltinConfig()
	c.UserName = strings.Repeat("u", 71) + "{short}" // 79 bytes
	c.Memo = strings.Repeat("中", 170)                // 1020 escaped
	c.FrontEndURL = "https://x.example.com/" + strings.Repeat("a", MaxURLLen-len("https://x.example.com/"))
	c.AdminURL = ""
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordPolicy(t *testing.T) {
	seen := map[string]bool{}
	used := map[rune]bool{}
	for range 2000 {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if msg := checkPassword(p); msg != "" {
			t.Fatal(msg)
		}
		if seen[p] {
			t.Fatalf("password %s generated twice", p)
		}
		seen[p] = true
		for _, c := range p {
			used[c] = true
		}
	}
	// 48 000 draws from 67 characters: every one shows up unless the
	// generator is biased or drops some.
	for _, c := range pwAll {
		if !used[c] {
			t.Fatalf("character %q never used", c)
		}
	}
	if strings.ContainsAny(pwAll, "0Oo1lI\"'`\\$&<>| ") {
		t.Fatal("alphabet holds an ambiguous or escaping character")
	}
}

// TestBuiltinProperties: for any ids, the builtin either returns app info
// KooGallery accepts, with the instance id in the URL and a policy-keeping
// password, or a retryable configuration error (never a refusal).
func TestBuiltinProperties(t *testing.T) {
	b, err := NewBuiltin(BuiltinConfig{
		FrontEndURL: "https://app.example.com/{instanceId}", AdminURL: "https://admin.example.com/{orderId}",
		UserName: "{orderLineId}", Memo: "{businessId}",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := rapid.StringMatching(`[A-Za-z0-9_-]{1,64}`)
	rapid.Check(t, func(t *rapid.T) {
		req := Request{
			EventID: "e", InstanceID: id.Draw(t, "instanceId"), OrderID: id.Draw(t, "orderId"),
			OrderLineID: rapid.String().Draw(t, "orderLineId"), BusinessID: rapid.String().Draw(t, "businessId"),
		}
		app, err := b.Provision(context.Background(), req)
		if err != nil {
			if !errors.Is(err, ErrAppInfoTooLong) && !errors.Is(err, ErrAppInfoInvalid) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(req.OrderLineID) <= MaxSecretBytes && escapedLen(req.BusinessID) <= MaxMemoLen {
				t.Fatalf("refused values within the limits: %v", err)
			}
			return
		}
		if err := ValidateAppInfo(app); err != nil {
			t.Fatalf("returned invalid app info: %v", err)
		}
		if app.FrontEndURL != "https://app.example.com/"+req.InstanceID || app.UserName != req.OrderLineID || app.Memo != req.BusinessID {
			t.Fatalf("templates not expanded plainly: %+v for %+v", app, req)
		}
		if msg := checkPassword(app.Password); msg != "" {
			t.Fatal(msg)
		}
	})
}

func TestValidateAppInfo(t *testing.T) {
	good := instance.AppInfo{FrontEndURL: "https://a.example.com", AdminURL: "http://b.example.com/x", UserName: "u", Password: "p", Memo: "m"}
	if err := ValidateAppInfo(good); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mod func(*instance.AppInfo)
		is  error
	}{
		"missing url":      {func(a *instance.AppInfo) { a.FrontEndURL = "" }, ErrAppInfoInvalid},
		"user 80 bytes":    {func(a *instance.AppInfo) { a.UserName = strings.Repeat("x", 80) }, ErrAppInfoTooLong},
		"user 27 chinese":  {func(a *instance.AppInfo) { a.UserName = strings.Repeat("中", 27) }, ErrAppInfoTooLong}, // 81 bytes
		"password 80":      {func(a *instance.AppInfo) { a.Password = strings.Repeat("x", 80) }, ErrAppInfoTooLong},
		"memo escapes":     {func(a *instance.AppInfo) { a.Memo = strings.Repeat(`"`, 513) }, ErrAppInfoTooLong}, // \" each
		"memo astral":      {func(a *instance.AppInfo) { a.Memo = strings.Repeat("😀", 86) }, ErrAppInfoTooLong},  // 12 each
		"bad utf-8":        {func(a *instance.AppInfo) { a.Password = "\xff" }, ErrAppInfoInvalid},
		"admin not http":   {func(a *instance.AppInfo) { a.AdminURL = "mailto:x@example.com" }, ErrAppInfoInvalid},
		"admin too long":   {func(a *instance.AppInfo) { a.AdminURL = "https://b.example.com/" + strings.Repeat("x", 491) }, ErrAppInfoTooLong},
		"url control char": {func(a *instance.AppInfo) { a.FrontEndURL = "https://a.example.com/\x7f" }, ErrAppInfoInvalid},
	}
	for name, tc := range cases {
		a := good
		tc.mod(&a)
		if err := ValidateAppInfo(a); !errors.Is(err, tc.is) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.is)
		}
	}
	a := good
	a.UserName, a.Password, a.Memo = strings.Repeat("中", 26)+"x", strings.Repeat("x", 79), strings.Repeat("😀", 85)
	if err := ValidateAppInfo(a); err != nil {
		t.Fatalf("values at the limits rejected: %v", err)
	}
}

func TestRefusedError(t *testing.T) {
	err := Refuse("000100", "no capacity")
	var r *RefusedError
	if !errors.As(err, &r) || r.Code != "000100" || r.Message != "no capacity" || err.Error() != "provisioning refused (000100): no capacity" {
		t.Fatalf("Refuse = %#v", err)
	}
	if r.validate() != nil {
		t.Fatal("000100 must be a valid refusal")
	}
	for _, code := range []string{"000107", "000104"} {
		if (&RefusedError{Code: code}).validate() != nil {
			t.Fatalf("%s rejected", code)
		}
	}
	for _, code := range []string{"", "000000", "000004", "000108", "100"} {
		if err := (&RefusedError{Code: code}).validate(); !errors.Is(err, ErrAppInfoInvalid) {
			t.Fatalf("code %q accepted: %v", code, err)
		}
	}
	if err := (&RefusedError{Code: "000100", Message: strings.Repeat("x", 256)}).validate(); err == nil {
		t.Fatal("a 256-character message accepted")
	}
}
