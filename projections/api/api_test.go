package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/views"
)

func TestAuth(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	project(t, st)
	c := newClient(t, newServer(t, st, nil, Config{}))

	protected := []struct{ method, path string }{
		{http.MethodGet, "/v1/instances"},
		{http.MethodGet, "/v1/instances.csv"},
		{http.MethodGet, "/v1/instances/i01"},
		{http.MethodGet, "/v1/stats?from=2026-03-02&to=2026-03-05"},
		{http.MethodGet, "/v1/effects/parked"},
		{http.MethodPost, "/v1/effects/redrive"},
		{http.MethodGet, "/v1/no-such-route"}, // unknown paths reveal nothing without a token
	}
	for _, r := range protected {
		for _, tc := range []struct{ name, header string }{
			{"none", ""},
			{"wrong token", "Bearer wrong-token-0123456789abcdef"},
			{"a prefix of the token", "Bearer " + token[:len(token)-1]},
			{"other scheme", "Basic " + token},
			{"no token", "Bearer "},
			{"token without scheme", token},
		} {
			req, _ := http.NewRequest(r.method, c.url+r.path, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e ErrorBody
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || err != nil || e.Error == "" || e.Field != "Authorization" {
				t.Errorf("%s %s with %s: %d %+v (%v), want 401 naming Authorization", r.method, r.path, tc.name, resp.StatusCode, e, err)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s: WWW-Authenticate %q", r.method, r.path, tc.name, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	// Right tokens: both rotated tokens work, the scheme in any case.
	for _, h := range []string{"Bearer " + token, "Bearer " + otherToken, "bearer " + token, "BEARER " + otherToken} {
		req, _ := http.NewRequest(http.MethodGet, c.url+"/v1/instances", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/instances with %q: %d", h[:7], resp.StatusCode)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
		}
	}
	// Open routes need no token.
	for _, p := range []string{"/healthz", "/openapi.json"} {
		if a := c.do(http.MethodGet, p, "", nil); a.status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", p, a.status, a.body)
		}
	}
	var h Health
	if err := json.Unmarshal(c.do(http.MethodGet, "/healthz", "", nil).body, &h); err != nil || h.Status != "ok" {
		t.Errorf("healthz: %+v %v", h, err)
	}
	// With a token, unknown routes and methods are 404 and 405.
	if a := c.do(http.MethodGet, "/v1/no-such-route", token, nil); a.status != http.StatusNotFound {
		t.Errorf("unknown route: %d", a.status)
	}
	if a := c.do(http.MethodDelete, "/v1/instances", token, nil); a.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /v1/instances: %d", a.status)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"one token", Config{Tokens: []string{token}}, true},
		{"base64 token with padding", Config{Tokens: []string{"YWJjZGVmZ2hpamtsbW5vcA=="}}, true},
		{"no token", Config{}, false},
		{"short token", Config{Tokens: []string{"short"}}, false},
		{"token with a space", Config{Tokens: []string{"0123456789 abcdefgh"}}, false},
		{"only padding", Config{Tokens: []string{"================"}}, false},
		{"empty second token", Config{Tokens: []string{token, ""}}, false},
		{"page size", Config{Tokens: []string{token}, MaxPageSize: 1000}, true},
		{"page size too big", Config{Tokens: []string{token}, MaxPageSize: 1001}, false},
		{"negative page size", Config{Tokens: []string{token}, MaxPageSize: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok = %v", tc.name, err, tc.ok)
		}
	}
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	if _, err := New(st, fx.store, nil, Config{}, nil); err == nil {
		t.Error("New without tokens succeeded")
	}
	if _, err := New(nil, fx.store, nil, Config{Tokens: []string{token}}, nil); err == nil {
		t.Error("New without views succeeded")
	}
	if _, err := New(st, nil, nil, Config{Tokens: []string{token}}, nil); err == nil {
		t.Error("New without the event store succeeded")
	}
}

func TestListInstances(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		c, st := setup(t, dsn, nil, Config{})
		seq := checkpoint(t, st, views.ViewInstances)
		if seq != fx.lastSeq {
			t.Fatalf("instances checkpoint %d, want the log's last sequence %d", seq, fx.lastSeq)
		}
		all := ids(func(spec) bool { return true })
		var list InstanceList
		a := c.get("/v1/instances", http.StatusOK, &list)
		if got := rowIDs(list.Instances); !slices.Equal(got, all) || list.NextCursor != "" {
			t.Fatalf("all instances: %v (next %q), want %v", got, list.NextCursor, all)
		}
		if list.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
			t.Fatalf("consistentTo %d, header %q, want the checkpoint %d", list.ConsistentTo, a.header.Get(ConsistencyHeader), seq)
		}

		hasInfo := func(f func(*instance.OrderInfo) bool) func(spec) bool {
			return func(s spec) bool { return s.info != nil && f(s.info) }
		}
		status := func(s spec) string {
			switch {
			case !s.release.IsZero():
				return "released"
			case s.failure != nil:
				return "failed"
			case !s.frozen.IsZero():
				return "frozen"
			case s.latency > 0:
				return "active"
			}
			return "provisioning"
		}
		expire := func(s spec) time.Time {
			if !s.formal.IsZero() {
				return formalExpire
			}
			if s.info != nil {
				return s.info.ExpireTime
			}
			return time.Time{}
		}
		mid := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"status=active", ids(func(s spec) bool { return status(s) == "active" })},
			{"status=frozen", []string{"i03"}},
			{"status=active,frozen", ids(func(s spec) bool { return status(s) == "active" || status(s) == "frozen" })},
			{"status=failed&status=released", []string{"i04", "i05"}},
			{"status=provisioning", []string{"i06"}},
			{"productId=P1", ids(hasInfo(func(i *instance.OrderInfo) bool { return i.ProductID == "P1" }))},
			{"skuCode=SKU-A", ids(hasInfo(func(i *instance.OrderInfo) bool { return i.SKUCode == "SKU-A" }))},
			{"chargingMode=PERIOD", ids(hasInfo(func(i *instance.OrderInfo) bool { return i.ChargingMode == "PERIOD" }))},
			{"customerId=C1", []string{"i01", "i03"}},
			{"orderId=o-i03", []string{"i03"}},
			{"trial=true", []string{"i02", "i07"}},
			{"trial=false", ids(func(s spec) bool { return s.info == nil || s.info.OrderType != "TRIAL" })},
			{"formal=true", []string{"i07"}},
			{"testFlag=false", all},
			{"testFlag=true", []string{}},
			{"expireBefore=2026-07-01", ids(func(s spec) bool { e := expire(s); return !e.IsZero() && e.Before(mid) })},
			{"expireAfter=2026-07-01T00:00:00Z", ids(func(s spec) bool { return !expire(s).Before(mid) })},
			{"expireAfter=2026-05-01&expireBefore=2026-12-31T23:59:59%2B08:00", []string{"i01", "i05"}},
			{"createdFrom=2026-03-03", ids(func(s spec) bool { return !s.created.Before(day2) })},
			{"createdTo=2026-03-03", ids(func(s spec) bool { return s.created.Before(day2) })},
			{"createdFrom=2026-03-02T09:30:00Z&createdTo=2026-03-03T10:00:00Z", []string{"i03", "i04", "i05"}},
			{"createdFrom=2026-03-02T10:00:00+01:00", ids(func(s spec) bool { return !s.created.Before(at(day1, 9, 0)) })}, // '+' unescaped: a space
			{"productId=P1&status=active&trial=false", []string{"i01", "i08/é x"}},
			{"productId=nope", []string{}},
			{"order=desc", reversed(all)},
		} {
			var l InstanceList
			a := c.get("/v1/instances?"+tc.query, http.StatusOK, &l)
			if got := rowIDs(l.Instances); !slices.Equal(got, tc.want) {
				t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
			}
			if l.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
				t.Errorf("?%s: consistentTo %d, want %d", tc.query, l.ConsistentTo, seq)
			}
		}

		// The rows are the views' rows.
		for _, r := range list.Instances {
			want, _, err := st.GetInstance(context.Background(), r.InstanceID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(jsonOf(t, r), jsonOf(t, want)) {
				t.Errorf("row %s differs from the view's", r.InstanceID)
			}
		}
		r := list.Instances[slices.IndexFunc(list.Instances, func(r views.Instance) bool { return r.InstanceID == "i07" })]
		if r.ProductID != "P3" || !r.Trial || !r.Formal || r.ExpireTime == nil || !r.ExpireTime.Equal(formalExpire) || r.ProvisionedAt == nil {
			t.Errorf("i07: %+v", r)
		}
	})
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// walk follows nextCursor from query and returns every page's ids.
func walk(t *testing.T, c *client, query string) (pages [][]string) {
	t.Helper()
	cursor := ""
	for range 100 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var l InstanceList
		c.get("/v1/instances?"+q, http.StatusOK, &l)
		pages = append(pages, rowIDs(l.Instances))
		if l.NextCursor == "" {
			return pages
		}
		cursor = l.NextCursor
	}
	t.Fatalf("?%s: more than 100 pages", query)
	return nil
}

