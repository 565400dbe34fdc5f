package views

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Read API of the views of migration 2. The listings page like
// ListInstances: keyset pagination on (a time, the key), ascending or
// Desc, with the same opaque cursors.

// conds builds a WHERE clause.
type conds struct {
	d     *dialect
	where []string
	args  []any
}

func (c *conds) eq(col, v string) {
	if v != "" {
		c.where = append(c.where, col+" = ?")
		c.args = append(c.args, v)
	}
}

func (c *conds) in(col string, vals []string) {
	if len(vals) == 0 {
		return
	}
	c.where = append(c.where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
	for _, v := range vals {
		c.args = append(c.args, v)
	}
}

func (c *conds) boolEq(col string, v *bool) {
	if v != nil {
		c.where = append(c.where, col+" = ?")
		c.args = append(c.args, *v)
	}
}

// rng keeps [from, to) of a timestamp column; zero ends are open.
func (c *conds) rng(col string, from, to time.Time) {
	if !from.IsZero() {
		c.where = append(c.where, col+" >= ?")
		c.args = append(c.args, c.d.ts(at(from)))
	}
	if !to.IsZero() {
		c.where = append(c.where, col+" < ?")
		c.args = append(c.args, c.d.ts(at(to)))
	}
}

// keyset is how a table is listed: by (timeCol, idCol).
type keyset struct {
	view, table, timeCol, idCol string
}

// listPage reads one page of ks.table matching c, ordered by (timeCol,
// idCol) as p asks; key returns a row's sort key. It returns the rows, the
// cursor of the next page ("" after the last) and the view's checkpoint.
func listPage[T any](ctx context.Context, s *Store, ks keyset, c *conds, p Page, scan func(scanner) (T, error),
	key func(*T) (time.Time, string)) ([]T, string, uint64, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxPageSize)
	if p.Cursor != "" {
		cur, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", 0, err
		}
		if cur.Desc != p.Desc {
			return nil, "", 0, fmt.Errorf("%w: it continues a listing in the other direction", ErrBadCursor)
		}
		op := ">"
		if p.Desc {
			op = "<"
		}
		c.where = append(c.where, "("+ks.timeCol+", "+ks.idCol+") "+op+" (?, ?)")
		c.args = append(c.args, s.d.ts(at(cur.CreatedAt)), cur.ID)
	}
	dir := "ASC"
	if p.Desc {
		dir = "DESC"
	}
	q := "SELECT " + columnList(ks.table) + " FROM " + ks.table
	if len(c.where) > 0 {
		q += " WHERE " + strings.Join(c.where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY %s %s, %s %s LIMIT ?", ks.timeCol, dir, ks.idCol, dir)
	args := append(c.args, limit+1)
	var rows []T
	seq, err := s.read(ctx, ks.view, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, s.d.q(q), args, func(sc scanner) error {
			r, err := scan(sc)
			if err == nil {
				rows = append(rows, r)
			}
			return err
		})
	})
	if err != nil {
		return nil, "", 0, fmt.Errorf("views: list %s: %w", ks.table, err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		t, id := key(&rows[limit-1])
		next = encodeCursor(cursor{CreatedAt: t, ID: id, Desc: p.Desc})
	}
	return rows, next, seq, nil
}

