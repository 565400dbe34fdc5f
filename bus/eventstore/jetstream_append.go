package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/domain/event"
)

// wrongLastSequence reports whether err is JetStream's answer to a failed
// expected-sequence check. Recognised by error code, never by text:
//
//   - 10071 JSStreamWrongLastSequenceErrF "wrong last sequence: {seq}": the
//     subject's (or stream's) last sequence differs from the expected one;
//   - 10164 JSStreamWrongLastSequenceConstantErr "wrong last sequence": the
//     same conflict detected before the proposal is applied (replicated
//     streams, atomic batches, a subject with an append still in flight).
//
// 10070 (JSStreamWrongLastMsgIDErrF) belongs to Nats-Expected-Last-Msg-Id,
// which the store does not send, so it is deliberately not a conflict.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Append implements [Store.Append] with a JetStream publish carrying
// Nats-Expected-Last-Subject-Sequence = expected and Nats-Msg-Id = ev.ID,
// and returns after the stream acknowledged the event (and, with sync
// always, after it was fsynced).
//
// Lost acknowledgements are handled: if the append conflicts but the
// stream's last event has ev.ID, or JetStream reports the id as a duplicate
// of an event on the same subject, the earlier append succeeded and its
// sequence is returned. A duplicate id on another subject is a conflict.
func (s *JetStreamStore) Append(ctx context.Context, id StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	subj, err := s.Subject(id)
	if err != nil {
		return 0, err
	}
	if ev.ID == "" {
		return 0, fmt.Errorf("%w: append to %s: empty event ID", ErrInvalidEvent, subj)
	}
	data, err := EncodeEnvelope(ev)
	if err != nil {
		return 0, err
	}
	msg := &nats.Msg{
		Subject: subj,
		Data:    data,
		Header: nats.Header{
			jetstream.MsgIDHeader:               []string{ev.ID},
			jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(expected, 10)},
			TypeHeader:                          []string{ev.Type},
		},
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		if !wrongLastSequence(err) {
			return 0, fmt.Errorf("eventstore: append %s to %s: %w", ev.ID, subj, err)
		}
		// Read after a conflict: from the leader, or a lagging replica
		// could hide the earlier attempt.
		if last, lerr := s.Leader().LastEvent(ctx, id); lerr == nil && last.Event.ID == ev.ID {
			return last.Seq, nil // an earlier attempt of this append succeeded
		}
		return 0, fmt.Errorf("eventstore: append %s to %s expecting sequence %d: %w: %w", ev.ID, subj, expected, ErrConflict, err)
	}
	if ack.Duplicate {
		return s.checkDuplicate(ctx, subj, ev.ID, ack.Sequence)
	}
	return ack.Sequence, nil
}

// checkDuplicate resolves a duplicate acknowledgement: the id is already
// stored at seq, which is success if it is on the same subject. The
// message is read from the stream leader (a rare path): a lagging replica
// may not have it yet.
func (s *JetStreamStore) checkDuplicate(ctx context.Context, subj, id string, seq uint64) (uint64, error) {
	m, err := s.leaderGet(ctx, "read sequence "+strconv.FormatUint(seq, 10), []byte(`{"seq":`+strconv.FormatUint(seq, 10)+`}`))
	if err == nil && m == nil {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("eventstore: append %s to %s: duplicate of sequence %d, which cannot be read: %w", id, subj, seq, err)
	}
	if m.Subject != subj {
		return 0, fmt.Errorf("eventstore: append %s to %s: %w: event id already stored at sequence %d on %s",
			id, subj, ErrConflict, seq, m.Subject)
	}
	return seq, nil
}