func TestPagination(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		c, _ := setup(t, dsn, nil, Config{MaxPageSize: 3})
		all := ids(func(spec) bool { return true })
		for _, tc := range []struct {
			query string
			want  []string
			size  int
		}{
			{"limit=3", all, 3},
			{"limit=1", all, 1},
			{"limit=2&order=desc", reversed(all), 2},
			{"limit=1&productId=P1", []string{"i01", "i02", "i05", "i08/é x"}, 1},
			{"limit=2&status=active,frozen&order=desc", []string{"i08/é x", "i07", "i03", "i02", "i01"}, 2},
			{"limit=3&createdTo=2026-03-02T09:00:00.000001Z", []string{"i01", "i02"}, 3}, // the tie on created_at
		} {
			pages := walk(t, c, tc.query)
			var got []string
			for i, p := range pages {
				if len(p) > tc.size || (i < len(pages)-1 && len(p) != tc.size) {
					t.Errorf("?%s: page %d has %d rows, pages of %d expected", tc.query, i, len(p), tc.size)
				}
				got = append(got, p...)
			}
			if !slices.Equal(got, tc.want) { // no duplicate, no gap, in order
				t.Errorf("?%s: pages %v, want %v in pages of %d", tc.query, pages, tc.want, tc.size)
			}
		}
		// Without limit the page is the default size, bounded by MaxPageSize.
		var l InstanceList
		c.get("/v1/instances", http.StatusOK, &l)
		if len(l.Instances) != 3 || l.NextCursor == "" {
			t.Errorf("default page: %d rows, next %q", len(l.Instances), l.NextCursor)
		}
		c.badRequest("/v1/instances?limit=4", "limit")
		// A cursor continues the listing in its own order only.
		c.badRequest("/v1/instances?order=desc&cursor="+url.QueryEscape(l.NextCursor), "cursor")
	})
}

