package openapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/projections/openapi/standin"
)

func TestUploadLicense(t *testing.T) {
	s, srv := startStandin(t, standin.Config{})
	var log syncBuffer
	c := newClient(t, testLog(&log), []string{srv.URL}, []*httptest.Server{srv}, nil)
	s.AddUploadEvent(standin.UploadEvent{ID: "ev-denied", Outcome: standin.CodeUploadDenied})
	s.AddUploadEvent(standin.UploadEvent{ID: "ev-inner", Outcome: standin.CodeUploadInnerError})
	s.AddUploadEvent(standin.UploadEvent{ID: "ev-internal", Outcome: standin.CodeUploadInternal})

	const secretText = "0078369f54-a3ce-4dc7-8a62-904555416f9000&<x>"
	rec, err := c.UploadLicense(t.Context(), "87b94795-0603-4e24-8ae5-69420d60e3c8", LicenseUpload{Text: secretText})
	if err != nil || rec.Type != UploadCharacters || rec.ResultCode != CodeUploadSuccess {
		t.Fatalf("%+v %v", rec, err)
	}
	long := strings.Repeat("L", MaxUploadCharacters+1)
	rec, err = c.UploadLicense(t.Context(), "ev-long", LicenseUpload{Text: long})
	if err != nil || rec.Type != UploadFile {
		t.Fatalf("%+v %v", rec, err)
	}
	file := []byte{0, 1, 2, 0xff}
	rec, err = c.UploadLicense(t.Context(), "ev-file", LicenseUpload{FileName: "license.dat", File: file})
	sum := sha256.Sum256(file)
	if err != nil || rec.Type != UploadFile || rec.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("%+v %v", rec, err)
	}
	ups := s.Uploads()
	if len(ups) != 3 || ups[0].Characters != secretText || ups[0].EventID != "87b94795-0603-4e24-8ae5-69420d60e3c8" ||
		string(ups[1].File) != long || ups[1].FileName != "license.lic" ||
		!bytes.Equal(ups[2].File, file) || ups[2].FileName != "license.dat" || ups[2].SHA256 != rec.SHA256 {
		t.Errorf("uploads %+v", ups)
	}
	if !s.Requests()[0].Verified {
		t.Error("not verified")
	}

	_, err = c.UploadLicense(t.Context(), "ev-denied", LicenseUpload{Text: "x"})
	wantAPIError(t, err, 200, CodeUploadDenied, false)
	_, err = c.UploadLicense(t.Context(), "ev-inner", LicenseUpload{Text: "x"})
	wantAPIError(t, err, 200, CodeUploadInnerError, true)
	_, err = c.UploadLicense(t.Context(), "ev-internal", LicenseUpload{Text: "x"})
	wantAPIError(t, err, 500, CodeUploadInternal, true)
	_, err = c.UploadLicense(t.Context(), "ev-empty", LicenseUpload{FileName: "a", File: []byte{}})
	wantAPIError(t, err, 200, CodeUploadBadFormat, false)

	for name, bad := range map[string]struct {
		event string
		lic   LicenseUpload
	}{
		"no event":       {"", LicenseUpload{Text: "x"}},
		"slash":          {"a/b", LicenseUpload{Text: "x"}},
		"long event":     {strings.Repeat("e", 65), LicenseUpload{Text: "x"}},
		"empty":          {"ev", LicenseUpload{}},
		"both":           {"ev", LicenseUpload{Text: "x", File: []byte("y"), FileName: "f"}},
		"file no name":   {"ev", LicenseUpload{File: []byte("y")}},
		"quote in name":  {"ev", LicenseUpload{File: []byte("y"), FileName: `a"b`}},
		"very long name": {"ev", LicenseUpload{File: []byte("y"), FileName: strings.Repeat("n", 1025)}},
	} {
		if _, err := c.UploadLicense(t.Context(), bad.event, bad.lic); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if l := log.String(); strings.Contains(l, secretText) || strings.Contains(l, testSK) {
		t.Errorf("License or SK logged: %s", l)
	}
}

func TestUploadLicenseBadSignature(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, func(cfg *Config) { cfg.AK = "UNKNOWN-AK" })
	_, err := c.UploadLicense(t.Context(), "ev", LicenseUpload{Text: "x"})
	wantAPIError(t, err, 401, standin.CodeAuthFailed, false)
}
