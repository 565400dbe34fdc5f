// Package pgtest gives tests a fresh schema on the test PostgreSQL. The
// server comes from GALLERIST_TEST_POSTGRES_DSN (default: this machine's,
// postgres://postgres@127.0.0.1:5432/test); when it is unreachable, tests
// skip with a message saying so, or fail when GALLERIST_REQUIRE_SERVICES=1
// (set by CI).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Environment variables and the default server.
const (
	EnvDSN             = "GALLERIST_TEST_POSTGRES_DSN"
	EnvRequireServices = "GALLERIST_REQUIRE_SERVICES"
	DefaultDSN         = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// admin is the one connection pool a test binary uses to create and drop
// schemas; opened on first use.
var admin struct {
	once sync.Once
	db   *sql.DB
	dsn  string
	err  error
}

// BaseDSN is the configured server's DSN.
func BaseDSN() string {
	if v := os.Getenv(EnvDSN); v != "" {
		return v
	}
	return DefaultDSN
}

// Reachable connects once and reports whether the server answers.
func Reachable() error {
	admin.once.Do(func() {
		admin.dsn = BaseDSN()
		db, err := sql.Open("pgx", admin.dsn)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = db.PingContext(ctx)
			cancel()
		}
		admin.db, admin.err = db, err
	})
	return admin.err
}

// Require skips t when the server is unreachable, or fails it when
// GALLERIST_REQUIRE_SERVICES=1.
func Require(t testing.TB) {
	t.Helper()
	if err := Reachable(); err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable at %s: %v", Redact(admin.dsn), err)
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatalf("%s (and %s=1)", msg, EnvRequireServices)
		}
		t.Skip(msg + "; set " + EnvDSN + " to point elsewhere")
	}
}

// T is what Schema needs of a test (testing.TB, or a property-test T).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Schema creates a fresh schema, dropped at cleanup, and returns a DSN whose
// connections use it. Require (or Reachable) must have succeeded.
func Schema(t T) string {
	t.Helper()
	if err := Reachable(); err != nil {
		t.Fatalf("pgtest.Schema without a reachable server: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	sep := "?"
	if strings.Contains(admin.dsn, "?") {
		sep = "&"
	}
	return admin.dsn + sep + "search_path=" + schema
}

// Redact hides the credentials of a DSN for messages.
func Redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "…" + dsn[i:]
		}
	}
	return dsn
}
