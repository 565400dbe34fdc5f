package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

var usageTestKey = []byte("usage-key")

type usageRig struct {
	gw  *Server
	u   *Usage
	url string
	now time.Time
}

func newUsageRig(t *testing.T) *usageRig {
	now := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	gw := New(Config{Clock: func() time.Time { return now }})
	u := NewUsage(gw, UsageConfig{Key: usageTestKey, Instances: map[string]bool{"ppu-1": true}})
	srv := httptest.NewServer(u.Handler())
	t.Cleanup(srv.Close)
	return &usageRig{gw: gw, u: u, url: srv.URL + PathUsagePush, now: now}
}

// post sends body signed with key at ts (Unix ms) and nonce.
func (r *usageRig) post(t *testing.T, key []byte, ts int64, nonce string, body string) (int, usageAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	tss := strconv.FormatInt(ts, 10)
	req.Header.Set(koogallery.UsageTSHeader, tss)
	req.Header.Set(koogallery.UsageNonceHeader, nonce)
	req.Header.Set(koogallery.UsageSignatureHeader, koogallery.UsagePushSignature(key, tss, nonce, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a usageAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, a
}

func item(inst, sn, begin, end, value string) string {
	return fmt.Sprintf(`{"begin_time":%q,"end_time":%q,"instance_id":%q,"metering_sn":%q,"record_time":%q,"usage_value":%s}`,
		begin, end, inst, sn, end, value)
}

func body(items ...string) string { return `{"usage_records":[` + strings.Join(items, ",") + `]}` }

func TestUsagePushAnswers(t *testing.T) {
	r := newUsageRig(t)
	ms := r.now.UnixMilli()
	good := item("ppu-1", "sn-1", "20261127T090000Z", "20261127T100000Z", `"99"`)
	n := 0
	nonce := func() string { n++; return fmt.Sprint("nonce-", n) }

	if st, a := r.post(t, []byte("other"), ms, nonce(), body(good)); st != http.StatusBadRequest || a.ErrorCode != UsageInvalidSign {
		t.Fatalf("wrong key: %d %+v", st, a)
	}
	if st, a := r.post(t, usageTestKey, ms-16*60*1000, nonce(), body(good)); st != http.StatusBadRequest || a.ErrorCode != UsageInvalidSign {
		t.Fatalf("stale ts: %d %+v", st, a)
	}
	if st, a := r.post(t, usageTestKey, ms, "once", body(good)); st != http.StatusOK || a.ErrorCode != UsageSuccess || len(a.FailedRecords) != 0 {
		t.Fatalf("good: %d %+v", st, a)
	}
	if st, a := r.post(t, usageTestKey, ms, "once", body(good)); st != http.StatusBadRequest || a.ErrorCode != UsageInvalidSign {
		t.Fatalf("replayed nonce: %d %+v", st, a)
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = item("ppu-1", fmt.Sprint("m", i), "20261127T090000Z", "20261127T100000Z", `"1"`)
	}
	if _, a := r.post(t, usageTestKey, ms, nonce(), body(many...)); a.ErrorCode != UsageTooMany {
		t.Fatalf("1001 records: %+v", a)
	}
	if _, a := r.post(t, usageTestKey, ms, nonce(), body(item("ppu-1", "old", "20261105T000000Z", "20261105T010000Z", `"1"`))); a.ErrorCode != UsageTooOld {
		t.Fatalf("22 days: %+v", a)
	}
	if _, a := r.post(t, usageTestKey, ms, nonce(), `{"records":[]}`); a.ErrorCode != UsageInvalidParam {
		t.Fatalf("not a usage push: %+v", a)
	}

	r.u.FailRecord("sn-6", RecordDelisted, "the instance's product has been delisted")
	st, a := r.post(t, usageTestKey, ms, nonce(), body(
		good, // 005: accepted before
		item("ppu-2", "sn-2", "20261127T090000Z", "20261127T100000Z", `"1"`),       // 001
		item("ppu-1", "sn-3", "2026-11-27 09:00", "20261127T100000Z", `"1"`),       // 002
		item("ppu-1", "sn-4", "20261127T090000Z", "20261127T100000Z", `"1.00001"`), // 003
		item("ppu-1", "", "20261127T090000Z", "20261127T100000Z", `"1"`),           // 004
		item("ppu-1", "sn-6", "20261127T090000Z", "20261127T100000Z", `"1"`),       // injected 006
		item("ppu-1", "sn-7", "20261127T100000Z", "20261127T090000Z", `"1"`),       // 011
		item("ppu-1", "sn-8", "20261127T090000Z", "20261127T100000Z", `0.25`),      // accepted (a number)
		item("ppu-1", "sn-9", "20261127T090000Z", "20261127T100000Z", `"0.0000"`),  // 003
	))
	if st != http.StatusOK || a.ErrorCode != UsageSuccess {
		t.Fatalf("mixed: %d %+v", st, a)
	}
	var codes []string
	for _, f := range a.FailedRecords {
		codes = append(codes, f.MeteringSN+":"+f.ErrorCode)
	}
	if got := strings.Join(codes, " "); got != "sn-1:005 sn-2:001 sn-3:002 sn-4:003 :004 sn-6:006 sn-7:011 sn-9:003" {
		t.Fatalf("record errors %s", got)
	}
	if acc := r.u.Accepted(); len(acc) != 2 || acc["sn-8"].MeteringSN != "sn-8" {
		t.Fatalf("accepted %v", acc)
	}

	r.u.FailNextPush(1, http.StatusInternalServerError, UsageInternal, "System internal error.")
	if st, a := r.post(t, usageTestKey, ms, nonce(), body(item("ppu-1", "sn-10", "20261127T090000Z", "20261127T100000Z", `"1"`))); st != 500 || a.ErrorCode != UsageInternal {
		t.Fatalf("injected: %d %+v", st, a)
	}
	if _, ok := r.u.Accepted()["sn-10"]; ok {
		t.Fatal("a failed push accepted its record")
	}
	pushes := r.u.Pushes()
	if len(pushes) != 9 || pushes[0].Verified || !pushes[2].Verified || len(r.gw.Requests()) != 9 {
		t.Fatalf("%d pushes, %d requests", len(pushes), len(r.gw.Requests()))
	}
	// Other paths go to the gateway (AK/SK).
	resp, err := http.Post(strings.TrimSuffix(r.url, PathUsagePush)+PathQueryOrder, "application/json", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("gateway path: %d", resp.StatusCode)
	}
}
