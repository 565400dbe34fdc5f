package standin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// postSigned sends a POST with body and content type ct, signed with (ak, sk) at
// at, and returns the status and the decoded body.
func postSigned(t *testing.T, srv *httptest.Server, method, path, ct string, body []byte, signAK, signSK string, at time.Time) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if err := koogallery.SignAKSK(signAK, signSK, req, body, at); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return resp.StatusCode, m
}

const licenseJSONCT = "application/json;charset=UTF-8"

func TestActivateLicenseCode(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s, srv := start(t, Config{Credentials: map[string]string{ak: sk, "AK2": "SK2"}, Clock: func() time.Time { return now }})
	s.AddLicenseCode(LicenseCode{Code: "PLOWNED", Owner: "AK2"})
	s.AddLicenseCode(LicenseCode{Code: "PLLATE", OrderTime: now})
	for _, tc := range []struct {
		name   string
		method string
		ct     string
		body   string
		signSK string
		status int
		code   string
	}{
		{"success", "POST", licenseJSONCT, `{"license":"PLMOCKNEW","real_effect_time":"20250102030405"}`, sk, 200, CodeLicenseSuccess},
		{"twice", "POST", licenseJSONCT, `{"license":"PLMOCKNEW"}`, sk, 200, CodeLicenseIllegalState},
		{"already active", "POST", licenseJSONCT, `{"license":"PLMOCKACTIVE"}`, sk, 200, CodeLicenseIllegalState},
		{"released", "POST", licenseJSONCT, `{"license":"PLMOCKRELEASED"}`, sk, 200, CodeLicenseIllegalState},
		{"not received", "POST", licenseJSONCT, `{"license":"PLMOCKNOTRECEIVED"}`, sk, 200, CodeLicenseNotReceived},
		{"unknown", "POST", licenseJSONCT, `{"license":"PLNOPE"}`, sk, 200, CodeLicenseNotExist},
		{"other owner", "POST", licenseJSONCT, `{"license":"PLOWNED"}`, sk, 403, CodeLicenseUnauthorized},
		{"effect before order", "POST", licenseJSONCT, `{"license":"PLLATE","real_effect_time":"20250102030404"}`, sk, 200, CodeLicenseInvalidParam},
		{"bad effect time", "POST", licenseJSONCT, `{"license":"PLLATE","real_effect_time":"2025-01-02"}`, sk, 400, CodeReqParamInvalid},
		{"no license", "POST", licenseJSONCT, `{}`, sk, 400, CodeReqParamInvalid},
		{"long license", "POST", licenseJSONCT, `{"license":"` + string(bytes.Repeat([]byte("x"), 65)) + `"}`, sk, 400, CodeReqParamInvalid},
		{"wrong case", "POST", licenseJSONCT, `{"License":"PLLATE"}`, sk, 400, CodeReqParamInvalid},
		{"number", "POST", licenseJSONCT, `{"license":12}`, sk, 400, CodeReqNotReadable},
		{"not JSON", "POST", licenseJSONCT, `license=PLLATE`, sk, 400, CodeReqNotReadable},
		{"form content type", "POST", "application/x-www-form-urlencoded", `{"license":"PLLATE"}`, sk, 415, CodeContentTypeNotSupported},
		{"GET", "GET", licenseJSONCT, ``, sk, 405, CodeMethodNotSupported},
		{"bad signature", "POST", licenseJSONCT, `{"license":"PLLATE"}`, "wrong", 401, CodeAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postSigned(t, srv, tc.method, PathLicenseActivate, tc.ct, []byte(tc.body), ak, tc.signSK, now)
			code, _ := body["error_code"].(string)
			if status != tc.status || code != tc.code {
				t.Fatalf("%d %v", status, body)
			}
			if code == CodeLicenseSuccess {
				data := body["data"].(map[string]any)
				var info map[string]any
				if err := json.Unmarshal([]byte(data["license_code_info"].(string)), &info); err != nil {
					t.Fatal(err)
				}
				if info["status"] != LicenseAlive || info["expire_time"] != "20991231160000" || info["product_id"] != MockLicenseProduct ||
					info["amount"] != 2.0 || info["order_id"] != "MOCKLICENSE-1" {
					t.Errorf("license_code_info %v", info)
				}
			}
		})
	}
	l, _ := s.LicenseCode(MockLicenseNew)
	if !l.Activated || !l.ActivateTime.Equal(now) || !l.RealEffectTime.Equal(now) {
		t.Errorf("activation not recorded: %+v", l)
	}
	if l, _ := s.LicenseCode("PLLATE"); l.Activated {
		t.Errorf("refused activation recorded: %+v", l)
	}
}