// getRow reads the row of ks.table whose idCol is id; found is false when
// there is none.
func getRow[T any](ctx context.Context, s *Store, ks keyset, id string, scan func(scanner) (T, error)) (T, bool, uint64, error) {
	var r T
	found := false
	seq, err := s.read(ctx, ks.view, func(tx *sql.Tx) error {
		q := s.d.q("SELECT " + columnList(ks.table) + " FROM " + ks.table + " WHERE " + ks.idCol + " = ?")
		var err error
		r, err = scan(tx.QueryRowContext(ctx, q, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return r, false, 0, fmt.Errorf("views: get %s %s: %w", ks.table, id, err)
	}
	return r, found, seq, nil
}

var (
	licensesKeys = keyset{view: ViewLicenses, table: "licenses", timeCol: "issued_at", idCol: "instance_id"}
	codesKeys    = keyset{view: ViewLicenseCodes, table: "license_codes", timeCol: "registered_at", idCol: "code"}
	usageKeys    = keyset{view: ViewUsage, table: "usage_records", timeCol: "begin_time", idCol: "metering_sn"}
)

// LicenseFilter selects licenses; zero fields do not filter. Time ranges
// are half-open, [From, To).
type LicenseFilter struct {
	// Status matches any of the statuses (issued, frozen, released).
	Status     []string
	ProductID  string
	SKUCode    string
	CustomerID string
	OrderID    string
	Route      string
	Trial      *bool

	ExpireFrom, ExpireTo time.Time
	IssuedFrom, IssuedTo time.Time
}

// LicensePage is one page of licenses.
type LicensePage struct {
	Licenses []License `json:"licenses"`
	Next     string    `json:"next,omitempty"`
	Seq      uint64    `json:"seq"`
}

// ListLicenses returns one page of the licenses matching f, ordered by
// (issued_at, instance_id), with keyset pagination as ListInstances.
func (s *Store) ListLicenses(ctx context.Context, f LicenseFilter, p Page) (LicensePage, error) {
	c := &conds{d: s.d}
	c.in("status", f.Status)
	c.eq("product_id", f.ProductID)
	c.eq("sku_code", f.SKUCode)
	c.eq("customer_id", f.CustomerID)
	c.eq("order_id", f.OrderID)
	c.eq("route", f.Route)
	c.boolEq("trial", f.Trial)
	c.rng("expire_time", f.ExpireFrom, f.ExpireTo)
	c.rng("issued_at", f.IssuedFrom, f.IssuedTo)
	rows, next, seq, err := listPage(ctx, s, licensesKeys, c, p, scanLicense,
		func(r *License) (time.Time, string) { return r.IssuedAt, r.InstanceID })
	return LicensePage{Licenses: rows, Next: next, Seq: seq}, err
}

// GetLicense returns one license (by its instanceId) and the sequence the
// answer is consistent to; ErrNotFound if the view has none.
func (s *Store) GetLicense(ctx context.Context, id string) (License, uint64, error) {
	r, found, seq, err := getRow(ctx, s, licensesKeys, id, scanLicense)
	if err == nil && !found {
		err = fmt.Errorf("%w: license %s", ErrNotFound, id)
	}
	return r, seq, err
}

// LicenseCodeFilter selects license codes; zero fields do not filter.
type LicenseCodeFilter struct {
	// Status matches any of the statuses (active, frozen, released).
	Status []string
	// Activation matches any of the activation states (pending,
	// confirmed, refused).
	Activation []string
	ProductID  string
	OrderID    string
	Route      string

	ExpireFrom, ExpireTo         time.Time
	RegisteredFrom, RegisteredTo time.Time
}

// LicenseCodePage is one page of license codes.
type LicenseCodePage struct {
	Codes []LicenseCode `json:"codes"`
	Next  string        `json:"next,omitempty"`
	Seq   uint64        `json:"seq"`
}

// ListLicenseCodes returns one page of the codes matching f, ordered by
// (registered_at, code), with keyset pagination as ListInstances.
func (s *Store) ListLicenseCodes(ctx context.Context, f LicenseCodeFilter, p Page) (LicenseCodePage, error) {
	c := &conds{d: s.d}
	c.in("status", f.Status)
	c.in("activation", f.Activation)
	c.eq("product_id", f.ProductID)
	c.eq("order_id", f.OrderID)
	c.eq("route", f.Route)
	c.rng("expire_time", f.ExpireFrom, f.ExpireTo)
	c.rng("registered_at", f.RegisteredFrom, f.RegisteredTo)
	rows, next, seq, err := listPage(ctx, s, codesKeys, c, p, scanLicenseCode,
		func(r *LicenseCode) (time.Time, string) { return r.RegisteredAt, r.Code })
	return LicenseCodePage{Codes: rows, Next: next, Seq: seq}, err
}

// GetLicenseCode returns one code and the sequence the answer is
// consistent to; ErrNotFound if the view has none.
func (s *Store) GetLicenseCode(ctx context.Context, code string) (LicenseCode, uint64, error) {
	r, found, seq, err := getRow(ctx, s, codesKeys, code, scanLicenseCode)
	if err == nil && !found {
		err = fmt.Errorf("%w: license code %s", ErrNotFound, code)
	}
	return r, seq, err
}

// UsageRecordFilter selects usage records; zero fields do not filter.
type UsageRecordFilter struct {
	InstanceID string
	// Status matches any of pending, pushed, rejected.
	Status []string
	// BeginFrom and BeginTo bound the interval's begin time, [From, To).
	BeginFrom, BeginTo time.Time
}

// UsageRecordPage is one page of usage records.
type UsageRecordPage struct {
	Records []UsageRecord `json:"records"`
	Next    string        `json:"next,omitempty"`
	Seq     uint64        `json:"seq"`
}

// ListUsageRecords returns one page of the usage records matching f,
// ordered by (begin_time, metering_sn), with keyset pagination as
// ListInstances (a record reported late for an interval before the
// cursor is not shown by a listing already past it).
func (s *Store) ListUsageRecords(ctx context.Context, f UsageRecordFilter, p Page) (UsageRecordPage, error) {
	c := &conds{d: s.d}
	c.eq("instance_id", f.InstanceID)
	c.in("status", f.Status)
	c.rng("begin_time", f.BeginFrom, f.BeginTo)
	rows, next, seq, err := listPage(ctx, s, usageKeys, c, p, scanUsageRecord,
		func(r *UsageRecord) (time.Time, string) { return r.BeginTime, r.MeteringSN })
	return UsageRecordPage{Records: rows, Next: next, Seq: seq}, err
}

// GetUsageRecord returns one usage record by metering_sn and the sequence
// the answer is consistent to; ErrNotFound if the view has none.
func (s *Store) GetUsageRecord(ctx context.Context, meteringSN string) (UsageRecord, uint64, error) {
	r, found, seq, err := getRow(ctx, s, usageKeys, meteringSN, scanUsageRecord)
	if err == nil && !found {
		err = fmt.Errorf("%w: usage record %s", ErrNotFound, meteringSN)
	}
	return r, seq, err
}

// FamilyFactsQuery selects per-day facts per family.
type FamilyFactsQuery struct {
	// From and To are the first and the last day (inclusive; the UTC date
	// of each time). Zero is open.
	From, To time.Time
	// Families and Metrics, when not empty, keep only these.
	Families []string
	Metrics  []string
}

// FamilyFact is a row of family_daily_facts: Count events of Metric
// happened on Day (UTC, "YYYY-MM-DD") in Family.
type FamilyFact struct {
	Day    string `json:"day"`
	Family string `json:"family"`
	Metric string `json:"metric"`
	Count  int64  `json:"count"`
}

// FamilyFacts is the answer of Store.FamilyFacts.
type FamilyFacts struct {
	Facts []FamilyFact `json:"facts"`
	Seq   uint64       `json:"seq"`
}

// FamilyFacts returns the per-family facts of the days in q, ordered by
// day, family and metric. See foldFamilyInstance, licenseMetric and
// codeMetric for what is counted where.
func (s *Store) FamilyFacts(ctx context.Context, q FamilyFactsQuery) (FamilyFacts, error) {
	c := &conds{d: s.d}
	for _, b := range []struct {
		t  time.Time
		op string
	}{{q.From, ">="}, {q.To, "<="}} {
		if b.t.IsZero() {
			continue
		}
		d, err := s.d.day(dayOf(b.t))
		if err != nil {
			return FamilyFacts{}, err
		}
		c.where = append(c.where, "day "+b.op+" ?")
		c.args = append(c.args, d)
	}
	c.in("family", q.Families)
	c.in("metric", q.Metrics)
	query := "SELECT day, family, metric, count FROM family_daily_facts"
	if len(c.where) > 0 {
		query += " WHERE " + strings.Join(c.where, " AND ")
	}
	query += " ORDER BY day, family, metric"
	var out FamilyFacts
	seq, err := s.read(ctx, ViewFamilyFacts, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, s.d.q(query), c.args, func(sc scanner) error {
			var f FamilyFact
			var day dbTime
			if err := sc.Scan(&day, &f.Family, &f.Metric, &f.Count); err != nil {
				return err
			}
			f.Day = day.T.Format(dayLayout)
			out.Facts = append(out.Facts, f)
			return nil
		})
	})
	if err != nil {
		return FamilyFacts{}, fmt.Errorf("views: family facts: %w", err)
	}
	out.Seq = seq
	return out, nil
}
