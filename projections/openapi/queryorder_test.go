package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/openapi/standin"
)

func utc(s string) time.Time {
	t, err := time.ParseInLocation("20060102150405", s, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

// TestQueryOrderMockOrders decodes each of the nine documented mock orders;
// the expectations are written out here, independently of the stand-in's
// table.
func TestQueryOrderMockOrders(t *testing.T) {
	s, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	const (
		cust   = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
		basic  = "6f1c2a9e-0b1d-4c33-9a51-5f0e2d8b1a01"
		pro    = "6f1c2a9e-0b1d-4c33-9a51-5f0e2d8b1a02"
		period = "OFFI000000000000000101"
	)
	tests := []struct {
		id, typ, mode, periodType string
		periodNum                 int
		created, expires          string
		product, sku              string
		trial                     bool
	}{
		{"MOCKPERIODYEARNEW", "NEW", "PERIOD", "year", 1, "20240601080000", "20250601080000", period, basic, false},
		{"MOCKONETIMENEW", "NEW", "ONE_TIME", "", 0, "20240601080000", "", "OFFI000000000000000102", basic, false},
		{"MOCKONDEMAND", "NEW", "ON_DEMAND", "", 0, "20240601080000", "", "OFFI000000000000000103", basic, false},
		{"MOCKONDEMANDPKG", "NEW", "ON_DEMAND_PKG", "month", 1, "20240601080000", "20240701080000", "OFFI000000000000000104", basic, false},
		{"MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD", "day", 7, "20240601080000", "20240608080000", period, basic, true},
		{"MOCKMONTYTRIALTOFORMAL", "TRIAL_TO_FORMAL", "PERIOD", "month", 1, "20240607080000", "20240708080000", period, basic, false},
		{"MOCKMONTYUNSUBSCRIBE", "UNSUBSCRIBE", "PERIOD", "month", 1, "20240610080000", "20240610080000", period, basic, false},
		{"MOCKMONTYRENEW", "RENEW", "PERIOD", "month", 1, "20240625080000", "20240801080000", period, basic, false},
		{"MOCKMONTYCHANGE", "CHANGE", "PERIOD", "month", 1, "20240615080000", "20240701080000", period, pro, false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			line := tc.id + "-000001"
			got, err := c.QueryOrder(t.Context(), tc.id, line)
			if err != nil {
				t.Fatal(err)
			}
			if got.OrderID != tc.id || got.OrderLineID != line || got.OrderType != tc.typ || got.ChargingMode != tc.mode ||
				got.PeriodType != tc.periodType || got.PeriodNumber != tc.periodNum || got.ProductID != tc.product ||
				got.SKUCode != tc.sku || got.CustomerID != cust || got.Trial != tc.trial {
				t.Errorf("got %+v", got)
			}
			if !got.CreateTime.Equal(utc(tc.created)) || got.CreateTime.Location() != time.UTC {
				t.Errorf("createTime %v, want %s UTC", got.CreateTime, tc.created)
			}
			if tc.expires == "" {
				if !got.ExpireTime.IsZero() {
					t.Errorf("expireTime %v, want none", got.ExpireTime)
				}
			} else if !got.ExpireTime.Equal(utc(tc.expires)) {
				t.Errorf("expireTime %v, want %s UTC", got.ExpireTime, tc.expires)
			}
			var raw map[string]any
			if err := json.Unmarshal(got.Raw, &raw); err != nil || raw["orderId"] != tc.id {
				t.Errorf("raw %s: %v", got.Raw, err)
			}
		})
	}
	if n := len(s.Requests()); n != len(tests) {
		t.Errorf("%d requests, want %d", n, len(tests))
	}
	for _, r := range s.Requests() {
		if !r.Verified || r.AK != testAK || r.Method != http.MethodGet || r.Path != "/api/mkp-openapi-public/global/v1/order/query" {
			t.Errorf("request %+v", r)
		}
	}
}

func TestQueryOrderWithoutLine(t *testing.T) {
	s, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	got, err := c.QueryOrder(t.Context(), "MOCKONETIMENEW", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.OrderLineID != "MOCKONETIMENEW-000001" || got.ChargingMode != "ONE_TIME" {
		t.Errorf("got %+v", got)
	}
	if q := s.Requests()[0].RawQuery; q != "orderId=MOCKONETIMENEW" {
		t.Errorf("query %q", q)
	}
}

// TestQueryOrderTolerant: unknown fields are ignored, scalars of the other
// JSON type and 17-digit times are read, fields found at line level.
func TestQueryOrderTolerant(t *testing.T) {
	o := standin.Order{
		OrderID: "CS2207261447AUY4H", OrderType: "NEW", CreateTime: "20220726144700123",
		OrderLine: []standin.OrderLine{
			{OrderLineID: "CS2207261447AUY4H-000002", ChargingMode: "ONE_TIME"},
			{
				OrderLineID: "CS2207261447AUY4H-000001", ChargingMode: "PERIOD", ExpireTime: "20230726144700",
				Extra: map[string]any{"periodNum": "3", "periodType": "month", "productId": "OFFI1", "skuCode": "sku-1", "newField": []int{1, 2}},
			},
		},
		Extra: map[string]any{"buyerInfo": map[string]any{"customerId": "cust-9", "whatever": true}, "somethingNew": map[string]any{"x": 1}},
	}
	_, srv := startStandin(t, standin.Config{Orders: map[string]standin.Order{o.OrderID: o}})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	got, err := c.QueryOrder(t.Context(), o.OrderID, "CS2207261447AUY4H-000001")
	if err != nil {
		t.Fatal(err)
	}
	if got.ChargingMode != "PERIOD" || got.PeriodNumber != 3 || got.PeriodType != "month" || got.ProductID != "OFFI1" ||
		got.SKUCode != "sku-1" || got.CustomerID != "cust-9" || !got.ExpireTime.Equal(utc("20230726144700")) ||
		!got.CreateTime.Equal(utc("20220726144700").Add(123*time.Millisecond)) {
		t.Errorf("got %+v", got)
	}
	if !strings.Contains(string(got.Raw), "somethingNew") {
		t.Errorf("raw lost unknown fields: %s", got.Raw)
	}
}

func TestQueryOrderUnknownOrder(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	for _, q := range [][2]string{{"NOSUCHORDER", ""}, {"MOCKONETIMENEW", "MOCKONETIMENEW-000002"}} {
		_, err := c.QueryOrder(t.Context(), q[0], q[1])
		var ae *APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusBadRequest || ae.ResultCode != standin.CodeInvalidParam || ae.Temporary() || IsTemporary(err) {
			t.Errorf("%v: err %v", q, err)
		}
		if errors.Is(err, ErrTransport) {
			t.Errorf("%v: an answer is not a transport failure", q)
		}
	}
}

func TestQueryOrderInvalidArguments(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	for _, q := range [][2]string{{"", "x"}, {strings.Repeat("A", 65), ""}, {"A", strings.Repeat("B", 65)}} {
		if _, err := c.QueryOrder(t.Context(), q[0], q[1]); !errors.Is(err, ErrInvalidRequest) || IsTemporary(err) {
			t.Errorf("%q: err %v", q, err)
		}
	}
}

func TestQueryOrderWrongSK(t *testing.T) {
	s, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, func(c *Config) { c.SK = "not-the-secret" })
	_, err := c.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001")
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized || ae.ResultCode != standin.CodeAuthFailed || ae.Temporary() {
		t.Fatalf("err %v", err)
	}
	if r := s.Requests()[0]; r.Verified || r.AuthError == "" {
		t.Errorf("recorded %+v", r)
	}
}

func TestQueryOrderStaleDate(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	stale := WithClock(func() time.Time { return time.Now().Add(-16 * time.Minute) })
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil, stale)
	_, err := c.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("err %v", err)
	}
	skewed := WithClock(func() time.Time { return time.Now().Add(-14 * time.Minute) })
	c = newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil, skewed)
	if _, err := c.QueryOrder(t.Context(), "MOCKPERIODYEARNEW", ""); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
}

