package views

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
)

// Applying a batch to a view is load → fold → write, inside the caller's
// transaction: the rows the batch touches are loaded (one query per few
// hundred keys), the events are folded into them in Go by the pure
// functions below (foldInstance, foldFacts, the parked-effects fold), and
// the changed rows are written back with multi-row upserts. Every value
// written is a function of the log alone (event times, never the clock),
// so a replay produces the same rows as the live projection, whatever the
// batch boundaries.

// applier folds a batch into the tables of one view.
type applier interface {
	apply(ctx context.Context, tx *sql.Tx, items []item) error
	// shapes lists every statement apply may run (see Store.warm).
	shapes() []shape
	// kinds are the aggregate kinds whose events the view folds.
	kinds() []string
	// table names the applier's main table (unique per view and suffix).
	table() string
}

func (a *instancesApplier) table() string { return a.instances }
func (a *factsApplier) table() string     { return a.facts }
func (a *effectsApplier) table() string   { return a.parked }

func (a *instancesApplier) kinds() []string { return []string{instance.Kind} }
func (a *factsApplier) kinds() []string     { return []string{instance.Kind} }
func (a *effectsApplier) kinds() []string   { return []string{effect.Kind} }

// relevant reports whether any of items is an event a folds.
func relevant(a applier, items []item) bool {
	ks := a.kinds()
	for i := range items {
		if items[i].ev != nil && slices.Contains(ks, items[i].kind) {
			return true
		}
	}
	return false
}

// Conflict clauses of the upserts.
var (
	upsertInstances = "DO UPDATE SET " + updateAll("instances")
	upsertFactState = "DO UPDATE SET " + updateAll("facts_instance_state")
	upsertParked    = "DO UPDATE SET " + updateAll("parked_effects")
	doNothing       = "DO NOTHING"
)

func addCount(table string) string {
	return fmt.Sprintf("DO UPDATE SET count = %s.count + excluded.count", table)
}

var (
	factKeyCols   = []string{"day", "product_id", "metric"}
	parkedKeyCols = []string{"effect", "instance_id", "event_seq"}
)

func (a *instancesApplier) shapes() []shape {
	var out []shape
	for _, n := range sizesUpTo(maxRowsPerStatement) {
		out = append(out, a.s.insertShape(a.instances, "instances", upsertInstances, n),
			a.s.insertShape(a.latency, "provisioning_latency", doNothing, n))
	}
	for _, n := range sizesUpTo(maxLoadKeys) {
		out = append(out, a.s.loadShape(a.instances, "instances", "instance_id", n))
	}
	return out
}

func (a *factsApplier) shapes() []shape {
	var out []shape
	for _, n := range sizesUpTo(maxRowsPerStatement) {
		out = append(out, a.s.insertShape(a.state, "facts_instance_state", upsertFactState, n),
			a.s.insertShape(a.facts, "daily_facts", addCount(a.facts), n))
	}
	for _, n := range sizesUpTo(maxLoadKeys) {
		out = append(out, a.s.loadShape(a.state, "facts_instance_state", "instance_id", n))
	}
	for _, n := range sizesUpTo(maxDeleteKeys) {
		out = append(out, a.s.deleteShape(a.facts, factKeyCols, "count = 0", n))
	}
	return out
}

func (a *effectsApplier) shapes() []shape {
	var out []shape
	for _, n := range sizesUpTo(maxRowsPerStatement) {
		out = append(out, a.s.insertShape(a.parked, "parked_effects", upsertParked, n))
	}
	for _, n := range sizesUpTo(maxLoadKeys) {
		out = append(out, a.s.loadShape(a.parked, "parked_effects", "instance_id", n))
	}
	for _, n := range sizesUpTo(maxDeleteKeys) {
		out = append(out, a.s.deleteShape(a.parked, parkedKeyCols, "", n))
	}
	return out
}

