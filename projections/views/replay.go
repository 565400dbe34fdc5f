package views

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// ErrReplayRunning is returned by Replay when another replay of one of
// its views holds that view's lock.
var ErrReplayRunning = errors.New("views: a replay of this view is already running")

// errLockLost: the replay's lock was taken over (its heartbeat stalled
// longer than the lock timeout).
var errLockLost = errors.New("views: replay lock lost")

// ReplayStats reports a finished replay.
type ReplayStats struct {
	Views []string `json:"views"`
	// Events is the number of log entries folded (the stream sequence
	// reached), Seq the checkpoint swapped in.
	Events uint64 `json:"events"`
	Seq    uint64 `json:"seq"`
	// Elapsed is the whole replay, table creation and swap included;
	// EventsPerSecond is Events / Elapsed.
	Elapsed         time.Duration `json:"elapsed"`
	EventsPerSecond float64       `json:"eventsPerSecond"`
}

// Replay rebuilds view ("" for every view) from stream sequence 1: it
// folds the whole log into fresh tables (<table>__rebuild) in large
// batches, then swaps them in, in one transaction that drops the old
// tables, renames the new ones and sets the view's checkpoint. Until the
// swap the old tables keep answering queries and the live projector keeps
// projecting into them. The swap transaction locks the views' checkpoints
// and first folds into the new tables whatever the live projector applied
// beyond the rebuild, so the swapped-in checkpoint is never behind the
// live one and the live projector simply continues from it (skipping what
// the rebuild already covered).
//
// Only one replay of a view runs at a time, across processes: a second
// gets ErrReplayRunning. progress, if not nil, is called after each batch
// with the sequence reached and the stream's last sequence.
func (p *Projector) Replay(ctx context.Context, view string, progress func(done, total uint64)) (ReplayStats, error) {
	began := time.Now()
	views := ViewNames()
	if view != "" {
		if _, ok := viewTables[view]; !ok {
			return ReplayStats{}, fmt.Errorf("%w: %q", ErrUnknownView, view)
		}
		views = []string{view}
	}
	owner := replayOwner()
	if err := p.st.lockViews(ctx, views, owner, p.cfg.lockStaleAfter); err != nil {
		return ReplayStats{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(p.cfg.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := p.st.heartbeat(ctx, views, owner); errors.Is(err, errLockLost) {
					cancel(err)
					return
				} else if err != nil {
					p.log.Warn("replay lock heartbeat failed", "err", err)
				}
			}
		}
	}()
	defer func() {
		cancel(nil)
		<-hbDone
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer ucancel()
		if err := p.st.unlockViews(uctx, views, owner); err != nil {
			p.log.Warn("releasing replay lock", "err", err)
		}
	}()

	seq, err := p.rebuild(ctx, views, progress)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errLockLost) {
			err = cause
		}
		return ReplayStats{}, fmt.Errorf("views: replay %v: %w", views, err)
	}
	elapsed := time.Since(began)
	st := ReplayStats{Views: views, Events: seq, Seq: seq, Elapsed: elapsed}
	if elapsed > 0 {
		st.EventsPerSecond = float64(seq) / elapsed.Seconds()
	}
	p.log.Info("replay done", "views", views, "seq", seq, "elapsed", elapsed, "events_per_second", int64(st.EventsPerSecond))
	return st, nil
}