func TestListRefusesBadParameters(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{}))
	for _, tc := range []struct{ query, field string }{
		{"status=running", "status"},
		{"status=active,", "status"},
		{"trial=yes", "trial"},
		{"testFlag=1", "testFlag"},
		{"formal=", "formal"},
		{"productId=", "productId"},
		{"productId=a&productId=b", "productId"},
		{"customerId=" + strings.Repeat("x", 257), "customerId"},
		{"skuCode=%01", "skuCode"},
		{"chargingMode=%FF", "chargingMode"},
		{"expireBefore=tomorrow", "expireBefore"},
		{"expireAfter=2026-13-01", "expireAfter"},
		{"expireAfter=2026-05-01&expireBefore=2026-05-01", "expireBefore"},
		{"createdFrom=2026-03-02T10:00:00", "createdFrom"},
		{"createdFrom=2026-03-03&createdTo=2026-03-02", "createdTo"},
		{"createdTo=03/02/2026", "createdTo"},
		{"limit=0", "limit"},
		{"limit=501", "limit"},
		{"limit=ten", "limit"},
		{"cursor=not-a-cursor", "cursor"},
		{"cursor=" + strings.Repeat("A", 3000), "cursor"},
		{"order=random", "order"},
		{"productID=P1", "productID"}, // a typo never widens the filter
		{"status=%zz", ""},
	} {
		c.badRequest("/v1/instances?"+tc.query, tc.field)
	}
	for _, tc := range []struct{ query, field string }{
		{"cursor=abc", "cursor"},
		{"limit=5", "limit"},
		{"trial=maybe", "trial"},
	} {
		c.badRequest("/v1/instances.csv?"+tc.query, tc.field)
	}
}

