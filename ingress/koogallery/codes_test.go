package koogallery_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

func TestDefaultMessages(t *testing.T) {
	want := map[koogallery.Code]string{
		"000000": "success.",
		"000001": "token is invalid",
		"000002": "param is invalid",
		"000003": "instance is invalid",
		"000004": "request is processing",
		"000005": "other inner error",
		"000100": "no available resource",
		"000101": "Mobile number not specified or already exists",
		"000102": "Email address is not specified or already exists",
		"000103": "Product already purchased",
		"000104": "Internal service error",
		"000105": "Account has already subscribed to benefits",
		"000106": "Product resources sold out.",
		"000107": "SaaS email domain already exists.",
	}
	for c, m := range want {
		if got := c.DefaultMessage(); got != m {
			t.Errorf("%s: %q, want %q", c, got, m)
		}
		if !c.Known() {
			t.Errorf("%s not known", c)
		}
	}
	consts := []koogallery.Code{
		koogallery.CodeSuccess, koogallery.CodeAuthFailed, koogallery.CodeInvalidParam, koogallery.CodeNotFound,
		koogallery.CodeProcessing, koogallery.CodeInternal, koogallery.CodeNoResource, koogallery.CodeMobileInvalid,
		koogallery.CodeEmailInvalid, koogallery.CodeAlreadyPurchased, koogallery.CodeProductInternal,
		koogallery.CodeBenefitSubscribed, koogallery.CodeSoldOut, koogallery.CodeEmailDomainExists,
		koogallery.CodeLicenseQuota, koogallery.CodeLicenseOutsideValidity, koogallery.CodeLicenseExpiryRequired,
		koogallery.CodeLicenseDeviceRequired,
	}
	wantDigits := []string{"000000", "000001", "000002", "000003", "000004", "000005", "000100", "000101", "000102",
		"000103", "000104", "000105", "000106", "000107", "000900", "000901", "000902", "000903"}
	for i, c := range consts {
		if c.String() != wantDigits[i] {
			t.Errorf("constant %d = %s, want %s", i, c, wantDigits[i])
		}
		if !c.Known() || c.DefaultMessage() == "" || c.DefaultMessage() == "unknown result code" {
			t.Errorf("%s has no default message", c)
		}
	}
	if koogallery.Code("999999").Known() || koogallery.Code("999999").DefaultMessage() != "unknown result code" {
		t.Error("unknown code")
	}
}

func TestErrorHelpers(t *testing.T) {
	inv := koogallery.Invalid("orderId", "is mandatory")
	if inv.Message() != "param is invalid: orderId is mandatory" || inv.Field != "orderId" || inv.Code != koogallery.CodeInvalidParam {
		t.Fatalf("Invalid: %+v %q", inv, inv.Message())
	}
	if m := koogallery.Invalid("status", "status %q is unknown", "X").Message(); m != `param is invalid: status "X" is unknown` {
		t.Fatalf("Invalid with field in detail: %q", m)
	}
	if m := koogallery.Invalid("instanceId", "").Message(); m != "param is invalid: instanceId" {
		t.Fatalf("Invalid without detail: %q", m)
	}
	cause := errors.New("boom")
	wrapped := koogallery.Invalid("body", "is not JSON: %w", cause)
	if !errors.Is(wrapped, cause) || wrapped.Message() != "param is invalid: body is not JSON: boom" {
		t.Fatalf("Invalid with %%w: %v / %q", wrapped, wrapped.Message())
	}
	if strings.Count(wrapped.Error(), "boom") != 1 {
		t.Fatalf("Error() repeats the cause: %q", wrapped.Error())
	}

	af := koogallery.AuthFailed("signature does not match")
	if af.Message() != "token is invalid: signature does not match" || koogallery.AuthFailed("").Message() != "token is invalid" {
		t.Fatalf("AuthFailed: %q", af.Message())
	}
	if nf := koogallery.NotFound(""); nf.Message() != "instance is invalid" || nf.Code != koogallery.CodeNotFound {
		t.Fatalf("NotFound: %+v", nf)
	}
	if nf := koogallery.NotFound("license is invalid"); nf.Message() != "license is invalid" {
		t.Fatalf("NotFound msg: %q", nf.Message())
	}
	ref := koogallery.Refused(koogallery.CodeInvalidParam, "current usage exceeds target spec")
	if ref.Code != koogallery.CodeInvalidParam || ref.Message() != "current usage exceeds target spec" {
		t.Fatalf("Refused: %+v", ref)
	}
	if m := koogallery.Refused(koogallery.CodeSoldOut, "").Message(); m != "Product resources sold out." {
		t.Fatalf("Refused default: %q", m)
	}

	// errors.Is on wrapped errors, by code.
	err := fmt.Errorf("handler: %w", af)
	if !errors.Is(err, koogallery.ErrAuthFailed) || errors.Is(err, koogallery.ErrInvalidParam) {
		t.Fatal("errors.Is by code")
	}
	for _, tc := range []struct {
		err      error
		sentinel error
	}{
		{koogallery.Invalid("x", "y"), koogallery.ErrInvalidParam},
		{koogallery.NotFound(""), koogallery.ErrNotFound},
		{koogallery.Refused(koogallery.CodeProcessing, ""), koogallery.ErrProcessing},
		{koogallery.Refused(koogallery.CodeInternal, ""), koogallery.ErrInternal},
		{koogallery.Refused(koogallery.CodeNoResource, ""), koogallery.ErrNoResource},
	} {
		if !errors.Is(fmt.Errorf("w: %w", tc.err), tc.sentinel) {
			t.Errorf("%v is not %v", tc.err, tc.sentinel)
		}
	}

	// CodeOf / MessageOf.
	if koogallery.CodeOf(nil) != koogallery.CodeSuccess || koogallery.MessageOf(nil) != "success." {
		t.Fatal("nil")
	}
	if koogallery.CodeOf(err) != koogallery.CodeAuthFailed || koogallery.MessageOf(err) != af.Message() {
		t.Fatal("wrapped *Error")
	}
	secret := errors.New("dial tcp 10.0.0.1: connection refused")
	if koogallery.CodeOf(secret) != koogallery.CodeInternal || koogallery.MessageOf(secret) != "other inner error" {
		t.Fatal("plain error")
	}

	// resultMsg is at most 255 characters.
	long := koogallery.Refused(koogallery.CodeInvalidParam, strings.Repeat("中", 300))
	if n := len([]rune(long.Message())); n != koogallery.MaxResultMsgLen {
		t.Fatalf("message length %d", n)
	}
}
