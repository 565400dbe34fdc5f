package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/internal/pgtest"
	"github.com/gallerist/gallerist/projections/views"
)

const testRoute = "/kg/v2"

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testAppConfig is an App on the embedded server in dir with one SaaS V2
// route (key "k"), on a free loopback port.
func testAppConfig(dir string) app.Config {
	c := app.Defaults()
	c.Listen = "127.0.0.1:0"
	c.DataDir = dir
	// nats-server v2.15.2 arms its first sync timer without its lock.
	c.SyncInterval = time.Hour
	c.Routes = []config.Route{{Path: testRoute, Family: config.FamilySaaSV2, Keys: []config.Key{{Value: "k"}}}}
	return c
}

// startApp starts an App; it is shut down at cleanup unless stop was
// called.
func startApp(t *testing.T, cfg app.Config) (a *app.App, stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(context.WithoutCancel(ctx), cfg, quietLogger())
	if err != nil {
		t.Fatalf("app.Start: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

// buildLog creates n instances through the App's service (the provisioner
// provisions them), freezes every third and releases every fifth, and
// waits until every view has projected the whole log. It returns the last
// sequence of the stream.
func buildLog(t *testing.T, a *app.App, n int) uint64 {
	t.Helper()
	ctx := t.Context()
	svc := a.Instances()
	for i := range n {
		id := fmt.Sprintf("inst-%03d", i)
		cause := event.Causation{Activity: "newInstance", Route: testRoute}
		if _, err := svc.Create(ctx, fmt.Sprintf("o-%d", i), fmt.Sprintf("l-%d", i), id, cause, 0); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	// Wait for provisioning before changing status, so that the log does
	// not depend on timing more than the test needs.
	waitFor(t, "every instance provisioned", func() (bool, error) {
		for i := range n {
			st, err := svc.Get(ctx, fmt.Sprintf("inst-%03d", i))
			if err != nil {
				return false, err
			}
			if st.Status == instance.StatusProvisioning {
				return false, nil
			}
		}
		return true, nil
	})
	for i := 0; i < n; i += 3 {
		id := fmt.Sprintf("inst-%03d", i)
		if _, err := svc.Execute(ctx, id, instance.SetStatus{Target: instance.TargetFreeze}, event.Causation{Activity: "updateInstanceStatus"}); err != nil {
			t.Fatalf("freeze %s: %v", id, err)
		}
	}
	for i := 0; i < n; i += 5 {
		id := fmt.Sprintf("inst-%03d", i)
		if _, err := svc.Execute(ctx, id, instance.Release{}, event.Causation{Activity: "releaseInstance"}); err != nil {
			t.Fatalf("release %s: %v", id, err)
		}
	}
	info, err := a.Store().Stream().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	waitFor(t, "the views to project the whole log", func() (bool, error) {
		ck, err := a.Views().Checkpoints(ctx)
		if err != nil {
			return false, err
		}
		for _, v := range views.ViewNames() {
			if ck[v] < last {
				return false, nil
			}
		}
		return true, nil
	})
	return last
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpViews returns every row of every view table, ordered, as text, and
// the checkpoints.
func dumpViews(t *testing.T, dsn string) (map[string][]string, map[string]uint64) {
	t.Helper()
	ctx := t.Context()
	st, err := views.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	out := map[string][]string{}
	for _, v := range views.ViewNames() {
		for _, table := range views.ViewTables(v) {
			rows, err := st.DB().QueryContext(ctx, "SELECT * FROM "+table)
			if err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				for i, c := range cols {
					if bs, ok := vals[i].([]byte); ok {
						vals[i] = string(bs)
					}
					fmt.Fprintf(&b, "%s=%v ", c, vals[i])
				}
				lines = append(lines, b.String())
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			_ = rows.Close()
			// Row order is not part of a table's content.
			slices.Sort(lines)
			out[table] = lines
		}
	}
	ck, err := st.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out, ck
}

// execSQL runs statements on the views database behind the store's back
// (to damage a view that the replay must then rebuild).
func execSQL(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	driver, name := "sqlite", dsn
	if strings.HasPrefix(dsn, "postgres://") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// The replay command rebuilds the views of a stopped service from its log:
// afterwards every table holds what the live projector had written, row for
// row, even after the tables were damaged; on SQLite (the default file in
// the data directory) and on PostgreSQL.
func TestReplayRebuildsWhatTheLiveProjectorHad(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testAppConfig(dir)
			args := []string{"replay", "--data-dir", dir}
			if db == "postgres" {
				pgtest.Require(t)
				cfg.ViewsDSN = pgtest.Schema(t)
				args = append(args, "--views-dsn", cfg.ViewsDSN)
			}
			dsn := app.ViewsDSN(cfg)
			a, stop := startApp(t, cfg)
			last := buildLog(t, a, 12)
			stop()
			live, liveCk := dumpViews(t, dsn)
			if len(live["instances"]) != 12 || len(live["provisioning_latency"]) != 12 || len(live["daily_facts"]) == 0 {
				t.Fatalf("the live views are not what the log says: %d instances, %d latencies, %d facts",
					len(live["instances"]), len(live["provisioning_latency"]), len(live["daily_facts"]))
			}

			// Damage two views, then rebuild only one of them.
			execSQL(t, dsn, "DELETE FROM instances WHERE instance_id <> 'inst-001'", "DELETE FROM daily_facts")
			code, out, errOut := runCmd(t, append(args, "--view", "instances")...)
			if code != 0 {
				t.Fatalf("replay --view instances exited %d: %s", code, errOut)
			}
			if !strings.Contains(out, fmt.Sprintf("replayed %d events into instances in ", last)) || !strings.Contains(out, "events/s") {
				t.Fatalf("replay printed %q", out)
			}
			got, _ := dumpViews(t, dsn)
			if !reflect.DeepEqual(got["instances"], live["instances"]) || !reflect.DeepEqual(got["provisioning_latency"], live["provisioning_latency"]) {
				t.Fatalf("instances after the replay:\n%s\nwant:\n%s", strings.Join(got["instances"], "\n"), strings.Join(live["instances"], "\n"))
			}
			if len(got["daily_facts"]) != 0 {
				t.Fatalf("--view instances rebuilt the facts too")
			}

			// Every view.
			code, out, errOut = runCmd(t, args...)
			if code != 0 {
				t.Fatalf("replay exited %d: %s", code, errOut)
			}
			if !strings.Contains(out, fmt.Sprintf("replayed %d events into %s in ", last, strings.Join(views.ViewNames(), ", "))) ||
				!strings.Contains(out, "events/s") {
				t.Fatalf("replay printed %q", out)
			}
			// Not a terminal: plain progress lines, the last one complete, and
			// no carriage returns or escape sequences.
			if !strings.Contains(errOut, fmt.Sprintf("replay: 100.0%%  %d/%d events", last, last)) || strings.ContainsAny(errOut, "\r\x1b") {
				t.Fatalf("progress on stderr: %q", errOut)
			}
			got, gotCk := dumpViews(t, dsn)
			if !reflect.DeepEqual(got, live) {
				for table := range live {
					if !reflect.DeepEqual(got[table], live[table]) {
						t.Errorf("%s after the replay:\n%s\nwant:\n%s", table, strings.Join(got[table], "\n"), strings.Join(live[table], "\n"))
					}
				}
			}
			if !reflect.DeepEqual(gotCk, liveCk) {
				t.Errorf("checkpoints after the replay %v, live %v", gotCk, liveCk)
			}
		})
	}
}

// A second replay of a view whose lock another replay holds is refused,
// naming the holder; once that replay is done, a replay runs. The holder is
// a replay through the views package, paused in its progress callback; the
// commands read the log through --nats-url.
func TestReplayRefusedWhileAnotherHoldsTheLock(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir, "inst-lock-1")
	ctx := t.Context()
	log := quietLogger()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: dir, SyncInterval: time.Hour, Listen: "127.0.0.1:0"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(dir, "views.db")
	st, err := views.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	proj, err := views.NewProjector(st, js, "GALLERIST", "gallerist", log)
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	first := true
	done := make(chan error, 1)
	go func() {
		_, err := proj.Replay(ctx, "", func(_, _ uint64) {
			if first {
				first = false
				close(held)
				<-release
			}
		})
		done <- err
	}()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("the holding replay ended early: %v", err)
	}
	args := []string{"replay", "--data-dir", dir, "--nats-url", e.ClientURL()}
	for _, v := range []string{"instances", "effects"} {
		code, out, errOut := runCmd(t, append(args, "--view", v)...)
		if code == 0 || !strings.Contains(errOut, "another replay holds the lock") || !strings.Contains(errOut, "view "+v) ||
			!strings.Contains(errOut, "already running") || strings.Contains(out, "replayed") {
			t.Errorf("replay --view %s while locked: exit %d, stdout %q, stderr %q", v, code, out, errOut)
		}
	}
	// The embedded store is refused while another embedded server holds
	// the data directory (as gallerist serve would), pointing at
	// --nats-listen and --nats-url.
	code, _, errOut := runCmd(t, "replay", "--data-dir", dir)
	if code == 0 || !strings.Contains(errOut, "is in use") || !strings.Contains(errOut, "--nats-listen") || !strings.Contains(errOut, "--nats-url") {
		t.Errorf("replay on a data directory in use: exit %d, stderr %q", code, errOut)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the holding replay: %v", err)
	}
	code, out, errOut := runCmd(t, args...)
	if code != 0 || !strings.Contains(out, "events/s") {
		t.Fatalf("replay after the lock was released: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestReplayArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCmd(t, "replay", "--data-dir", dir, "--view", "nope")
	if code != 1 || !strings.Contains(errOut, `unknown view "nope"`) || !strings.Contains(errOut, strings.Join(views.ViewNames(), ", ")) {
		t.Errorf("--view nope: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "replay", "--data-dir", filepath.Join(dir, "missing")); code != 1 || !strings.Contains(errOut, "data directory") {
		t.Errorf("missing data dir: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "replay", "--data-dir", dir, "extra"); code != 1 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d, stderr %q", code, errOut)
	}
	// An empty data directory has no stream: nothing to replay.
	if code, _, errOut := runCmd(t, "replay", "--data-dir", dir); code != 1 || !strings.Contains(errOut, `no stream "GALLERIST"`) {
		t.Errorf("no stream: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "replay", "-h"); code != 0 || !strings.Contains(errOut, "-views-dsn") || !strings.Contains(errOut, "-nats-url") {
		t.Errorf("replay -h: exit %d, stderr %q", code, errOut)
	}
}

// cancelOn is a writer that cancels a context when a line it is given
// contains a marker (Ctrl-C at a chosen moment).
type cancelOn struct {
	syncBuffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.marker) {
		c.cancel()
	}
	return c.syncBuffer.Write(p)
}

// A replay cancelled half-way (Ctrl-C, here at its first progress report)
// stops with an error saying so, swaps nothing, and releases its lock: the
// next replay runs.
func TestReplayCancelled(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir, "inst-cancel-1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	errOut := &cancelOn{marker: "replay: ", cancel: cancel}
	code := run(ctx, []string{"replay", "--data-dir", dir}, &out, errOut)
	if code == 0 || !strings.Contains(errOut.String(), "replay cancelled: the views were not swapped") || strings.Contains(out.String(), "replayed") {
		t.Fatalf("cancelled replay: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	ck, err := func() (map[string]uint64, error) {
		st, err := views.Open(t.Context(), filepath.Join(dir, "views.db"))
		if err != nil {
			return nil, err
		}
		defer func() { _ = st.Close() }()
		return st.Checkpoints(t.Context())
	}()
	if err != nil {
		t.Fatal(err)
	}
	for v, seq := range ck {
		if seq != 0 {
			t.Errorf("view %s at %d after a cancelled replay, want 0", v, seq)
		}
	}
	if code, out, errOut := runCmd(t, "replay", "--data-dir", dir); code != 0 || !strings.Contains(out, "replayed 4 events into "+strings.Join(views.ViewNames(), ", ")) {
		t.Fatalf("replay after the cancelled one: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestReplayProgress(t *testing.T) {
	clock := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var plain strings.Builder
	p := newProgress(&plain, false, now)
	p.update(0, 10000)
	for done := uint64(1000); done <= 10000; done += 1000 {
		clock = clock.Add(300 * time.Millisecond)
		p.update(done, 10000)
	}
	p.finish()
	lines := strings.Split(strings.TrimSuffix(plain.String(), "\n"), "\n")
	// 3 s in steps of 0.3 s, a line at most every second: the first, at
	// 1.2 s, at 2.4 s, and the complete one.
	if len(lines) != 4 {
		t.Fatalf("plain progress printed %d lines:\n%s", len(lines), plain.String())
	}
	if lines[0] != "replay:   0.0%  0/10000 events  0 events/s  ETA ?" {
		t.Errorf("first line %q", lines[0])
	}
	if want := "replay: 100.0%  10000/10000 events  3333 events/s  ETA 0s"; lines[3] != want {
		t.Errorf("last line %q, want %q", lines[3], want)
	}

	var tty strings.Builder
	p = newProgress(&tty, true, now)
	p.update(0, 200000)
	clock = clock.Add(2 * time.Second)
	p.update(50000, 200000)
	p.finish()
	want := "\r[>                       ]   0.0%  0/200000 events  0 events/s  ETA ?\x1b[K" +
		"\r[======>                 ]  25.0%  50000/200000 events  25.0k events/s  ETA 6s\x1b[K\n"
	if tty.String() != want {
		t.Errorf("terminal progress %q\nwant %q", tty.String(), want)
	}

	for d, want := range map[time.Duration]string{42 * time.Second: "42s", 185 * time.Second: "3m05s", 3720 * time.Second: "1h02m"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	for r, want := range map[float64]string{950: "950", 12345: "12.3k", 80200: "80.2k", 1.5e6: "1.5M"} {
		if got := formatRate(r); got != want {
			t.Errorf("formatRate(%v) = %q, want %q", r, got, want)
		}
	}
	if isTerminal(io.Discard) {
		t.Error("io.Discard is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
}