func TestGetInstance(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		c, st := setup(t, dsn, nil, Config{})
		seq := checkpoint(t, st, views.ViewInstances)
		for _, s := range specs {
			var d InstanceDetail
			a := c.get("/v1/instances/"+url.PathEscape(s.id), http.StatusOK, &d)
			if d.Instance == nil || d.Instance.InstanceID != s.id {
				t.Fatalf("%s: instance %+v", s.id, d.Instance)
			}
			if d.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
				t.Errorf("%s: consistentTo %d, want %d", s.id, d.ConsistentTo, seq)
			}
			row, _, err := st.GetInstance(context.Background(), s.id)
			if err != nil {
				t.Fatal(err)
			}
			if jsonOf(t, *d.Instance) != jsonOf(t, row) {
				t.Errorf("%s: row differs from the view's", s.id)
			}
			// The history is the log's, in order, with the last sequence read.
			recs, err := fx.store.Load(context.Background(), instanceStream(s.id), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Events) != len(recs) || len(recs) == 0 {
				t.Fatalf("%s: %d events, the log has %d", s.id, len(d.Events), len(recs))
			}
			for i, e := range d.Events {
				r := recs[i]
				if e.Seq != r.Seq || e.ID != r.Event.ID || e.Type != r.Event.Type || e.Version != r.Event.Version ||
					!e.OccurredAt.Equal(r.Event.OccurredAt) || e.Causation != r.Event.Causation {
					t.Errorf("%s: event %d = %+v, log has %+v", s.id, i, e, r)
				}
			}
			if d.EventsConsistentTo != recs[len(recs)-1].Seq || d.Instance.LastEventSeq != d.EventsConsistentTo {
				t.Errorf("%s: eventsConsistentTo %d, last event %d, row's last %d", s.id, d.EventsConsistentTo, recs[len(recs)-1].Seq, d.Instance.LastEventSeq)
			}
			if d.Events[0].Type != instance.TypeCreated {
				t.Errorf("%s: first event %s", s.id, d.Events[0].Type)
			}
			// Passwords never leave, whatever the event.
			if s.latency > 0 {
				if bytes.Contains(a.body, []byte(password(s.id))) {
					t.Fatalf("%s: the password is in the answer", s.id)
				}
				found := false
				for _, e := range d.Events {
					if e.Type != instance.TypeProvisioned {
						continue
					}
					found = true
					var p struct {
						AppInfo map[string]string `json:"appInfo"`
					}
					if err := json.Unmarshal(e.Data, &p); err != nil {
						t.Fatal(err)
					}
					if p.AppInfo["password"] != Redacted || p.AppInfo["userName"] != "admin" || p.AppInfo["frontEndUrl"] == "" {
						t.Errorf("%s: app info %v", s.id, p.AppInfo)
					}
				}
				if !found {
					t.Errorf("%s: no InstanceProvisioned in the history", s.id)
				}
			}
		}
		var e ErrorBody
		c.get("/v1/instances/no-such-instance", http.StatusNotFound, &e)
		if e.Field != "id" {
			t.Errorf("404: %+v", e)
		}
		c.badRequest("/v1/instances/"+strings.Repeat("x", 300), "id")
		c.badRequest("/v1/instances/i01?events=false", "events")
		c.badRequest("/v1/instances/bad%01id", "id")
	})
}

// TestViewBehindLog: an instance the view has not applied yet is still
// found, from the log, with consistentTo saying how far the view is.
func TestViewBehindLog(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db") // never projected
	c := newClient(t, newServer(t, st, nil, Config{}))
	var d InstanceDetail
	a := c.get("/v1/instances/i01", http.StatusOK, &d)
	if d.Instance != nil || d.ConsistentTo != 0 || len(d.Events) == 0 || d.EventsConsistentTo == 0 {
		t.Fatalf("unprojected i01: %s", a.body)
	}
	var l InstanceList
	c.get("/v1/instances", http.StatusOK, &l)
	if len(l.Instances) != 0 || l.ConsistentTo != 0 {
		t.Fatalf("unprojected list: %+v", l)
	}
	c.get("/v1/instances/no-such-instance", http.StatusNotFound, nil)
}

