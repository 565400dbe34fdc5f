package views

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Errors of the read API.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("views: not found")
	// ErrUnknownView: a view name that is not one of ViewNames().
	ErrUnknownView = errors.New("views: unknown view")
	// ErrBadCursor: a page cursor that this query did not produce.
	ErrBadCursor = errors.New("views: invalid cursor")
)

// Instance is a row of the instances table. Unknown text is "", unknown
// times nil; every time is UTC. How each column follows the events:
//
//   - Status as instance.Evolve: provisioning → active (provisioned) or
//     failed; frozen on freeze, back to active (provisioning if never
//     provisioned) on unfreeze; released.
//   - OrderID, OrderLineID, BusinessID from InstanceCreated; Route is the
//     production path the creation arrived on; TestFlag is the creation's
//     debug flag (always false: debug calls never reach the log).
//   - ProductID: set by a refresh naming a product; a Query Order answer
//     fills it in while unknown (as instance.Evolve).
//   - SKUCode, ChargingMode, PeriodType, PeriodNumber, CustomerID: the
//     latest non-empty value of any Query Order answer.
//   - OrderType and Trial: from the Query Order answer for the creating
//     order (Trial once that order type is TRIAL). Formal: set by a
//     TRIAL_TO_FORMAL refresh.
//   - ExpireTime: the latest refresh's; before any refresh, the Query
//     Order answer's.
//   - Renewals counts RENEWAL and RENEWAL_CHANGE refreshes, Upgrades the
//     upgrades.
//   - CreatedAt, ProvisionedAt (first success), FailedAt with FailureCode
//     and FailureMessage (last failure, kept after a later success),
//     FrozenAt (since when frozen; cleared on unfreeze), ReleasedAt,
//     RefreshedAt (last refresh): event times.
//   - LastEventSeq and UpdatedAt: stream sequence and time of the last
//     event applied (never the clock, so a replay writes the same rows).
type Instance struct {
	InstanceID     string     `json:"instanceId"`
	Status         string     `json:"status"`
	OrderID        string     `json:"orderId"`
	OrderLineID    string     `json:"orderLineId"`
	BusinessID     string     `json:"businessId"`
	Route          string     `json:"route"`
	ProductID      string     `json:"productId"`
	SKUCode        string     `json:"skuCode"`
	ChargingMode   string     `json:"chargingMode"`
	PeriodType     string     `json:"periodType"`
	PeriodNumber   int        `json:"periodNumber"`
	CustomerID     string     `json:"customerId"`
	OrderType      string     `json:"orderType"`
	Trial          bool       `json:"trial"`
	Formal         bool       `json:"formal"`
	TestFlag       bool       `json:"testFlag"`
	ExpireTime     *time.Time `json:"expireTime,omitempty"`
	CreatedAt      *time.Time `json:"createdAt,omitempty"`
	ProvisionedAt  *time.Time `json:"provisionedAt,omitempty"`
	FailedAt       *time.Time `json:"failedAt,omitempty"`
	FailureCode    string     `json:"failureCode"`
	FailureMessage string     `json:"failureMessage"`
	FrozenAt       *time.Time `json:"frozenAt,omitempty"`
	ReleasedAt     *time.Time `json:"releasedAt,omitempty"`
	RefreshedAt    *time.Time `json:"refreshedAt,omitempty"`
	Upgrades       int        `json:"upgrades"`
	Renewals       int        `json:"renewals"`
	LastEventSeq   uint64     `json:"lastEventSeq"`
	UpdatedAt      time.Time  `json:"updatedAt"`
}

