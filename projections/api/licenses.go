package api

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/projections/views"
)

// Routes over the views of licenses (License A), license codes (License
// B), usage records and per-day facts per family. Like the instances
// listing, every answer states the checkpoint of its view it is
// consistent to.

// LicenseList is the answer of GET /v1/licenses.
type LicenseList struct {
	Licenses     []views.License `json:"licenses" doc:"One page of licenses, in the requested order."`
	NextCursor   string          `json:"nextCursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
	ConsistentTo uint64          `json:"consistentTo" doc:"The page reflects every event of the log up to this sequence (the licenses view's checkpoint), and none after."`
}

// LicenseDetail is the answer of GET /v1/licenses/{id}.
type LicenseDetail struct {
	License      views.License `json:"license" doc:"The license's row in the licenses view."`
	ConsistentTo uint64        `json:"consistentTo" doc:"license reflects every event up to this sequence (the licenses view's checkpoint)."`
}

// LicenseCodeList is the answer of GET /v1/license-codes.
type LicenseCodeList struct {
	Codes        []views.LicenseCode `json:"codes" doc:"One page of authorization codes, in the requested order."`
	NextCursor   string              `json:"nextCursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
	ConsistentTo uint64              `json:"consistentTo" doc:"The page reflects every event of the log up to this sequence (the license_codes view's checkpoint), and none after."`
}