func TestExportCSV(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		// Pages of 3: the export takes three pages.
		c, st := setup(t, dsn, nil, Config{MaxPageSize: 3})
		seq := checkpoint(t, st, views.ViewInstances)
		for _, query := range []string{"", "?productId=P1", "?status=active,failed&order=desc", "?productId=none"} {
			a := c.get("/v1/instances.csv"+query, http.StatusOK, nil)
			if ct := a.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", query, ct)
			}
			if cd := a.header.Get("Content-Disposition"); cd != "attachment; filename=instances.csv" {
				t.Errorf("%s: Content-Disposition %q", query, cd)
			}
			if a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) || a.trailer.Get(ConsistencyTrailer) != strconv.FormatUint(seq, 10) {
				t.Errorf("%s: consistency header %q trailer %q, want %d", query, a.header.Get(ConsistencyHeader), a.trailer.Get(ConsistencyTrailer), seq)
			}
			records, err := csv.NewReader(bytes.NewReader(a.body)).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			// The rows equal the JSON listing, every page of it.
			var want []views.Instance
			listQuery := strings.TrimPrefix(query, "?")
			cursor := ""
			for {
				q := listQuery
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				var l InstanceList
				c.get("/v1/instances?"+q, http.StatusOK, &l)
				want = append(want, l.Instances...)
				if cursor = l.NextCursor; cursor == "" {
					break
				}
			}
			header := records[0]
			if !slices.Contains(header, "instanceId") || !slices.Contains(header, "failureMessage") || !slices.Contains(header, "expireTime") {
				t.Fatalf("%s: header %v", query, header)
			}
			if len(records)-1 != len(want) {
				t.Fatalf("%s: %d rows, the listing has %d", query, len(records)-1, len(want))
			}
			for i, rec := range records[1:] {
				if exp := expectedCSV(t, header, want[i]); !slices.Equal(rec, exp) {
					t.Errorf("%s: row %d = %q, want %q", query, i, rec, exp)
				}
			}
		}
		// A failure message that a spreadsheet would run is neutralised.
		a := c.get("/v1/instances.csv?status=failed", http.StatusOK, nil)
		if !strings.Contains(string(a.body), `'=HYPERLINK(""http://evil"")`) {
			t.Errorf("failure message not guarded: %s", a.body)
		}
	})
}

// expectedCSV renders a row of the JSON listing as the export should.
func expectedCSV(t *testing.T, header []string, r views.Instance) []string {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(jsonOf(t, r)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(header))
	for i, col := range header {
		switch v := m[col].(type) {
		case nil:
			out[i] = ""
		case string:
			if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
				out[i] = tm.UTC().Format(time.RFC3339Nano)
			} else {
				out[i] = CSVText(v)
			}
		default:
			out[i] = fmt.Sprint(v)
		}
	}
	return out
}

func TestStats(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		c, st := setup(t, dsn, nil, Config{})
		seq := min(checkpoint(t, st, views.ViewFacts), checkpoint(t, st, views.ViewInstances))

		var s Stats
		a := c.get("/v1/stats?from=2026-03-02&to=2026-03-05", http.StatusOK, &s)
		if s.ConsistentTo != seq || seq != fx.lastSeq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
			t.Errorf("consistentTo %d, want %d", s.ConsistentTo, seq)
		}
		want := map[string]map[string]int64{
			"2026-03-02": {"new": 3, "trial": 1, "provisioned": 3, "provisioning_failed": 1},
			"2026-03-03": {"new": 2, "provisioned": 1, "frozen": 1},
			"2026-03-04": {},
			"2026-03-05": {"new": 1, "trial": 1, "provisioned": 2, "trial_to_formal": 1, "released": 1},
		}
		checkDays(t, "all products", s, want)
		// Latencies 100, 200, 300, 400, 500 and 1000 ms (nearest rank).
		if l := s.Latency; l.Count != 6 || l.MinMS != 100 || l.MaxMS != 1000 || l.P50MS != 300 || l.P90MS != 1000 || l.P99MS != 1000 || math.Abs(l.AvgMS-2500.0/6) > 0.01 {
			t.Errorf("latency %+v", l)
		}
		if s.From != "2026-03-02" || s.To != "2026-03-05" || s.ProductID != "" || len(s.Facts) == 0 {
			t.Errorf("stats %+v", s)
		}

		var p1 Stats
		c.get("/v1/stats?from=2026-03-02&to=2026-03-05&productId=P1", http.StatusOK, &p1)
		checkDays(t, "P1", p1, map[string]map[string]int64{
			"2026-03-02": {"new": 1, "trial": 1, "provisioned": 2},
			"2026-03-03": {"new": 1, "provisioned": 1},
			"2026-03-04": {},
			"2026-03-05": {"new": 1, "provisioned": 1, "released": 1},
		})
		if l := p1.Latency; l.Count != 4 || l.MinMS != 100 || l.MaxMS != 1000 || l.P50MS != 200 {
			t.Errorf("P1 latency %+v", l)
		}
		for _, f := range p1.Facts {
			if f.ProductID != "P1" {
				t.Errorf("P1 facts hold %+v", f)
			}
		}

		var one Stats
		c.get("/v1/stats?from=2026-03-03&to=2026-03-03", http.StatusOK, &one)
		checkDays(t, "one day", one, map[string]map[string]int64{"2026-03-03": want["2026-03-03"]})
		if one.Latency.Count != 1 || one.Latency.MaxMS != 400 {
			t.Errorf("one day latency %+v", one.Latency)
		}

		c.badRequest("/v1/stats?to=2026-03-05", "from")
		c.badRequest("/v1/stats?from=2026-03-02", "to")
		c.badRequest("/v1/stats?from=2026-03-05&to=2026-03-02", "to")
		c.badRequest("/v1/stats?from=2026-03-02T00:00:00Z&to=2026-03-05", "from")
		c.badRequest("/v1/stats?from=2025-01-01&to=2026-01-02", "to")
		c.badRequest("/v1/stats?from=2026-03-02&to=2026-03-05&metric=new", "metric")
	})
}

