package views

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/usage"
)

// The views of migration 2: licenses (License A), license_codes (License
// B), usage_records, and family_daily_facts (per-day facts per product
// family). They follow the same load → fold → write pattern as apply.go:
// the rows a batch touches are loaded by key, the events folded into them
// by the pure functions below, and the changed rows upserted; every value
// is a function of the log alone.

func (a *licensesApplier) table() string    { return a.licenses }
func (a *codesApplier) table() string       { return a.codes }
func (a *usageApplier) table() string       { return a.records }
func (a *familyFactsApplier) table() string { return a.facts }

func (a *licensesApplier) kinds() []string { return []string{license.Kind} }
func (a *codesApplier) kinds() []string    { return []string{licensecode.Kind} }
func (a *usageApplier) kinds() []string    { return []string{usage.Kind} }
func (a *familyFactsApplier) kinds() []string {
	return []string{instance.Kind, license.Kind, licensecode.Kind}
}

var (
	upsertLicenses   = "DO UPDATE SET " + updateAll("licenses")
	upsertCodes      = "DO UPDATE SET " + updateAll("license_codes")
	upsertUsage      = "DO UPDATE SET " + updateAll("usage_records")
	upsertFamilyStat = "DO UPDATE SET " + updateAll("family_facts_state")
	familyFactKey    = []string{"day", "family", "metric"}
)

// rowShapes lists the upsert and load shapes of a one-table view.
func (s *Store) rowShapes(table, schemaTable, onConflict, keyCol string) []shape {
	var out []shape
	for _, n := range sizesUpTo(maxRowsPerStatement) {
		out = append(out, s.insertShape(table, schemaTable, onConflict, n))
	}
	for _, n := range sizesUpTo(maxLoadKeys) {
		out = append(out, s.loadShape(table, schemaTable, keyCol, n))
	}
	return out
}

func (a *licensesApplier) shapes() []shape {
	return a.s.rowShapes(a.licenses, "licenses", upsertLicenses, "instance_id")
}

func (a *codesApplier) shapes() []shape {
	return a.s.rowShapes(a.codes, "license_codes", upsertCodes, "code")
}

func (a *usageApplier) shapes() []shape {
	return a.s.rowShapes(a.records, "usage_records", upsertUsage, "metering_sn")
}

func (a *familyFactsApplier) shapes() []shape {
	out := a.s.rowShapes(a.state, "family_facts_state", upsertFamilyStat, "instance_id")
	for _, n := range sizesUpTo(maxRowsPerStatement) {
		out = append(out, a.s.insertShape(a.facts, "family_daily_facts", addCount(a.facts), n))
	}
	for _, n := range sizesUpTo(maxDeleteKeys) {
		out = append(out, a.s.deleteShape(a.facts, familyFactKey, "count = 0", n))
	}
	return out
}

