package views

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect holds everything that differs between SQLite and PostgreSQL.
// The rest of the package writes one SQL text with '?' placeholders and
// column types spelled as the abstract names below ({TEXT}, {TS}, …).
type dialect struct {
	name string // "sqlite" or "postgres"
	// types maps the abstract column types to the database's.
	types *strings.Replacer
	// forUpdate is appended to the checkpoint read of a projection
	// transaction: PostgreSQL locks the row; SQLite's IMMEDIATE transaction
	// already holds the database's write lock.
	forUpdate string
	// readTx are the options of query transactions: one snapshot for the
	// data and the checkpoint read with it.
	readTx *sql.TxOptions
	// renameIndexes: PostgreSQL can rename an index, so a rebuilt table
	// gets its indexes before the swap and they are renamed inside it;
	// SQLite cannot, so the swap creates them on the renamed table.
	renameIndexes bool
	// parallelWrites: a replay folds a batch into its views concurrently,
	// one connection each (PostgreSQL; SQLite has one writer).
	parallelWrites bool
}

// sqliteTimeLayout is how SQLite stores timestamps: fixed-width ISO 8601
// in UTC with microseconds, so that text order is time order and analysts
// can compare with literals such as '2025-01-31'.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// dayLayout is the text form of a day (daily_facts.day on SQLite, and the
// Go side's day keys).
const dayLayout = "2006-01-02"

var (
	sqliteDialect = &dialect{
		name: "sqlite",
		types: strings.NewReplacer(
			"{TEXT}", "TEXT", "{INT}", "INTEGER", "{BIGINT}", "INTEGER",
			"{BOOL}", "INTEGER", "{TS}", "TEXT", "{DATE}", "TEXT",
			"{FALSE}", "0",
		),
		readTx: &sql.TxOptions{ReadOnly: true}, // a deferred BEGIN: a WAL snapshot from the first read
	}
	postgresDialect = &dialect{
		name: "postgres",
		types: strings.NewReplacer(
			"{TEXT}", "TEXT", "{INT}", "INTEGER", "{BIGINT}", "BIGINT",
			"{BOOL}", "BOOLEAN", "{TS}", "TIMESTAMPTZ", "{DATE}", "DATE",
			"{FALSE}", "FALSE",
		),
		forUpdate:      " FOR UPDATE",
		readTx:         &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		renameIndexes:  true,
		parallelWrites: true,
	}
)

// ddl spells the abstract types of a statement for this database.
func (d *dialect) ddl(stmt string) string { return d.types.Replace(stmt) }

// q turns the '?' placeholders of query into the database's: unchanged on
// SQLite, $1, $2, … on PostgreSQL. Queries of this package never contain a
// '?' inside a literal.
func (d *dialect) q(query string) string {
	if d.name != "postgres" || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// ts is the argument for a timestamp column (t is already UTC, truncated
// to microseconds).
func (d *dialect) ts(t time.Time) any {
	if d.name == "sqlite" {
		return t.UTC().Format(sqliteTimeLayout)
	}
	return t.UTC()
}

// tsPtr is ts for a nullable timestamp.
func (d *dialect) tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.ts(*t)
}

// day is the argument for a DATE column, given as "YYYY-MM-DD".
func (d *dialect) day(day string) (any, error) {
	t, err := time.Parse(dayLayout, day)
	if err != nil {
		return nil, fmt.Errorf("views: bad day %q: %w", day, err)
	}
	if d.name == "sqlite" {
		return day, nil
	}
	return t, nil
}

// lockMigrations serialises schema migrations of concurrent processes
// inside tx: a transaction-scoped advisory lock on PostgreSQL; on SQLite
// the IMMEDIATE transaction already holds the write lock.
func (d *dialect) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if d.name != "postgres" {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7428312051)")
	return err
}

// tableExists reports whether table exists (in the current schema on
// PostgreSQL).
func (d *dialect) tableExists(ctx context.Context, q querier, table string) (bool, error) {
	var query string
	if d.name == "sqlite" {
		query = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	} else {
		query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	}
	var n int
	if err := q.QueryRowContext(ctx, d.q(query), table).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// dbTime scans a timestamp or a day from either database: time.Time from
// PostgreSQL, text from SQLite; NULL leaves Valid false.
type dbTime struct {
	T     time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (t *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*t = dbTime{}
		return nil
	case time.Time:
		*t = dbTime{T: v.UTC(), Valid: true}
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	}
	return fmt.Errorf("views: cannot scan %T into a timestamp", src)
}

func (t *dbTime) parse(s string) error {
	layouts := []string{sqliteTimeLayout, time.RFC3339Nano, dayLayout}
	for _, l := range layouts {
		if v, err := time.Parse(l, s); err == nil {
			*t = dbTime{T: v.UTC(), Valid: true}
			return nil
		}
	}
	return fmt.Errorf("views: cannot parse timestamp %q", s)
}

// ptr returns the time or nil.
func (t dbTime) ptr() *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.T
	return &v
}

// setSwapLockTimeout bounds how long the swap waits for table locks
// (PostgreSQL; SQLite's writer lock is taken when the transaction begins).
func (d *dialect) setSwapLockTimeout(ctx context.Context, tx *sql.Tx) error {
	if d.name != "postgres" {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '2s'")
	return err
}

// isLockTimeout reports a PostgreSQL lock_timeout (SQLSTATE 55P03).
func (d *dialect) isLockTimeout(err error) bool {
	var se interface{ SQLState() string }
	return d.name == "postgres" && errors.As(err, &se) && se.SQLState() == "55P03"
}
