package views

import (
	"slices"
	"strings"
)

// The views. A view is a named group of tables that share one checkpoint
// and are rebuilt together by Replay.
const (
	// ViewInstances: tables instances and provisioning_latency.
	ViewInstances = "instances"
	// ViewFacts: table daily_facts and its helper facts_instance_state.
	ViewFacts = "facts"
	// ViewEffects: table parked_effects.
	ViewEffects = "effects"
	// ViewLicenses: table licenses (License A).
	ViewLicenses = "licenses"
	// ViewLicenseCodes: table license_codes (License B authorization
	// codes).
	ViewLicenseCodes = "license_codes"
	// ViewUsage: table usage_records.
	ViewUsage = "usage"
	// ViewFamilyFacts: table family_daily_facts and its helper
	// family_facts_state.
	ViewFamilyFacts = "family_facts"
)

// viewTables lists the tables of each view.
var viewTables = map[string][]string{
	ViewInstances: {"instances", "provisioning_latency"},
	ViewFacts:     {"daily_facts", "facts_instance_state"},
	ViewEffects:   {"parked_effects"},

	ViewLicenses:     {"licenses"},
	ViewLicenseCodes: {"license_codes"},
	ViewUsage:        {"usage_records"},
	ViewFamilyFacts:  {"family_daily_facts", "family_facts_state"},
}

// ViewNames returns the names of every view, sorted.
func ViewNames() []string {
	names := make([]string, 0, len(viewTables))
	for n := range viewTables {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ViewTables returns the tables of view, nil for an unknown view.
func ViewTables(view string) []string { return slices.Clone(viewTables[view]) }

// rebuildSuffix names the fresh tables a replay builds before the swap.
const rebuildSuffix = "__rebuild"

// colKind is the Go-side type of a column, for building statements and for
// normalising rows in tests.
type colKind int

const (
	kText colKind = iota
	kInt
	kBool
	kTS
	kDate
)

type column struct {
	name string
	kind colKind
}

// tableColumns lists the columns of every view table in statement order,
// primary key columns first. It must agree with the migrations.
var tableColumns = map[string][]column{
	"instances": {
		{"instance_id", kText}, {"status", kText}, {"order_id", kText}, {"order_line_id", kText},
		{"business_id", kText}, {"route", kText}, {"product_id", kText}, {"sku_code", kText},
		{"charging_mode", kText}, {"period_type", kText}, {"period_number", kInt}, {"customer_id", kText},
		{"order_type", kText}, {"trial", kBool}, {"formal", kBool}, {"test_flag", kBool},
		{"expire_time", kTS}, {"created_at", kTS}, {"provisioned_at", kTS}, {"failed_at", kTS},
		{"failure_code", kText}, {"failure_message", kText}, {"frozen_at", kTS}, {"released_at", kTS},
		{"refreshed_at", kTS}, {"upgrades", kInt}, {"renewals", kInt}, {"last_event_seq", kInt},
		{"updated_at", kTS},
	},
	"provisioning_latency": {
		{"instance_id", kText}, {"created_at", kTS}, {"provisioned_at", kTS}, {"latency_ms", kInt},
	},
	"daily_facts": {
		{"day", kDate}, {"product_id", kText}, {"metric", kText}, {"count", kInt},
	},
	"facts_instance_state": {
		{"instance_id", kText}, {"order_id", kText}, {"product_id", kText}, {"first_product_id", kText},
		{"created_day", kDate}, {"trial", kBool},
	},
	"parked_effects": {
		{"effect", kText}, {"instance_id", kText}, {"event_seq", kInt}, {"event_id", kText},
		{"event_type", kText}, {"attempts", kInt}, {"reason", kText}, {"parked_at", kTS},
	},
	// Migration 2.
	"licenses": {
		{"instance_id", kText}, {"status", kText}, {"order_id", kText}, {"business_id", kText},
		{"product_id", kText}, {"sku_code", kText}, {"customer_id", kText}, {"charging_mode", kText},
		{"period_type", kText}, {"period_number", kInt}, {"trial", kBool}, {"test_flag", kBool},
		{"route", kText}, {"expire_time", kTS}, {"issued_at", kTS}, {"refreshed_at", kTS},
		{"expired_at", kTS}, {"released_at", kTS}, {"renewals", kInt}, {"last_event_seq", kInt},
		{"updated_at", kTS},
	},
	"license_codes": {
		{"code", kText}, {"status", kText}, {"reference", kText}, {"product_id", kText},
		{"order_id", kText}, {"amount", kInt}, {"expire_time", kTS}, {"activation", kText},
		{"activated_at", kTS}, {"activation_error_code", kText}, {"activation_error_message", kText}, {"heartbeat_at", kTS},
		{"heartbeat_code", kText}, {"heartbeat_status", kText}, {"usage_reported_at", kTS}, {"usage_report_code", kText},
		{"usage_reports", kInt}, {"renewals", kInt}, {"route", kText}, {"registered_at", kTS},
		{"refreshed_at", kTS}, {"frozen_at", kTS}, {"released_at", kTS}, {"last_event_seq", kInt},
		{"updated_at", kTS},
	},
	"usage_records": {
		{"metering_sn", kText}, {"instance_id", kText}, {"record_key", kText}, {"record_time", kTS},
		{"begin_time", kTS}, {"end_time", kTS}, {"usage_value", kText}, {"relate_pkg_instance", kText},
		{"billing", kText}, {"status", kText}, {"batch_id", kText}, {"duplicate", kBool},
		{"rejection_code", kText}, {"rejection_message", kText}, {"local_rejection", kBool}, {"recorded_at", kTS},
		{"pushed_at", kTS}, {"rejected_at", kTS}, {"last_event_seq", kInt}, {"updated_at", kTS},
	},
	"family_daily_facts": {
		{"day", kDate}, {"family", kText}, {"metric", kText}, {"count", kInt},
	},
	"family_facts_state": {
		{"instance_id", kText}, {"family", kText}, {"order_id", kText}, {"created_day", kDate},
		{"trial", kBool},
	},
}

// tablePK lists the primary key columns of every view table.
var tablePK = map[string][]string{
	"instances":            {"instance_id"},
	"provisioning_latency": {"instance_id"},
	"daily_facts":          {"day", "product_id", "metric"},
	"facts_instance_state": {"instance_id"},
	"parked_effects":       {"effect", "instance_id", "event_seq"},
	"licenses":             {"instance_id"},
	"license_codes":        {"code"},
	"usage_records":        {"metering_sn"},
	"family_daily_facts":   {"day", "family", "metric"},
	"family_facts_state":   {"instance_id"},
}

// columnList returns "a, b, c" for table.
func columnList(table string) string {
	cols := tableColumns[table]
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}
