package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/domain/event"
)

// Leader reads retry while the stream elects a leader (or the connection
// moves to another node): each attempt waits at most its window (doubling
// from leaderAttemptWindow), failed attempts are spaced by a pause doubling
// from leaderRetryMin to leaderRetryMax, all within the caller's deadline.
const (
	leaderAttemptWindow = time.Second
	leaderRetryMin      = 25 * time.Millisecond
	leaderRetryMax      = 500 * time.Millisecond
)

// Leader implements [Store.Leader]. On a replicated stream (more than one
// replica when the store was opened) it returns the leader read mode: Last
// and LastEvent are answered by the stream leader with the non-direct
// $JS.API.STREAM.MSG.GET.<stream> request ({"last_by_subj": subject}),
// which only the leader answers, never a follower; nats.go's
// Stream.GetLastMsgForSubject always sends a direct get on a stream that
// allows them, with no option to force the leader API. Load asks the
// leader for the subject's last sequence, loads with the ordinary batched
// direct gets, and fetches from the leader, one message per request
// ({"seq": n, "next_by_subj": subject}; the leader API has no batches),
// whatever the replica that answered had not applied yet.
//
// On a single replica the store itself is returned: the only replica is the
// leader, and a leader get costs more than a direct get on the embedded
// server (BenchmarkLastLeader against BenchmarkLast). A stream scaled up
// while the store is open gets leader reads after a restart.
func (s *JetStreamStore) Leader() Store {
	if s.replicas > 1 {
		return s.leader
	}
	return s.leader.s
}

// leaderStore is the leader read mode of a JetStreamStore.
type leaderStore struct{ s *JetStreamStore }

var _ Store = (*leaderStore)(nil)

// Append implements [Store.Append]: the store's own append.
func (l *leaderStore) Append(ctx context.Context, id StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	return l.s.Append(ctx, id, expected, ev)
}

// Leader implements [Store.Leader]: the view itself.
func (l *leaderStore) Leader() Store { return l }

// Last implements [Store.Last] with a leader get of the subject's last
// message.
func (l *leaderStore) Last(ctx context.Context, id StreamID) (uint64, error) {
	subj, err := l.s.Subject(id)
	if err != nil {
		return 0, err
	}
	m, err := l.s.leaderGet(ctx, "last of "+subj, lastBySubjRequest(subj))
	if err != nil || m == nil {
		return 0, err
	}
	return m.Seq, nil
}

// LastEvent implements [Store.LastEvent] with the same leader get as Last.
func (l *leaderStore) LastEvent(ctx context.Context, id StreamID) (Record, error) {
	subj, err := l.s.Subject(id)
	if err != nil {
		return Record{}, err
	}
	m, err := l.s.leaderGet(ctx, "last event of "+subj, lastBySubjRequest(subj))
	if err != nil {
		return Record{}, err
	}
	if m == nil {
		return Record{}, fmt.Errorf("eventstore: last event of %s: %w", subj, ErrNotFound)
	}
	return m.record()
}

// Load implements [Store.Load]: the leader's last sequence of the subject,
// then direct gets, completed from the leader.
func (l *leaderStore) Load(ctx context.Context, id StreamID, after uint64) ([]Record, error) {
	subj, err := l.s.Subject(id)
	if err != nil {
		return nil, err
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := l.s.leaderGet(ctx, "last of "+subj, lastBySubjRequest(subj))
	if err != nil || m == nil || m.Seq <= after {
		return nil, err
	}
	last := m.Seq
	// A follower's log is a prefix of the leader's: what the direct gets
	// return is complete up to the last event they return.
	out, err := l.s.Load(ctx, id, after)
	if err != nil {
		return nil, err
	}
	from := after + 1
	if len(out) > 0 {
		from = out[len(out)-1].Seq + 1
	}
	for from <= last {
		req := make([]byte, 0, 48+len(subj))
		req = append(req, `{"seq":`...)
		req = strconv.AppendUint(req, from, 10)
		req = append(req, `,"next_by_subj":"`...)
		req = append(req, subj...)
		req = append(req, `"}`...)
		m, err := l.s.leaderGet(ctx, fmt.Sprintf("load %s from %d", subj, from), req)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break // nothing more (only a deletion could make this happen)
		}
		rec, err := m.record()
		if err != nil {
			return nil, err
		}
		if rec.Seq < from || rec.Subject != subj {
			return nil, fmt.Errorf("eventstore: load %s: leader get returned sequence %d on %s, expected ≥ %d on %s",
				subj, rec.Seq, rec.Subject, from, subj)
		}
		out = append(out, rec)
		from = rec.Seq + 1
	}
	return out, nil
}

