package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// Defaults of the projector's options.
const (
	DefaultBatchSize       = 100
	DefaultReplayBatchSize = 4096
	DefaultRetryMin        = 100 * time.Millisecond
	DefaultRetryMax        = 10 * time.Second
)

// Option configures a Projector.
type Option func(*config)

type config struct {
	batchSize, replayBatchSize int
	views                      []string
	retryMin, retryMax         time.Duration
	lockStaleAfter, heartbeat  time.Duration
}

// WithBatchSize bounds how many events one live transaction applies
// (default 100). A batch is also cut when the stream has nothing more
// pending, so an idle projector applies each event as it comes.
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithReplayBatchSize bounds how many events one replay transaction
// applies (default 4096).
func WithReplayBatchSize(n int) Option { return func(c *config) { c.replayBatchSize = n } }

// WithViews restricts Run to these views (default: every view).
func WithViews(names ...string) Option { return func(c *config) { c.views = slices.Clone(names) } }

// WithRetryBackoff sets the backoff between attempts after an error
// (database unreachable, stream unavailable, an event this program cannot
// decode): doubling from min to max.
func WithRetryBackoff(minDelay, maxDelay time.Duration) Option {
	return func(c *config) { c.retryMin, c.retryMax = minDelay, maxDelay }
}

// WithReplayLock sets how long a replay's lock on a view stays valid
// without a heartbeat (default 1 minute; a crashed replay blocks another
// one that long), and the heartbeat period (default a fifth of it).
func WithReplayLock(staleAfter time.Duration) Option {
	return func(c *config) { c.lockStaleAfter, c.heartbeat = staleAfter, staleAfter/5 }
}

// Projector folds the event log into the views: it catches up from each
// view's checkpoint and then follows the stream. Several projectors (one
// per replica) may project into one PostgreSQL database: each batch
// transaction locks the view's checkpoint row and applies only events after
// it, so no event is counted twice.
type Projector struct {
	st     *Store
	js     jetstream.JetStream
	stream string
	prefix string
	log    *slog.Logger
	cfg    config

	appliers map[string]applier
	ckpt     map[string]*atomic.Uint64
	running  atomic.Bool

	errMu   sync.Mutex
	lastErr error

	// afterBatch, when set (tests), runs after each committed live batch
	// transaction.
	afterBatch func(view string, last uint64)
}

// NewProjector returns a projector of the events on "<prefix>.>" of
// stream into st. log nil discards the log.
func NewProjector(st *Store, js jetstream.JetStream, stream, prefix string, log *slog.Logger, opts ...Option) (*Projector, error) {
	if st == nil || js == nil || stream == "" {
		return nil, errors.New("views: NewProjector needs a store, a JetStream handle and a stream name")
	}
	if err := eventstore.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	cfg := config{
		batchSize: DefaultBatchSize, replayBatchSize: DefaultReplayBatchSize, views: ViewNames(),
		retryMin: DefaultRetryMin, retryMax: DefaultRetryMax, lockStaleAfter: time.Minute, heartbeat: 12 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.batchSize < 1 || cfg.replayBatchSize < 1:
		return nil, fmt.Errorf("views: batch sizes must be ≥ 1 (got %d and %d)", cfg.batchSize, cfg.replayBatchSize)
	case cfg.retryMin <= 0 || cfg.retryMax < cfg.retryMin:
		return nil, fmt.Errorf("views: retry backoff needs 0 < min ≤ max (got %s, %s)", cfg.retryMin, cfg.retryMax)
	case cfg.lockStaleAfter <= 0 || cfg.heartbeat <= 0:
		return nil, fmt.Errorf("views: replay lock timeout must be > 0")
	case len(cfg.views) == 0:
		return nil, errors.New("views: no view to project")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Projector{
		st: st, js: js, stream: stream, prefix: prefix, cfg: cfg,
		log:      log.With("component", "views"),
		appliers: map[string]applier{}, ckpt: map[string]*atomic.Uint64{},
	}
	for _, v := range cfg.views {
		a, err := st.newApplier(v, "")
		if err != nil {
			return nil, err
		}
		p.appliers[v] = a
		p.ckpt[v] = new(atomic.Uint64)
	}
	return p, nil
}

// Run projects until ctx is cancelled, then returns nil. Errors (database
// or stream unavailable, an event that cannot be decoded) are logged and
// retried with backoff from the views' checkpoints; Err reports the last
// one. A Projector runs at most once at a time.
func (p *Projector) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("views: projector already running")
	}
	defer p.running.Store(false)
	delay := p.cfg.retryMin
	for {
		progressed, err := p.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.setErr(err)
		if progressed {
			delay = p.cfg.retryMin
		}
		p.log.Warn("projection interrupted; resuming from the checkpoints", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, p.cfg.retryMax)
	}
}

