package openapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/openapi/standin"
)

// licenseClient serves a stand-in and returns a client on it, with its log.
func licenseClient(t *testing.T, cfg standin.Config) (*standin.Server, *Client, *syncBuffer) {
	t.Helper()
	s, srv := startStandin(t, cfg)
	var buf syncBuffer
	c := newClient(t, testLog(&buf), []string{srv.URL}, []*httptest.Server{srv}, nil)
	return s, c, &buf
}

// wantAPIError asserts err is an *APIError with status and code and the given
// temporariness.
func wantAPIError(t *testing.T, err error, status int, code string, temporary bool) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != status || ae.ResultCode != code || IsTemporary(err) != temporary {
		t.Fatalf("want APIError %d %s (temporary %v), got %v (temporary %v)", status, code, temporary, err, IsTemporary(err))
	}
}

func TestActivateLicense(t *testing.T) {
	s, c, log := licenseClient(t, standin.Config{})
	effect := time.Date(2024, 6, 3, 1, 2, 3, 0, time.UTC)
	act, err := c.ActivateLicense(t.Context(), standin.MockLicenseNew, effect)
	if err != nil {
		t.Fatal(err)
	}
	if act.ResultCode != CodeLicenseSuccess || act.Info == nil || act.Info.Status != LicenseAlive || act.Info.Amount != 2 ||
		act.Info.ProductID != standin.MockLicenseProduct || act.Info.OrderID != "MOCKLICENSE-1" ||
		!act.Info.ExpireTime.Equal(time.Date(2099, 12, 31, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("activation %+v %+v", act, act.Info)
	}
	if l, _ := s.LicenseCode(standin.MockLicenseNew); !l.Activated || !l.RealEffectTime.Equal(effect) {
		t.Errorf("stand-in recorded %+v", l)
	}
	rs := s.Requests()
	if len(rs) != 1 || string(rs[0].Body) != `{"license":"PLMOCKNEW","real_effect_time":"20240603010203"}` || !rs[0].Verified {
		t.Errorf("request %+v", rs)
	}

	_, err = c.ActivateLicense(t.Context(), standin.MockLicenseNew, time.Time{})
	wantAPIError(t, err, 200, CodeLicenseIllegalState, false)
	_, err = c.ActivateLicense(t.Context(), standin.MockLicenseNotReceived, time.Time{})
	wantAPIError(t, err, 200, CodeLicenseNotReceived, false)
	_, err = c.ActivateLicense(t.Context(), "PLNOPE", time.Time{})
	wantAPIError(t, err, 200, CodeLicenseNotExist, false)

	s.AddLicenseCode(standin.LicenseCode{Code: "PLOTHER", Owner: "someone-else"})
	_, err = c.ActivateLicense(t.Context(), "PLOTHER", time.Time{})
	wantAPIError(t, err, 403, CodeLicenseInternal, false)

	s.FailNext(1, http.StatusInternalServerError)
	_, err = c.ActivateLicense(t.Context(), "PLNOPE", time.Time{})
	wantAPIError(t, err, 500, standin.CodeInjected, true)

	for _, bad := range []string{"", strings.Repeat("x", 65)} {
		if _, err := c.ActivateLicense(t.Context(), bad, time.Time{}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if strings.Contains(log.String(), testSK) {
		t.Error("SK logged")
	}
}

func TestActivateLicenseBadSignature(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, func(cfg *Config) { cfg.SK = "not-the-SK" })
	_, err := c.ActivateLicense(t.Context(), standin.MockLicenseNew, time.Time{})
	wantAPIError(t, err, 401, standin.CodeAuthFailed, false)
}

func TestLicenseCodeQuery(t *testing.T) {
	s, c, _ := licenseClient(t, standin.Config{})
	info, err := c.QueryLicense(t.Context(), standin.MockLicenseActive, &HeartbeatInfo{ThirdPartyAccount: "myaccount1", IP: "192.168.1.51"})
	if err != nil {
		t.Fatal(err)
	}
	if info.LicenseCode != standin.MockLicenseActive || info.Status != LicenseAlive || info.Amount != 2 ||
		!info.ActivateTime.Equal(time.Date(2024, 6, 2, 8, 0, 0, 0, time.UTC)) || info.ExpireTime.IsZero() || len(info.Raw) == 0 {
		t.Errorf("info %+v", info)
	}
	if hb := s.LicenseHeartbeats(); len(hb) != 1 || hb[0].ThirdPartyAccount != "myaccount1" || hb[0].IP != "192.168.1.51" {
		t.Errorf("heartbeats %+v", hb)
	}
	for code, status := range map[string]string{standin.MockLicenseExpired: LicenseExpired, standin.MockLicenseReleased: LicenseReleased} {
		if info, err := c.QueryLicense(t.Context(), code, nil); err != nil || info.Status != status {
			t.Errorf("%s: %+v %v", code, info, err)
		}
	}
	_, err = c.QueryLicense(t.Context(), standin.MockLicenseNew, nil)
	wantAPIError(t, err, 200, CodeLicenseNotActivated, false)
	if _, err := c.QueryLicense(t.Context(), standin.MockLicenseActive, &HeartbeatInfo{}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty account: %v", err)
	}
}

// TestLicenseCodeAnswers: odd answers from a KooGallery the stand-in does
// not imitate.
func TestLicenseCodeAnswers(t *testing.T) {
	var body string
	var status int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T)
	}{
		{"activate without data", 200, `{"error_code":"92020000","error_msg":"success"}`, func(t *testing.T) {
			act, err := c.ActivateLicense(t.Context(), "PL1", time.Time{})
			if err != nil || act.Info != nil {
				t.Errorf("%+v %v", act, err)
			}
		}},
		{"activate with object info", 200, `{"error_code":"92020000","data":{"license_code_info":{"status":"ALIVE","amount":"3"}}}`, func(t *testing.T) {
			act, err := c.ActivateLicense(t.Context(), "PL1", time.Time{})
			if err != nil || act.Info == nil || act.Info.Amount != 3 {
				t.Errorf("%+v %v", act, err)
			}
		}},
		{"activate internal error", 200, `{"error_code":"92020001","error_msg":"internal error"}`, func(t *testing.T) {
			_, err := c.ActivateLicense(t.Context(), "PL1", time.Time{})
			wantAPIError(t, err, 200, CodeLicenseInternal, true)
		}},
		{"activate HTML", 200, `<html>`, func(t *testing.T) {
			_, err := c.ActivateLicense(t.Context(), "PL1", time.Time{})
			if !errors.Is(err, ErrMalformedAnswer) || !IsTemporary(err) {
				t.Errorf("%v", err)
			}
		}},
		{"query without data", 200, `{"error_code":"92020000"}`, func(t *testing.T) {
			_, err := c.QueryLicense(t.Context(), "PL1", nil)
			if !errors.Is(err, ErrUnexpectedAnswer) || IsTemporary(err) {
				t.Errorf("%v", err)
			}
		}},
		{"query about another code", 200, `{"error_code":"92020000","data":{"license_code":"PL2","status":"ALIVE"}}`, func(t *testing.T) {
			if _, err := c.QueryLicense(t.Context(), "PL1", nil); !errors.Is(err, ErrUnexpectedAnswer) {
				t.Errorf("%v", err)
			}
		}},
		{"query epoch activate_time", 200, `{"error_code":"92020000","data":{"status":"ALIVE","activate_time":1717315200000,"new_field":1}}`, func(t *testing.T) {
			info, err := c.QueryLicense(t.Context(), "PL1", nil)
			if err != nil || info.LicenseCode != "PL1" || !info.ActivateTime.Equal(time.UnixMilli(1717315200000)) {
				t.Errorf("%+v %v", info, err)
			}
		}},
		{"usage check_fail objects", 200, `{"error_code":"92020020","error_msg":"Invalid license code exists.","data":{"check_fail_list":[{"license":"PL9"}]}}`, func(t *testing.T) {
			res, err := c.ReportSoftwareUsage(t.Context(), []SoftwareUsage{{License: "PL9", Entries: []SoftwareUsageEntry{UsageClient("a")}}})
			wantAPIError(t, err, 200, CodeLicenseInvalidInBatch, false)
			if len(res.CheckFailed) != 1 || res.CheckFailed[0] != "PL9" {
				t.Errorf("%+v", res)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body = tc.status, tc.body
			tc.check(t)
		})
	}
}

func TestLicenseCodeUsageReport(t *testing.T) {
	s, c, _ := licenseClient(t, standin.Config{})
	res, err := c.ReportSoftwareUsage(t.Context(), []SoftwareUsage{
		{License: standin.MockLicenseActive, Entries: []SoftwareUsageEntry{UsageClient("account1"), UsageClient("account2")}},
		{License: standin.MockLicenseExpired, Entries: []SoftwareUsageEntry{UsageActiveClients(100)}},
	})
	if err != nil || res.ResultCode != CodeLicenseSuccess || len(res.CheckFailed) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	rs := s.LicenseUsageReports()
	if len(rs) != 2 || len(rs[0].Entries) != 2 || rs[0].Entries[1].ID != "account2" || *rs[1].Entries[0].ActiveNum != 100 {
		t.Errorf("reports %+v", rs)
	}
	if body := string(s.Requests()[0].Body); !strings.Contains(body, `"software_usage_Info":[{"id":"account1"},{"id":"account2"}]`) {
		t.Errorf("body %s", body)
	}

	res, err = c.ReportSoftwareUsage(t.Context(), []SoftwareUsage{
		{License: standin.MockLicenseNew, Entries: []SoftwareUsageEntry{UsageActiveClients(0)}},
		{License: standin.MockLicenseActive, Entries: []SoftwareUsageEntry{UsageActiveClients(0)}},
	})
	wantAPIError(t, err, 200, CodeLicenseInvalidInBatch, false)
	if len(res.CheckFailed) != 1 || res.CheckFailed[0] != standin.MockLicenseNew {
		t.Errorf("check fail %+v", res)
	}

	for _, bad := range [][]SoftwareUsage{
		nil,
		{{License: "PL1"}},
		{{License: "PL1", Entries: []SoftwareUsageEntry{{}}}},
		{{License: "PL1", Entries: []SoftwareUsageEntry{{ID: "a", ActiveNum: new(int)}}}},
		{{License: "PL1", Entries: []SoftwareUsageEntry{UsageActiveClients(-1)}}},
	} {
		if _, err := c.ReportSoftwareUsage(t.Context(), bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
