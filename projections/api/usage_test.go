package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/internal/testenv"
	"github.com/gallerist/gallerist/projections/usagepush"
)

var _ Usage = (*usagepush.Service)(nil)

// newUsage builds the usage service on its own embedded nats-server (the
// shared fixture's log stays as the other tests expect it).
func newUsage(t *testing.T, now func() time.Time) *usagepush.Service {
	t.Helper()
	env := testenv.Instances(t, testLogger())
	svc, err := usagepush.NewService(env.Store, usagepush.ServiceConfig{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// usageNow is the usage service's clock in these tests.
var usageNow = time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)

func usageRecord(inst, key string, value any) map[string]any {
	return map[string]any{"instanceId": inst, "recordKey": key, "recordTime": "20261127T100500Z",
		"beginTime": "20261127T090000Z", "endTime": "2026-11-27T10:00:00Z", "usageValue": value}
}

func (c *client) postUsage(records []map[string]any, want int, v any) answer {
	c.t.Helper()
	b, err := json.Marshal(map[string]any{"records": records})
	if err != nil {
		c.t.Fatal(err)
	}
	a := c.do(http.MethodPost, "/v1/usage", token, b)
	if a.status != want {
		c.t.Fatalf("POST /v1/usage: %d, want %d: %s", a.status, want, a.body)
	}
	if v != nil {
		if err := json.Unmarshal(a.body, v); err != nil {
			c.t.Fatal(err)
		}
	}
	return a
}

func TestUsageReportAndList(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{Usage: newUsage(t, func() time.Time { return usageNow })}))

	recs := []map[string]any{usageRecord("ppu-1", "h09", "99"), usageRecord("ppu-2", "h09", 0.25), usageRecord("ppu-1", "h09-disk", "007.50")}
	var res UsageReportResult
	c.postUsage(recs, http.StatusOK, &res)
	if res.Recorded != 3 || res.Duplicates != 0 || res.Conflicts != 0 || len(res.Records) != 3 {
		t.Fatalf("report: %+v", res)
	}
	for i, r := range res.Records {
		if r.Index != i || r.Outcome != "recorded" || r.Status != "pending" || r.MeteringSN != usage.MeteringSN(r.InstanceID, r.RecordKey) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	// The same report again: idempotent; a changed value under a known key: conflict.
	var again UsageReportResult
	c.postUsage(append(recs, usageRecord("ppu-1", "h09", "100")), http.StatusOK, &again)
	if again.Recorded != 0 || again.Duplicates != 3 || again.Conflicts != 1 || again.Records[0].MeteringSN != res.Records[0].MeteringSN {
		t.Fatalf("re-report: %+v", again)
	}

	var list UsageList
	a := c.get("/v1/usage?instanceId=ppu-1", http.StatusOK, &list)
	if list.Total != 2 || list.Pending != 2 || len(list.Records) != 2 || list.ConsistentTo == 0 ||
		a.header.Get(ConsistencyHeader) != fmt.Sprint(list.ConsistentTo) {
		t.Fatalf("list: %+v", list)
	}
	if r := list.Records[1]; r.RecordKey != "h09-disk" || r.UsageValue != "7.5" || r.Status != "pending" || r.Billing != "hourly" ||
		!r.EndTime.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("entry: %+v", r)
	}
	if list.Records[0].UsageValue != "99" {
		t.Fatalf("value %q, want the first report's 99", list.Records[0].UsageValue)
	}
	c.get("/v1/usage?instanceId=ppu-1&status=pushed", http.StatusOK, &list)
	if len(list.Records) != 0 || list.Total != 2 {
		t.Fatalf("pushed: %+v", list)
	}
	c.get("/v1/usage?instanceId=ppu-1&limit=1", http.StatusOK, &list)
	if len(list.Records) != 1 || !list.Truncated {
		t.Fatalf("limit: %+v", list)
	}
	c.get("/v1/usage?instanceId=nobody", http.StatusOK, &list)
	if list.Total != 0 || len(list.Records) != 0 || list.ConsistentTo != 0 {
		t.Fatalf("unknown instance: %+v", list)
	}
	c.badRequest("/v1/usage", "instanceId")
	c.badRequest("/v1/usage?instanceId=ppu-1&status=lost", "status")
}

func TestUsageReportValidation(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{Usage: newUsage(t, func() time.Time { return usageNow })}))
	ok := usageRecord("ppu-1", "k", "1")
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		for i := 0; i < len(kv); i += 2 {
			if k := kv[i].(string); kv[i+1] == nil {
				delete(m, k)
			} else {
				m[k] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name    string
		records []map[string]any
		field   string
		msg     string
	}{
		{"float notation", []map[string]any{ok, with("usageValue", "1e3")}, "records[1].usageValue", "decimal"},
		{"five decimals", []map[string]any{with("usageValue", 0.00001)}, "records[0].usageValue", "decimal"},
		{"negative", []map[string]any{with("usageValue", -1)}, "records[0].usageValue", "positive"},
		{"21 days", []map[string]any{with("beginTime", "20261105T000000Z", "endTime", "20261105T010000Z")}, "records[0].beginTime", "21 days"},
		{"hourly deadline", []map[string]any{ok, ok, with("beginTime", "20261127T070000Z", "endTime", "20261127T080000Z", "recordKey", "k2")}, "records[2].endTime", "deadline"},
		{"no key", []map[string]any{with("recordKey", nil)}, "records[0].recordKey", "required"},
		{"time format", []map[string]any{with("recordTime", "2026/11/27")}, "records[0].recordTime", "yyyyMMdd"},
		{"unknown member", []map[string]any{with("meteringSn", "mine")}, "records[0].meteringSn", "unknown"},
		{"not a string", []map[string]any{with("instanceId", 7)}, "records[0].instanceId", "string"},
		{"empty", []map[string]any{}, "records", "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e ErrorBody
			c.postUsage(tc.records, http.StatusBadRequest, &e)
			if e.Field != tc.field || !strings.Contains(e.Error, tc.msg) {
				t.Fatalf("error %+v, want one on %s mentioning %q", e, tc.field, tc.msg)
			}
		})
	}
	many := make([]map[string]any, 1001)
	for i := range many {
		many[i] = usageRecord("ppu-1", fmt.Sprint(i), "1")
	}
	var e ErrorBody
	c.postUsage(many, http.StatusBadRequest, &e)
	if e.Field != "records" || !strings.Contains(e.Error, "1000") {
		t.Fatalf("1001 records: %+v", e)
	}
	// Nothing of the refused reports was recorded.
	var list UsageList
	c.get("/v1/usage?instanceId=ppu-1", http.StatusOK, &list)
	if list.Total != 0 {
		t.Fatalf("refused reports recorded %d records", list.Total)
	}
	if a := c.do(http.MethodPost, "/v1/usage", token, []byte(`{"records":[],"x":1}`)); a.status != http.StatusBadRequest {
		t.Fatalf("unknown top-level member: %d", a.status)
	}
}

func TestUsageUnavailable(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{}))
	c.postUsage([]map[string]any{usageRecord("ppu-1", "k", "1")}, http.StatusServiceUnavailable, nil)
	c.get("/v1/usage?instanceId=ppu-1", http.StatusServiceUnavailable, nil)
	if a := c.do(http.MethodPost, "/v1/usage", "", []byte(`{}`)); a.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", a.status)
	}
}