// TestQueryOrderAnswersWithoutOrder: HTTP 200 without orderInfo is an
// APIError; a non-JSON 200 is a temporary one; an answer about another
// order is refused; a redirect is not followed.
func TestQueryOrderOddAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		header    map[string]string
		code      string
		temporary bool
		cause     error
	}{
		{"no orderInfo", 200, `{"resultCode":"MKT.0101","resultMsg":"bad"}`, nil, "MKT.0101", false, nil},
		{"null orderInfo", 200, `{"resultCode":"MKT.0000","resultMsg":"ok","orderInfo":null}`, nil, "MKT.0000", false, nil},
		{"internal error code", 200, `{"resultCode":"MKT.0999","resultMsg":"System internal error."}`, nil, "MKT.0999", true, nil},
		{"html", 200, `<html>proxy</html>`, nil, "", true, ErrMalformedAnswer},
		{"orderInfo not an object", 200, `{"resultCode":"MKT.0000","orderInfo":"x"}`, nil, "MKT.0000", true, ErrMalformedAnswer},
		{"other order", 200, `{"resultCode":"MKT.0000","orderInfo":{"orderId":"OTHER","orderType":"NEW"}}`, nil, "MKT.0000", false, ErrUnexpectedAnswer},
		{"redirect", 302, ``, map[string]string{"Location": "http://evil.example/"}, "", false, nil},
		{"throttled", 429, `{"error_code":"APIGW.0308","error_msg":"throttled"}`, nil, "APIGW.0308", true, nil},
		{"server error", 500, `{"resultCode":"MKT.0999"}`, nil, "MKT.0999", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
			_, err := c.QueryOrder(t.Context(), "WANTED", "")
			var ae *APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != tc.status || ae.ResultCode != tc.code || ae.Temporary() != tc.temporary ||
				IsTemporary(err) != tc.temporary || (tc.cause != nil && !errors.Is(err, tc.cause)) {
				t.Fatalf("err %v (%#v)", err, ae)
			}
			if string(ae.Raw) != tc.body {
				t.Errorf("raw %q", ae.Raw)
			}
		})
	}
}

func TestQueryOrderCancelled(t *testing.T) {
	_, srv := startStandin(t, standin.Config{})
	c := newClient(t, nil, []string{srv.URL}, []*httptest.Server{srv}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.QueryOrder(ctx, "MOCKPERIODYEARNEW", ""); !errors.Is(err, ErrTransport) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
