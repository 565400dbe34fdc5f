package koogallery_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Values from /work/shared/spec/vectors.md.
const (
	testKey = "TEST-ACCESS-KEY-0123456789" // §1

	// §2
	v2Nonce     = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"
	v2Timestamp = "1680508066618"
	v2Body      = `{"testFlag":"1","activity":"newInstance","orderLineId":"CS2211181819B4LVS-000001","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS"}`
	v2PayloadA  = `{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`
	v2Inner     = "f19e093cc73e498db84b852b14a740ef252a0ed7f00ea11db51ff065320d004c"
	v2Canonical = "TEST-ACCESS-KEY-012345678950D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA1680508066618f19e093cc73e498db84b852b14a740ef252a0ed7f00ea11db51ff065320d004c"
	v2Signature = "d7a889127dc8b3776c62c433801317726d73cc49fff36a9749d941c50474f187"
	v2InnerDA   = "72364dfbd91de2f4cf0b442f76db680366f8e87f1da566fb9d18add316c07d3d"
	v2SigDA     = "2597c4bb84e188b612af5ddebc3f303b7332eee1235db5ff050b8776d0f73937"

	// §3
	nestedBody = `{"testFlag":"1","productInfo":{"skuCode":"s","productId":"p"},"activity":"changeInstanceCheck","instanceId":"i"}`
)

// v2Time is the instant of v2Timestamp.
var v2Time = time.UnixMilli(1680508066618)

func key() []byte { return []byte(testKey) }

// fixedClock returns a clock that always answers t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code koogallery.Code) {
	t.Helper()
	if got := koogallery.CodeOf(err); got != code {
		t.Fatalf("code = %s, want %s (err = %v)", got, code, err)
	}
}

// wantField fails the test unless err is a CodeInvalidParam error naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	wantCode(t, err, koogallery.CodeInvalidParam)
	var e *koogallery.Error
	if !errors.As(err, &e) || e.Field != field {
		t.Fatalf("error %v does not name field %q", err, field)
	}
	if msg := koogallery.MessageOf(err); !containsWord(msg, field) {
		t.Fatalf("resultMsg %q does not name field %q", msg, field)
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}
