package openapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/openapi/standin"
)

var usageKey = []byte("vendor-key-for-usage-push-tests")

// startUsage serves the gateway with the usage push in front, over TLS.
func startUsage(t *testing.T) (*standin.Server, *standin.Usage, *httptest.Server) {
	t.Helper()
	gw := standin.New(standin.Config{Credentials: map[string]string{testAK: testSK}})
	u := standin.NewUsage(gw, standin.UsageConfig{Key: usageKey})
	srv := httptest.NewTLSServer(u.Handler())
	t.Cleanup(srv.Close)
	return gw, u, srv
}

func usageRecords(t *testing.T, n int) []usage.Record {
	t.Helper()
	end := time.Now().UTC().Truncate(time.Hour)
	out := make([]usage.Record, n)
	for i := range out {
		r, err := usage.Parse(usage.Input{InstanceID: "ppu-1", RecordKey: fmt.Sprint("k", i), RecordTime: usage.FormatTime(end),
			BeginTime: usage.FormatTime(end.Add(-time.Hour)), EndTime: usage.FormatTime(end), UsageValue: fmt.Sprint(i+1, ".5"),
			RelatePkgInstance: map[bool]string{true: "pkg-1"}[i == 0]}, usage.DefaultRules(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

func TestUsageBodyIsSortedAndExact(t *testing.T) {
	recs := usageRecords(t, 2)
	b, err := UsageBody(recs, false)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	order := []string{`"begin_time"`, `"end_time"`, `"instance_id"`, `"metering_sn"`, `"record_time"`, `"relate_pkg_instance"`, `"usage_value":"1.5"`}
	last := -1
	for _, k := range order {
		i := strings.Index(s, k)
		if i <= last {
			t.Fatalf("%s out of order in %s", k, s)
		}
		last = i
	}
	if !strings.HasPrefix(s, `{"usage_records":[{`) || strings.HasSuffix(s, "\n") || strings.Count(s, "relate_pkg_instance") != 1 {
		t.Fatalf("body %s", s)
	}
	n, _ := UsageBody(recs, true)
	if !strings.Contains(string(n), `"usage_value":1.5}`) || !strings.Contains(string(n), `"usage_value":2.5}`) {
		t.Fatalf("numeric body %s", n)
	}
}

func TestPushUsageSignedAndVerified(t *testing.T) {
	gw, u, srv := startUsage(t)
	var buf syncBuffer
	c := newClient(t, testLog(&buf), []string{srv.URL}, []*httptest.Server{srv}, nil)
	recs := usageRecords(t, 3)
	ans, err := c.PushUsage(context.Background(), usageKey, recs, UsageOptions{})
	if err != nil || ans.Code != UsageCodeSuccess || len(ans.Records) != 0 {
		t.Fatalf("push: %+v %v", ans, err)
	}
	p := u.Pushes()
	if len(p) != 1 || !p[0].Verified || len(p[0].Records) != 3 || p[0].Records[1].MeteringSN != recs[1].MeteringSN {
		t.Fatalf("stand-in saw %+v", p)
	}
	req := gw.Requests()[0]
	if req.Header.Get("Authorization") != "" || req.Header.Get(koogallery.UsageSignatureHeader) == "" || req.Path != PathUsagePush {
		t.Fatalf("request headers %v", req.Header)
	}
	// The signature covers the exact body sent.
	ts, nonce := req.Header.Get(koogallery.UsageTSHeader), req.Header.Get(koogallery.UsageNonceHeader)
	if koogallery.VerifyUsagePush(usageKey, ts, nonce, req.Body, req.Header.Get(koogallery.UsageSignatureHeader)) != nil {
		t.Fatal("signature does not verify over the recorded body")
	}
	want, _ := UsageBody(recs, false)
	if string(req.Body) != string(want) {
		t.Fatalf("body %s, want %s", req.Body, want)
	}

	// The same records again: KooGallery de-duplicates on metering_sn (005).
	ans, err = c.PushUsage(context.Background(), usageKey, recs[:2], UsageOptions{NumericValue: true})
	if err != nil || len(ans.Records) != 2 || !ans.Records[0].Delivered() || ans.Records[0].MeteringSN != recs[0].MeteringSN {
		t.Fatalf("re-push: %+v %v", ans, err)
	}

	// A wrong key: MKT.0102, neither temporary nor a refusal of the records.
	_, err = c.PushUsage(context.Background(), []byte("wrong"), recs, UsageOptions{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.ResultCode != UsageCodeInvalidSign || ae.HTTPStatus != http.StatusBadRequest || IsTemporary(err) || UsageRefusesRecords(err) {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(buf.String(), string(usageKey)) {
		t.Fatal("the key was logged")
	}
}

func TestPushUsageErrors(t *testing.T) {
	_, u, srv := startUsage(t)
	c := newClient(t, testLog(&syncBuffer{}), []string{srv.URL}, []*httptest.Server{srv}, nil)
	recs := usageRecords(t, 2)
	for name, call := range map[string]func() error{
		"no key": func() error { _, err := c.PushUsage(context.Background(), nil, recs, UsageOptions{}); return err },
		"none":   func() error { _, err := c.PushUsage(context.Background(), usageKey, nil, UsageOptions{}); return err },
		"1001": func() error {
			_, err := c.PushUsage(context.Background(), usageKey, make([]usage.Record, 1001), UsageOptions{})
			return err
		},
		"no sn": func() error {
			r := recs[0]
			r.MeteringSN = ""
			_, err := c.PushUsage(context.Background(), usageKey, []usage.Record{r}, UsageOptions{})
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
		}
	}
	if len(u.Pushes()) != 0 {
		t.Fatal("an invalid push was sent")
	}
	u.FailNextPush(1, http.StatusInternalServerError, UsageCodeInternal, "System internal error.")
	u.FailNextPush(1, http.StatusInternalServerError, UsageCodeNoInstance, "Instance ID not found.")
	_, err := c.PushUsage(context.Background(), usageKey, recs, UsageOptions{})
	if !IsTemporary(err) || UsageRefusesRecords(err) {
		t.Fatalf("MKT.0999: %v", err)
	}
	ans, err := c.PushUsage(context.Background(), usageKey, recs, UsageOptions{})
	if !UsageRefusesRecords(err) || ans.Code != UsageCodeNoInstance {
		t.Fatalf("MKT.9001: %+v %v", ans, err)
	}
	u.FailRecord(recs[1].MeteringSN, standin.RecordExpired, "record time expired")
	ans, err = c.PushUsage(context.Background(), usageKey, recs, UsageOptions{})
	if err != nil || len(ans.Records) != 1 || ans.Records[0] != (RecordError{MeteringSN: recs[1].MeteringSN, Code: "007", Message: "record time expired"}) || ans.Records[0].Delivered() {
		t.Fatalf("record-level: %+v %v", ans, err)
	}
}

func TestRecordErrorsTolerant(t *testing.T) {
	for _, body := range []string{
		`{"error_code":"MKT.0000","failed_records":[{"metering_sn":"a","error_code":"003","error_msg":"bad"}]}`,
		`{"error_code":"MKT.9002","data":{"records":[{"meteringSn":"a","code":3,"message":"bad"}]}}`,
		`{"errorCode":"MKT.0000","result":[{"sn":"a","result_code":"003","msg":"bad"},{"no":"sn"}]}`,
	} {
		top, ok := parseObject([]byte(body))
		if !ok {
			t.Fatal(body)
		}
		got := recordErrors(top)
		if len(got) != 1 || got[0].MeteringSN != "a" || strings.TrimLeft(got[0].Code, "0") != "3" || got[0].Message != "bad" {
			t.Errorf("%s: %+v", body, got)
		}
	}
	if got := recordErrors(object{}); got != nil {
		t.Fatalf("empty: %+v", got)
	}
}
