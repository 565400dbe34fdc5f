package standin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

const (
	ak = "AK-STANDIN-TEST"
	sk = "SK-STANDIN-TEST"
)

// get sends a GET signed with (signAK, signSK) at signing time at, and
// returns the status and the decoded body.
func get(t *testing.T, srv *httptest.Server, path, signAK, signSK string, at time.Time) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	if signSK != "" {
		if err := koogallery.SignAKSK(signAK, signSK, req, nil, at); err != nil {
			t.Fatal(err)
		}
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
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	return resp.StatusCode, m
}

func start(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func TestServesMockOrders(t *testing.T) {
	_, srv := start(t, Config{Credentials: map[string]string{ak: sk}})
	orders := MockOrders()
	if len(orders) != 9 {
		t.Fatalf("%d mock orders", len(orders))
	}
	for _, o := range orders {
		status, body := get(t, srv, PathQueryOrder+"?orderId="+o.OrderID+"&orderLineId="+o.OrderID+"-000001", ak, sk, time.Now())
		if status != 200 || body["resultCode"] != CodeSuccess {
			t.Fatalf("%s: %d %v", o.OrderID, status, body)
		}
		info := body["orderInfo"].(map[string]any)
		lines := info["orderLine"].([]any)
		if info["orderId"] != o.OrderID || info["orderType"] != o.OrderType || len(lines) != 1 ||
			lines[0].(map[string]any)["chargingMode"] != o.OrderLine[0].ChargingMode {
			t.Errorf("%s: %v", o.OrderID, info)
		}
	}
}

func TestAnswers(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	extra := Order{OrderID: "CUSTOM1", OrderType: "NEW", OrderLine: []OrderLine{{OrderLineID: "L1", ChargingMode: "PERIOD", Extra: map[string]any{"periodNum": "2"}}}, Extra: map[string]any{"x": 1}}
	s, srv := start(t, Config{
		Credentials: map[string]string{ak: sk},
		Orders:      map[string]Order{"CUSTOM1": extra, "MOCKONDEMAND": {OrderType: "CHANGE", OrderLine: []OrderLine{{OrderLineID: "MOCKONDEMAND-000001", ChargingMode: "ON_DEMAND"}}}},
		Clock:       func() time.Time { return now },
	})
	q := PathQueryOrder + "?orderId="
	for _, tc := range []struct {
		name     string
		path     string
		ak, sk   string
		at       time.Time
		status   int
		code     string
		codeKey  string
		verified bool
	}{
		{"configured order", q + "CUSTOM1", ak, sk, now, 200, CodeSuccess, "resultCode", true},
		{"configured replaces mock", q + "MOCKONDEMAND", ak, sk, now, 200, CodeSuccess, "resultCode", true},
		{"unknown order", q + "NOPE", ak, sk, now, 400, CodeInvalidParam, "resultCode", true},
		{"unknown line", q + "CUSTOM1&orderLineId=L2", ak, sk, now, 400, CodeInvalidParam, "resultCode", true},
		{"no orderId", PathQueryOrder, ak, sk, now, 400, CodeInvalidParam, "resultCode", true},
		{"wrong SK", q + "CUSTOM1", ak, "wrong", now, 401, CodeAuthFailed, "error_code", false},
		{"unknown AK", q + "CUSTOM1", "other", sk, now, 401, CodeAuthFailed, "error_code", false},
		{"unsigned", q + "CUSTOM1", "", "", now, 401, CodeAuthFailed, "error_code", false},
		{"stale", q + "CUSTOM1", ak, sk, now.Add(-16 * time.Minute), 401, CodeAuthFailed, "error_code", false},
		{"early but within skew", q + "CUSTOM1", ak, sk, now.Add(14 * time.Minute), 200, CodeSuccess, "resultCode", true},
		{"unknown API", "/api/nothing", ak, sk, now, 404, CodeAPINotFound, "error_code", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			status, body := get(t, srv, tc.path, tc.ak, tc.sk, tc.at)
			if status != tc.status || body[tc.codeKey] != tc.code {
				t.Fatalf("%d %v", status, body)
			}
			rs := s.Requests()
			if len(rs) != 1 || rs[0].Status != tc.status || rs[0].Verified != tc.verified || !rs[0].Time.Equal(now) {
				t.Errorf("recorded %+v", rs)
			}
		})
	}
	s.Reset()
	_, body := get(t, srv, q+"CUSTOM1", ak, sk, now)
	info := body["orderInfo"].(map[string]any)
	if info["x"] != 1.0 || info["orderLine"].([]any)[0].(map[string]any)["periodNum"] != "2" {
		t.Errorf("extra fields not merged: %v", info)
	}
	s.AddOrder(Order{OrderID: "ADDED", OrderType: "NEW", OrderLine: []OrderLine{{OrderLineID: "A1", ChargingMode: "ONE_TIME"}}})
	if status, _ := get(t, srv, q+"ADDED", ak, sk, now); status != 200 {
		t.Errorf("added order: %d", status)
	}
}

func TestFailNext(t *testing.T) {
	s, srv := start(t, Config{Credentials: map[string]string{ak: sk}})
	s.FailNext(2, 503)
	for i := range 3 {
		status, body := get(t, srv, PathQueryOrder+"?orderId=MOCKONDEMAND", ak, sk, time.Now())
		want := 503
		if i == 2 {
			want = 200
		}
		if status != want || (want == 503 && body["error_code"] != CodeInjected) {
			t.Errorf("call %d: %d %v", i, status, body)
		}
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("%d recorded", n)
	}
}

// TestMockOrdersAreCopies: changing a returned order does not change what
// the stand-in serves.
func TestMockOrdersAreCopies(t *testing.T) {
	s := New(Config{})
	a := MockOrders()
	a[0].OrderLine[0].ChargingMode = "CHANGED"
	o, _ := s.order("MOCKPERIODYEARNEW")
	o.OrderLine[0].ProductInfo[0].SKUCode = "CHANGED"
	o2, _ := s.order("MOCKPERIODYEARNEW")
	if o2.OrderLine[0].ChargingMode != "PERIOD" || o2.OrderLine[0].ProductInfo[0].SKUCode != MockSKUBasic {
		t.Errorf("shared state: %+v", o2)
	}
}