func (p *Projector) rebuild(ctx context.Context, views []string, progress func(done, total uint64)) (uint64, error) {
	s := p.st
	indexes := map[string][]step{}
	appliers := map[string]applier{}
	for _, v := range views {
		idx, err := s.createRebuildTables(ctx, v)
		if err != nil {
			return 0, err
		}
		indexes[v] = idx
		if appliers[v], err = s.newApplier(v, rebuildSuffix); err != nil {
			return 0, err
		}
		if err := s.warm(ctx, appliers[v]); err != nil {
			return 0, err
		}
	}
	target, err := p.streamLast(ctx)
	if err != nil {
		return 0, err
	}
	if progress != nil {
		progress(0, target)
	}
	rd := p.startReader(ctx, 1, p.cfg.replayBatchSize)
	defer rd.stop()
	var done uint64
	for done < target {
		b, err := rd.next(ctx)
		if err != nil {
			return 0, err
		}
		if err := s.applyRebuild(ctx, views, appliers, b); err != nil {
			return 0, err
		}
		done = b.last
		if done >= target {
			// Keep catching up while the stream grew by more than a batch;
			// the swap folds the rest.
			last, err := p.streamLast(ctx)
			if err != nil {
				return 0, err
			}
			if last > done+uint64(p.cfg.replayBatchSize) {
				target = last
			}
		}
		if progress != nil {
			progress(done, max(target, done))
		}
	}
	if s.d.renameIndexes {
		if err := s.createRebuildIndexes(ctx, indexes); err != nil {
			return 0, err
		}
	}
	// The swap waits for readers of the old tables on PostgreSQL; it gives
	// up after a lock timeout rather than queue every new query behind it,
	// and tries again. Batches folded inside a rolled-back swap are kept
	// and folded again.
	var carried []batch
	for attempt := 1; ; attempt++ {
		seq, kept, err := p.swap(ctx, views, indexes, appliers, rd, done, carried)
		if err == nil {
			return seq, nil
		}
		carried = kept
		if !s.d.isLockTimeout(err) || attempt == 20 || ctx.Err() != nil {
			return 0, err
		}
		p.log.Info("replay swap waited too long for readers; trying again", "attempt", attempt)
	}
}

