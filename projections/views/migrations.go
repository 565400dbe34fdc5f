package views

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// A migration is a numbered list of steps, applied once, in order, in one
// transaction each, and recorded in views_schema_migrations. Migrations are
// never edited once released: a schema change is a new migration.
//
// A step that belongs to a view table says so (table, and index for an
// index): Replay builds a fresh table by re-running every step of that
// table, in version order, with {t} naming the fresh table — so a rebuilt
// table always has exactly the shape the migrations gave the live one.
// Steps without a table (checkpoint rows, bookkeeping tables) are not
// re-run. Types are spelled abstractly ({TEXT}, {TS}, …; see dialect).
type migration struct {
	version int
	steps   []step
}

type step struct {
	// table is the view table the step changes ({t} in sql), "" for a
	// global step.
	table string
	// index is set when the step creates an index on table: {i} in sql is
	// its name, <table>_<index>.
	index string
	sql   string
}

var migrations = []migration{
	{version: 1, steps: []step{
		{sql: `CREATE TABLE view_checkpoints (
	view       {TEXT} PRIMARY KEY,
	seq        {BIGINT} NOT NULL,
	updated_at {TS} NOT NULL
)`},
		{sql: `CREATE TABLE view_locks (
	view         {TEXT} PRIMARY KEY,
	owner        {TEXT} NOT NULL,
	started_at   {TS} NOT NULL,
	heartbeat_at {TS} NOT NULL
)`},
		{table: "instances", sql: `CREATE TABLE {t} (
	instance_id     {TEXT} PRIMARY KEY,
	status          {TEXT} NOT NULL,
	order_id        {TEXT} NOT NULL DEFAULT '',
	order_line_id   {TEXT} NOT NULL DEFAULT '',
	business_id     {TEXT} NOT NULL DEFAULT '',
	route           {TEXT} NOT NULL DEFAULT '',
	product_id      {TEXT} NOT NULL DEFAULT '',
	sku_code        {TEXT} NOT NULL DEFAULT '',
	charging_mode   {TEXT} NOT NULL DEFAULT '',
	period_type     {TEXT} NOT NULL DEFAULT '',
	period_number   {INT} NOT NULL DEFAULT 0,
	customer_id     {TEXT} NOT NULL DEFAULT '',
	order_type      {TEXT} NOT NULL DEFAULT '',
	trial           {BOOL} NOT NULL DEFAULT {FALSE},
	formal          {BOOL} NOT NULL DEFAULT {FALSE},
	test_flag       {BOOL} NOT NULL DEFAULT {FALSE},
	expire_time     {TS},
	created_at      {TS},
	provisioned_at  {TS},
	failed_at       {TS},
	failure_code    {TEXT} NOT NULL DEFAULT '',
	failure_message {TEXT} NOT NULL DEFAULT '',
	frozen_at       {TS},
	released_at     {TS},
	refreshed_at    {TS},
	upgrades        {INT} NOT NULL DEFAULT 0,
	renewals        {INT} NOT NULL DEFAULT 0,
	last_event_seq  {BIGINT} NOT NULL,
	updated_at      {TS} NOT NULL
)`},
		{table: "instances", index: "status_idx", sql: `CREATE INDEX {i} ON {t} (status)`},
		{table: "instances", index: "product_idx", sql: `CREATE INDEX {i} ON {t} (product_id)`},
		{table: "instances", index: "customer_idx", sql: `CREATE INDEX {i} ON {t} (customer_id)`},
		{table: "instances", index: "expire_idx", sql: `CREATE INDEX {i} ON {t} (expire_time)`},
		{table: "instances", index: "created_idx", sql: `CREATE INDEX {i} ON {t} (created_at, instance_id)`},
		{table: "provisioning_latency", sql: `CREATE TABLE {t} (
	instance_id    {TEXT} PRIMARY KEY,
	created_at     {TS} NOT NULL,
	provisioned_at {TS} NOT NULL,
	latency_ms     {BIGINT} NOT NULL
)`},
		{table: "provisioning_latency", index: "provisioned_idx", sql: `CREATE INDEX {i} ON {t} (provisioned_at)`},
		{table: "daily_facts", sql: `CREATE TABLE {t} (
	day        {DATE} NOT NULL,
	product_id {TEXT} NOT NULL,
	metric     {TEXT} NOT NULL,
	count      {BIGINT} NOT NULL,
	PRIMARY KEY (day, product_id, metric)
)`},
		{table: "facts_instance_state", sql: `CREATE TABLE {t} (
	instance_id      {TEXT} PRIMARY KEY,
	order_id         {TEXT} NOT NULL DEFAULT '',
	product_id       {TEXT} NOT NULL DEFAULT '',
	first_product_id {TEXT} NOT NULL DEFAULT '',
	created_day      {DATE},
	trial            {BOOL} NOT NULL DEFAULT {FALSE}
)`},
		{table: "parked_effects", sql: `CREATE TABLE {t} (
	effect      {TEXT} NOT NULL,
	instance_id {TEXT} NOT NULL,
	event_seq   {BIGINT} NOT NULL,
	event_id    {TEXT} NOT NULL,
	event_type  {TEXT} NOT NULL,
	attempts    {INT} NOT NULL,
	reason      {TEXT} NOT NULL,
	parked_at   {TS} NOT NULL,
	PRIMARY KEY (effect, instance_id, event_seq)
)`},
		{table: "parked_effects", index: "instance_idx", sql: `CREATE INDEX {i} ON {t} (instance_id)`},
		{sql: `INSERT INTO view_checkpoints (view, seq, updated_at) VALUES ('instances', 0, {NOW}), ('facts', 0, {NOW}), ('effects', 0, {NOW})`},
	}},
	// Licenses (License A), license codes (License B), usage records and
	// per-day facts per product family: four new views, each with its own
	// checkpoint starting at 0, so that a database migrated from version 1
	// builds them from the start of the log while the older views carry on
	// from their checkpoints.
	{version: 2, steps: []step{
		{table: "licenses", sql: `CREATE TABLE {t} (
	instance_id    {TEXT} PRIMARY KEY,
	status         {TEXT} NOT NULL,
	order_id       {TEXT} NOT NULL DEFAULT '',
	business_id    {TEXT} NOT NULL DEFAULT '',
	product_id     {TEXT} NOT NULL DEFAULT '',
	sku_code       {TEXT} NOT NULL DEFAULT '',
	customer_id    {TEXT} NOT NULL DEFAULT '',
	charging_mode  {TEXT} NOT NULL DEFAULT '',
	period_type    {TEXT} NOT NULL DEFAULT '',
	period_number  {INT} NOT NULL DEFAULT 0,
	trial          {BOOL} NOT NULL DEFAULT {FALSE},
	test_flag      {BOOL} NOT NULL DEFAULT {FALSE},
	route          {TEXT} NOT NULL DEFAULT '',
	expire_time    {TS},
	issued_at      {TS} NOT NULL,
	refreshed_at   {TS},
	expired_at     {TS},
	released_at    {TS},
	renewals       {INT} NOT NULL DEFAULT 0,
	last_event_seq {BIGINT} NOT NULL,
	updated_at     {TS} NOT NULL
)`},
		{table: "licenses", index: "status_idx", sql: `CREATE INDEX {i} ON {t} (status)`},
		{table: "licenses", index: "product_idx", sql: `CREATE INDEX {i} ON {t} (product_id)`},
		{table: "licenses", index: "customer_idx", sql: `CREATE INDEX {i} ON {t} (customer_id)`},
		{table: "licenses", index: "order_idx", sql: `CREATE INDEX {i} ON {t} (order_id)`},
		{table: "licenses", index: "expire_idx", sql: `CREATE INDEX {i} ON {t} (expire_time)`},
		{table: "licenses", index: "issued_idx", sql: `CREATE INDEX {i} ON {t} (issued_at, instance_id)`},
		{table: "license_codes", sql: `CREATE TABLE {t} (
	code                     {TEXT} PRIMARY KEY,
	status                   {TEXT} NOT NULL,
	reference                {TEXT} NOT NULL DEFAULT '',
	product_id               {TEXT} NOT NULL DEFAULT '',
	order_id                 {TEXT} NOT NULL DEFAULT '',
	amount                   {INT} NOT NULL DEFAULT 0,
	expire_time              {TS},
	activation               {TEXT} NOT NULL,
	activated_at             {TS},
	activation_error_code    {TEXT} NOT NULL DEFAULT '',
	activation_error_message {TEXT} NOT NULL DEFAULT '',
	heartbeat_at             {TS},
	heartbeat_code           {TEXT} NOT NULL DEFAULT '',
	heartbeat_status         {TEXT} NOT NULL DEFAULT '',
	usage_reported_at        {TS},
	usage_report_code        {TEXT} NOT NULL DEFAULT '',
	usage_reports            {INT} NOT NULL DEFAULT 0,
	renewals                 {INT} NOT NULL DEFAULT 0,
	route                    {TEXT} NOT NULL DEFAULT '',
	registered_at            {TS} NOT NULL,
	refreshed_at             {TS},
	frozen_at                {TS},
	released_at              {TS},
	last_event_seq           {BIGINT} NOT NULL,
	updated_at               {TS} NOT NULL
)`},
		{table: "license_codes", index: "status_idx", sql: `CREATE INDEX {i} ON {t} (status)`},
		{table: "license_codes", index: "activation_idx", sql: `CREATE INDEX {i} ON {t} (activation)`},
		{table: "license_codes", index: "expire_idx", sql: `CREATE INDEX {i} ON {t} (expire_time)`},
		{table: "license_codes", index: "registered_idx", sql: `CREATE INDEX {i} ON {t} (registered_at, code)`},
		{table: "usage_records", sql: `CREATE TABLE {t} (
	metering_sn         {TEXT} PRIMARY KEY,
	instance_id         {TEXT} NOT NULL,
	record_key          {TEXT} NOT NULL,
	record_time         {TS} NOT NULL,
	begin_time          {TS} NOT NULL,
	end_time            {TS} NOT NULL,
	usage_value         {TEXT} NOT NULL,
	relate_pkg_instance {TEXT} NOT NULL DEFAULT '',
	billing             {TEXT} NOT NULL DEFAULT '',
	status              {TEXT} NOT NULL,
	batch_id            {TEXT} NOT NULL DEFAULT '',
	duplicate           {BOOL} NOT NULL DEFAULT {FALSE},
	rejection_code      {TEXT} NOT NULL DEFAULT '',
	rejection_message   {TEXT} NOT NULL DEFAULT '',
	local_rejection     {BOOL} NOT NULL DEFAULT {FALSE},
	recorded_at         {TS} NOT NULL,
	pushed_at           {TS},
	rejected_at         {TS},
	last_event_seq      {BIGINT} NOT NULL,
	updated_at          {TS} NOT NULL
)`},
		{table: "usage_records", index: "instance_idx", sql: `CREATE INDEX {i} ON {t} (instance_id, begin_time, metering_sn)`},
		{table: "usage_records", index: "begin_idx", sql: `CREATE INDEX {i} ON {t} (begin_time, metering_sn)`},
		{table: "usage_records", index: "status_idx", sql: `CREATE INDEX {i} ON {t} (status)`},
		{table: "family_daily_facts", sql: `CREATE TABLE {t} (
	day    {DATE} NOT NULL,
	family {TEXT} NOT NULL,
	metric {TEXT} NOT NULL,
	count  {BIGINT} NOT NULL,
	PRIMARY KEY (day, family, metric)
)`},
		{table: "family_facts_state", sql: `CREATE TABLE {t} (
	instance_id {TEXT} PRIMARY KEY,
	family      {TEXT} NOT NULL,
	order_id    {TEXT} NOT NULL DEFAULT '',
	created_day {DATE} NOT NULL,
	trial       {BOOL} NOT NULL DEFAULT {FALSE}
)`},
		{sql: `INSERT INTO view_checkpoints (view, seq, updated_at) VALUES ('licenses', 0, {NOW}), ('license_codes', 0, {NOW}), ('usage', 0, {NOW}), ('family_facts', 0, {NOW})`},
	}},
}