// aggregateIDs lists, in first-seen order and once each, the aggregate ids
// of the decoded events of kind in items.
func aggregateIDs(items []item, kind string) []string {
	var ids []string
	seen := map[string]bool{}
	for i := range items {
		if items[i].kind == kind && items[i].ev != nil {
			if id := items[i].env.AggregateID; !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// dirtyList records the keys of changed rows in first-changed order.
type dirtyList struct {
	keys []string
	seen map[string]bool
}

func (d *dirtyList) add(k string) {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if !d.seen[k] {
		d.seen[k] = true
		d.keys = append(d.keys, k)
	}
}

// firstRoute fills in the route while unknown: a row's route is the first
// non-empty production route among its events.
func firstRoute(dst *string, env *event.Envelope) {
	if *dst == "" {
		*dst = env.Causation.Route
	}
}

// ---- licenses view (License A) ----

// License is a row of the licenses table: one License A license, by its
// instanceId (the businessId of the first getLicense for the order). How
// each column follows the events:
//
//   - Status as license.Evolve: issued; frozen by LicenseExpired; a
//     LicenseRefreshed makes a frozen license issued again; released.
//   - OrderID, BusinessID, CustomerID, SKUCode, Trial, ChargingMode (SaaS
//     V1's integer named as Query Order does: ON_DEMAND, PERIOD, ONE_TIME,
//     ON_DEMAND_PKG; anything else as received), PeriodType, PeriodNumber
//     and ExpireTime from LicenseIssued's purchase. A refresh sets
//     ExpireTime, and ProductID, PeriodType, PeriodNumber when it names
//     them.
//   - Route: the first non-empty production route of its events;
//     TestFlag: LicenseIssued's debug flag (always false, as instances').
//   - IssuedAt, RefreshedAt (last refresh), ExpiredAt (last
//     LicenseExpired, kept after a refresh unfreezes), ReleasedAt: event
//     times. Renewals counts the refreshes.
//   - LastEventSeq, UpdatedAt: sequence and time of the last event applied.
type License struct {
	InstanceID   string     `json:"instanceId"`
	Status       string     `json:"status"`
	OrderID      string     `json:"orderId"`
	BusinessID   string     `json:"businessId"`
	ProductID    string     `json:"productId"`
	SKUCode      string     `json:"skuCode"`
	CustomerID   string     `json:"customerId"`
	ChargingMode string     `json:"chargingMode"`
	PeriodType   string     `json:"periodType"`
	PeriodNumber int        `json:"periodNumber"`
	Trial        bool       `json:"trial"`
	TestFlag     bool       `json:"testFlag"`
	Route        string     `json:"route"`
	ExpireTime   *time.Time `json:"expireTime,omitempty"`
	IssuedAt     time.Time  `json:"issuedAt"`
	RefreshedAt  *time.Time `json:"refreshedAt,omitempty"`
	ExpiredAt    *time.Time `json:"expiredAt,omitempty"`
	ReleasedAt   *time.Time `json:"releasedAt,omitempty"`
	Renewals     int        `json:"renewals"`
	LastEventSeq uint64     `json:"lastEventSeq"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// licenseChargingMode names a License A purchase's charging mode (SaaS
// V1's integer as text) as Query Order does; other values stay as they are.
func licenseChargingMode(m string) string {
	n, err := strconv.Atoi(m)
	if err != nil {
		return m
	}
	if name := v1ChargingMode(instance.ChargingMode(n)); name != "" {
		return name
	}
	return m
}

// foldLicense applies one license event at seq to r (nil while the view
// has no row: only LicenseIssued makes one) and returns the row after it.
func foldLicense(r *License, seq uint64, env *event.Envelope, e license.Event) *License {
	t := at(env.OccurredAt)
	if is, ok := e.(license.Issued); ok {
		if r != nil {
			return r // issued twice: the first stands
		}
		p := is.Purchase
		r = &License{
			InstanceID: env.AggregateID, Status: string(license.StatusIssued), OrderID: is.OrderID, BusinessID: is.BusinessID,
			ProductID: p.ProductID, SKUCode: p.SKUCode, CustomerID: is.Customer.ID, ChargingMode: licenseChargingMode(p.ChargingMode),
			PeriodType: p.PeriodType, PeriodNumber: p.PeriodNumber, Trial: p.Trial, TestFlag: env.Causation.TestFlag,
			IssuedAt: t,
		}
		if !p.ExpireTime.IsZero() {
			r.ExpireTime = ptr(at(p.ExpireTime))
		}
	} else if r == nil {
		return nil // an event for a license the view never saw issued
	}
	switch e := e.(type) {
	case license.Refreshed:
		r.ExpireTime, r.RefreshedAt = ptr(at(e.ExpireTime)), ptr(t)
		setIf(&r.ProductID, e.ProductID)
		setIf(&r.PeriodType, e.PeriodType)
		if e.PeriodNumber != 0 {
			r.PeriodNumber = e.PeriodNumber
		}
		if r.Status == string(license.StatusFrozen) {
			r.Status = string(license.StatusIssued)
		}
		r.Renewals++
	case license.Expired:
		r.Status, r.ExpiredAt = string(license.StatusFrozen), ptr(t)
	case license.Released:
		r.Status, r.ReleasedAt = string(license.StatusReleased), ptr(t)
	}
	firstRoute(&r.Route, env)
	r.LastEventSeq, r.UpdatedAt = seq, t
	return r
}

type licensesApplier struct {
	s        *Store
	licenses string
}

func (a *licensesApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	return foldAggregateRows(ctx, tx, a.s, items, license.Kind, rowTable[License]{
		table: a.licenses, schema: "licenses", key: "instance_id", upsert: upsertLicenses,
		scan: scanLicense, id: func(r *License) string { return r.InstanceID }, args: a.s.licenseArgs,
		fold: func(r *License, it *item) *License { return foldLicense(r, it.seq, &it.env, it.ev.(license.Event)) },
	})
}

// rowTable says how one row per aggregate is kept in a view's table:
// where, how it is read and written, and how an event folds into it.
type rowTable[R any] struct {
	table, schema, key, upsert string
	scan                       func(scanner) (R, error)
	id                         func(*R) string
	args                       func(*R) []any
	fold                       func(*R, *item) *R // nil: the event changes nothing
}

// foldAggregateRows loads the rows of the aggregates of kind that items
// touch, folds every item of that kind into them in log order and upserts
// the rows that changed, in one statement per shape.
func foldAggregateRows[R any](ctx context.Context, tx *sql.Tx, s *Store, items []item, kind string, t rowTable[R]) error {
	ids := aggregateIDs(items, kind)
	if len(ids) == 0 {
		return nil
	}
	rows := make(map[string]*R, len(ids))
	err := s.loadByKeys(ctx, tx, t.table, t.schema, t.key, ids, func(sc scanner) error {
		r, err := t.scan(sc)
		if err == nil {
			rows[t.id(&r)] = &r
		}
		return err
	})
	if err != nil {
		return err
	}
	var dirty dirtyList
	for i := range items {
		it := &items[i]
		if it.kind != kind || it.ev == nil {
			continue
		}
		id := it.env.AggregateID
		if r := t.fold(rows[id], it); r != nil {
			rows[id] = r
			dirty.add(id)
		}
	}
	args := make([][]any, len(dirty.keys))
	for i, id := range dirty.keys {
		args[i] = t.args(rows[id])
	}
	return s.insertRows(ctx, tx, t.table, t.schema, t.upsert, args)
}

func (s *Store) licenseArgs(r *License) []any {
	d := s.d
	return []any{
		r.InstanceID, r.Status, r.OrderID, r.BusinessID,
		r.ProductID, r.SKUCode, r.CustomerID, r.ChargingMode,
		r.PeriodType, int64(r.PeriodNumber), r.Trial, r.TestFlag,
		r.Route, d.tsPtr(r.ExpireTime), d.ts(r.IssuedAt), d.tsPtr(r.RefreshedAt),
		d.tsPtr(r.ExpiredAt), d.tsPtr(r.ReleasedAt), int64(r.Renewals), int64(r.LastEventSeq),
		d.ts(r.UpdatedAt),
	}
}

func scanLicense(sc scanner) (License, error) {
	var r License
	var expire, issued, refreshed, expired, released, updated dbTime
	var periodNumber, renewals, lastSeq int64
	err := sc.Scan(&r.InstanceID, &r.Status, &r.OrderID, &r.BusinessID,
		&r.ProductID, &r.SKUCode, &r.CustomerID, &r.ChargingMode,
		&r.PeriodType, &periodNumber, &r.Trial, &r.TestFlag,
		&r.Route, &expire, &issued, &refreshed,
		&expired, &released, &renewals, &lastSeq,
		&updated)
	if err != nil {
		return r, err
	}
	r.PeriodNumber, r.Renewals, r.LastEventSeq = int(periodNumber), int(renewals), uint64(lastSeq)
	r.ExpireTime, r.RefreshedAt, r.ExpiredAt, r.ReleasedAt = expire.ptr(), refreshed.ptr(), expired.ptr(), released.ptr()
	r.IssuedAt, r.UpdatedAt = issued.T, updated.T
	return r, nil
}

// ---- license_codes view (License B) ----

// LicenseCode is a row of the license_codes table: one License B
// authorization code. How each column follows the events (as
// licensecode.Evolve):
//
//   - Status: active from LicenseCodeRegistered; frozen ⇄ active;
//     released. FrozenAt is frozen since (cleared on unfreeze).
//   - Activation: pending from the registration; confirmed by a
//     successful activate answer or a query reporting an activation time
//     (ActivatedAt is that answer's time, or the reported activation
//     time); refused by a failed activate answer while not confirmed, with
//     ActivationErrorCode/Message (cleared once confirmed).
//   - ExpireTime: a refresh's, or a successful query's when it carries
//     one; the activation's estimate only fills it in while unknown.
//     ProductID: a refresh naming one; the activation fills it in while
//     unknown. OrderID and Amount: from the activation's license_code_info.
//   - HeartbeatAt, HeartbeatCode, HeartbeatStatus: the last query
//     (heartbeat) answer: its time, error_code and the remote status it
//     reported ("" for a failed query). UsageReportedAt, UsageReportCode:
//     the last usage-statistics answer; UsageReports counts them.
//   - Renewals counts refreshes; Route is the first non-empty production
//     route of its events; RegisteredAt, RefreshedAt (last), ReleasedAt:
//     event times. Answer times (activation, heartbeat, usage) are the
//     times of the outgoing calls.
type LicenseCode struct {
	Code                   string     `json:"code"`
	Status                 string     `json:"status"`
	Reference              string     `json:"reference"`
	ProductID              string     `json:"productId"`
	OrderID                string     `json:"orderId"`
	Amount                 int        `json:"amount"`
	ExpireTime             *time.Time `json:"expireTime,omitempty"`
	Activation             string     `json:"activation"`
	ActivatedAt            *time.Time `json:"activatedAt,omitempty"`
	ActivationErrorCode    string     `json:"activationErrorCode"`
	ActivationErrorMessage string     `json:"activationErrorMessage"`
	HeartbeatAt            *time.Time `json:"heartbeatAt,omitempty"`
	HeartbeatCode          string     `json:"heartbeatCode"`
	HeartbeatStatus        string     `json:"heartbeatStatus"`
	UsageReportedAt        *time.Time `json:"usageReportedAt,omitempty"`
	UsageReportCode        string     `json:"usageReportCode"`
	UsageReports           int        `json:"usageReports"`
	Renewals               int        `json:"renewals"`
	Route                  string     `json:"route"`
	RegisteredAt           time.Time  `json:"registeredAt"`
	RefreshedAt            *time.Time `json:"refreshedAt,omitempty"`
	FrozenAt               *time.Time `json:"frozenAt,omitempty"`
	ReleasedAt             *time.Time `json:"releasedAt,omitempty"`
	LastEventSeq           uint64     `json:"lastEventSeq"`
	UpdatedAt              time.Time  `json:"updatedAt"`
}

// foldCode applies one code event at seq to r (nil while the view has no
// row: only LicenseCodeRegistered makes one).
func foldCode(r *LicenseCode, seq uint64, env *event.Envelope, e licensecode.Event) *LicenseCode {
	t := at(env.OccurredAt)
	if reg, ok := e.(licensecode.Registered); ok {
		if r != nil {
			return r // registered twice: the first stands
		}
		r = &LicenseCode{Code: env.AggregateID, Status: string(licensecode.StatusActive), Reference: reg.Reference,
			Activation: string(licensecode.ActivationPending), RegisteredAt: t}
	} else if r == nil {
		return nil
	}
	confirm := func(when time.Time) {
		r.Activation, r.ActivatedAt = string(licensecode.ActivationConfirmed), ptr(at(when))
		r.ActivationErrorCode, r.ActivationErrorMessage = "", ""
	}
	switch e := e.(type) {
	case licensecode.Refreshed:
		r.ExpireTime, r.RefreshedAt = ptr(at(e.ExpireTime)), ptr(t)
		setIf(&r.ProductID, e.ProductID)
		r.Renewals++
	case licensecode.Frozen:
		r.Status, r.FrozenAt = string(licensecode.StatusFrozen), ptr(t)
	case licensecode.Unfrozen:
		r.Status, r.FrozenAt = string(licensecode.StatusActive), nil
	case licensecode.Released:
		r.Status, r.ReleasedAt = string(licensecode.StatusReleased), ptr(t)
	case licensecode.Activated:
		confirm(e.Answer.At)
		if i := e.Info; i != nil {
			if r.ExpireTime == nil && !i.ExpireTime.IsZero() {
				r.ExpireTime = ptr(at(i.ExpireTime))
			}
			if r.ProductID == "" {
				r.ProductID = i.ProductID
			}
			setIf(&r.OrderID, i.OrderID)
			if i.Amount != 0 {
				r.Amount = i.Amount
			}
		}
	case licensecode.ActivationFailed:
		if r.Activation != string(licensecode.ActivationConfirmed) {
			r.Activation = string(licensecode.ActivationRefused)
			r.ActivationErrorCode, r.ActivationErrorMessage = e.Answer.ErrorCode, e.Answer.ErrorMessage
		}
	case licensecode.Queried:
		r.HeartbeatAt, r.HeartbeatCode, r.HeartbeatStatus = ptr(at(e.Answer.At)), e.Answer.ErrorCode, ""
		if i := e.Info; i != nil {
			r.HeartbeatStatus = string(i.Status)
			if !i.ActivateTime.IsZero() {
				confirm(i.ActivateTime)
			}
			if !i.ExpireTime.IsZero() {
				r.ExpireTime = ptr(at(i.ExpireTime))
			}
		}
	case licensecode.UsageReported:
		r.UsageReportedAt, r.UsageReportCode = ptr(at(e.Answer.At)), e.Answer.ErrorCode
		r.UsageReports++
	}
	firstRoute(&r.Route, env)
	r.LastEventSeq, r.UpdatedAt = seq, t
	return r
}

type codesApplier struct {
	s     *Store
	codes string
}

func (a *codesApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	return foldAggregateRows(ctx, tx, a.s, items, licensecode.Kind, rowTable[LicenseCode]{
		table: a.codes, schema: "license_codes", key: "code", upsert: upsertCodes,
		scan: scanLicenseCode, id: func(r *LicenseCode) string { return r.Code }, args: a.s.codeArgs,
		fold: func(r *LicenseCode, it *item) *LicenseCode {
			return foldCode(r, it.seq, &it.env, it.ev.(licensecode.Event))
		},
	})
}

func (s *Store) codeArgs(r *LicenseCode) []any {
	d := s.d
	return []any{
		r.Code, r.Status, r.Reference, r.ProductID,
		r.OrderID, int64(r.Amount), d.tsPtr(r.ExpireTime), r.Activation,
		d.tsPtr(r.ActivatedAt), r.ActivationErrorCode, r.ActivationErrorMessage, d.tsPtr(r.HeartbeatAt),
		r.HeartbeatCode, r.HeartbeatStatus, d.tsPtr(r.UsageReportedAt), r.UsageReportCode,
		int64(r.UsageReports), int64(r.Renewals), r.Route, d.ts(r.RegisteredAt),
		d.tsPtr(r.RefreshedAt), d.tsPtr(r.FrozenAt), d.tsPtr(r.ReleasedAt), int64(r.LastEventSeq),
		d.ts(r.UpdatedAt),
	}
}

func scanLicenseCode(sc scanner) (LicenseCode, error) {
	var r LicenseCode
	var expire, activated, heartbeat, usageAt, registered, refreshed, frozen, released, updated dbTime
	var amount, reports, renewals, lastSeq int64
	err := sc.Scan(&r.Code, &r.Status, &r.Reference, &r.ProductID,
		&r.OrderID, &amount, &expire, &r.Activation,
		&activated, &r.ActivationErrorCode, &r.ActivationErrorMessage, &heartbeat,
		&r.HeartbeatCode, &r.HeartbeatStatus, &usageAt, &r.UsageReportCode,
		&reports, &renewals, &r.Route, &registered,
		&refreshed, &frozen, &released, &lastSeq,
		&updated)
	if err != nil {
		return r, err
	}
	r.Amount, r.UsageReports, r.Renewals, r.LastEventSeq = int(amount), int(reports), int(renewals), uint64(lastSeq)
	r.ExpireTime, r.ActivatedAt, r.HeartbeatAt, r.UsageReportedAt = expire.ptr(), activated.ptr(), heartbeat.ptr(), usageAt.ptr()
	r.RefreshedAt, r.FrozenAt, r.ReleasedAt = refreshed.ptr(), frozen.ptr(), released.ptr()
	r.RegisteredAt, r.UpdatedAt = registered.T, updated.T
	return r, nil
}

// ---- usage view: usage_records ----

// UsageRecord is a row of usage_records: one usage record the vendor
// reported for a pay-per-use (or package) instance, by its metering_sn,
// and its delivery to KooGallery's usage push (as usage.Evolve):
//
//   - UsageRecorded adds the records not recorded before (status pending,
//     RecordedAt its time); the value stays the exact decimal text.
//   - UsagePushed marks the pending records it accepted pushed (BatchID,
//     Duplicate when KooGallery said it had them already, PushedAt);
//     UsageRejected the pending ones it refused rejected (BatchID,
//     RejectionCode/Message, LocalRejection for Gallerist's own check,
//     RejectedAt). Outcomes for records no longer pending change nothing.
type UsageRecord struct {
	MeteringSN        string     `json:"meteringSn"`
	InstanceID        string     `json:"instanceId"`
	RecordKey         string     `json:"recordKey"`
	RecordTime        time.Time  `json:"recordTime"`
	BeginTime         time.Time  `json:"beginTime"`
	EndTime           time.Time  `json:"endTime"`
	UsageValue        string     `json:"usageValue"`
	RelatePkgInstance string     `json:"relatePkgInstance"`
	Billing           string     `json:"billing"`
	Status            string     `json:"status"`
	BatchID           string     `json:"batchId"`
	Duplicate         bool       `json:"duplicate"`
	RejectionCode     string     `json:"rejectionCode"`
	RejectionMessage  string     `json:"rejectionMessage"`
	LocalRejection    bool       `json:"localRejection"`
	RecordedAt        time.Time  `json:"recordedAt"`
	PushedAt          *time.Time `json:"pushedAt,omitempty"`
	RejectedAt        *time.Time `json:"rejectedAt,omitempty"`
	LastEventSeq      uint64     `json:"lastEventSeq"`
	UpdatedAt         time.Time  `json:"updatedAt"`
}

// usageSNs lists the metering_sns the usage events of items name.
func usageSNs(items []item) []string {
	var sns []string
	seen := map[string]bool{}
	add := func(sn string) {
		if !seen[sn] {
			seen[sn] = true
			sns = append(sns, sn)
		}
	}
	for i := range items {
		if items[i].kind != usage.Kind || items[i].ev == nil {
			continue
		}
		switch e := items[i].ev.(type) {
		case usage.Recorded:
			for _, r := range e.Records {
				add(r.MeteringSN)
			}
		case usage.Pushed:
			for _, sn := range e.Accepted {
				add(sn)
			}
		case usage.Rejected:
			for _, r := range e.Rejections {
				add(r.MeteringSN)
			}
		}
	}
	return sns
}

// foldUsage applies one usage event of instance env.AggregateID at seq to
// rows (by metering_sn) and reports each row it changes to changed.
func foldUsage(rows map[string]*UsageRecord, seq uint64, env *event.Envelope, e usage.Event, changed func(sn string)) {
	t := at(env.OccurredAt)
	inst := env.AggregateID
	pending := func(sn string) *UsageRecord {
		r := rows[sn]
		if r == nil || r.InstanceID != inst || r.Status != string(usage.StatusPending) {
			return nil
		}
		return r
	}
	touch := func(r *UsageRecord) {
		r.LastEventSeq, r.UpdatedAt = seq, t
		changed(r.MeteringSN)
	}
	switch e := e.(type) {
	case usage.Recorded:
		for _, rec := range e.Records {
			if rows[rec.MeteringSN] != nil {
				continue // recorded before: the first stands
			}
			r := &UsageRecord{
				MeteringSN: rec.MeteringSN, InstanceID: inst, RecordKey: rec.RecordKey,
				RecordTime: at(rec.RecordTime), BeginTime: at(rec.BeginTime), EndTime: at(rec.EndTime),
				UsageValue: rec.UsageValue, RelatePkgInstance: rec.RelatePkgInstance, Billing: string(rec.Billing),
				Status: string(usage.StatusPending), RecordedAt: t,
			}
			rows[rec.MeteringSN] = r
			touch(r)
		}
	case usage.Pushed:
		dups := map[string]bool{}
		for _, sn := range e.Duplicates {
			dups[sn] = true
		}
		for _, sn := range e.Accepted {
			if r := pending(sn); r != nil {
				r.Status, r.BatchID, r.Duplicate, r.PushedAt = string(usage.StatusPushed), e.BatchID, dups[sn], ptr(t)
				touch(r)
			}
		}
	case usage.Rejected:
		for _, rj := range e.Rejections {
			if r := pending(rj.MeteringSN); r != nil {
				r.Status, r.BatchID, r.RejectedAt = string(usage.StatusRejected), e.BatchID, ptr(t)
				r.RejectionCode, r.RejectionMessage, r.LocalRejection = rj.Code, rj.Message, e.Local
				touch(r)
			}
		}
	}
}

type usageApplier struct {
	s       *Store
	records string
}

func (a *usageApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	sns := usageSNs(items)
	if len(sns) == 0 {
		return nil
	}
	rows := make(map[string]*UsageRecord, len(sns))
	err := a.s.loadByKeys(ctx, tx, a.records, "usage_records", "metering_sn", sns, func(sc scanner) error {
		r, err := scanUsageRecord(sc)
		if err == nil {
			rows[r.MeteringSN] = &r
		}
		return err
	})
	if err != nil {
		return err
	}
	var dirty dirtyList
	for i := range items {
		it := &items[i]
		if it.kind != usage.Kind || it.ev == nil {
			continue
		}
		foldUsage(rows, it.seq, &it.env, it.ev.(usage.Event), dirty.add)
	}
	args := make([][]any, len(dirty.keys))
	for i, sn := range dirty.keys {
		args[i] = a.s.usageArgs(rows[sn])
	}
	return a.s.insertRows(ctx, tx, a.records, "usage_records", upsertUsage, args)
}

func (s *Store) usageArgs(r *UsageRecord) []any {
	d := s.d
	return []any{
		r.MeteringSN, r.InstanceID, r.RecordKey, d.ts(r.RecordTime),
		d.ts(r.BeginTime), d.ts(r.EndTime), r.UsageValue, r.RelatePkgInstance,
		r.Billing, r.Status, r.BatchID, r.Duplicate,
		r.RejectionCode, r.RejectionMessage, r.LocalRejection, d.ts(r.RecordedAt),
		d.tsPtr(r.PushedAt), d.tsPtr(r.RejectedAt), int64(r.LastEventSeq), d.ts(r.UpdatedAt),
	}
}

func scanUsageRecord(sc scanner) (UsageRecord, error) {
	var r UsageRecord
	var recordTime, begin, end, recorded, pushed, rejected, updated dbTime
	var lastSeq int64
	err := sc.Scan(&r.MeteringSN, &r.InstanceID, &r.RecordKey, &recordTime,
		&begin, &end, &r.UsageValue, &r.RelatePkgInstance,
		&r.Billing, &r.Status, &r.BatchID, &r.Duplicate,
		&r.RejectionCode, &r.RejectionMessage, &r.LocalRejection, &recorded,
		&pushed, &rejected, &lastSeq, &updated)
	if err != nil {
		return r, err
	}
	r.RecordTime, r.BeginTime, r.EndTime, r.RecordedAt, r.UpdatedAt = recordTime.T, begin.T, end.T, recorded.T, updated.T
	r.PushedAt, r.RejectedAt, r.LastEventSeq = pushed.ptr(), rejected.ptr(), uint64(lastSeq)
	return r, nil
}

// ---- family_facts view: family_daily_facts (+ family_facts_state) ----

// The product families of family_daily_facts.
const (
	FamilySaaSV2   = "saas-v2"
	FamilySaaSV1   = "saas-v1"
	FamilyLicenseA = "license-a"
	FamilyLicenseB = "license-b"
)

// Families lists every family.
var Families = []string{FamilySaaSV2, FamilySaaSV1, FamilyLicenseA, FamilyLicenseB}

// Metrics of family_daily_facts beyond those of daily_facts.
const (
	MetricExpired          = "expired"
	MetricActivated        = "activated"
	MetricActivationFailed = "activation_failed"
	MetricQueried          = "queried"
	MetricUsageReported    = "usage_reported"
)

// FamilyMetrics lists every metric of family_daily_facts.
var FamilyMetrics = append(append([]string(nil), Metrics...),
	MetricExpired, MetricActivated, MetricActivationFailed, MetricQueried, MetricUsageReported)

// familyState is what the family facts remember per instance
// (family_facts_state): its family, creating order, creation day and
// whether the creating order is a trial.
type familyState struct {
	InstanceID, Family, OrderID, CreatedDay string
	Trial                                   bool
}

type familyKey struct{ day, family, metric string }

// instanceFamily is the family of an instance: the route's family is not
// in the event, so it is derived from the creation — a SaaS V1
// newInstance carries its order (Created.V1), a SaaS V2 one does not.
func instanceFamily(c instance.Created) string {
	if c.V1 != nil {
		return FamilySaaSV1
	}
	return FamilySaaSV2
}

// instanceMetric is the daily_facts metric of an instance event other
// than the creation ("" for none).
func instanceMetric(e instance.Event) string {
	switch e := e.(type) {
	case instance.Provisioned:
		return MetricProvisioned
	case instance.ProvisioningFailed:
		return MetricProvisioningFailed
	case instance.Refreshed:
		switch e.Scene {
		case instance.SceneTrialToFormal:
			return MetricTrialToFormal
		case instance.SceneRenewal:
			return MetricRenewed
		case instance.SceneUnsubscribeRenewalPeriod:
			return MetricRenewalCancelled
		case instance.SceneRenewalChange:
			return MetricRenewalChanged
		}
	case instance.Frozen:
		return MetricFrozen
	case instance.Unfrozen:
		return MetricUnfrozen
	case instance.Released:
		return MetricReleased
	case instance.Upgraded:
		return MetricUpgraded
	}
	return ""
}

// foldFamilyInstance applies one instance event to f (nil while the
// instance was not seen created) and adds its counts to deltas; it returns
// the state afterwards.
//
// The rules (family_daily_facts' documentation): InstanceCreated counts
// "new" — or "trial" for a SaaS V1 trial — under the instance's family on
// its day, and that count moves from "new" to "trial" (on the creation day)
// when Query Order says the creating order is a TRIAL; every other event
// counts 1 under its daily_facts metric on its own day. Events of an
// instance never seen created count nothing. So, summed over saas-v1 and
// saas-v2, a day's counts equal daily_facts' summed over products.
func foldFamilyInstance(f *familyState, env *event.Envelope, e instance.Event, deltas map[familyKey]int64) *familyState {
	day := dayOf(env.OccurredAt)
	if c, ok := e.(instance.Created); ok {
		if f != nil {
			return f // created twice: the first creation stands
		}
		f = &familyState{InstanceID: env.AggregateID, Family: instanceFamily(c), OrderID: c.OrderID, CreatedDay: day,
			Trial: c.V1 != nil && c.V1.Trial}
		m := MetricNew
		if f.Trial {
			m = MetricTrial
		}
		deltas[familyKey{day, f.Family, m}]++
		return f
	}
	if f == nil {
		return nil
	}
	if q, ok := e.(instance.OrderQueried); ok && !f.Trial && q.Info.OrderID == f.OrderID && q.Info.OrderType == orderTypeTrial {
		f.Trial = true
		deltas[familyKey{f.CreatedDay, f.Family, MetricNew}]--
		deltas[familyKey{f.CreatedDay, f.Family, MetricTrial}]++
	}
	if m := instanceMetric(e); m != "" {
		deltas[familyKey{day, f.Family, m}]++
	}
	return f
}

// licenseMetric is the family_daily_facts metric of a License A event:
// LicenseIssued counts "new" ("trial" for a trial purchase), a refresh
// "renewed", LicenseExpired "expired", LicenseReleased "released".
func licenseMetric(e license.Event) string {
	switch e := e.(type) {
	case license.Issued:
		if e.Purchase.Trial {
			return MetricTrial
		}
		return MetricNew
	case license.Refreshed:
		return MetricRenewed
	case license.Expired:
		return MetricExpired
	case license.Released:
		return MetricReleased
	}
	return ""
}

// codeMetric is the family_daily_facts metric of a License B event: the
// registration counts "new", a refresh "renewed" (RENEWAL) or
// "renewal_cancelled" (UNSUBSCRIBE_RENEWAL_PERIOD), then "frozen",
// "unfrozen", "released", "activated", "activation_failed", "queried"
// (every heartbeat answer) and "usage_reported" (every usage-statistics
// answer).
func codeMetric(e licensecode.Event) string {
	switch e := e.(type) {
	case licensecode.Registered:
		return MetricNew
	case licensecode.Refreshed:
		if e.Scene == licensecode.SceneUnsubscribeRenewalPeriod {
			return MetricRenewalCancelled
		}
		return MetricRenewed
	case licensecode.Frozen:
		return MetricFrozen
	case licensecode.Unfrozen:
		return MetricUnfrozen
	case licensecode.Released:
		return MetricReleased
	case licensecode.Activated:
		return MetricActivated
	case licensecode.ActivationFailed:
		return MetricActivationFailed
	case licensecode.Queried:
		return MetricQueried
	case licensecode.UsageReported:
		return MetricUsageReported
	}
	return ""
}

type familyFactsApplier struct {
	s            *Store
	facts, state string
}

func (a *familyFactsApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	if !relevant(a, items) {
		return nil
	}
	ids := instanceIDs(items)
	states := make(map[string]*familyState, len(ids))
	err := a.s.loadByKeys(ctx, tx, a.state, "family_facts_state", "instance_id", ids, func(sc scanner) error {
		var f familyState
		var day dbTime
		if err := sc.Scan(&f.InstanceID, &f.Family, &f.OrderID, &day, &f.Trial); err != nil {
			return err
		}
		f.CreatedDay = day.T.Format(dayLayout)
		states[f.InstanceID] = &f
		return nil
	})
	if err != nil {
		return err
	}
	deltas := map[familyKey]int64{}
	var dirty dirtyList
	for i := range items {
		it := &items[i]
		if it.ev == nil {
			continue
		}
		day := dayOf(it.env.OccurredAt)
		// By kind: the domains' Event interfaces have the same method set.
		switch it.kind {
		case instance.Kind:
			id := it.env.AggregateID
			before := states[id]
			var trialBefore bool
			if before != nil {
				trialBefore = before.Trial
			}
			f := foldFamilyInstance(before, &it.env, it.ev.(instance.Event), deltas)
			if f != nil && (before == nil || f.Trial != trialBefore) {
				states[id] = f
				dirty.add(id)
			}
		case license.Kind:
			if m := licenseMetric(it.ev.(license.Event)); m != "" {
				deltas[familyKey{day, FamilyLicenseA, m}]++
			}
		case licensecode.Kind:
			if m := codeMetric(it.ev.(licensecode.Event)); m != "" {
				deltas[familyKey{day, FamilyLicenseB, m}]++
			}
		}
	}
	stateArgs := make([][]any, 0, len(dirty.keys))
	for _, id := range dirty.keys {
		f := states[id]
		day, err := a.s.d.day(f.CreatedDay)
		if err != nil {
			return err
		}
		stateArgs = append(stateArgs, []any{f.InstanceID, f.Family, f.OrderID, day, f.Trial})
	}
	if err := a.s.insertRows(ctx, tx, a.state, "family_facts_state", upsertFamilyStat, stateArgs); err != nil {
		return err
	}
	var factArgs, zeroKeys [][]any
	for k, n := range deltas {
		if n == 0 {
			continue
		}
		day, err := a.s.d.day(k.day)
		if err != nil {
			return err
		}
		factArgs = append(factArgs, []any{day, k.family, k.metric, n})
		if n < 0 {
			zeroKeys = append(zeroKeys, []any{day, k.family, k.metric})
		}
	}
	if err := a.s.insertRows(ctx, tx, a.facts, "family_daily_facts", addCount(a.facts), factArgs); err != nil {
		return err
	}
	return a.s.deleteByKeys(ctx, tx, a.facts, familyFactKey, "count = 0", zeroKeys)
}