// lastBySubjRequest is the leader get of subj's last message. Subjects are
// made of [A-Za-z0-9_%.-] only: no JSON escaping needed.
func lastBySubjRequest(subj string) []byte {
	req := make([]byte, 0, 20+len(subj))
	req = append(req, `{"last_by_subj":"`...)
	req = append(req, subj...)
	return append(req, `"}`...)
}

// leaderMsg is the message of a $JS.API.STREAM.MSG.GET response.
type leaderMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Data    []byte `json:"data"`
}

func (m *leaderMsg) record() (Record, error) {
	if m.Subject == "" || m.Seq == 0 {
		return Record{}, fmt.Errorf("eventstore: leader get response without subject/sequence: %q at %d", m.Subject, m.Seq)
	}
	ev, err := DecodeEnvelope(m.Data)
	if err != nil {
		return Record{}, fmt.Errorf("eventstore: event at sequence %d on %s: %w", m.Seq, m.Subject, err)
	}
	return Record{Seq: m.Seq, Subject: m.Subject, Event: ev}, nil
}

type leaderGetResponse struct {
	Error   *jetstream.APIError `json:"error"`
	Message *leaderMsg          `json:"message"`
}

// errLeaderUnavailable marks an attempt worth repeating: no answer in its
// window, no responder, or the stream without a leader for now.
var errLeaderUnavailable = errors.New("stream leader unavailable")

// leaderGet sends req to $JS.API.STREAM.MSG.GET.<stream>, which only the
// stream leader answers, retrying while there is none (see
// leaderAttemptWindow); nil, nil if there is no such message.
func (s *JetStreamStore) leaderGet(ctx context.Context, what string, req []byte) (*leaderMsg, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	window, pause := leaderAttemptWindow, leaderRetryMin
	for {
		m, err := s.leaderGetOnce(ctx, req, window)
		if err == nil || !errors.Is(err, errLeaderUnavailable) {
			if err != nil {
				err = fmt.Errorf("eventstore: %s: %w", what, err)
			}
			return m, err
		}
		s.log.Debug("leader get: retrying", "what", what, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("eventstore: %s: %w (last attempt: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		window, pause = 2*window, min(2*pause, leaderRetryMax)
	}
}

func (s *JetStreamStore) leaderGetOnce(ctx context.Context, req []byte, window time.Duration) (*leaderMsg, error) {
	actx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	m, err := s.nc.RequestWithContext(actx, s.msgGet, req)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: no responder for %s: %w", errLeaderUnavailable, s.msgGet, err)
	case ctx.Err() == nil && actx.Err() != nil:
		return nil, fmt.Errorf("%w: no answer from %s within %s", errLeaderUnavailable, s.msgGet, window)
	default:
		return nil, err
	}
	if status, desc := responseStatus(m); status == statusNoResp {
		return nil, fmt.Errorf("%w: no responder for %s: %w", errLeaderUnavailable, s.msgGet, nats.ErrNoResponders)
	} else if status != "" {
		return nil, fmt.Errorf("leader get status %s %s", status, desc)
	}
	var resp leaderGetResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("leader get: malformed response: %w", err)
	}
	if resp.Error != nil {
		switch {
		case resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
			return nil, nil
		case resp.Error.Code == 503: // no leader (cluster or stream) for now
			return nil, fmt.Errorf("%w: %w", errLeaderUnavailable, resp.Error)
		}
		return nil, resp.Error
	}
	if resp.Message == nil {
		return nil, errors.New("leader get: response without message")
	}
	return resp.Message, nil
}
