package server

import (
	"context"
	"errors"
	"strings"

	"github.com/gallerist/gallerist/bus/nonce"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/licenses"
)

// resultOf maps any error of the pipeline to the KooGallery result code and
// message. This is the one place where domain and infrastructure errors
// become protocol codes.
func resultOf(err error) (koogallery.Code, string) {
	var kerr *koogallery.Error
	var refused *instance.RefusedError
	switch {
	case err == nil:
		return koogallery.CodeSuccess, koogallery.CodeSuccess.DefaultMessage()
	case errors.As(err, &kerr):
		return kerr.Code, kerr.Message()
	case errors.As(err, &refused):
		code := koogallery.Code(refused.Failure.Code)
		if !creationRefusal(code) {
			code = koogallery.CodeInternal
		}
		return code, koogallery.Refused(code, refused.Failure.Message).Message()
	case errors.Is(err, instance.ErrNotFound), errors.Is(err, license.ErrNotFound):
		return koogallery.CodeNotFound, koogallery.CodeNotFound.DefaultMessage()
	case errors.Is(err, licensecode.ErrNotFound):
		return koogallery.CodeNotFound, koogallery.CodeNotFound.DefaultMessage() + ": authorization code does not exist"
	case errors.Is(err, instance.ErrLicenseOutsideValidity):
		// License C (codes-and-rules.md §2.6), with the detail after the
		// sentinel's text ("(valid until …)", ": the instance is frozen").
		detail := strings.TrimPrefix(err.Error(), instance.ErrLicenseOutsideValidity.Error())
		return koogallery.CodeLicenseOutsideValidity, koogallery.CodeLicenseOutsideValidity.DefaultMessage() + detail
	case errors.Is(err, instance.ErrLicenseExpiryRequired):
		return koogallery.CodeLicenseExpiryRequired, koogallery.CodeLicenseExpiryRequired.DefaultMessage()
	case errors.Is(err, instance.ErrIDInUse), errors.Is(err, license.ErrIDInUse):
		return koogallery.CodeInvalidParam, "param is invalid: businessId is already the instanceId of another order"
	case errors.Is(err, instance.ErrInvalid), errors.Is(err, license.ErrInvalid), errors.Is(err, licensecode.ErrInvalid):
		return koogallery.CodeInvalidParam, "param is invalid: " + err.Error()
	case errors.Is(err, licenses.ErrInProgress):
		// license.md §2.1: never 000004 to getLicense; the next retry
		// answers the license.
		return koogallery.CodeInternal, "license generation in progress"
	case errors.Is(err, nonce.ErrReplay):
		return koogallery.CodeAuthFailed, "token is invalid: nonce already used"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return koogallery.CodeInternal, "other inner error: timed out"
	}
	return koogallery.CodeInternal, koogallery.CodeInternal.DefaultMessage()
}

// creationRefusal reports whether code is one of the creation refusals a
// provisioner may answer with (000100–000107, codes-and-rules.md §2.2).
func creationRefusal(code koogallery.Code) bool {
	return len(code) == 6 && code >= koogallery.CodeNoResource && code <= "000107"
}
