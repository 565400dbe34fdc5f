// Package views holds the SQL read models (projections) of the event log:
// instances, per-day facts, provisioning latency, parked effects, licenses,
// license codes, usage records and per-day facts per family, in
// SQLite (the default, a file under the data directory) or PostgreSQL, with
// one schema and one code path for both (database/sql; the differences are
// in dialect.go).
//
// A view is a named group of tables sharing one checkpoint, the stream
// sequence of the last event folded into it: [ViewInstances] (instances,
// provisioning_latency), [ViewFacts] (daily_facts), [ViewEffects]
// (parked_effects), [ViewLicenses] (licenses), [ViewLicenseCodes]
// (license_codes), [ViewUsage] (usage_records) and [ViewFamilyFacts]
// (family_daily_facts). The [Projector] applies events in batches, one
// transaction per batch and view that also moves the view's checkpoint, so
// a redelivered event is a no-op and a crash loses nothing. [Projector.Replay]
// rebuilds views from sequence 1 into fresh tables and swaps them in
// atomically. The read API (query.go) answers with the checkpoint each
// answer is consistent to.
//
// Every timestamp is UTC with microsecond precision. On SQLite timestamps
// are TEXT in fixed-width ISO 8601 ("2006-01-02T15:04:05.000000Z"), days
// are TEXT "YYYY-MM-DD" and booleans INTEGER 0/1; on PostgreSQL they are
// TIMESTAMPTZ, DATE and BOOLEAN.
package views

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	// The SQLite database/sql driver, "sqlite".
	_ "modernc.org/sqlite"
)

// Store is an open views database. It is safe for concurrent use.
type Store struct {
	// db serves queries; wdb serves projection writes. On SQLite wdb is a
	// single connection whose transactions begin IMMEDIATE (the write
	// lock), and db a pool of read-only connections (WAL readers never
	// wait for the writer). On PostgreSQL wdb is a small pool (a
	// connection per view and one more).
	db, wdb *sql.DB
	d       *dialect
	// where describes the database for messages (no credentials).
	where string
	// stmts holds the prepared projection statements (on wdb) by shape
	// key, texts the statement texts.
	stmts, texts sync.Map
	// warmed holds the main tables of the appliers whose statements are
	// prepared.
	warmed sync.Map
}

// ErrSchemaTooNew means the database was migrated by a newer Gallerist.
var ErrSchemaTooNew = errors.New("views: database schema is newer than this program")

// Open opens (creating if needed) the views database named by dsn and
// applies pending migrations:
//
//   - "postgres://…" or "postgresql://…": PostgreSQL through pgx (any pgx
//     connection parameter works, e.g. search_path=myschema);
//   - "sqlite:///abs/path/views.db", "sqlite://relative.db" or a plain file
//     path: SQLite (pure Go) in WAL mode with busy_timeout 30 s, foreign
//     keys on and synchronous NORMAL (the views are rebuildable, so the
//     last transactions before a power loss may be lost with their
//     checkpoint, never without it).
func Open(ctx context.Context, dsn string) (*Store, error) {
	var s *Store
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err = openPostgres(ctx, dsn)
	default:
		s, err = openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	if v > schemaVersion() {
		_ = s.Close()
		return nil, fmt.Errorf("%w: %s is at version %d, this program knows %d", ErrSchemaTooNew, s.where, v, schemaVersion())
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	where := "PostgreSQL"
	if u, err := url.Parse(dsn); err == nil {
		where = "PostgreSQL at " + u.Host + u.Path
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("views: %s: %w", where, err)
	}
	// Asynchronous commit: a PostgreSQL crash may lose the last few
	// hundred milliseconds of projection transactions, each with its
	// checkpoint, so the views stay consistent and the projector re-applies
	// them; a synchronous commit would cost a WAL flush per batch and view.
	if _, set := cfg.RuntimeParams["synchronous_commit"]; !set {
		cfg.RuntimeParams["synchronous_commit"] = "off"
	}
	// Queries get a pool; projection writes a small pool of their own, so
	// that their prepared statements are prepared on few connections and
	// reused (one projector writes one batch at a time; a replay in the
	// same process is the second writer).
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	// The projection's prepared statements are planned for their
	// arguments each time: a generic plan made while a table was small
	// (a fresh database, a replay's new tables) would keep scanning it
	// whole once it has grown.
	wcfg := cfg.Copy()
	if _, set := wcfg.RuntimeParams["plan_cache_mode"]; !set {
		wcfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	wdb := stdlib.OpenDB(*wcfg)
	// A connection per view: the projector applies a batch to every view
	// concurrently.
	wdb.SetMaxOpenConns(len(viewTables) + 1)
	wdb.SetMaxIdleConns(len(viewTables) + 1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	for _, d := range []*sql.DB{db, wdb} {
		if err := d.PingContext(ctx); err != nil {
			_ = db.Close()
			_ = wdb.Close()
			return nil, fmt.Errorf("views: connect to %s: %w", where, err)
		}
	}
	return &Store{db: db, wdb: wdb, d: postgresDialect, where: where}, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("views: empty SQLite path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("views: SQLite path %q must not contain '?' or '#'", path)
	}
	where := "SQLite " + path
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("views: %s: %w", where, err)
		}
	}
	const pragmas = "_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	wdb, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("views: open %s: %w", where, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := wdb.PingContext(ctx); err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("views: open %s: %w", where, err)
	}
	db, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("views: open %s: %w", where, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	return &Store{db: db, wdb: wdb, d: sqliteDialect, where: where}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	return errors.Join(s.db.Close(), s.wdb.Close())
}

// DB returns the query pool (read-only connections on SQLite), for ad-hoc
// SQL such as analytics exports.
func (s *Store) DB() *sql.DB { return s.db }

// Driver names the database kind: "sqlite" or "postgres".
func (s *Store) Driver() string { return s.d.name }

// String describes the database without credentials.
func (s *Store) String() string { return s.where }