// newApplier returns the applier of view writing to the tables named
// <table><suffix> ("" for the live tables, rebuildSuffix for a replay).
func (s *Store) newApplier(view, suffix string) (applier, error) {
	switch view {
	case ViewInstances:
		return &instancesApplier{s: s, instances: "instances" + suffix, latency: "provisioning_latency" + suffix}, nil
	case ViewFacts:
		return &factsApplier{s: s, facts: "daily_facts" + suffix, state: "facts_instance_state" + suffix}, nil
	case ViewEffects:
		return &effectsApplier{s: s, parked: "parked_effects" + suffix}, nil
	case ViewLicenses:
		return &licensesApplier{s: s, licenses: "licenses" + suffix}, nil
	case ViewLicenseCodes:
		return &codesApplier{s: s, codes: "license_codes" + suffix}, nil
	case ViewUsage:
		return &usageApplier{s: s, records: "usage_records" + suffix}, nil
	case ViewFamilyFacts:
		return &familyFactsApplier{s: s, facts: "family_daily_facts" + suffix, state: "family_facts_state" + suffix}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownView, view)
}

// at normalises an event time: UTC, truncated to microseconds (the
// precision of PostgreSQL timestamps), so both databases hold the same
// value.
func at(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dayOf is the UTC day of t, "YYYY-MM-DD".
func dayOf(t time.Time) string { return t.UTC().Format(dayLayout) }

func ptr(t time.Time) *time.Time { return &t }

// ---- instances view: instances + provisioning_latency ----

// latencyRow is a row of provisioning_latency.
type latencyRow struct {
	InstanceID    string
	CreatedAt     time.Time
	ProvisionedAt time.Time
	LatencyMS     int64
}

// foldInstance applies one instance event, at stream sequence seq, to r,
// the instance's row (nil when the view has none yet). It returns the row
// afterwards (nil while there is none: only InstanceCreated makes one) and
// the provisioning_latency row the event completes, if any. r is changed in
// place.
//
// The rules are documented on Instance.
func foldInstance(r *Instance, seq uint64, env *event.Envelope, e instance.Event) (*Instance, *latencyRow) {
	t := at(env.OccurredAt)
	if c, ok := e.(instance.Created); ok {
		if r != nil {
			return r, nil // created twice: the first creation stands
		}
		r := &Instance{
			InstanceID: env.AggregateID, Status: string(instance.StatusProvisioning),
			OrderID: c.OrderID, OrderLineID: c.OrderLineID, BusinessID: c.BusinessID,
			Route: env.Causation.Route, TestFlag: env.Causation.TestFlag,
			CreatedAt: ptr(t), LastEventSeq: seq, UpdatedAt: t,
		}
		if v1 := c.V1; v1 != nil {
			// A SaaS V1 newInstance carries the order itself (no Query Order).
			r.ProductID, r.SKUCode, r.CustomerID = v1.ProductID, v1.SKUCode, v1.CustomerID
			r.PeriodType, r.PeriodNumber, r.Trial = v1.PeriodType, v1.PeriodNumber, v1.Trial
			if v1.ChargingMode != nil {
				r.ChargingMode = v1ChargingMode(*v1.ChargingMode)
			}
			if !v1.ExpireTime.IsZero() {
				r.ExpireTime = ptr(at(v1.ExpireTime))
			}
		}
		return r, nil
	}
	if r == nil {
		return nil, nil // an event for an instance the view never saw created
	}
	var lat *latencyRow
	switch e := e.(type) {
	case instance.Provisioned:
		if r.ProvisionedAt == nil {
			r.ProvisionedAt = ptr(t)
			if r.CreatedAt != nil {
				lat = &latencyRow{InstanceID: r.InstanceID, CreatedAt: *r.CreatedAt, ProvisionedAt: t,
					LatencyMS: t.Sub(*r.CreatedAt).Milliseconds()}
			}
		}
		if r.Status == string(instance.StatusProvisioning) || r.Status == string(instance.StatusFailed) {
			r.Status = string(instance.StatusActive)
		}
	case instance.ProvisioningFailed:
		r.Status = string(instance.StatusFailed)
		r.FailedAt = ptr(t)
		r.FailureCode, r.FailureMessage = e.Failure.Code, e.Failure.Message
	case instance.Refreshed:
		r.ExpireTime = ptr(at(e.ExpireTime))
		r.RefreshedAt = ptr(t)
		if e.ProductID != "" {
			r.ProductID = e.ProductID
		}
		switch e.Scene {
		case instance.SceneTrialToFormal:
			r.Formal = true
		case instance.SceneRenewal, instance.SceneRenewalChange:
			r.Renewals++
		}
	case instance.Frozen:
		r.Status = string(instance.StatusFrozen)
		r.FrozenAt = ptr(t)
	case instance.Unfrozen:
		if r.ProvisionedAt != nil {
			r.Status = string(instance.StatusActive)
		} else {
			r.Status = string(instance.StatusProvisioning)
		}
		r.FrozenAt = nil
	case instance.Released:
		r.Status = string(instance.StatusReleased)
		r.ReleasedAt = ptr(t)
	case instance.Upgraded:
		r.Upgrades++
	case instance.OrderQueried:
		info := e.Info
		if r.ProductID == "" {
			r.ProductID = info.ProductID
		}
		setIf(&r.SKUCode, info.SKUCode)
		setIf(&r.ChargingMode, info.ChargingMode)
		setIf(&r.PeriodType, info.PeriodType)
		setIf(&r.CustomerID, info.CustomerID)
		if info.PeriodNumber != 0 {
			r.PeriodNumber = info.PeriodNumber
		}
		if info.OrderID == r.OrderID {
			setIf(&r.OrderType, info.OrderType)
			if info.OrderType == orderTypeTrial {
				r.Trial = true
			}
		}
		if r.RefreshedAt == nil && !info.ExpireTime.IsZero() {
			r.ExpireTime = ptr(at(info.ExpireTime))
		}
	}
	r.LastEventSeq, r.UpdatedAt = seq, t
	return r, lat
}

// v1ChargingMode names SaaS V1's integer charging modes as Query Order
// does (outgoing.md §2.2), so that one filter finds both families.
func v1ChargingMode(m instance.ChargingMode) string {
	switch m {
	case instance.ChargingPayPerUse:
		return "ON_DEMAND"
	case instance.ChargingPeriod:
		return "PERIOD"
	case instance.ChargingOneTime:
		return "ONE_TIME"
	case instance.ChargingPackage:
		return "ON_DEMAND_PKG"
	}
	return ""
}

// orderTypeTrial is Query Order's order type of a trial order.
const orderTypeTrial = "TRIAL"

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// instanceIDs lists, in first-seen order and once each, the instances whose
// decoded events are in items.
func instanceIDs(items []item) []string {
	var ids []string
	seen := map[string]bool{}
	for i := range items {
		if items[i].kind == instance.Kind && items[i].ev != nil {
			if id := items[i].env.AggregateID; !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

type instancesApplier struct {
	s                  *Store
	instances, latency string
}

func (a *instancesApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	ids := instanceIDs(items)
	if len(ids) == 0 {
		return nil
	}
	rows := make(map[string]*Instance, len(ids))
	err := a.s.loadByKeys(ctx, tx, a.instances, "instances", "instance_id", ids, func(sc scanner) error {
		r, err := scanInstance(sc)
		if err == nil {
			rows[r.InstanceID] = &r
		}
		return err
	})
	if err != nil {
		return err
	}
	dirty := make([]string, 0, len(ids))
	isDirty := make(map[string]bool, len(ids))
	var lat [][]any
	for i := range items {
		it := &items[i]
		if it.kind != instance.Kind || it.ev == nil {
			continue
		}
		id := it.env.AggregateID
		r, l := foldInstance(rows[id], it.seq, &it.env, it.ev.(instance.Event))
		if r == nil {
			continue
		}
		rows[id] = r
		if !isDirty[id] {
			isDirty[id] = true
			dirty = append(dirty, id)
		}
		if l != nil {
			lat = append(lat, []any{l.InstanceID, a.s.d.ts(l.CreatedAt), a.s.d.ts(l.ProvisionedAt), l.LatencyMS})
		}
	}
	args := make([][]any, len(dirty))
	for i, id := range dirty {
		args[i] = a.s.instanceArgs(rows[id])
	}
	if err := a.s.insertRows(ctx, tx, a.instances, "instances", upsertInstances, args); err != nil {
		return err
	}
	return a.s.insertRows(ctx, tx, a.latency, "provisioning_latency", doNothing, lat)
}

// instanceArgs is r as statement arguments, in tableColumns order.
func (s *Store) instanceArgs(r *Instance) []any {
	d := s.d
	return []any{
		r.InstanceID, r.Status, r.OrderID, r.OrderLineID,
		r.BusinessID, r.Route, r.ProductID, r.SKUCode,
		r.ChargingMode, r.PeriodType, int64(r.PeriodNumber), r.CustomerID,
		r.OrderType, r.Trial, r.Formal, r.TestFlag,
		d.tsPtr(r.ExpireTime), d.tsPtr(r.CreatedAt), d.tsPtr(r.ProvisionedAt), d.tsPtr(r.FailedAt),
		r.FailureCode, r.FailureMessage, d.tsPtr(r.FrozenAt), d.tsPtr(r.ReleasedAt),
		d.tsPtr(r.RefreshedAt), int64(r.Upgrades), int64(r.Renewals), int64(r.LastEventSeq),
		d.ts(r.UpdatedAt),
	}
}

// ---- facts view: daily_facts (+ facts_instance_state) ----

// The metrics of daily_facts.
const (
	MetricNew                = "new"
	MetricTrial              = "trial"
	MetricTrialToFormal      = "trial_to_formal"
	MetricRenewed            = "renewed"
	MetricRenewalCancelled   = "renewal_cancelled"
	MetricRenewalChanged     = "renewal_changed"
	MetricUpgraded           = "upgraded"
	MetricFrozen             = "frozen"
	MetricUnfrozen           = "unfrozen"
	MetricReleased           = "released"
	MetricProvisioned        = "provisioned"
	MetricProvisioningFailed = "provisioning_failed"
)

// Metrics lists every metric of daily_facts.
var Metrics = []string{
	MetricNew, MetricTrial, MetricTrialToFormal, MetricRenewed, MetricRenewalCancelled, MetricRenewalChanged,
	MetricUpgraded, MetricFrozen, MetricUnfrozen, MetricReleased, MetricProvisioned, MetricProvisioningFailed,
}

// factState is what the facts view remembers per instance
// (facts_instance_state): the creating order, the product (current and
// first known), the creation day and whether the creating order is a trial.
type factState struct {
	InstanceID, OrderID     string
	ProductID, FirstProduct string
	CreatedDay              string // "" until InstanceCreated
	Trial                   bool
}

type factKey struct{ day, product, metric string }

// creation is where the instance's creation is counted: on its creation
// day, under its first known product, as "trial" once Query Order called
// the creating order a trial, else "new".
func (f *factState) creation() (factKey, bool) {
	if f.CreatedDay == "" {
		return factKey{}, false
	}
	m := MetricNew
	if f.Trial {
		m = MetricTrial
	}
	return factKey{f.CreatedDay, f.FirstProduct, m}, true
}

// foldFacts applies one instance event to f (nil when the view has no
// state for the instance yet) and adds its counts to deltas. It returns the
// state afterwards.
//
// The rules (daily_facts' documentation): every event counts 1 under its
// metric on the UTC day of its OccurredAt, under the product known for the
// instance after the event ("" while unknown) — except the creation:
// InstanceCreated counts "new" under product "" on its day, and that one
// count moves whenever what is known about the creation changes: to the
// first product learnt (from Query Order or a refresh), and from "new" to
// "trial" when Query Order says the creating order's type is TRIAL. The
// move is a -1/+1 on the creation day, so the sum over metrics new+trial is
// always the number of instances created that day. A row exists only
// while its count is not 0.
func foldFacts(f *factState, env *event.Envelope, e instance.Event, deltas map[factKey]int64) *factState {
	day := dayOf(env.OccurredAt)
	if f == nil {
		f = &factState{InstanceID: env.AggregateID}
	}
	before, hadCreation := f.creation()
	metric := ""
	switch e := e.(type) {
	case instance.Created:
		if f.CreatedDay != "" {
			return f // created twice: the first creation stands
		}
		f.CreatedDay, f.OrderID = day, e.OrderID
		if e.V1 != nil { // a SaaS V1 creation carries its product and trial flag
			f.setProduct(e.V1.ProductID, false)
			f.Trial = e.V1.Trial
		}
	case instance.Provisioned:
		metric = MetricProvisioned
	case instance.ProvisioningFailed:
		metric = MetricProvisioningFailed
	case instance.Refreshed:
		f.setProduct(e.ProductID, true)
		switch e.Scene {
		case instance.SceneTrialToFormal:
			metric = MetricTrialToFormal
		case instance.SceneRenewal:
			metric = MetricRenewed
		case instance.SceneUnsubscribeRenewalPeriod:
			metric = MetricRenewalCancelled
		case instance.SceneRenewalChange:
			metric = MetricRenewalChanged
		}
	case instance.Frozen:
		metric = MetricFrozen
	case instance.Unfrozen:
		metric = MetricUnfrozen
	case instance.Released:
		metric = MetricReleased
	case instance.Upgraded:
		metric = MetricUpgraded
	case instance.OrderQueried:
		f.setProduct(e.Info.ProductID, false)
		if f.CreatedDay != "" && e.Info.OrderID == f.OrderID && e.Info.OrderType == orderTypeTrial {
			f.Trial = true
		}
	}
	if after, ok := f.creation(); ok && (!hadCreation || after != before) {
		if hadCreation {
			deltas[before]--
		}
		deltas[after]++
	}
	if metric != "" {
		deltas[factKey{day, f.ProductID, metric}]++
	}
	return f
}

// setProduct records a product: a refresh's replaces the current one, a
// Query Order answer's only fills it in (as instance.Evolve). The first
// product ever known is kept for the creation count.
func (f *factState) setProduct(p string, replace bool) {
	if p == "" {
		return
	}
	if replace || f.ProductID == "" {
		f.ProductID = p
	}
	if f.FirstProduct == "" {
		f.FirstProduct = p
	}
}

type factsApplier struct {
	s            *Store
	facts, state string
}

func (a *factsApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	ids := instanceIDs(items)
	if len(ids) == 0 {
		return nil
	}
	states := make(map[string]*factState, len(ids))
	err := a.s.loadByKeys(ctx, tx, a.state, "facts_instance_state", "instance_id", ids, func(sc scanner) error {
		var f factState
		var day dbTime
		if err := sc.Scan(&f.InstanceID, &f.OrderID, &f.ProductID, &f.FirstProduct, &day, &f.Trial); err != nil {
			return err
		}
		if day.Valid {
			f.CreatedDay = day.T.Format(dayLayout)
		}
		states[f.InstanceID] = &f
		return nil
	})
	if err != nil {
		return err
	}
	deltas := map[factKey]int64{}
	var dirty []string
	isDirty := map[string]bool{}
	for i := range items {
		it := &items[i]
		if it.kind != instance.Kind || it.ev == nil {
			continue
		}
		id := it.env.AggregateID
		states[id] = foldFacts(states[id], &it.env, it.ev.(instance.Event), deltas)
		if !isDirty[id] {
			isDirty[id] = true
			dirty = append(dirty, id)
		}
	}
	stateArgs := make([][]any, 0, len(dirty))
	for _, id := range dirty {
		f := states[id]
		var day any
		if f.CreatedDay != "" {
			if day, err = a.s.d.day(f.CreatedDay); err != nil {
				return err
			}
		}
		stateArgs = append(stateArgs, []any{f.InstanceID, f.OrderID, f.ProductID, f.FirstProduct, day, f.Trial})
	}
	if err := a.s.insertRows(ctx, tx, a.state, "facts_instance_state", upsertFactState, stateArgs); err != nil {
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
		factArgs = append(factArgs, []any{day, k.product, k.metric, n})
		if n < 0 {
			zeroKeys = append(zeroKeys, []any{day, k.product, k.metric})
		}
	}
	if err := a.s.insertRows(ctx, tx, a.facts, "daily_facts", addCount(a.facts), factArgs); err != nil {
		return err
	}
	// A count that went back to 0 leaves no row (so that the rows do not
	// depend on batch boundaries).
	return a.s.deleteByKeys(ctx, tx, a.facts, factKeyCols, "count = 0", zeroKeys)
}

// ---- effects view: parked_effects ----

type parkedKey struct {
	effect, instance string
	seq              uint64
}

type effectsApplier struct {
	s      *Store
	parked string
}

// apply folds EffectParked (a row for the parked event), EffectDone
// (removes the row of that event) and EffectRedriven (removes every row of
// the effect and instance): the parked rows of the instances the batch
// names are loaded, the events folded into them in order, and the rows
// that disappeared are deleted, the new ones upserted.
func (a *effectsApplier) apply(ctx context.Context, tx *sql.Tx, items []item) error {
	var ids []string
	seen := map[string]bool{}
	for i := range items {
		if items[i].kind != effect.Kind || items[i].ev == nil {
			continue
		}
		var id string
		switch e := items[i].ev.(type) {
		case effect.Parked:
			id = e.InstanceID
		case effect.Done:
			id = e.InstanceID
		case effect.Redriven:
			id = e.InstanceID
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stored := map[parkedKey]bool{}
	rows := map[parkedKey][]any{}
	err := a.s.loadByKeys(ctx, tx, a.parked, "parked_effects", "instance_id", ids, func(sc scanner) error {
		var eff, inst string
		var seq int64
		rest := make([]any, len(tableColumns["parked_effects"])-3)
		ptrs := []any{&eff, &inst, &seq}
		for i := range rest {
			ptrs = append(ptrs, &rest[i])
		}
		if err := sc.Scan(ptrs...); err != nil {
			return err
		}
		k := parkedKey{eff, inst, uint64(seq)}
		stored[k] = true
		rows[k] = nil // stored, unchanged unless parked again
		return nil
	})
	if err != nil {
		return err
	}
	var order []parkedKey
	for i := range items {
		it := &items[i]
		if it.kind != effect.Kind || it.ev == nil {
			continue
		}
		switch e := it.ev.(type) {
		case effect.Parked:
			k := parkedKey{e.Effect, e.InstanceID, e.EventSeq}
			rows[k] = []any{e.Effect, e.InstanceID, int64(e.EventSeq), e.EventID, e.EventType,
				int64(e.Attempts), e.Reason, a.s.d.ts(at(it.env.OccurredAt))}
			order = append(order, k)
		case effect.Done:
			delete(rows, parkedKey{e.Effect, e.InstanceID, e.EventSeq})
		case effect.Redriven:
			for k := range rows {
				if k.effect == e.Effect && k.instance == e.InstanceID {
					delete(rows, k)
				}
			}
		}
	}
	var gone, upserts [][]any
	for k := range stored {
		if _, ok := rows[k]; !ok {
			gone = append(gone, []any{k.effect, k.instance, int64(k.seq)})
		}
	}
	written := map[parkedKey]bool{}
	for _, k := range order {
		if r := rows[k]; r != nil && !written[k] {
			written[k] = true
			upserts = append(upserts, r)
		}
	}
	if err := a.s.deleteByKeys(ctx, tx, a.parked, parkedKeyCols, "", gone); err != nil {
		return err
	}
	return a.s.insertRows(ctx, tx, a.parked, "parked_effects", upsertParked, upserts)
}

// ---- statements ----

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// chunkSizes splits n into chunks of at most max, then descending powers
// of two, so that few distinct statement texts exist (prepared-statement
// caches stay small).
func chunkSizes(n, max int) []int {
	var out []int
	for n >= max {
		out = append(out, max)
		n -= max
	}
	for p := max / 2; n > 0; p /= 2 {
		if n >= p {
			out = append(out, p)
			n -= p
		}
	}
	return out
}

// maxRowsPerStatement bounds a multi-row statement (a power of two; well
// under the parameter limits of both databases).
const maxRowsPerStatement = 128

// shape is one statement text (placeholders already rebound) and its
// cache key.
type shape struct{ key, text string }

// The sizes of multi-row statements: chunkSizes never uses others.
func sizesUpTo(max int) []int {
	var out []int
	for n := max; n >= 1; n /= 2 {
		out = append(out, n)
	}
	return out
}

// maxLoadKeys and maxDeleteKeys bound the keys of one load or delete.
const (
	maxLoadKeys   = 512
	maxDeleteKeys = 64
)

func (s *Store) insertShape(table, schemaTable, onConflict string, n int) shape {
	key := fmt.Sprintf("insert|%s|%d|%s", table, n, onConflict)
	if t, ok := s.texts.Load(key); ok {
		return shape{key, t.(string)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, columnList(schemaTable))
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(tableColumns[schemaTable])), ", ") + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	fmt.Fprintf(&b, " ON CONFLICT (%s) %s", strings.Join(tablePK[schemaTable], ", "), onConflict)
	t := s.d.q(b.String())
	s.texts.Store(key, t)
	return shape{key, t}
}

func (s *Store) loadShape(table, schemaTable, keyCol string, n int) shape {
	key := fmt.Sprintf("load|%s|%s|%d", table, keyCol, n)
	if t, ok := s.texts.Load(key); ok {
		return shape{key, t.(string)}
	}
	t := s.d.q(fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s)", columnList(schemaTable), table, keyCol,
		strings.TrimSuffix(strings.Repeat("?, ", n), ", ")))
	s.texts.Store(key, t)
	return shape{key, t}
}

func (s *Store) deleteShape(table string, cols []string, extra string, n int) shape {
	key := fmt.Sprintf("delete|%s|%s|%s|%d", table, strings.Join(cols, ","), extra, n)
	if t, ok := s.texts.Load(key); ok {
		return shape{key, t.(string)}
	}
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = c + " = ?"
	}
	one := "(" + strings.Join(conds, " AND ") + ")"
	q := fmt.Sprintf("DELETE FROM %s WHERE (%s)", table, strings.TrimSuffix(strings.Repeat(one+" OR ", n), " OR "))
	if extra != "" {
		q += " AND " + extra
	}
	t := s.d.q(q)
	s.texts.Store(key, t)
	return shape{key, t}
}

// warm prepares every statement shape of a on the write pool, outside any
// transaction (on SQLite the pool's only connection is taken while a
// transaction is open, so preparing there would wait for ever). Prepared
// once, a shape is parsed once per connection (SQLite) and planned once
// per connection (PostgreSQL).
func (s *Store) warm(ctx context.Context, a applier) error {
	if _, ok := s.warmed.Load(a.table()); ok {
		return nil
	}
	for _, sh := range a.shapes() {
		if _, ok := s.stmts.Load(sh.key); ok {
			continue
		}
		st, err := s.wdb.PrepareContext(ctx, sh.text)
		if err != nil {
			return fmt.Errorf("views: prepare %.60s…: %w", sh.text, err)
		}
		if _, loaded := s.stmts.LoadOrStore(sh.key, st); loaded {
			_ = st.Close()
		}
	}
	s.warmed.Store(a.table(), true)
	return nil
}

// prepared returns sh's statement inside tx: the one warm prepared, or
// (not warmed) one prepared for the transaction only.
func (s *Store) prepared(ctx context.Context, tx *sql.Tx, sh shape) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(sh.key); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	return tx.PrepareContext(ctx, sh.text)
}

// insertRows inserts rows (arguments in tableColumns[schemaTable] order)
// into table with "ON CONFLICT (<primary key>) <onConflict>".
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, table, schemaTable, onConflict string, rows [][]any) error {
	cols := tableColumns[schemaTable]
	for _, n := range chunkSizes(len(rows), maxRowsPerStatement) {
		stmt, err := s.prepared(ctx, tx, s.insertShape(table, schemaTable, onConflict, n))
		if err != nil {
			return fmt.Errorf("views: insert into %s: %w", table, err)
		}
		args := make([]any, 0, n*len(cols))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		rows = rows[n:]
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("views: insert into %s: %w", table, err)
		}
	}
	return nil
}