func checkDays(t *testing.T, what string, s Stats, want map[string]map[string]int64) {
	t.Helper()
	if len(s.Days) != len(want) {
		t.Fatalf("%s: %d days, want %d", what, len(s.Days), len(want))
	}
	for i, d := range s.Days {
		if i > 0 && d.Day <= s.Days[i-1].Day {
			t.Errorf("%s: days out of order", what)
		}
		w, ok := want[d.Day]
		if !ok {
			t.Errorf("%s: unexpected day %s", what, d.Day)
			continue
		}
		for _, m := range views.Metrics {
			if got, ok := d.Counts[m]; !ok || got != w[m] {
				t.Errorf("%s: %s %s = %d (present %v), want %d", what, d.Day, m, got, ok, w[m])
			}
		}
	}
}

// recorder is the test's Effects: it records the calls and answers err.
type recorder struct {
	mu    sync.Mutex
	calls []string
	all   int
	err   error
}

func (r *recorder) Redrive(_ context.Context, effect, instanceID, operator string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("redrive %s %s by %s", effect, instanceID, operator))
	return r.err
}

func (r *recorder) RedriveEvent(_ context.Context, effect, instanceID string, seq uint64, operator string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("redrive-event %s %s %d by %s", effect, instanceID, seq, operator))
	return r.err
}