// applyRebuild folds b into the fresh tables of views, one transaction per
// view (no checkpoint: the swap sets it).
func (s *Store) applyRebuild(ctx context.Context, views []string, appliers map[string]applier, b batch) error {
	apply := func(v string) error {
		tx, err := s.wdb.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := appliers[v].apply(ctx, tx, b.items); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("rebuild %s at %d..%d: %w", v, b.first, b.last, err)
		}
		return tx.Commit()
	}
	if !s.d.parallelWrites {
		for _, v := range views {
			if err := apply(v); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(views))
	var wg sync.WaitGroup
	for i, v := range views {
		wg.Go(func() { errs[i] = apply(v) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createRebuildIndexes builds the indexes of the fresh tables under their
// rebuild names (PostgreSQL: after the bulk load, before the swap).
func (s *Store) createRebuildIndexes(ctx context.Context, indexes map[string][]step) error {
	for _, steps := range indexes {
		for _, st := range steps {
			if _, err := s.wdb.ExecContext(ctx, s.d.render(st, st.table+rebuildSuffix, rebuildIndexName(st))); err != nil {
				return fmt.Errorf("rebuild index %s: %w", indexName(st.table, st.index), err)
			}
		}
	}
	return nil
}

// swap replaces the live tables of views by the rebuilt ones in one
// transaction. done is the sequence the committed rebuild reached; carried
// are batches after it read for an earlier attempt. It returns the
// checkpoint set, and the batches read beyond done (for a retry).
func (p *Projector) swap(ctx context.Context, views []string, indexes map[string][]step, appliers map[string]applier,
	rd *reader, done uint64, carried []batch) (uint64, []batch, error) {
	s := p.st
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, carried, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.d.setSwapLockTimeout(ctx, tx); err != nil {
		return 0, carried, err
	}
	var live uint64
	for _, v := range views {
		c, err := s.checkpointIn(ctx, tx, v, true)
		if err != nil {
			return 0, carried, err
		}
		live = max(live, c)
	}
	cur := done
	fold := func(b batch) error {
		for _, v := range views {
			if err := appliers[v].apply(ctx, tx, b.items); err != nil {
				return fmt.Errorf("rebuild %s at %d..%d: %w", v, b.first, b.last, err)
			}
		}
		cur = b.last
		return nil
	}
	for _, b := range carried {
		if err := fold(b); err != nil {
			return 0, carried, err
		}
	}
	// Never swap in a checkpoint behind the live one: the live projector
	// has read past it and would leave a gap.
	for cur < live {
		b, err := rd.next(ctx)
		if err != nil {
			return 0, carried, err
		}
		carried = append(carried, b)
		if err := fold(b); err != nil {
			return 0, carried, err
		}
	}
	for _, v := range views {
		for _, t := range viewTables[v] {
			for _, q := range []string{
				"DROP TABLE " + t,
				"ALTER TABLE " + t + rebuildSuffix + " RENAME TO " + t,
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return 0, carried, fmt.Errorf("swap %s: %s: %w", v, q, err)
				}
			}
			if s.d.renameIndexes {
				q := "ALTER INDEX " + t + rebuildSuffix + "_pkey RENAME TO " + t + "_pkey"
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return 0, carried, fmt.Errorf("swap %s: %s: %w", v, q, err)
				}
			}
		}
		for _, st := range indexes[v] {
			q := s.d.render(st, st.table, indexName(st.table, st.index))
			if s.d.renameIndexes {
				q = "ALTER INDEX " + rebuildIndexName(st) + " RENAME TO " + indexName(st.table, st.index)
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return 0, carried, fmt.Errorf("swap %s: %s: %w", v, q, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.q("UPDATE view_checkpoints SET seq = ?, updated_at = ? WHERE view = ?"),
			int64(cur), s.d.ts(time.Now()), v); err != nil {
			return 0, carried, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, carried, err
	}
	return cur, nil, nil
}

// ReplayLock is a replay in progress (a row of view_locks).
type ReplayLock struct {
	View        string    `json:"view"`
	Owner       string    `json:"owner"`
	StartedAt   time.Time `json:"startedAt"`
	HeartbeatAt time.Time `json:"heartbeatAt"`
}

// ReplayLocks lists the replays in progress (or crashed less than the lock
// timeout ago).
func (s *Store) ReplayLocks(ctx context.Context) ([]ReplayLock, error) {
	var out []ReplayLock
	err := queryEach(ctx, s.db, "SELECT view, owner, started_at, heartbeat_at FROM view_locks ORDER BY view", nil, func(sc scanner) error {
		var l ReplayLock
		var started, hb dbTime
		if err := sc.Scan(&l.View, &l.Owner, &started, &hb); err != nil {
			return err
		}
		l.StartedAt, l.HeartbeatAt = started.T, hb.T
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("views: replay locks: %w", err)
	}
	return out, nil
}

// lockViews takes the replay lock of every view, or none: a lock row per
// view, taken over only when its heartbeat is older than staleAfter.
func (s *Store) lockViews(ctx context.Context, views []string, owner string, staleAfter time.Duration) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("views: replay lock: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UTC()
	q := s.d.q(`INSERT INTO view_locks (view, owner, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
ON CONFLICT (view) DO UPDATE SET owner = excluded.owner, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
WHERE view_locks.heartbeat_at < ?`)
	for _, v := range slices.Sorted(slices.Values(views)) {
		res, err := tx.ExecContext(ctx, q, v, owner, s.d.ts(at(now)), s.d.ts(at(now)), s.d.ts(at(now.Add(-staleAfter))))
		if err != nil {
			return fmt.Errorf("views: replay lock %s: %w", v, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("views: replay lock %s: %w", v, err)
		} else if n == 0 {
			var other string
			var started dbTime
			_ = tx.QueryRowContext(ctx, s.d.q("SELECT owner, started_at FROM view_locks WHERE view = ?"), v).Scan(&other, &started)
			return fmt.Errorf("%w: view %s, by %s since %s", ErrReplayRunning, v, other, started.T.Format(time.RFC3339))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("views: replay lock: %w", err)
	}
	return nil
}

func (s *Store) heartbeat(ctx context.Context, views []string, owner string) error {
	for _, v := range views {
		res, err := s.wdb.ExecContext(ctx, s.d.q("UPDATE view_locks SET heartbeat_at = ? WHERE view = ? AND owner = ?"),
			s.d.ts(at(time.Now())), v, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("%w: view %s", errLockLost, v)
		}
	}
	return nil
}

func (s *Store) unlockViews(ctx context.Context, views []string, owner string) error {
	var errs []error
	for _, v := range views {
		_, err := s.wdb.ExecContext(ctx, s.d.q("DELETE FROM view_locks WHERE view = ? AND owner = ?"), v, owner)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// replayOwner names this replay in its lock rows: host, process, nonce.
func replayOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