// Err returns the error that last interrupted the projection, nil if none
// since the last successful batch.
func (p *Projector) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.lastErr
}

func (p *Projector) setErr(err error) {
	p.errMu.Lock()
	p.lastErr = err
	p.errMu.Unlock()
}

// Checkpoint returns the checkpoint of view as last seen by this
// projector (0 for a view it does not project). Store.Checkpoint reads the
// database.
func (p *Projector) Checkpoint(view string) uint64 {
	if c, ok := p.ckpt[view]; ok {
		return c.Load()
	}
	return 0
}

// Lag returns how many stream entries the slowest projected view is
// behind the stream's last sequence, reading both the stream and the
// checkpoints (so it is right whichever replica projects).
func (p *Projector) Lag(ctx context.Context) (uint64, error) {
	last, err := p.streamLast(ctx)
	if err != nil {
		return 0, err
	}
	cps, err := p.st.Checkpoints(ctx)
	if err != nil {
		return 0, err
	}
	lowest := last
	for _, v := range p.cfg.views {
		lowest = min(lowest, cps[v])
	}
	return last - lowest, nil
}

func (p *Projector) streamLast(ctx context.Context) (uint64, error) {
	st, err := p.js.Stream(ctx, p.stream)
	if err != nil {
		return 0, fmt.Errorf("views: stream %s: %w", p.stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("views: stream %s info: %w", p.stream, err)
	}
	return info.State.LastSeq, nil
}

// follow reads the checkpoints, then reads the stream from the lowest one
// and applies batches until an error or ctx ends. progressed reports
// whether any batch was committed.
func (p *Projector) follow(ctx context.Context) (progressed bool, err error) {
	cps, err := p.st.Checkpoints(ctx)
	if err != nil {
		return false, err
	}
	start := uint64(0)
	for i, v := range p.cfg.views {
		c, ok := cps[v]
		if !ok {
			return false, fmt.Errorf("%w: %q has no checkpoint row", ErrUnknownView, v)
		}
		p.ckpt[v].Store(c)
		if i == 0 || c < start {
			start = c
		}
	}
	rd := p.startReader(ctx, start+1, p.cfg.batchSize)
	defer rd.stop()
	for {
		b, err := rd.next(ctx)
		if err != nil {
			return progressed, err
		}
		if err := p.applyViews(ctx, b); err != nil {
			return progressed, err
		}
		if !progressed {
			progressed = true
			p.setErr(nil)
		}
	}
}

// applyViews applies b to every projected view that has not applied it
// yet: one transaction each, concurrently on PostgreSQL (one connection
// per view), one after the other on SQLite (one writer).
func (p *Projector) applyViews(ctx context.Context, b batch) error {
	apply := func(v string) error {
		if p.ckpt[v].Load() >= b.last {
			return nil // already applied (this projector's knowledge)
		}
		c, err := p.st.applyBatch(ctx, v, p.appliers[v], b)
		if err != nil {
			return err
		}
		p.ckpt[v].Store(c)
		if p.afterBatch != nil {
			p.afterBatch(v, c)
		}
		return nil
	}
	if !p.st.d.parallelWrites {
		for _, v := range p.cfg.views {
			if err := apply(v); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(p.cfg.views))
	var wg sync.WaitGroup
	for i, v := range p.cfg.views {
		wg.Go(func() { errs[i] = apply(v) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// errGap means a view's checkpoint is before the batch: events between
// them were never applied. The projector restarts from the checkpoint.
var errGap = errors.New("views: checkpoint is behind the batch")

// applyBatch applies the events of b after view's checkpoint, and moves
// the checkpoint to b.last, in one transaction, which first locks the
// checkpoint (row lock on PostgreSQL, the write lock on SQLite). It returns
// the checkpoint afterwards.
func (s *Store) applyBatch(ctx context.Context, view string, a applier, b batch) (uint64, error) {
	if !relevant(a, b.items) {
		return s.advance(ctx, view, b)
	}
	if err := s.warm(ctx, a); err != nil {
		return 0, err
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("views: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	cp, err := s.checkpointIn(ctx, tx, view, true)
	if err != nil {
		return 0, err
	}
	if cp >= b.last {
		return cp, nil // applied already (redelivery, another replica, a replay)
	}
	if cp+1 < b.first {
		return cp, fmt.Errorf("%w: view %s at %d, batch starts at %d", errGap, view, cp, b.first)
	}
	items := b.items[sort.Search(len(b.items), func(i int) bool { return b.items[i].seq > cp }):]
	if err := a.apply(ctx, tx, items); err != nil {
		return 0, fmt.Errorf("views: apply %d..%d to %s: %w", b.first, b.last, view, err)
	}
	if _, err := tx.ExecContext(ctx, s.d.q("UPDATE view_checkpoints SET seq = ?, updated_at = ? WHERE view = ?"),
		int64(b.last), s.d.ts(time.Now()), view); err != nil {
		return 0, fmt.Errorf("views: checkpoint %s: %w", view, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("views: commit %d..%d to %s: %w", b.first, b.last, view, err)
	}
	return b.last, nil
}

// advance moves view's checkpoint over a batch with nothing for the view,
// in one statement instead of a transaction: only from within or just
// before the batch (never over a gap), never backwards.
func (s *Store) advance(ctx context.Context, view string, b batch) (uint64, error) {
	res, err := s.wdb.ExecContext(ctx, s.d.q("UPDATE view_checkpoints SET seq = ?, updated_at = ? WHERE view = ? AND seq < ? AND seq >= ?"),
		int64(b.last), s.d.ts(time.Now()), view, int64(b.last), int64(b.first-1))
	if err != nil {
		return 0, fmt.Errorf("views: checkpoint %s: %w", view, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return b.last, nil
	}
	cp, err := s.checkpointIn(ctx, s.wdb, view, false)
	if err != nil {
		return 0, err
	}
	if cp >= b.last {
		return cp, nil // applied already
	}
	return cp, fmt.Errorf("%w: view %s at %d, batch starts at %d", errGap, view, cp, b.first)
}

// reader reads the stream from a sequence with an ordered consumer in its
// own goroutine, decodes the entries and hands them over in batches.
type reader struct {
	batches chan batch
	errc    chan error
	cancel  context.CancelFunc
	done    chan struct{}
}

// startReader starts reading at seq from. Batches hold at most size
// entries and are cut early when nothing more is pending in the stream.
func (p *Projector) startReader(ctx context.Context, from uint64, size int) *reader {
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{batches: make(chan batch, 2), errc: make(chan error, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.errc <- p.read(rctx, from, size, r.batches)
	}()
	return r
}

// next returns the next batch, or the error that stopped the reader.
func (r *reader) next(ctx context.Context) (batch, error) {
	select {
	case b := <-r.batches:
		return b, nil
	case err := <-r.errc:
		r.errc <- err // keep it for later calls
		return batch{}, err
	case <-ctx.Done():
		return batch{}, ctx.Err()
	}
}

// stop ends the reader and waits for its goroutine.
func (r *reader) stop() {
	r.cancel()
	<-r.done
}

func (p *Projector) read(ctx context.Context, from uint64, size int, out chan<- batch) error {
	cons, err := p.js.OrderedConsumer(ctx, p.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{p.prefix + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("views: consumer on %s from %d: %w", p.stream, from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(max(2*size, 500), 8192)))
	if err != nil {
		return fmt.Errorf("views: read %s from %d: %w", p.stream, from, err)
	}
	defer it.Stop()
	b := batch{items: make([]item, 0, size)}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("views: read %s: %w", p.stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("views: read %s: %w", p.stream, err)
		}
		seq := md.Sequence.Stream
		entry, skip, err := decodeEntry(p.prefix, msg.Subject(), seq, msg.Data())
		if err != nil {
			return err
		}
		switch skip {
		case skipUnknown:
			p.log.Debug("skipping an event of unknown type", "seq", seq, "type", entry.env.Type, "kind", entry.kind)
		case skipDebug:
			p.log.Debug("skipping a debug (testFlag) event", "seq", seq, "type", entry.env.Type)
		}
		if len(b.items) == 0 {
			b.first = seq
		}
		b.items = append(b.items, entry)
		b.last = seq
		if len(b.items) >= size || md.NumPending == 0 {
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			b = batch{items: make([]item, 0, size)}
		}
	}
}
