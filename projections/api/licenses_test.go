package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/projections/views"
)

// The fixture's licenses (License A), authorization codes (License B) and
// usage, appended after the instances (appendLicenses). License i01 shares
// its id with instance i01 (another aggregate kind), so that GET
// /v1/licenses/{id} answers for the id the generic tests use.
var (
	licExpire  = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	licRenewed = time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
)

// appendLicenses appends the license, code and usage events of the
// fixture.
func (f *fixture) appendLicenses(ctx context.Context) error {
	type ev struct {
		sid   eventstore.StreamID
		at    time.Time
		route string
		e     interface{ EventType() string }
	}
	lic := func(id string) eventstore.StreamID {
		return eventstore.StreamID{Kind: license.Kind, Keys: []string{id}}
	}
	code := func(id string) eventstore.StreamID {
		return eventstore.StreamID{Kind: licensecode.Kind, Keys: []string{id}}
	}
	use := eventstore.StreamID{Kind: usage.Kind, Keys: []string{instance.Kind, "i01"}}
	rec := func(key, value string) usage.Record {
		return usage.Record{InstanceID: "i01", RecordKey: key, MeteringSN: usage.MeteringSN("i01", key), RecordTime: at(day1, 11, 5),
			BeginTime: at(day1, 10, 0), EndTime: at(day1, 11, 0), UsageValue: value, Billing: usage.BillingHourly}
	}
	r1, r2, r3 := rec("m1", "1.5"), rec("m2", "0.0001"), rec("m3", "12345678901234.5678")
	r2.BeginTime = at(day1, 9, 0)
	ok := func(t time.Time) licensecode.Answer {
		return licensecode.Answer{At: t, ErrorCode: licensecode.APISuccess}
	}
	events := []ev{
		{lic("i01"), at(day1, 10, 0), "/license", license.Issued{InstanceID: "i01", OrderID: "lo-1", BusinessID: "i01",
			Customer: license.Customer{ID: "C1"}, Purchase: license.Purchase{ProductID: "P1", SKUCode: "SKU-A", ChargingMode: "1", ExpireTime: licExpire}, Text: "LICENSE-1"}},
		{lic("L2"), at(day2, 10, 0), "/license", license.Issued{InstanceID: "L2", OrderID: "lo-2", BusinessID: "L2",
			Customer: license.Customer{ID: "C2"}, Purchase: license.Purchase{ProductID: "P2", SKUCode: "SKU-B", Trial: true}, Text: "LICENSE-2"}},
		{lic("i01"), at(day2, 11, 0), "/license/refresh", license.Refreshed{OrderID: "lr-1", ExpireTime: licRenewed}},
		{lic("L3"), at(day4, 9, 0), "/license", license.Issued{InstanceID: "L3", OrderID: "lo-3", BusinessID: "L3",
			Customer: license.Customer{ID: "C1"}, Purchase: license.Purchase{ProductID: "P1", SKUCode: "SKU-A"}, Text: "LICENSE-3"}},
		{lic("L2"), at(day4, 10, 0), "", license.Expired{}},
		{lic("L3"), at(day4, 11, 0), "", license.Released{OrderID: "lo-3"}},

		{code("CODE-A"), at(day1, 12, 0), "", licensecode.Registered{Code: "CODE-A"}},
		{code("CODE-A"), at(day1, 12, 5), "", licensecode.Activated{Answer: ok(at(day1, 12, 4)),
			Info: &licensecode.CodeInfo{Status: licensecode.RemoteAlive, ProductID: "P9", OrderID: "ko-1", ExpireTime: licExpire}}},
		{code("CODE-A"), at(day2, 12, 0), "", licensecode.Queried{Answer: ok(at(day2, 11, 59)), Info: &licensecode.QueryInfo{Status: licensecode.RemoteAlive}}},
		{code("CODE-B"), at(day2, 13, 0), "", licensecode.Registered{Code: "CODE-B", Reference: "vendor"}},
		{code("CODE-B"), at(day2, 13, 5), "", licensecode.ActivationFailed{Answer: licensecode.Answer{At: at(day2, 13, 4), ErrorCode: "92020004", ErrorMessage: "not received"}}},
		{code("CODE-B"), at(day4, 8, 0), "/license-code/status", licensecode.Frozen{}},

		{use, at(day1, 11, 10), "", usage.Recorded{InstanceID: "i01", Records: []usage.Record{r1, r2, r3}}},
		{use, at(day1, 11, 20), "", usage.Pushed{InstanceID: "i01", BatchID: "b1", Accepted: []string{r1.MeteringSN}}},
		{use, at(day1, 11, 21), "", usage.Rejected{InstanceID: "i01", BatchID: "b1", Rejections: []usage.Rejection{{MeteringSN: r3.MeteringSN, Code: "003", Message: "too large"}}}},
	}
	for _, e := range events {
		var typ string
		var v int
		var data []byte
		var err error
		switch e.sid.Kind {
		case license.Kind:
			typ, v, data, err = license.Encode(e.e)
		case licensecode.Kind:
			typ, v, data, err = licensecode.Encode(e.e)
		default:
			typ, v, data, err = usage.Encode(e.e)
		}
		if err != nil {
			return err
		}
		last, err := f.store.Last(ctx, e.sid)
		if err != nil {
			return err
		}
		env := event.Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Version: v, AggregateKind: e.sid.Kind,
			AggregateID: e.sid.Keys[len(e.sid.Keys)-1], OccurredAt: e.at, Causation: event.Causation{Route: e.route}, Data: data}
		if _, err := f.store.Append(ctx, e.sid, last, env); err != nil {
			return fmt.Errorf("append %s %v: %w", typ, e.sid, err)
		}
	}
	return nil
}