// updateAll is the SET list of an upsert replacing every non-key column.
func updateAll(schemaTable string) string {
	pk := map[string]bool{}
	for _, c := range tablePK[schemaTable] {
		pk[c] = true
	}
	var sets []string
	for _, c := range tableColumns[schemaTable] {
		if !pk[c.name] {
			sets = append(sets, c.name+" = excluded."+c.name)
		}
	}
	return strings.Join(sets, ", ")
}

// loadByKeys selects every column of the rows of table whose column
// keyCol is one of keys and calls fn for each.
func (s *Store) loadByKeys(ctx context.Context, tx *sql.Tx, table, schemaTable, keyCol string, keys []string, fn func(scanner) error) error {
	for _, n := range chunkSizes(len(keys), maxLoadKeys) {
		stmt, err := s.prepared(ctx, tx, s.loadShape(table, schemaTable, keyCol, n))
		if err != nil {
			return fmt.Errorf("views: load from %s: %w", table, err)
		}
		args := make([]any, n)
		for i, k := range keys[:n] {
			args[i] = k
		}
		keys = keys[n:]
		if err := stmtEach(ctx, stmt, args, fn); err != nil {
			return fmt.Errorf("views: load from %s: %w", table, err)
		}
	}
	return nil
}

// deleteByKeys deletes the rows of table whose columns cols equal one of
// keys (and that match the extra condition, if any).
func (s *Store) deleteByKeys(ctx context.Context, tx *sql.Tx, table string, cols []string, extra string, keys [][]any) error {
	for _, n := range chunkSizes(len(keys), maxDeleteKeys) {
		stmt, err := s.prepared(ctx, tx, s.deleteShape(table, cols, extra, n))
		if err != nil {
			return fmt.Errorf("views: delete from %s: %w", table, err)
		}
		args := make([]any, 0, n*len(cols))
		for _, k := range keys[:n] {
			args = append(args, k...)
		}
		keys = keys[n:]
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("views: delete from %s: %w", table, err)
		}
	}
	return nil
}

func queryEach(ctx context.Context, q querier, query string, args []any, fn func(scanner) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return eachRow(rows, fn)
}

func stmtEach(ctx context.Context, st *sql.Stmt, args []any, fn func(scanner) error) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	return eachRow(rows, fn)
}

func eachRow(rows *sql.Rows, fn func(scanner) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