// scanInstance reads the columns of tableColumns["instances"].
func scanInstance(sc scanner) (Instance, error) {
	var r Instance
	var expire, created, provisioned, failed, frozen, released, refreshed, updated dbTime
	var periodNumber, upgrades, renewals, lastSeq int64
	err := sc.Scan(&r.InstanceID, &r.Status, &r.OrderID, &r.OrderLineID,
		&r.BusinessID, &r.Route, &r.ProductID, &r.SKUCode,
		&r.ChargingMode, &r.PeriodType, &periodNumber, &r.CustomerID,
		&r.OrderType, &r.Trial, &r.Formal, &r.TestFlag,
		&expire, &created, &provisioned, &failed,
		&r.FailureCode, &r.FailureMessage, &frozen, &released,
		&refreshed, &upgrades, &renewals, &lastSeq,
		&updated)
	if err != nil {
		return r, err
	}
	r.PeriodNumber, r.Upgrades, r.Renewals, r.LastEventSeq = int(periodNumber), int(upgrades), int(renewals), uint64(lastSeq)
	r.ExpireTime, r.CreatedAt, r.ProvisionedAt, r.FailedAt = expire.ptr(), created.ptr(), provisioned.ptr(), failed.ptr()
	r.FrozenAt, r.ReleasedAt, r.RefreshedAt = frozen.ptr(), released.ptr(), refreshed.ptr()
	r.UpdatedAt = updated.T
	return r, nil
}

// read runs fn in a read-only transaction on one snapshot and returns the
// checkpoint of view in that snapshot: the stream sequence the answer is
// consistent to. The checkpoint is read after fn's queries: on PostgreSQL
// a query that waited for a replay's swap then sees the swapped tables and
// their checkpoint together.
func (s *Store) read(ctx context.Context, view string, fn func(tx *sql.Tx) error) (uint64, error) {
	tx, err := s.db.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return 0, fmt.Errorf("views: begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return 0, err
	}
	seq, err := s.checkpointIn(ctx, tx, view, false)
	if err != nil {
		return 0, err
	}
	return seq, tx.Commit()
}

// checkpointIn reads the checkpoint of view inside tx (locking the row for
// the transaction on PostgreSQL when lock is set).
func (s *Store) checkpointIn(ctx context.Context, q querier, view string, lock bool) (uint64, error) {
	query := "SELECT seq FROM view_checkpoints WHERE view = ?"
	if lock {
		query += s.d.forUpdate
	}
	var seq int64
	err := q.QueryRowContext(ctx, s.d.q(query), view).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %q", ErrUnknownView, view)
	}
	if err != nil {
		return 0, fmt.Errorf("views: checkpoint of %s: %w", view, err)
	}
	return uint64(seq), nil
}

// Checkpoint returns the stream sequence of the last event applied to view.
func (s *Store) Checkpoint(ctx context.Context, view string) (uint64, error) {
	if _, ok := viewTables[view]; !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownView, view)
	}
	return s.checkpointIn(ctx, s.db, view, false)
}

