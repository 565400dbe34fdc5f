package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/projections/views"
)

// replay rebuilds the SQL read models from stream sequence 1 into fresh
// tables and swaps them in (views.Projector.Replay). A running service
// keeps answering from the old tables until the swap.
func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := app.Defaults()
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	view := fs.String("view", "", "rebuild only this view ("+strings.Join(views.ViewNames(), ", ")+"); default every view")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory of the embedded store (when gallerist serve is not running on it) and of the default views file")
	fs.StringVar(&cfg.ViewsDSN, "views-dsn", "", "SQL read models: a SQLite file (default <data-dir>/views.db) or a postgres:// URL")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "read the log from this NATS server or cluster instead of the embedded store")
	fs.StringVar(&cfg.Stream, "stream", cfg.Stream, "JetStream stream name")
	fs.StringVar(&cfg.Prefix, "subject-prefix", cfg.Prefix, "subject prefix of the event log")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: gallerist replay [flags]

Rebuilds the read models from the first event of the log into fresh tables,
then swaps them in atomically; a running gallerist serve keeps answering from
the old tables meanwhile. Only one replay of a view runs at a time.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *view != "" && !slices.Contains(views.ViewNames(), *view) {
		return fmt.Errorf("unknown view %q: --view must be one of %s (or omitted for every view)", *view, strings.Join(views.ViewNames(), ", "))
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}

	nc, closeNATS, err := openLog(ctx, cfg, "gallerist-replay", log)
	if err != nil {
		return err
	}
	defer closeNATS()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %q: nothing logged yet, or a wrong --stream", cfg.Stream)
	} else if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}

	st, err := views.Open(ctx, app.ViewsDSN(cfg))
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Warn("closing the views database", "err", err)
		}
	}()
	// A checkpoint beyond the end of the log means these views follow
	// another log: the swap would wait for events that never come.
	ckpts, err := st.Checkpoints(ctx)
	if err != nil {
		return err
	}
	for v, seq := range ckpts {
		if seq > info.State.LastSeq && (*view == "" || *view == v) {
			return fmt.Errorf("view %s in %s is at sequence %d, beyond the last sequence %d of stream %s: wrong --views-dsn or --stream?",
				v, st, seq, info.State.LastSeq, cfg.Stream)
		}
	}
	proj, err := views.NewProjector(st, js, cfg.Stream, cfg.Prefix, log)
	if err != nil {
		return err
	}

	which := *view
	if which == "" {
		which = strings.Join(views.ViewNames(), ", ")
	}
	fmt.Fprintf(stderr, "replaying %s from stream %s (%d events) into %s\n", which, cfg.Stream, info.State.LastSeq, st)
	pr := newProgress(stderr, isTerminal(stderr) && os.Getenv("TERM") != "dumb", time.Now)
	stats, err := proj.Replay(ctx, *view, pr.update)
	pr.finish()
	switch {
	case errors.Is(err, views.ErrReplayRunning):
		return fmt.Errorf("refused: another replay holds the lock (%w); wait for it to finish (a crashed replay's lock expires a minute after its last heartbeat)", err)
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("replay cancelled: the views were not swapped, the old tables stay in place (%w)", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "replayed %d events into %s in %s: %s events/s (checkpoint %d)\n",
		stats.Events, strings.Join(stats.Views, ", "), stats.Elapsed.Round(time.Millisecond), formatRate(stats.EventsPerSecond), stats.Seq)
	return nil
}

// openLog connects to the event log: to cfg.NATSURL, or to an embedded
// server started on cfg.DataDir, which is refused while another embedded
// server (gallerist serve) holds the directory's lock. closeFn releases
// what it opened.
func openLog(ctx context.Context, cfg app.Config, name string, log *slog.Logger) (nc *nats.Conn, closeFn func(), err error) {
	if cfg.NATSURL != "" {
		nc, err := bus.Connect(ctx, cfg.NATSURL, name, log)
		if err != nil {
			return nil, nil, err
		}
		return nc, nc.Close, nil
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	// The replay only reads the log: a long fsync interval costs nothing
	// (shutdown syncs), and avoids a timer race of nats-server.
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: cfg.DataDir, SyncInterval: time.Hour}, log)
	if errors.Is(err, bus.ErrDataDirInUse) {
		return nil, nil, fmt.Errorf("data directory %s is in use (gallerist serve?), and a second NATS server on its store would corrupt it: "+
			"run serve with --nats-listen <host:port> and pass that address here as --nats-url nats://<host:port>", cfg.DataDir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS server on %s: %w", cfg.DataDir, err)
	}
	if nc, err = e.Connect(nats.Name(name)); err != nil {
		e.Shutdown()
		return nil, nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	return nc, func() { nc.Close(); e.Shutdown() }, nil
}

// progress draws the replay's progress: on a terminal one line redrawn in
// place (at most every tick), otherwise a plain line at most every second.
type progress struct {
	w        io.Writer
	tty      bool
	now      func() time.Time
	every    time.Duration
	began    time.Time
	last     time.Time
	drawn    bool
	done     uint64
	total    uint64
	reported uint64
}

func newProgress(w io.Writer, tty bool, now func() time.Time) *progress {
	every := time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	return &progress{w: w, tty: tty, now: now, every: every}
}

// update is the callback of views.Projector.Replay.
func (p *progress) update(done, total uint64) {
	t := p.now()
	if p.began.IsZero() {
		p.began = t
	}
	p.done, p.total = done, total
	if p.drawn && t.Sub(p.last) < p.every && done < total {
		return
	}
	p.draw(t)
}

// finish draws the last state (if not drawn yet) and ends the line.
func (p *progress) finish() {
	if p.began.IsZero() {
		return
	}
	if p.reported != p.done || !p.drawn {
		p.draw(p.now())
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(t time.Time) {
	p.last, p.drawn, p.reported = t, true, p.done
	line := progressLine(p.done, p.total, t.Sub(p.began), p.tty)
	if p.tty {
		// Carriage return, the line, clear to its end.
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// barWidth is the number of cells of the progress bar.
const barWidth = 24

// progressLine renders one progress report: percentage, done/total,
// events/s and the estimated time left (with a bar on a terminal).
func progressLine(done, total uint64, elapsed time.Duration, bar bool) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	var rate float64
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	eta := "?"
	switch {
	case done >= total:
		eta = "0s"
	case rate > 0:
		eta = formatDuration(time.Duration(float64(total-done) / rate * float64(time.Second)))
	}
	var b strings.Builder
	if bar {
		filled := int(frac * barWidth)
		b.WriteString("[" + strings.Repeat("=", filled))
		if filled < barWidth {
			b.WriteString(">" + strings.Repeat(" ", barWidth-filled-1))
		}
		b.WriteString("] ")
	} else {
		b.WriteString("replay: ")
	}
	fmt.Fprintf(&b, "%5.1f%%  %d/%d events  %s events/s  ETA %s", frac*100, done, total, formatRate(rate), eta)
	return b.String()
}

// formatRate renders events per second: 950, 12.3k, 1.2M.
func formatRate(r float64) string {
	switch {
	case r >= 1e6:
		return strconv.FormatFloat(r/1e6, 'f', 1, 64) + "M"
	case r >= 1e4:
		return strconv.FormatFloat(r/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

// formatDuration renders a time left: 42s, 3m05s, 1h02m.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}

// isTerminal reports whether w is a character device (a terminal), without
// a terminal library: a pipe or a file is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
