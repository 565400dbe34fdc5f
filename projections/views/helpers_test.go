package views

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"github.com/gallerist/gallerist/internal/pgtest"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Every rapid check runs a projection against a real database; 100
	// checks per database would take minutes under the race detector.
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set && os.Getenv("RAPID_CHECKS") == "" {
		_ = flag.Set("rapid.checks", strconv.Itoa(raceScaled(25)))
	}
	code := m.Run()
	os.Exit(code)
}

// raceScaled is n, or about half of it under the race detector (which
// slows the pure-Go SQLite down about tenfold), so that the package's
// tests stay well within a minute and a half with -race.
func raceScaled(n int) int {
	if raceEnabled {
		return (n + 1) / 2
	}
	return n
}

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- NATS ----

// startNATS starts an embedded nats-server for the test (see bustest: a
// long sync interval keeps nats-server's unlocked first sync timer from
// firing during a race-detector run).
func startNATS(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), SyncInterval: time.Hour}, testLogger())
	if err != nil {
		t.Fatalf("start embedded nats-server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// testStream is a fresh event stream with its own name and prefix.
type testStream struct {
	store  *eventstore.JetStreamStore
	js     jetstream.JetStream
	name   string
	prefix string
}

func newStream(t tb, nc *nats.Conn) *testStream {
	t.Helper()
	id := strings.ToUpper(randHex(5))
	name, prefix := "V"+id, "g"+strings.ToLower(id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{Stream: name, Prefix: prefix}, nil)
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	// Streams are not deleted after use: nats-server removes an account's
	// streams directory when its last stream is deleted, in the
	// background, and a stream created right after can then fail with
	// "could not create storage directory". They go with the server.
	return &testStream{store: st, js: st.JetStream(), name: name, prefix: prefix}
}

// ---- databases ----

func sqliteDSN(dir string) string {
	return "sqlite://" + filepath.Join(dir, "views-"+randHex(4)+".db")
}

// The test PostgreSQL (internal/pgtest): skip or fail when unreachable,
// and a fresh schema per test.
func postgresOK(t testing.TB) {
	t.Helper()
	pgtest.Require(t)
}

func postgresDSN(t tb) string {
	t.Helper()
	return pgtest.Schema(t)
}

func redact(dsn string) string { return pgtest.Redact(dsn) }

// forEachDBFactory runs fn once against SQLite and once against
// PostgreSQL, as subtests; newDSN makes a fresh database each call.
func forEachDBFactory(t *testing.T, fn func(t *testing.T, newDSN func(tb) string)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, func(tb) string { return sqliteDSN(dir) })
	})
	t.Run("postgres", func(t *testing.T) {
		postgresOK(t)
		fn(t, postgresDSN)
	})
}

// forEachDB runs fn against a fresh SQLite and a fresh PostgreSQL database.
func forEachDB(t *testing.T, fn func(t *testing.T, dsn string)) {
	forEachDBFactory(t, func(t *testing.T, newDSN func(tb) string) { fn(t, newDSN(t)) })
}

func openStore(t tb, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", redact(dsn), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	storeDSNs.Store(st, dsn)
	return st
}

// ---- projecting ----

// runProjector runs p until every view reached seq, then stops it.
func runProjector(t tb, p *Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for !caughtUp(p, seq) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("projector did not reach %d in time (checkpoints %v, err %v)", seq, p.checkpoints(), p.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("projector: %v", err)
	}
}

func caughtUp(p *Projector, seq uint64) bool {
	for _, v := range p.cfg.views {
		if p.Checkpoint(v) < seq {
			return false
		}
	}
	return true
}

func (p *Projector) checkpoints() map[string]uint64 {
	out := map[string]uint64{}
	for _, v := range p.cfg.views {
		out[v] = p.Checkpoint(v)
	}
	return out
}

// ---- comparing ----

// norm renders a value of a column kind the same way whether it comes
// from a database (either driver) or from the test's fold.
func norm(k colKind, v any) string {
	if p, ok := v.(*time.Time); ok {
		if p == nil {
			return "NULL"
		}
		v = *p
	}
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	if v == nil {
		return "NULL"
	}
	switch k {
	case kText:
		return strconv.Quote(v.(string))
	case kInt:
		switch n := v.(type) {
		case int:
			return strconv.FormatInt(int64(n), 10)
		case int32:
			return strconv.FormatInt(int64(n), 10)
		case int64:
			return strconv.FormatInt(n, 10)
		case uint64:
			return strconv.FormatUint(n, 10)
		}
	case kBool:
		switch b := v.(type) {
		case bool:
			return strconv.FormatBool(b)
		case int64:
			return strconv.FormatBool(b != 0)
		}
	case kTS, kDate:
		var t dbTime
		if err := t.Scan(v); err != nil {
			return fmt.Sprintf("bad time %v", v)
		}
		if k == kDate {
			return t.T.Format(dayLayout)
		}
		return t.T.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("unexpected %T %v", v, v)
}

func normRow(table string, vals []any) string {
	cols := tableColumns[table]
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = norm(c.kind, vals[i])
	}
	return strings.Join(parts, "|")
}

// dumpTables returns every row of every view table, normalised and sorted
// (in Go: the databases' collations differ).
func dumpTables(t tb, st *Store, suffix string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string][]string{}
	for _, v := range ViewNames() {
		for _, table := range viewTables[v] {
			rows, err := st.wdb.QueryContext(ctx, "SELECT "+columnList(table)+" FROM "+table+suffix)
			if err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			n := len(tableColumns[table])
			var got []string
			for rows.Next() {
				vals := make([]any, n)
				ptrs := make([]any, n)
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatalf("dump %s: %v", table, err)
				}
				got = append(got, normRow(table, vals))
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			_ = rows.Close()
			slices.Sort(got)
			out[table] = got
		}
	}
	return out
}

// diffTables reports the first differences between two dumps, "" if equal.
func diffTables(want, got map[string][]string) string {
	var b strings.Builder
	for _, v := range ViewNames() {
		for _, table := range viewTables[v] {
			w, g := want[table], got[table]
			if slices.Equal(w, g) {
				continue
			}
			fmt.Fprintf(&b, "table %s: want %d rows, got %d\n", table, len(w), len(g))
			wm, gm := map[string]bool{}, map[string]bool{}
			for _, r := range w {
				wm[r] = true
			}
			for _, r := range g {
				gm[r] = true
			}
			n := 0
			for _, r := range w {
				if !gm[r] && n < 5 {
					fmt.Fprintf(&b, "  missing: %s\n", r)
					n++
				}
			}
			n = 0
			for _, r := range g {
				if !wm[r] && n < 5 {
					fmt.Fprintf(&b, "  extra:   %s\n", r)
					n++
				}
			}
		}
	}
	return b.String()
}
