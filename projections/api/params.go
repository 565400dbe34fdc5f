package api

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/views"
)

// The parameters of every route are described once, here: the handlers
// validate with these definitions and the OpenAPI document is built from
// them, so the two cannot disagree.

type paramKind int

const (
	kindText     paramKind = iota // free text, 1..maxText bytes of UTF-8 without control characters
	kindEnum                      // one of enum
	kindEnumList                  // one or more of enum: comma-separated and/or repeated
	kindBool                      // true or false
	kindInstant                   // RFC 3339 date-time, or a date (midnight UTC)
	kindDate                      // YYYY-MM-DD
	kindInt                       // integer in min..max
	kindCursor                    // an opaque cursor
)

// maxText bounds a text parameter.
const maxText = 256

// maxCursor bounds a cursor.
const maxCursor = 2048

type param struct {
	name     string
	in       string // "query" or "path"
	kind     paramKind
	desc     string
	required bool
	enum     []string
	min, max int // kindInt
	def      string
	example  string
}

// statuses are the instance statuses a view row may have.
var statuses = []string{
	string(instance.StatusProvisioning), string(instance.StatusActive), string(instance.StatusFrozen),
	string(instance.StatusReleased), string(instance.StatusFailed),
}

// filterParams select instances (GET /v1/instances and its CSV export).
var filterParams = []param{
	{name: "status", in: "query", kind: kindEnumList, enum: statuses, example: "active,frozen",
		desc: "Keep instances in any of these statuses (comma-separated, or the parameter repeated)."},
	{name: "productId", in: "query", kind: kindText, desc: "Keep instances of this product."},
	{name: "skuCode", in: "query", kind: kindText, desc: "Keep instances of this SKU."},
	{name: "chargingMode", in: "query", kind: kindText, example: "PERIOD",
		desc: "Keep instances with this charging mode (as Query Order reports it: ON_DEMAND, ONE_TIME, PERIOD, ON_DEMAND_PKG)."},
	{name: "customerId", in: "query", kind: kindText, desc: "Keep instances of this customer."},
	{name: "orderId", in: "query", kind: kindText, desc: "Keep the instance created by this order."},
	{name: "trial", in: "query", kind: kindBool, desc: "Keep trial instances (true) or the others (false)."},
	{name: "formal", in: "query", kind: kindBool, desc: "Keep trials converted to paid (true) or the others (false)."},
	{name: "testFlag", in: "query", kind: kindBool, desc: "Keep instances created by test (debug) calls (true) or the others (false)."},
	{name: "expireAfter", in: "query", kind: kindInstant, example: "2026-01-01T00:00:00Z",
		desc: "Keep instances expiring at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	{name: "expireBefore", in: "query", kind: kindInstant, example: "2027-01-01",
		desc: "Keep instances expiring before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	{name: "createdFrom", in: "query", kind: kindInstant, example: "2026-01-01",
		desc: "Keep instances created at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
	{name: "createdTo", in: "query", kind: kindInstant, example: "2026-02-01",
		desc: "Keep instances created before this time (RFC 3339, or YYYY-MM-DD for midnight UTC)."},
}

var orderParam = param{name: "order", in: "query", kind: kindEnum, enum: []string{"asc", "desc"}, def: "asc",
	desc: "Oldest first (asc, by creation time then instanceId) or newest first (desc)."}

// listParams are the parameters of GET /v1/instances.
func (s *Server) listParams() []param {
	return append(slices.Clone(filterParams),
		param{name: "limit", in: "query", kind: kindInt, min: 1, max: s.cfg.MaxPageSize, def: strconv.Itoa(s.defaultLimit()),
			desc: "Page size."},
		param{name: "cursor", in: "query", kind: kindCursor,
			desc: "Continue a listing: the nextCursor of the previous page (same order; filters should stay the same)."},
		orderParam)
}

func (s *Server) defaultLimit() int { return min(defaultPageSize, s.cfg.MaxPageSize) }

// exportParams are the parameters of GET /v1/instances.csv.
var exportParams = append(slices.Clone(filterParams), orderParam)

var idParam = param{name: "id", in: "path", kind: kindText, required: true, desc: "The instance id."}

// statsParams are the parameters of GET /v1/stats.
var statsParams = []param{
	{name: "from", in: "query", kind: kindDate, required: true, example: "2026-01-01", desc: "First day (UTC), YYYY-MM-DD."},
	{name: "to", in: "query", kind: kindDate, required: true, example: "2026-01-31",
		desc: fmt.Sprintf("Last day (UTC, inclusive), YYYY-MM-DD; at most %d days after from.", maxStatsDays-1)},
	{name: "productId", in: "query", kind: kindText, desc: "Only this product's figures."},
}

// maxStatsDays bounds the days of one statistics answer.
const maxStatsDays = 366

// Bounds of the parked listing.
const (
	defaultParkedLimit = 1000
	maxParkedLimit     = 5000
)

// parkedParams are the parameters of GET /v1/effects/parked.
var parkedParams = []param{
	{name: "effect", in: "query", kind: kindText, example: "webhook", desc: "Only this effect's parked events."},
	{name: "instanceId", in: "query", kind: kindText, desc: "Only this instance's parked events."},
	{name: "limit", in: "query", kind: kindInt, min: 1, max: maxParkedLimit, def: strconv.Itoa(defaultParkedLimit),
		desc: "At most this many (oldest first); truncated tells whether there are more."},
}

// query is a request's query string, checked against its parameters.
type query struct {
	defs map[string]param
	v    url.Values
}

// parseQuery parses the raw query string strictly: malformed escapes,
// unknown parameters and repeated single-valued ones are errors, so that a
// typo never silently widens a filter.
func parseQuery(c *gin.Context, defs []param) (query, *fieldError) {
	v, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return query{}, badField("", "malformed query string: "+err.Error())
	}
	q := query{defs: map[string]param{}, v: v}
	for _, d := range defs {
		q.defs[d.name] = d
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // report the same parameter whatever the map order
	for _, name := range names {
		d, ok := q.defs[name]
		if !ok {
			return query{}, badField(truncate(name, 64), "unknown parameter")
		}
		if len(v[name]) > 1 && d.kind != kindEnumList {
			return query{}, badField(name, "given more than once")
		}
	}
	for _, d := range defs {
		if d.required && v.Get(d.name) == "" {
			return query{}, badField(d.name, "is required")
		}
	}
	return q, nil
}

// raw returns the parameter's value, "" and false when absent. An empty
// value is an error: it would otherwise be taken for "no filter".
func (q query) raw(name string) (string, bool, *fieldError) {
	vals, ok := q.v[name]
	if !ok {
		return "", false, nil
	}
	if vals[0] == "" {
		return "", false, badField(name, "must not be empty")
	}
	return vals[0], true, nil
}

func (q query) text(name string) (string, *fieldError) {
	s, ok, ferr := q.raw(name)
	if !ok {
		return "", ferr
	}
	if ferr := checkText(name, s); ferr != nil {
		return "", ferr
	}
	return s, nil
}

// checkText validates free text.
func checkText(name, s string) *fieldError {
	if len(s) > maxText {
		return badField(name, fmt.Sprintf("longer than %d bytes", maxText))
	}
	if !utf8.ValidString(s) {
		return badField(name, "not valid UTF-8")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return badField(name, "contains control characters")
	}
	return nil
}

func (q query) boolean(name string) (*bool, *fieldError) {
	s, ok, ferr := q.raw(name)
	if !ok {
		return nil, ferr
	}
	switch s {
	case "true":
		return new(true), nil
	case "false":
		return new(false), nil
	}
	return nil, badField(name, "must be true or false")
}

// instant parses an RFC 3339 time or a date (midnight UTC).
func (q query) instant(name string) (time.Time, *fieldError) {
	s, ok, ferr := q.raw(name)
	if !ok {
		return time.Time{}, ferr
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	// An unescaped '+' of a time zone offset arrives as a space.
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(s, " ", "+", 1)); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, badField(name, "must be an RFC 3339 time (2026-01-02T15:04:05Z) or a date (2026-01-02)")
}

func (q query) date(name string) (time.Time, *fieldError) {
	s, ok, ferr := q.raw(name)
	if !ok {
		return time.Time{}, ferr
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, badField(name, "must be a date, YYYY-MM-DD")
	}
	return t, nil
}

// integer returns the parameter's value, or its default.
func (q query) integer(name string) (int, *fieldError) {
	d := q.defs[name]
	s, ok, ferr := q.raw(name)
	if ferr != nil {
		return 0, ferr
	}
	if !ok {
		n, _ := strconv.Atoi(d.def)
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < d.min || n > d.max {
		return 0, badField(name, fmt.Sprintf("must be an integer in %d..%d", d.min, d.max))
	}
	return n, nil
}

// enum returns the parameter's value, or its default.
func (q query) enum(name string) (string, *fieldError) {
	d := q.defs[name]
	s, ok, ferr := q.raw(name)
	if ferr != nil {
		return "", ferr
	}
	if !ok {
		return d.def, nil
	}
	if !slices.Contains(d.enum, s) {
		return "", badField(name, "must be one of "+strings.Join(d.enum, ", "))
	}
	return s, nil
}

// enumList returns the values of a comma-separated, repeatable parameter,
// without duplicates.
func (q query) enumList(name string) ([]string, *fieldError) {
	d := q.defs[name]
	var out []string
	for _, v := range q.v[name] {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if !slices.Contains(d.enum, part) {
				return nil, badField(name, fmt.Sprintf("%q is not one of %s", truncate(part, 40), strings.Join(d.enum, ", ")))
			}
			if !slices.Contains(out, part) {
				out = append(out, part)
			}
		}
	}
	return out, nil
}

func (q query) cursor(name string) (string, *fieldError) {
	s, ok, ferr := q.raw(name)
	if !ok {
		return "", ferr
	}
	if len(s) > maxCursor {
		return "", badField(name, "not a cursor of this API")
	}
	return s, nil
}

// instanceFilter reads the filter parameters.
func instanceFilter(q query) (views.InstanceFilter, *fieldError) {
	var f views.InstanceFilter
	var ferr *fieldError
	if f.Status, ferr = q.enumList("status"); ferr != nil {
		return f, ferr
	}
	for _, t := range []struct {
		name string
		dst  *string
	}{{"productId", &f.ProductID}, {"skuCode", &f.SKUCode}, {"chargingMode", &f.ChargingMode}, {"customerId", &f.CustomerID}, {"orderId", &f.OrderID}} {
		if *t.dst, ferr = q.text(t.name); ferr != nil {
			return f, ferr
		}
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"trial", &f.Trial}, {"formal", &f.Formal}, {"testFlag", &f.TestFlag}} {
		if *b.dst, ferr = q.boolean(b.name); ferr != nil {
			return f, ferr
		}
	}
	for _, r := range []struct {
		fromName, toName string
		from, to         *time.Time
	}{{"expireAfter", "expireBefore", &f.ExpireFrom, &f.ExpireTo}, {"createdFrom", "createdTo", &f.CreatedFrom, &f.CreatedTo}} {
		if *r.from, ferr = q.instant(r.fromName); ferr != nil {
			return f, ferr
		}
		if *r.to, ferr = q.instant(r.toName); ferr != nil {
			return f, ferr
		}
		if !r.from.IsZero() && !r.to.IsZero() && !r.from.Before(*r.to) {
			return f, badField(r.toName, "must be after "+r.fromName)
		}
	}
	return f, nil
}

// truncate shortens s for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// page reads limit, cursor and order.
func page(q query) (views.Page, *fieldError) {
	var p views.Page
	var ferr *fieldError
	if p.Limit, ferr = q.integer("limit"); ferr != nil {
		return p, ferr
	}
	if p.Cursor, ferr = q.cursor("cursor"); ferr != nil {
		return p, ferr
	}
	order, ferr := q.enum("order")
	p.Desc = order == "desc"
	return p, ferr
}

// timeRange reads a pair of instants: [from, to).
func timeRange(q query, fromName, toName string, from, to *time.Time) *fieldError {
	var ferr *fieldError
	if *from, ferr = q.instant(fromName); ferr != nil {
		return ferr
	}
	if *to, ferr = q.instant(toName); ferr != nil {
		return ferr
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(*to) {
		return badField(toName, "must be after "+fromName)
	}
	return nil
}

// texts reads text parameters into their destinations, in order.
func texts(q query, names []string, dst ...*string) *fieldError {
	for i, name := range names {
		v, ferr := q.text(name)
		if ferr != nil {
			return ferr
		}
		*dst[i] = v
	}
	return nil
}