// Checkpoints returns the checkpoint of every view.
func (s *Store) Checkpoints(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := queryEach(ctx, s.db, "SELECT view, seq FROM view_checkpoints", nil, func(sc scanner) error {
		var v string
		var seq int64
		if err := sc.Scan(&v, &seq); err != nil {
			return err
		}
		out[v] = uint64(seq)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("views: checkpoints: %w", err)
	}
	return out, nil
}

// InstanceFilter selects instances; zero fields do not filter. Time ranges
// are half-open, [From, To), either end may be zero.
type InstanceFilter struct {
	// Status matches any of the statuses (provisioning, active, frozen,
	// released, failed).
	Status       []string
	ProductID    string
	SKUCode      string
	ChargingMode string
	CustomerID   string
	OrderID      string
	Route        string
	Trial        *bool
	Formal       *bool
	TestFlag     *bool

	ExpireFrom, ExpireTo           time.Time
	CreatedFrom, CreatedTo         time.Time
	ProvisionedFrom, ProvisionedTo time.Time
	ReleasedFrom, ReleasedTo       time.Time
}

// Page asks for one page of a listing.
type Page struct {
	// Limit is the page size: default 100, at most MaxPageSize.
	Limit int
	// Cursor continues after the last row of a previous page (its Next);
	// "" starts at the beginning.
	Cursor string
	// Desc lists newest first (by created_at, then instance_id); the
	// default is oldest first. A cursor only continues a listing in the
	// same direction.
	Desc bool
}

// MaxPageSize bounds Page.Limit.
const MaxPageSize = 1000

// InstancePage is one page of instances.
type InstancePage struct {
	Instances []Instance `json:"instances"`
	// Next is the cursor of the next page, "" after the last one.
	Next string `json:"next,omitempty"`
	// Seq is the stream sequence the page is consistent to.
	Seq uint64 `json:"seq"`
}

// cursor is the keyset position of a listing: the last row's sort key.
type cursor struct {
	CreatedAt time.Time `json:"c"`
	ID        string    `json:"i"`
	Desc      bool      `json:"d,omitempty"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return c, fmt.Errorf("%w: malformed", ErrBadCursor)
	}
	return c, nil
}

// ListInstances returns one page of the instances matching f, ordered by
// (created_at, instance_id) — ascending, or descending with p.Desc —
// with keyset pagination: rows inserted between two pages never make a
// row appear twice or be skipped (a new instance sorts after every
// existing one in ascending order; in descending order it is before the
// cursor and simply not shown).
func (s *Store) ListInstances(ctx context.Context, f InstanceFilter, p Page) (InstancePage, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxPageSize)
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	boolEq := func(col string, v *bool) {
		if v != nil {
			where = append(where, col+" = ?")
			args = append(args, *v)
		}
	}
	rng := func(col string, from, to time.Time) {
		if !from.IsZero() {
			where = append(where, col+" >= ?")
			args = append(args, s.d.ts(at(from)))
		}
		if !to.IsZero() {
			where = append(where, col+" < ?")
			args = append(args, s.d.ts(at(to)))
		}
	}
	if len(f.Status) > 0 {
		where = append(where, "status IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Status)), ", ")+")")
		for _, st := range f.Status {
			args = append(args, st)
		}
	}
	eq("product_id", f.ProductID)
	eq("sku_code", f.SKUCode)
	eq("charging_mode", f.ChargingMode)
	eq("customer_id", f.CustomerID)
	eq("order_id", f.OrderID)
	eq("route", f.Route)
	boolEq("trial", f.Trial)
	boolEq("formal", f.Formal)
	boolEq("test_flag", f.TestFlag)
	rng("expire_time", f.ExpireFrom, f.ExpireTo)
	rng("created_at", f.CreatedFrom, f.CreatedTo)
	rng("provisioned_at", f.ProvisionedFrom, f.ProvisionedTo)
	rng("released_at", f.ReleasedFrom, f.ReleasedTo)
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor)
		if err != nil {
			return InstancePage{}, err
		}
		if c.Desc != p.Desc {
			return InstancePage{}, fmt.Errorf("%w: it continues a listing in the other direction", ErrBadCursor)
		}
		op := ">"
		if p.Desc {
			op = "<"
		}
		where = append(where, "(created_at, instance_id) "+op+" (?, ?)")
		args = append(args, s.d.ts(at(c.CreatedAt)), c.ID)
	}
	dir := "ASC"
	if p.Desc {
		dir = "DESC"
	}
	q := "SELECT " + columnList("instances") + " FROM instances"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY created_at %s, instance_id %s LIMIT ?", dir, dir)
	args = append(args, limit+1)

	var page InstancePage
	seq, err := s.read(ctx, ViewInstances, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, s.d.q(q), args, func(sc scanner) error {
			r, err := scanInstance(sc)
			if err == nil {
				page.Instances = append(page.Instances, r)
			}
			return err
		})
	})
	if err != nil {
		return InstancePage{}, fmt.Errorf("views: list instances: %w", err)
	}
	page.Seq = seq
	if len(page.Instances) > limit {
		page.Instances = page.Instances[:limit]
		last := page.Instances[limit-1]
		c := cursor{ID: last.InstanceID, Desc: p.Desc}
		if last.CreatedAt != nil {
			c.CreatedAt = *last.CreatedAt
		}
		page.Next = encodeCursor(c)
	}
	return page, nil
}

// GetInstance returns one instance and the sequence the answer is
// consistent to; ErrNotFound if the view has no such instance.
func (s *Store) GetInstance(ctx context.Context, id string) (Instance, uint64, error) {
	var r Instance
	found := false
	seq, err := s.read(ctx, ViewInstances, func(tx *sql.Tx) error {
		q := s.d.q("SELECT " + columnList("instances") + " FROM instances WHERE instance_id = ?")
		var err error
		r, err = scanInstance(tx.QueryRowContext(ctx, q, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return Instance{}, 0, fmt.Errorf("views: get instance %s: %w", id, err)
	}
	if !found {
		return Instance{}, seq, fmt.Errorf("%w: instance %s", ErrNotFound, id)
	}
	return r, seq, nil
}

// FactsQuery selects daily facts.
type FactsQuery struct {
	// From and To are the first and the last day (inclusive; the UTC date
	// of each time is used). A zero From starts at the beginning, a zero
	// To runs to the end.
	From, To time.Time
	// Products, when not empty, keeps only these products ("" is the
	// unknown product).
	Products []string
	// Metrics, when not empty, keeps only these metrics.
	Metrics []string
}

// DailyFact is a row of daily_facts: Count events of Metric happened on
// Day (UTC, "YYYY-MM-DD") for instances of ProductID ("" when unknown).
type DailyFact struct {
	Day       string `json:"day"`
	ProductID string `json:"productId"`
	Metric    string `json:"metric"`
	Count     int64  `json:"count"`
}

// Facts is the answer of DailyFacts.
type Facts struct {
	Facts []DailyFact `json:"facts"`
	Seq   uint64      `json:"seq"`
}

// DailyFacts returns the facts of the days in q, ordered by day, product
// and metric. See foldFacts for what is counted where.
func (s *Store) DailyFacts(ctx context.Context, q FactsQuery) (Facts, error) {
	var where []string
	var args []any
	if !q.From.IsZero() {
		d, err := s.d.day(dayOf(q.From))
		if err != nil {
			return Facts{}, err
		}
		where = append(where, "day >= ?")
		args = append(args, d)
	}
	if !q.To.IsZero() {
		d, err := s.d.day(dayOf(q.To))
		if err != nil {
			return Facts{}, err
		}
		where = append(where, "day <= ?")
		args = append(args, d)
	}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in("product_id", q.Products)
	in("metric", q.Metrics)
	query := "SELECT day, product_id, metric, count FROM daily_facts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY day, product_id, metric"
	var out Facts
	seq, err := s.read(ctx, ViewFacts, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, s.d.q(query), args, func(sc scanner) error {
			var f DailyFact
			var day dbTime
			if err := sc.Scan(&day, &f.ProductID, &f.Metric, &f.Count); err != nil {
				return err
			}
			f.Day = day.T.Format(dayLayout)
			out.Facts = append(out.Facts, f)
			return nil
		})
	})
	if err != nil {
		return Facts{}, fmt.Errorf("views: daily facts: %w", err)
	}
	out.Seq = seq
	return out, nil
}

// LatencyQuery selects instances for ProvisioningLatency.
type LatencyQuery struct {
	// From and To bound provisioned_at, [From, To); zero is open.
	From, To time.Time
	// ProductID, when set, keeps only that product's instances.
	ProductID string
}

// LatencyStats summarises provisioning latency (InstanceProvisioned time
// minus InstanceCreated time) in milliseconds. Percentiles are nearest-rank.
// With Count 0 the other figures are 0.
type LatencyStats struct {
	Count int64   `json:"count"`
	MinMS int64   `json:"minMs"`
	MaxMS int64   `json:"maxMs"`
	AvgMS float64 `json:"avgMs"`
	P50MS int64   `json:"p50Ms"`
	P90MS int64   `json:"p90Ms"`
	P99MS int64   `json:"p99Ms"`
	Seq   uint64  `json:"seq"`
}

// ProvisioningLatency returns latency statistics of the instances
// provisioned in q's range.
func (s *Store) ProvisioningLatency(ctx context.Context, q LatencyQuery) (LatencyStats, error) {
	from := "provisioning_latency l"
	var where []string
	var args []any
	if !q.From.IsZero() {
		where = append(where, "l.provisioned_at >= ?")
		args = append(args, s.d.ts(at(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, "l.provisioned_at < ?")
		args = append(args, s.d.ts(at(q.To)))
	}
	if q.ProductID != "" {
		from += " JOIN instances i ON i.instance_id = l.instance_id"
		where = append(where, "i.product_id = ?")
		args = append(args, q.ProductID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var st LatencyStats
	seq, err := s.read(ctx, ViewInstances, func(tx *sql.Tx) error {
		var minMS, maxMS sql.NullInt64
		var avg sql.NullFloat64
		err := tx.QueryRowContext(ctx, s.d.q("SELECT count(*), min(l.latency_ms), max(l.latency_ms), avg(l.latency_ms) FROM "+from+cond), args...).
			Scan(&st.Count, &minMS, &maxMS, &avg)
		if err != nil || st.Count == 0 {
			return err
		}
		st.MinMS, st.MaxMS, st.AvgMS = minMS.Int64, maxMS.Int64, avg.Float64
		for _, pc := range []struct {
			p   float64
			dst *int64
		}{{0.50, &st.P50MS}, {0.90, &st.P90MS}, {0.99, &st.P99MS}} {
			rank := int64(math.Ceil(pc.p * float64(st.Count)))
			q := s.d.q("SELECT l.latency_ms FROM " + from + cond + " ORDER BY l.latency_ms LIMIT 1 OFFSET ?")
			if err := tx.QueryRowContext(ctx, q, append(args[:len(args):len(args)], max(rank-1, 0))...).Scan(pc.dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return LatencyStats{}, fmt.Errorf("views: provisioning latency: %w", err)
	}
	st.Seq = seq
	return st, nil
}

// ParkedQuery selects parked effects; zero fields do not filter.
type ParkedQuery struct {
	Effect     string
	InstanceID string
	// Limit bounds the answer: default 1000, at most 10000.
	Limit int
}

// ParkedEffect is a row of parked_effects: the effect gave up on the
// instance event at EventSeq after Attempts tries, for Reason.
type ParkedEffect struct {
	Effect     string    `json:"effect"`
	InstanceID string    `json:"instanceId"`
	EventSeq   uint64    `json:"eventSeq"`
	EventID    string    `json:"eventId"`
	EventType  string    `json:"eventType"`
	Attempts   int       `json:"attempts"`
	Reason     string    `json:"reason"`
	ParkedAt   time.Time `json:"parkedAt"`
}

// Parked is the answer of ParkedEffects.
type Parked struct {
	Effects []ParkedEffect `json:"effects"`
	Seq     uint64         `json:"seq"`
}

// ParkedEffects lists parked effects, oldest first.
func (s *Store) ParkedEffects(ctx context.Context, q ParkedQuery) (Parked, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	var where []string
	var args []any
	if q.Effect != "" {
		where = append(where, "effect = ?")
		args = append(args, q.Effect)
	}
	if q.InstanceID != "" {
		where = append(where, "instance_id = ?")
		args = append(args, q.InstanceID)
	}
	query := "SELECT " + columnList("parked_effects") + " FROM parked_effects"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY parked_at, effect, instance_id, event_seq LIMIT ?"
	args = append(args, limit)
	var out Parked
	seq, err := s.read(ctx, ViewEffects, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, s.d.q(query), args, func(sc scanner) error {
			var p ParkedEffect
			var seq, attempts int64
			var parked dbTime
			if err := sc.Scan(&p.Effect, &p.InstanceID, &seq, &p.EventID, &p.EventType, &attempts, &p.Reason, &parked); err != nil {
				return err
			}
			p.EventSeq, p.Attempts, p.ParkedAt = uint64(seq), int(attempts), parked.T
			out.Effects = append(out.Effects, p)
			return nil
		})
	})
	if err != nil {
		return Parked{}, fmt.Errorf("views: parked effects: %w", err)
	}
	out.Seq = seq
	return out, nil
}