// UsageRecordList is the answer of GET /v1/usage-records.
type UsageRecordList struct {
	Records      []views.UsageRecord `json:"records" doc:"One page of usage records, by interval begin time then metering_sn."`
	NextCursor   string              `json:"nextCursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
	ConsistentTo uint64              `json:"consistentTo" doc:"The page reflects every event of the log up to this sequence (the usage view's checkpoint), and none after."`
}

// FamilyStats is the answer of GET /v1/stats/families.
type FamilyStats struct {
	From         string             `json:"from" doc:"First day (UTC), as asked."`
	To           string             `json:"to" doc:"Last day (UTC, inclusive), as asked."`
	Facts        []views.FamilyFact `json:"facts" doc:"The non-zero per-day counts of the range per family, ordered by day, family and metric."`
	ConsistentTo uint64             `json:"consistentTo" doc:"Every count reflects every event up to this sequence (the family_facts view's checkpoint)."`
}

var (
	licenseStatuses = []string{string(license.StatusIssued), string(license.StatusFrozen), string(license.StatusReleased)}
	codeStatuses    = []string{string(licensecode.StatusActive), string(licensecode.StatusFrozen), string(licensecode.StatusReleased)}
	codeActivations = []string{string(licensecode.ActivationPending), string(licensecode.ActivationConfirmed), string(licensecode.ActivationRefused)}
)

func (s *Server) pageParams(what string) []param {
	return []param{
		{name: "limit", in: "query", kind: kindInt, min: 1, max: s.cfg.MaxPageSize, def: strconv.Itoa(s.defaultLimit()), desc: "Page size."},
		{name: "cursor", in: "query", kind: kindCursor,
			desc: "Continue a listing: the nextCursor of the previous page (same order; filters should stay the same)."},
		{name: "order", in: "query", kind: kindEnum, enum: []string{"asc", "desc"}, def: "asc",
			desc: "Oldest first (asc, by " + what + ") or newest first (desc)."},
	}
}

func (s *Server) licenseListParams() []param {
	return append([]param{
		{name: "status", in: "query", kind: kindEnumList, enum: licenseStatuses, example: "issued,frozen",
			desc: "Keep licenses in any of these statuses (comma-separated, or the parameter repeated)."},
		{name: "productId", in: "query", kind: kindText, desc: "Keep licenses of this product."},
		{name: "skuCode", in: "query", kind: kindText, desc: "Keep licenses of this SKU."},
		{name: "customerId", in: "query", kind: kindText, desc: "Keep licenses of this customer."},
		{name: "orderId", in: "query", kind: kindText, desc: "Keep the license issued for this order."},
		{name: "trial", in: "query", kind: kindBool, desc: "Keep licenses of trial purchases (true) or the others (false)."},
		{name: "expireAfter", in: "query", kind: kindInstant, example: "2026-01-01",
			desc: "Keep licenses expiring at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "expireBefore", in: "query", kind: kindInstant, example: "2028-01-01",
			desc: "Keep licenses expiring before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "issuedFrom", in: "query", kind: kindInstant, example: "2026-01-01",
			desc: "Keep licenses issued at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "issuedTo", in: "query", kind: kindInstant, example: "2028-01-01",
			desc: "Keep licenses issued before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	}, s.pageParams("issue time then instanceId")...)
}

func (s *Server) codeListParams() []param {
	return append([]param{
		{name: "status", in: "query", kind: kindEnumList, enum: codeStatuses, example: "active,frozen",
			desc: "Keep codes in any of these statuses (comma-separated, or the parameter repeated)."},
		{name: "activation", in: "query", kind: kindEnumList, enum: codeActivations, example: "refused",
			desc: "Keep codes in any of these activation states: pending (no activate answer yet), confirmed (activated), refused (the last activate answer was an error)."},
		{name: "productId", in: "query", kind: kindText, desc: "Keep codes of this product."},
		{name: "orderId", in: "query", kind: kindText, desc: "Keep codes of this order (from the activation)."},
		{name: "expireAfter", in: "query", kind: kindInstant, example: "2026-01-01",
			desc: "Keep codes expiring at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "expireBefore", in: "query", kind: kindInstant, example: "2028-01-01",
			desc: "Keep codes expiring before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "registeredFrom", in: "query", kind: kindInstant, example: "2026-01-01",
			desc: "Keep codes registered at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "registeredTo", in: "query", kind: kindInstant, example: "2028-01-01",
			desc: "Keep codes registered before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	}, s.pageParams("registration time then code")...)
}

func (s *Server) usageRecordParams() []param {
	return append([]param{
		{name: "instanceId", in: "query", kind: kindText, desc: "Keep this instance's records."},
		{name: "status", in: "query", kind: kindEnumList, enum: usageStatuses, example: "pending,rejected",
			desc: "Keep records in any of these delivery statuses (comma-separated, or the parameter repeated)."},
		{name: "beginFrom", in: "query", kind: kindInstant, example: "2026-01-01",
			desc: "Keep records whose interval begins at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
		{name: "beginTo", in: "query", kind: kindInstant, example: "2028-01-01",
			desc: "Keep records whose interval begins before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	}, s.pageParams("interval begin time then metering_sn")...)
}

var licenseIDParam = param{name: "id", in: "path", kind: kindText, required: true, desc: "The license's instanceId."}

var familyStatsParams = []param{
	{name: "from", in: "query", kind: kindDate, required: true, example: "2026-01-01", desc: "First day (UTC), YYYY-MM-DD."},
	{name: "to", in: "query", kind: kindDate, required: true, example: "2026-01-31",
		desc: fmt.Sprintf("Last day (UTC, inclusive), YYYY-MM-DD; at most %d days after from.", maxStatsDays-1)},
	{name: "family", in: "query", kind: kindEnumList, enum: views.Families, example: "saas-v1,saas-v2",
		desc: "Only these families (comma-separated, or the parameter repeated)."},
}

// licenseRoutes registers the routes of this file.
func (s *Server) licenseRoutes(e *gin.Engine) {
	e.GET("/v1/licenses", s.listLicenses)
	e.GET("/v1/licenses/:id", s.getLicense)
	e.GET("/v1/license-codes", s.listLicenseCodes)
	e.GET("/v1/usage-records", s.listUsageRecords)
	e.GET("/v1/stats/families", s.familyStats)
}

func (s *Server) listLicenses(c *gin.Context) {
	q, ferr := parseQuery(c, s.licenseListParams())
	var f views.LicenseFilter
	var p views.Page
	if ferr == nil {
		f.Status, ferr = q.enumList("status")
	}
	if ferr == nil {
		ferr = texts(q, []string{"productId", "skuCode", "customerId", "orderId"}, &f.ProductID, &f.SKUCode, &f.CustomerID, &f.OrderID)
	}
	if ferr == nil {
		f.Trial, ferr = q.boolean("trial")
	}
	if ferr == nil {
		ferr = timeRange(q, "expireAfter", "expireBefore", &f.ExpireFrom, &f.ExpireTo)
	}
	if ferr == nil {
		ferr = timeRange(q, "issuedFrom", "issuedTo", &f.IssuedFrom, &f.IssuedTo)
	}
	if ferr == nil {
		p, ferr = page(q)
	}
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	pg, err := s.views.ListLicenses(ctx, f, p)
	out := LicenseList{Licenses: pg.Licenses, NextCursor: pg.Next, ConsistentTo: pg.Seq}
	if out.Licenses == nil {
		out.Licenses = []views.License{}
	}
	s.answerPage(c, "licenses", err, pg.Seq, out)
}

func (s *Server) getLicense(c *gin.Context) {
	id, ok := pathID(c, "a license")
	if !ok {
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	row, seq, err := s.views.GetLicense(ctx, id)
	switch {
	case errors.Is(err, views.ErrNotFound):
		writeError(c, http.StatusNotFound, fmt.Sprintf("no such license (the licenses view is consistent to %d)", seq), "id")
		return
	case err != nil:
		s.failed(c, "the license", err)
		return
	}
	setConsistency(c, seq)
	writeJSON(c, http.StatusOK, LicenseDetail{License: row, ConsistentTo: seq})
}

func (s *Server) listLicenseCodes(c *gin.Context) {
	q, ferr := parseQuery(c, s.codeListParams())
	var f views.LicenseCodeFilter
	var p views.Page
	if ferr == nil {
		f.Status, ferr = q.enumList("status")
	}
	if ferr == nil {
		f.Activation, ferr = q.enumList("activation")
	}
	if ferr == nil {
		ferr = texts(q, []string{"productId", "orderId"}, &f.ProductID, &f.OrderID)
	}
	if ferr == nil {
		ferr = timeRange(q, "expireAfter", "expireBefore", &f.ExpireFrom, &f.ExpireTo)
	}
	if ferr == nil {
		ferr = timeRange(q, "registeredFrom", "registeredTo", &f.RegisteredFrom, &f.RegisteredTo)
	}
	if ferr == nil {
		p, ferr = page(q)
	}
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	pg, err := s.views.ListLicenseCodes(ctx, f, p)
	out := LicenseCodeList{Codes: pg.Codes, NextCursor: pg.Next, ConsistentTo: pg.Seq}
	if out.Codes == nil {
		out.Codes = []views.LicenseCode{}
	}
	s.answerPage(c, "license codes", err, pg.Seq, out)
}

func (s *Server) listUsageRecords(c *gin.Context) {
	q, ferr := parseQuery(c, s.usageRecordParams())
	var f views.UsageRecordFilter
	var p views.Page
	if ferr == nil {
		f.InstanceID, ferr = q.text("instanceId")
	}
	if ferr == nil {
		f.Status, ferr = q.enumList("status")
	}
	if ferr == nil {
		ferr = timeRange(q, "beginFrom", "beginTo", &f.BeginFrom, &f.BeginTo)
	}
	if ferr == nil {
		p, ferr = page(q)
	}
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	pg, err := s.views.ListUsageRecords(ctx, f, p)
	out := UsageRecordList{Records: pg.Records, NextCursor: pg.Next, ConsistentTo: pg.Seq}
	if out.Records == nil {
		out.Records = []views.UsageRecord{}
	}
	s.answerPage(c, "usage records", err, pg.Seq, out)
}

func (s *Server) familyStats(c *gin.Context) {
	q, ferr := parseQuery(c, familyStatsParams)
	var from, to time.Time
	var families []string
	if ferr == nil {
		from, ferr = q.date("from")
	}
	if ferr == nil {
		to, ferr = q.date("to")
	}
	if ferr == nil {
		families, ferr = q.enumList("family")
	}
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if to.Before(from) {
		writeError(c, http.StatusBadRequest, "must not be before from", "to")
		return
	}
	if days := int(to.Sub(from)/(24*time.Hour)) + 1; days > maxStatsDays {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("the range spans %d days; at most %d", days, maxStatsDays), "to")
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	facts, err := s.views.FamilyFacts(ctx, views.FamilyFactsQuery{From: from, To: to, Families: families})
	if err != nil {
		s.failed(c, "family facts", err)
		return
	}
	out := FamilyStats{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Facts: facts.Facts, ConsistentTo: facts.Seq}
	if out.Facts == nil {
		out.Facts = []views.FamilyFact{}
	}
	setConsistency(c, facts.Seq)
	writeJSON(c, http.StatusOK, out)
}

func init() {
	for t, name := range map[reflect.Type]string{
		reflect.TypeFor[views.License]():     "License",
		reflect.TypeFor[LicenseList]():       "LicenseList",
		reflect.TypeFor[LicenseDetail]():     "LicenseDetail",
		reflect.TypeFor[views.LicenseCode](): "LicenseCodeRow",
		reflect.TypeFor[LicenseCodeList]():   "LicenseCodeList",
		reflect.TypeFor[views.UsageRecord](): "UsageRecord",
		reflect.TypeFor[UsageRecordList]():   "UsageRecordList",
		reflect.TypeFor[views.FamilyFact]():  "FamilyFact",
		reflect.TypeFor[FamilyStats]():       "FamilyStats",
	} {
		componentNames[t] = name
	}
	for k, v := range map[string]obj{
		"License.instanceId":                    {"description": "The license id: the businessId of the first getLicense for the order."},
		"License.status":                        {"description": "issued (usable), frozen (expired; a refresh makes it usable again) or released.", "enum": licenseStatuses},
		"License.chargingMode":                  {"description": "The purchase's charging mode, named as Query Order does (ON_DEMAND, PERIOD, ONE_TIME, ON_DEMAND_PKG); other values as received."},
		"License.route":                         {"description": "The first production route (path) among the license's events."},
		"License.expireTime":                    {"description": "Expiry: the latest refresh's, else the purchase's; absent while unknown."},
		"License.issuedAt":                      {"description": "Time of LicenseIssued."},
		"License.refreshedAt":                   {"description": "Time of the last LicenseRefreshed."},
		"License.expiredAt":                     {"description": "Time of the last LicenseExpired (kept after a refresh unfroze the license)."},
		"License.releasedAt":                    {"description": "Time of LicenseReleased."},
		"License.lastEventSeq":                  {"description": "Stream sequence of the last event applied to the row."},
		"LicenseCodeRow.code":                   {"description": "The authorization code."},
		"LicenseCodeRow.status":                 {"enum": codeStatuses},
		"LicenseCodeRow.activation":             {"description": "pending (no activate answer yet), confirmed (activated) or refused (the last activate answer was an error).", "enum": codeActivations},
		"LicenseCodeRow.activatedAt":            {"description": "When KooGallery confirmed the activation."},
		"LicenseCodeRow.activationErrorCode":    {"description": "error_code of the last failed activate answer, while not activated."},
		"LicenseCodeRow.heartbeatAt":            {"description": "Time of the last query (heartbeat) call answered."},
		"LicenseCodeRow.heartbeatCode":          {"description": "error_code of the last heartbeat answer."},
		"LicenseCodeRow.heartbeatStatus":        {"description": "The remote status the last heartbeat reported (ALIVE, EXPIRED, RELEASED); \"\" when it failed."},
		"LicenseCodeRow.usageReportedAt":        {"description": "Time of the last usage-statistics call answered."},
		"LicenseCodeRow.expireTime":             {"description": "Expiry: a refresh's or a heartbeat's; the activation's estimate only while unknown."},
		"LicenseCodeRow.lastEventSeq":           {"description": "Stream sequence of the last event applied to the row."},
		"UsageRecord.meteringSn":                {"description": "The metering_sn pushed to KooGallery."},
		"UsageRecord.usageValue":                {"description": "The usage, as exact decimal text."},
		"UsageRecord.status":                    {"enum": usageStatuses},
		"UsageRecord.billing":                   {"enum": []string{string(usage.BillingHourly), string(usage.BillingDaily)}},
		"UsageRecord.rejectionCode":             {"description": "For a rejected record: KooGallery's record code (001…013) or the push's code (MKT.…)."},
		"UsageRecord.localRejection":            {"description": "The rejection is Gallerist's own check before a push."},
		"UsageRecord.pushedAt":                  {"description": "Time of the UsagePushed that delivered it."},
		"UsageRecord.lastEventSeq":              {"description": "Stream sequence of the last event applied to the row."},
		"FamilyFact.day":                        {"description": "The day (UTC), YYYY-MM-DD.", "format": "date"},
		"FamilyFact.family":                     {"description": "saas-v2, saas-v1 (instances; from the creation), license-a (licenses) or license-b (authorization codes).", "enum": views.Families},
		"FamilyFact.metric":                     {"enum": views.FamilyMetrics},
		"LicenseCodeRow.activationErrorMessage": {"description": "error_msg of the last failed activate answer, while not activated."},
	} {
		fieldDocs[k] = v
	}
}

// licensePathDocs documents the routes of this file.
func (s *Server) licensePathDocs(jsonBody func(reflect.Type, string) obj, common func(obj) obj) obj {
	errRef := func(name string) obj { return obj{"$ref": "#/components/responses/" + name} }
	return obj{
		"/v1/licenses": obj{"get": obj{
			"operationId": "listLicenses", "summary": "List licenses (License A)", "tags": []string{"licenses"},
			"description": "One page of the licenses view, filtered; keyset pagination on (issuedAt, instanceId): follow nextCursor until it is absent.",
			"parameters":  paramDocs(s.licenseListParams()),
			"responses":   common(obj{"200": jsonBody(reflect.TypeFor[LicenseList](), "One page.")}),
		}},
		"/v1/licenses/{id}": obj{"get": obj{
			"operationId": "getLicense", "summary": "One license (License A)", "tags": []string{"licenses"},
			"description": "The license's row in the licenses view (never its text).",
			"parameters":  paramDocs([]param{licenseIDParam}),
			"responses": common(obj{
				"200": jsonBody(reflect.TypeFor[LicenseDetail](), "The license."),
				"404": errRef("NotFound"),
			}),
		}},
		"/v1/license-codes": obj{"get": obj{
			"operationId": "listLicenseCodes", "summary": "List authorization codes (License B)", "tags": []string{"licenses"},
			"description": "One page of the license_codes view, filtered; keyset pagination on (registeredAt, code): follow nextCursor until it is absent.",
			"parameters":  paramDocs(s.codeListParams()),
			"responses":   common(obj{"200": jsonBody(reflect.TypeFor[LicenseCodeList](), "One page.")}),
		}},
		"/v1/usage-records": obj{"get": obj{
			"operationId": "listUsageRecords", "summary": "List usage records", "tags": []string{"usage"},
			"description": "One page of the usage view (every instance's records, or one instance's), with the delivery status of each; " +
				"keyset pagination on (beginTime, meteringSn). GET /v1/usage reads one instance's usage fresh from the log instead.",
			"parameters": paramDocs(s.usageRecordParams()),
			"responses":  common(obj{"200": jsonBody(reflect.TypeFor[UsageRecordList](), "One page.")}),
		}},
		"/v1/stats/families": obj{"get": obj{
			"operationId": "familyStats", "summary": "Per-day counts per product family", "tags": []string{"statistics"},
			"description": "Per-day counts of the days from..to (UTC, inclusive) per family: saas-v2 and saas-v1 (the instance metrics of " +
				"GET /v1/stats; summed over the two families they equal its counts), license-a (new/trial issues, renewed, expired, released) " +
				"and license-b (new registrations, renewed, renewal_cancelled, frozen, unfrozen, released, activated, activation_failed, queried, usage_reported).",
			"parameters": paramDocs(familyStatsParams),
			"responses":  common(obj{"200": jsonBody(reflect.TypeFor[FamilyStats](), "The counts.")}),
		}},
	}
}