func (r *recorder) RedriveAll(_ context.Context, effect, operator string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("redrive-all %s by %s", effect, operator))
	return r.all, r.err
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func TestParkedAndRedrive(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		rec := &recorder{all: 2}
		c, st := setup(t, dsn, rec, Config{})
		seq := checkpoint(t, st, views.ViewEffects)
		if seq != fx.lastSeq {
			t.Fatalf("effects checkpoint %d, want %d", seq, fx.lastSeq)
		}
		key := func(p views.ParkedEffect) string { return p.Effect + "/" + p.InstanceID }
		for _, tc := range []struct {
			query     string
			want      []string
			truncated bool
		}{
			{"", []string{"webhook/i01", "queryorder/i01", "webhook/i05"}, false},
			{"?effect=webhook", []string{"webhook/i01", "webhook/i05"}, false},
			{"?instanceId=i01", []string{"webhook/i01", "queryorder/i01"}, false},
			{"?effect=queryorder&instanceId=i01", []string{"queryorder/i01"}, false},
			{"?effect=webhook&instanceId=i02", []string{}, false}, // re-driven
			{"?instanceId=i03", []string{}, false},                // done
			{"?limit=2", []string{"webhook/i01", "queryorder/i01"}, true},
			{"?limit=3", []string{"webhook/i01", "queryorder/i01", "webhook/i05"}, false},
		} {
			var l ParkedList
			a := c.get("/v1/effects/parked"+tc.query, http.StatusOK, &l)
			got := []string{}
			for _, p := range l.Effects {
				got = append(got, key(p))
			}
			if !slices.Equal(got, tc.want) || l.Truncated != tc.truncated {
				t.Errorf("%s: %v (truncated %v), want %v (%v)", tc.query, got, l.Truncated, tc.want, tc.truncated)
			}
			if l.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
				t.Errorf("%s: consistentTo %d, want %d", tc.query, l.ConsistentTo, seq)
			}
		}
		var l ParkedList
		c.get("/v1/effects/parked?instanceId=i01&effect=webhook", http.StatusOK, &l)
		if p := l.Effects[0]; p.EventSeq != fx.provisionedSeq["i01"] || p.EventType != instance.TypeProvisioned || p.Attempts != 5 ||
			p.Reason != "vendor answered 500" || !p.ParkedAt.Equal(at(day4, 13, 0)) || p.EventID != "ev-i01" {
			t.Errorf("webhook/i01: %+v", p)
		}
		c.badRequest("/v1/effects/parked?limit=0", "limit")
		c.badRequest("/v1/effects/parked?limit=5001", "limit")
		c.badRequest("/v1/effects/parked?effect=", "effect")

		post := func(body string) (answer, ErrorBody, RedriveResult) {
			t.Helper()
			a := c.do(http.MethodPost, "/v1/effects/redrive", token, []byte(body))
			var e ErrorBody
			var r RedriveResult
			if a.status == http.StatusAccepted {
				if err := json.Unmarshal(a.body, &r); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = json.Unmarshal(a.body, &e)
			}
			return a, e, r
		}
		a, _, r := post(`{"effect":"webhook","instanceId":"i01","operator":"alice"}`)
		if a.status != http.StatusAccepted || r.Redriven != 1 || r.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != strconv.FormatUint(seq, 10) {
			t.Fatalf("re-drive one: %d %s", a.status, a.body)
		}
		if got := rec.take(); !slices.Equal(got, []string{"redrive webhook i01 by alice"}) {
			t.Errorf("calls %v", got)
		}
		a, _, r = post(`{"effect":"webhook","operator":"bob"}`)
		if a.status != http.StatusAccepted || r.Redriven != 2 {
			t.Fatalf("re-drive all: %d %s", a.status, a.body)
		}
		if got := rec.take(); !slices.Equal(got, []string{"redrive-all webhook by bob"}) {
			t.Errorf("calls %v", got)
		}
		a, _, r = post(`{"effect":"webhook","instanceId":"i01","eventSeq":17,"operator":"carol"}`)
		if a.status != http.StatusAccepted || r.Redriven != 1 {
			t.Fatalf("re-drive one event: %d %s", a.status, a.body)
		}
		if got := rec.take(); !slices.Equal(got, []string{"redrive-event webhook i01 17 by carol"}) {
			t.Errorf("calls %v", got)
		}

		for _, tc := range []struct{ body, field string }{
			{``, ""},
			{`[]`, ""},
			{`null`, ""},
			{`{"effect":"webhook","operator":"a"} {}`, ""},
			{`{"effect":"webhook"}`, "operator"},
			{`{"effect":"webhook","operator":"  "}`, "operator"},
			{`{"operator":"alice"}`, "effect"},
			{`{"effect":"","operator":"alice"}`, "effect"},
			{`{"effect":"webhook","operator":"alice","instanceId":""}`, "instanceId"}, // never "every instance" by accident
			{`{"effect":"webhook","operator":"alice","instanceId":null}`, "instanceId"},
			{`{"effect":"webhook","operator":"alice","instanceId":7}`, "instanceId"},
			{`{"effect":"webhook","operator":"alice","all":true}`, "all"},
			{`{"effect":"webhook","operator":"alice","eventSeq":5}`, "eventSeq"}, // an event needs its instance
			{`{"effect":"webhook","operator":"alice","instanceId":"i01","eventSeq":0}`, "eventSeq"},
			{`{"effect":"webhook","operator":"alice","instanceId":"i01","eventSeq":-1}`, "eventSeq"},
			{`{"effect":"webhook","operator":"alice","instanceId":"i01","eventSeq":"5"}`, "eventSeq"},
			{`{"effect":"webhook","operator":"al\u0000ice"}`, "operator"},
			{`{"effect":"webhook","operator":"alice","pad":"` + strings.Repeat("x", 70<<10) + `"}`, ""},
		} {
			a, e, _ := post(tc.body)
			if a.status != http.StatusBadRequest || e.Field != tc.field || e.Error == "" {
				t.Errorf("body %.60s: %d %s, want 400 naming %q", tc.body, a.status, a.body, tc.field)
			}
		}
		if a := c.do(http.MethodPost, "/v1/effects/redrive?dry=1", token, []byte(`{"effect":"webhook","operator":"a"}`)); a.status != http.StatusBadRequest {
			t.Errorf("query on re-drive: %d", a.status)
		}
		if got := rec.take(); len(got) != 0 {
			t.Errorf("refused requests reached Effects: %v", got)
		}

		for _, tc := range []struct {
			err    error
			status int
		}{
			{fmt.Errorf("effects: unknown effect %q: %w", "nope", ErrNotFound), http.StatusNotFound},
			{fmt.Errorf("nothing parked: %w", ErrNotFound), http.StatusNotFound},
			{fmt.Errorf("only the oldest: %w", ErrInvalid), http.StatusBadRequest},
			{fmt.Errorf("runner stopping: %w", ErrUnavailable), http.StatusServiceUnavailable},
			{context.DeadlineExceeded, http.StatusServiceUnavailable},
			{errors.New("boom"), http.StatusInternalServerError},
		} {
			rec.mu.Lock()
			rec.err = tc.err
			rec.mu.Unlock()
			for _, body := range []string{`{"effect":"webhook","instanceId":"i01","operator":"alice"}`, `{"effect":"webhook","operator":"alice"}`} {
				a, e, _ := post(body)
				if a.status != tc.status || e.Error == "" {
					t.Errorf("Effects error %v: %d %s, want %d", tc.err, a.status, a.body, tc.status)
				}
			}
		}

		// Without Effects, re-drive is unavailable; the list still works.
		c2 := newClient(t, newServer(t, st, nil, Config{}))
		a = c2.do(http.MethodPost, "/v1/effects/redrive", token, []byte(`{"effect":"webhook","operator":"alice"}`))
		if a.status != http.StatusServiceUnavailable {
			t.Errorf("re-drive without Effects: %d %s", a.status, a.body)
		}
		c2.get("/v1/effects/parked", http.StatusOK, nil)
		if a := c.do(http.MethodGet, "/v1/effects/redrive", token, nil); a.status != http.StatusMethodNotAllowed {
			t.Errorf("GET /v1/effects/redrive: %d", a.status)
		}
	})
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"appInfo":{"frontEndUrl":"u","userName":"admin","password":"p"}}`, `{"appInfo":{"frontEndUrl":"u","password":"[redacted]","userName":"admin"}}`},
		{`{"appInfo":{"userName":"admin"}}`, `{"appInfo":{"userName":"admin"}}`},
		{`{"a":[{"adminPassword":"x"},{"clientSecret":{"k":1}}],"n":12345678901234567890}`, `{"a":[{"adminPassword":"[redacted]"},{"clientSecret":"[redacted]"}],"n":12345678901234567890}`},
		{`{"password":""}`, `{"password":""}`},
		{`{"Password":null}`, `{"Password":null}`},
		{`{"info":{"raw":{"PASSWORD":"x"}}}`, `{"info":{"raw":{"PASSWORD":"[redacted]"}}}`},
		{`{}`, `{}`},
		{``, `null`},
		{`{"password":`, `"[redacted]"`},
		{`{"a":1} {"password":"x"}`, `"[redacted]"`},
		{`"<&>"`, `"<&>"`},
	} {
		if got := string(Redact(json.RawMessage(tc.in))); got != tc.want {
			t.Errorf("Redact(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCSVText(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "abc": "abc", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@x": "'@x", "\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b",
	} {
		if got := CSVText(in); got != want {
			t.Errorf("CSVText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAbortReachesTheClient: a handler that gives up half-way (as the CSV
// export does when a later page fails) must break the connection rather
// than end the answer normally, which would make a partial export look
// complete. gin's stock recovery would swallow the abort.
func TestAbortReachesTheClient(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	srv := newServer(t, st, nil, Config{})
	srv.engine.GET("/v1/test-abort", func(c *gin.Context) {
		c.Header("Content-Type", "text/csv; charset=utf-8")
		_, _ = c.Writer.WriteString("instanceId\ni01\n")
		c.Writer.Flush()
		panic(http.ErrAbortHandler)
	})
	srv.engine.GET("/v1/test-panic", func(*gin.Context) { panic("bug") })
	c := newClient(t, srv)
	req, _ := http.NewRequest(http.MethodGet, c.url+"/v1/test-abort", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("an aborted answer was read as complete")
	}
	// Any other panic is a 500 with the error body.
	req, _ = http.NewRequest(http.MethodGet, c.url+"/v1/test-panic", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	var e ErrorBody
	err = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || err != nil || e.Error == "" {
		t.Fatalf("panic: %d %+v %v", resp.StatusCode, e, err)
	}
}