// schemaVersion is the version the code expects.
func schemaVersion() int { return migrations[len(migrations)-1].version }

// render spells a step for table name t and index name i (the live names
// or rebuild names).
func (d *dialect) render(s step, t, i string) string {
	r := strings.NewReplacer("{t}", t, "{i}", i, "{NOW}", "'"+time.Now().UTC().Format(sqliteTimeLayout)+"'")
	return d.ddl(r.Replace(s.sql))
}

// indexName names index idx of table.
func indexName(table, idx string) string { return table + "_" + idx }

// migrate applies the pending migrations. Concurrent processes are
// serialised (advisory lock on PostgreSQL, the write lock on SQLite), and
// each migration re-checks inside its transaction whether another process
// applied it meanwhile, so running it twice is harmless.
func (s *Store) migrate(ctx context.Context) error {
	for _, m := range migrations {
		if err := s.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("views: migration %d: %w", m.version, err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.d.lockMigrations(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.d.ddl(`CREATE TABLE IF NOT EXISTS views_schema_migrations (
	version    {INT} PRIMARY KEY,
	applied_at {TS} NOT NULL
)`)); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.d.q("SELECT count(*) FROM views_schema_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, st := range m.steps {
		if _, err := tx.ExecContext(ctx, s.d.render(st, st.table, indexName(st.table, st.index))); err != nil {
			return fmt.Errorf("%s: %w", firstLine(st.sql), err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.q("INSERT INTO views_schema_migrations (version, applied_at) VALUES (?, ?)"),
		m.version, s.d.ts(time.Now().UTC())); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the highest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT max(version) FROM views_schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("views: schema version: %w", err)
	}
	return int(v.Int64), nil
}

// createRebuildTables (re)creates the fresh tables of view: every step of
// each table, in version order, on <table>__rebuild. Index steps are
// returned rather than run: they are cheaper after the bulk load
// (PostgreSQL, before the swap) or must wait for the rename (SQLite).
func (s *Store) createRebuildTables(ctx context.Context, view string) ([]step, error) {
	var indexes []step
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	for _, table := range viewTables[view] {
		if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+table+rebuildSuffix); err != nil {
			return nil, err
		}
		for _, m := range migrations {
			for _, st := range m.steps {
				if st.table != table {
					continue
				}
				if st.index != "" {
					indexes = append(indexes, st)
					continue
				}
				if _, err := tx.ExecContext(ctx, s.d.render(st, table+rebuildSuffix, "")); err != nil {
					return nil, fmt.Errorf("rebuild %s: %s: %w", table, firstLine(st.sql), err)
				}
			}
		}
	}
	return indexes, tx.Commit()
}

// rebuildIndexName is the name an index has on the rebuilt table before
// the swap (PostgreSQL only).
func rebuildIndexName(st step) string { return indexName(st.table, st.index) + rebuildSuffix }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