func TestLicenseCodeHeartbeat(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s, srv := start(t, Config{Credentials: map[string]string{ak: sk}, Clock: func() time.Time { return now }})
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		state      string
	}{
		{"alive", `{"license":"PLMOCKACTIVE","heartbeatInfo":{"thirdPartyAccount":"myaccount1","ip":"192.168.1.51"}}`, 200, CodeLicenseSuccess, LicenseAlive},
		{"no heartbeatInfo", `{"license":"PLMOCKACTIVE"}`, 200, CodeLicenseSuccess, LicenseAlive},
		{"expired", `{"license":"PLMOCKEXPIRED"}`, 200, CodeLicenseSuccess, LicenseExpired},
		{"released", `{"license":"PLMOCKRELEASED"}`, 200, CodeLicenseSuccess, LicenseReleased},
		{"not activated", `{"license":"PLMOCKNEW"}`, 200, CodeLicenseNotActivated, ""},
		{"unknown", `{"license":"PLNOPE"}`, 200, CodeLicenseNotExist, ""},
		{"no account", `{"license":"PLMOCKACTIVE","heartbeatInfo":{"ip":"1.2.3.4"}}`, 400, CodeReqParamInvalid, ""},
		{"heartbeatInfo not an object", `{"license":"PLMOCKACTIVE","heartbeatInfo":"x"}`, 400, CodeReqNotReadable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postSigned(t, srv, "POST", PathLicenseHeartbeat, licenseJSONCT, []byte(tc.body), ak, sk, now)
			if status != tc.status || body["error_code"] != tc.code {
				t.Fatalf("%d %v", status, body)
			}
			if tc.state != "" {
				data := body["data"].(map[string]any)
				if data["status"] != tc.state || data["activate_time"] != "20240602080000" || data["license_code"] == "" {
					t.Errorf("data %v", data)
				}
			}
		})
	}
	hbs := s.LicenseHeartbeats()
	if len(hbs) != 4 || hbs[0].ThirdPartyAccount != "myaccount1" || hbs[0].IP != "192.168.1.51" || hbs[0].AK != ak || hbs[2].Status != LicenseExpired {
		t.Errorf("heartbeats %+v", hbs)
	}
}

func TestLicenseCodeUsage(t *testing.T) {
	s, srv := start(t, Config{Credentials: map[string]string{ak: sk}})
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		failed     []any
	}{
		{"id", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_Info":[{"id":"account1"}]}]}`, 200, CodeLicenseSuccess, []any{}},
		{"active_num", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_Info":[{"active_num":100}]}]}`, 200, CodeLicenseSuccess, []any{}},
		{"invalid code in batch", `{"usage_info":[{"license":"PLMOCKNEW","software_usage_Info":[{"id":"a"}]},{"license":"PLMOCKEXPIRED","software_usage_Info":[{"id":"b"}]}]}`, 200, CodeLicenseInvalidInBatch, []any{"PLMOCKNEW"}},
		{"both", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_Info":[{"id":"a","active_num":1}]}]}`, 400, CodeReqParamInvalid, nil},
		{"neither", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_Info":[{}]}]}`, 400, CodeReqParamInvalid, nil},
		{"lower-case Info", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_info":[{"id":"a"}]}]}`, 400, CodeReqParamInvalid, nil},
		{"empty", `{"usage_info":[]}`, 400, CodeReqParamInvalid, nil},
		{"fraction", `{"usage_info":[{"license":"PLMOCKACTIVE","software_usage_Info":[{"active_num":1.5}]}]}`, 400, CodeReqNotReadable, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postSigned(t, srv, "POST", PathLicenseUsage, licenseJSONCT, []byte(tc.body), ak, sk, time.Now())
			if status != tc.status || body["error_code"] != tc.code {
				t.Fatalf("%d %v", status, body)
			}
			if tc.failed != nil {
				data, _ := body["data"].(map[string]any)
				if got, _ := json.Marshal(data["check_fail_licenses"]); string(got) != string(mustJSON(json.Marshal(tc.failed))) {
					t.Errorf("check_fail_licenses %s", got)
				}
			}
		})
	}
	rs := s.LicenseUsageReports()
	if len(rs) != 3 || rs[0].Entries[0].ID != "account1" || *rs[1].Entries[0].ActiveNum != 100 || rs[2].License != MockLicenseExpired {
		t.Errorf("reports %+v", rs)
	}
}

func mustJSON(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