func licenseIDs(ls []views.License) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.InstanceID)
	}
	return out
}

func TestLicenseRoutes(t *testing.T) {
	forEachDB(t, func(t *testing.T, dsn string) {
		c, st := setup(t, dsn, nil, Config{})
		seq := checkpoint(t, st, views.ViewLicenses)
		if seq != fx.lastSeq {
			t.Fatalf("licenses checkpoint %d, want %d", seq, fx.lastSeq)
		}
		header := strconv.FormatUint(seq, 10)

		var l LicenseList
		a := c.get("/v1/licenses", http.StatusOK, &l)
		if got := licenseIDs(l.Licenses); !slices.Equal(got, []string{"i01", "L2", "L3"}) || l.ConsistentTo != seq ||
			a.header.Get(ConsistencyHeader) != header || l.NextCursor != "" {
			t.Fatalf("licenses: %v, consistentTo %d (%s), next %q", got, l.ConsistentTo, a.header.Get(ConsistencyHeader), l.NextCursor)
		}
		for q, want := range map[string][]string{
			"status=frozen,released": {"L2", "L3"},
			"status=issued":          {"i01"},
			"productId=P1":           {"i01", "L3"},
			"customerId=C2":          {"L2"},
			"trial=true":             {"L2"},
			"orderId=lo-3":           {"L3"},
			"expireAfter=2027-01-01": {"i01"},
			"issuedFrom=" + day2.Format(time.DateOnly) + "&issuedTo=" + day4.Format(time.DateOnly): {"L2"},
			"order=desc": {"L3", "L2", "i01"},
		} {
			c.get("/v1/licenses?"+q, http.StatusOK, &l)
			if got := licenseIDs(l.Licenses); !slices.Equal(got, want) {
				t.Errorf("licenses?%s: %v, want %v", q, got, want)
			}
		}
		// Pagination.
		var seen []string
		cursor := ""
		for {
			u := "/v1/licenses?limit=1"
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			l = LicenseList{} // nextCursor is absent on the last page
			c.get(u, http.StatusOK, &l)
			seen = append(seen, licenseIDs(l.Licenses)...)
			if cursor = l.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(seen, []string{"i01", "L2", "L3"}) {
			t.Errorf("paginated: %v", seen)
		}
		c.badRequest("/v1/licenses?status=active", "status")
		c.badRequest("/v1/licenses?issuedFrom=2026-03-05&issuedTo=2026-03-01", "issuedTo")
		c.badRequest("/v1/licenses?cursor=bogus", "cursor")

		var d LicenseDetail
		a = c.get("/v1/licenses/i01", http.StatusOK, &d)
		r := d.License
		if r.Status != "issued" || r.OrderID != "lo-1" || r.ProductID != "P1" || r.ChargingMode != "PERIOD" || r.Renewals != 1 ||
			r.Route != "/license" || r.ExpireTime == nil || !r.ExpireTime.Equal(licRenewed) || !r.IssuedAt.Equal(at(day1, 10, 0)) ||
			d.ConsistentTo != seq || a.header.Get(ConsistencyHeader) != header {
			t.Errorf("license i01: %+v (consistentTo %d)", d, d.ConsistentTo)
		}
		c.get("/v1/licenses/L2", http.StatusOK, &d)
		if d.License.Status != "frozen" || d.License.ExpiredAt == nil || !d.License.Trial {
			t.Errorf("license L2: %+v", d.License)
		}
		c.get("/v1/licenses/nope", http.StatusNotFound, nil)

		var codes LicenseCodeList
		a = c.get("/v1/license-codes", http.StatusOK, &codes)
		if len(codes.Codes) != 2 || codes.ConsistentTo != checkpoint(t, st, views.ViewLicenseCodes) || a.header.Get(ConsistencyHeader) == "" {
			t.Fatalf("codes: %+v", codes)
		}
		ca, cb := codes.Codes[0], codes.Codes[1]
		if ca.Code != "CODE-A" || ca.Activation != "confirmed" || ca.ActivatedAt == nil || !ca.ActivatedAt.Equal(at(day1, 12, 4)) ||
			ca.ProductID != "P9" || ca.OrderID != "ko-1" || ca.ExpireTime == nil || ca.HeartbeatStatus != "ALIVE" ||
			ca.HeartbeatCode != licensecode.APISuccess || ca.HeartbeatAt == nil || !ca.HeartbeatAt.Equal(at(day2, 11, 59)) {
			t.Errorf("CODE-A: %+v", ca)
		}
		if cb.Code != "CODE-B" || cb.Status != "frozen" || cb.Activation != "refused" || cb.ActivationErrorCode != "92020004" ||
			cb.Route != "/license-code/status" || cb.Reference != "vendor" || cb.FrozenAt == nil {
			t.Errorf("CODE-B: %+v", cb)
		}
		c.get("/v1/license-codes?activation=refused", http.StatusOK, &codes)
		if len(codes.Codes) != 1 || codes.Codes[0].Code != "CODE-B" {
			t.Errorf("refused codes: %+v", codes.Codes)
		}
		c.get("/v1/license-codes?status=active&order=desc", http.StatusOK, &codes)
		if len(codes.Codes) != 1 || codes.Codes[0].Code != "CODE-A" {
			t.Errorf("active codes: %+v", codes.Codes)
		}
		c.badRequest("/v1/license-codes?activation=activated", "activation")

		var recs UsageRecordList
		a = c.get("/v1/usage-records?instanceId=i01", http.StatusOK, &recs)
		if len(recs.Records) != 3 || recs.ConsistentTo != checkpoint(t, st, views.ViewUsage) || a.header.Get(ConsistencyHeader) == "" {
			t.Fatalf("usage records: %+v", recs)
		}
		// By begin time: m2 began an hour earlier.
		if recs.Records[0].RecordKey != "m2" || recs.Records[0].Status != "pending" || recs.Records[0].UsageValue != "0.0001" {
			t.Errorf("first record: %+v", recs.Records[0])
		}
		byKey := map[string]views.UsageRecord{}
		for _, r := range recs.Records {
			byKey[r.RecordKey] = r
		}
		if r := byKey["m1"]; r.Status != "pushed" || r.BatchID != "b1" || r.PushedAt == nil || !r.PushedAt.Equal(at(day1, 11, 20)) {
			t.Errorf("m1: %+v", r)
		}
		if r := byKey["m3"]; r.Status != "rejected" || r.RejectionCode != "003" || r.UsageValue != "12345678901234.5678" {
			t.Errorf("m3: %+v", r)
		}
		c.get("/v1/usage-records?status=pending,rejected", http.StatusOK, &recs)
		if len(recs.Records) != 2 {
			t.Errorf("pending or rejected: %+v", recs.Records)
		}
		c.get("/v1/usage-records?instanceId=i02", http.StatusOK, &recs)
		if len(recs.Records) != 0 || recs.Records == nil {
			t.Errorf("usage of i02: %+v", recs.Records)
		}

		var fs FamilyStats
		from, to := day1.Format(time.DateOnly), day4.Format(time.DateOnly)
		a = c.get("/v1/stats/families?from="+from+"&to="+to, http.StatusOK, &fs)
		if fs.ConsistentTo != checkpoint(t, st, views.ViewFamilyFacts) || a.header.Get(ConsistencyHeader) == "" {
			t.Fatalf("family stats: %+v", fs)
		}
		got := map[views.FamilyFact]bool{}
		for _, f := range fs.Facts {
			got[f] = true
		}
		d1, d2, d4 := day1.Format(time.DateOnly), day2.Format(time.DateOnly), day4.Format(time.DateOnly)
		for _, f := range []views.FamilyFact{
			{Day: d1, Family: "saas-v2", Metric: "new", Count: 3}, {Day: d1, Family: "saas-v2", Metric: "trial", Count: 1},
			{Day: d1, Family: "license-a", Metric: "new", Count: 1}, {Day: d2, Family: "license-a", Metric: "trial", Count: 1},
			{Day: d2, Family: "license-a", Metric: "renewed", Count: 1}, {Day: d4, Family: "license-a", Metric: "expired", Count: 1},
			{Day: d4, Family: "license-a", Metric: "released", Count: 1}, {Day: d1, Family: "license-b", Metric: "new", Count: 1},
			{Day: d1, Family: "license-b", Metric: "activated", Count: 1}, {Day: d2, Family: "license-b", Metric: "activation_failed", Count: 1},
			{Day: d2, Family: "license-b", Metric: "queried", Count: 1}, {Day: d4, Family: "license-b", Metric: "frozen", Count: 1},
		} {
			if !got[f] {
				t.Errorf("family stats: missing %+v in %+v", f, fs.Facts)
			}
		}
		c.get("/v1/stats/families?from="+from+"&to="+to+"&family=license-b", http.StatusOK, &fs)
		for _, f := range fs.Facts {
			if f.Family != "license-b" {
				t.Errorf("family=license-b: %+v", f)
			}
		}
		c.badRequest("/v1/stats/families?from="+to+"&to="+from, "to")
		c.badRequest("/v1/stats/families?from="+from+"&to="+to+"&family=saas-v3", "family")
	})
}
