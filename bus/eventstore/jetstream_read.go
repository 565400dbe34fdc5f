package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// loadBatch is how many messages one batched direct get asks for.
const loadBatch = 256

// Headers and status values of JetStream direct get responses.
const (
	hdrStatus      = "Status"
	hdrDescription = "Description"
	hdrNumPending  = "Nats-Num-Pending"
	statusNotFound = "404"
	statusEOB      = "204" // end of a batched direct get
	statusNoResp   = "503"
)

// Last implements [Store.Last] with one direct get of the subject's last
// message ($JS.API.DIRECT.GET.<stream>.<subject>, what
// jetstream.Stream.GetLastMsgForSubject sends for a direct-get stream),
// reading only the sequence header.
func (s *JetStreamStore) Last(ctx context.Context, id StreamID) (uint64, error) {
	subj, err := s.Subject(id)
	if err != nil {
		return 0, err
	}
	m, err := s.getLast(ctx, subj)
	if err != nil || m == nil {
		return 0, err
	}
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("eventstore: last of %s: bad %s header: %w", subj, jetstream.SequenceHeader, err)
	}
	return seq, nil
}

// LastEvent implements [Store.LastEvent] with the same direct get as Last.
func (s *JetStreamStore) LastEvent(ctx context.Context, id StreamID) (Record, error) {
	subj, err := s.Subject(id)
	if err != nil {
		return Record{}, err
	}
	m, err := s.getLast(ctx, subj)
	if err != nil {
		return Record{}, err
	}
	if m == nil {
		return Record{}, fmt.Errorf("eventstore: last event of %s: %w", subj, ErrNotFound)
	}
	return recordOf(m)
}

// getLast direct-gets the last message of subj; nil, nil if there is none.
func (s *JetStreamStore) getLast(ctx context.Context, subj string) (*nats.Msg, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, s.directLast+subj, nil)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("eventstore: last of %s: no direct-get responder for stream %s: %w", subj, s.cfg.Stream, err)
		}
		return nil, fmt.Errorf("eventstore: last of %s: %w", subj, err)
	}
	switch status, desc := responseStatus(m); status {
	case "":
		return m, nil
	case statusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("eventstore: last of %s: direct get status %s %s", subj, status, desc)
	}
}

// Load implements [Store.Load] with batched direct gets by subject
// ({"seq":from,"next_by_subj":subject,"batch":256}), one round trip per 256
// events. Each batch ends with an EOB status carrying the number of
// matching messages still pending; loading stops when none are pending or
// the server has no further message (404), so an empty or unknown stream
// returns at once. Servers without batch support (before 2.11) answer a
// batch request with the single next message; Load notices the missing
// pending count and continues with one direct get per event.
func (s *JetStreamStore) Load(ctx context.Context, id StreamID, after uint64) ([]Record, error) {
	subj, err := s.Subject(id)
	if err != nil {
		return nil, err
	}
	if after == math.MaxUint64 {
		return nil, nil // nothing can follow (and after+1 would wrap to 0)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()

	inbox := s.nc.NewInbox()
	ch := make(chan *nats.Msg, loadBatch+1)
	sub, err := s.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("eventstore: load %s: subscribe: %w", subj, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	var out []Record
	from := after + 1
	req := make([]byte, 0, 64+len(subj))
	for {
		// Subjects are made of [A-Za-z0-9_%.-] only: no JSON escaping needed.
		req = append(req[:0], `{"seq":`...)
		req = strconv.AppendUint(req, from, 10)
		req = append(req, `,"next_by_subj":"`...)
		req = append(req, subj...)
		req = append(req, `","batch":`...)
		req = strconv.AppendInt(req, loadBatch, 10)
		req = append(req, '}')
		if err := s.nc.PublishRequest(s.directGet, inbox, req); err != nil {
			return nil, fmt.Errorf("eventstore: load %s: %w", subj, err)
		}

		delivered := 0
	batch:
		for {
			var m *nats.Msg
			select {
			case m = <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("eventstore: load %s after %d: %w", subj, from-1, ctx.Err())
			}
			switch status, desc := responseStatus(m); status {
			case "":
			case statusNotFound:
				return out, nil
			case statusEOB:
				pending, perr := strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
				last, lerr := strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
				if perr != nil || lerr != nil {
					return nil, fmt.Errorf("eventstore: load %s: malformed end-of-batch headers %v", subj, m.Header)
				}
				if pending == 0 {
					return out, nil
				}
				if delivered == 0 || last+1 != from {
					// Never loop on a batch that made no progress.
					return nil, fmt.Errorf("eventstore: load %s: end of batch at %d after %d events, %d pending, expected to resume at %d",
						subj, last, delivered, pending, from)
				}
				break batch
			case statusNoResp:
				return nil, fmt.Errorf("eventstore: load %s: no direct-get responder for stream %s: %w", subj, s.cfg.Stream, nats.ErrNoResponders)
			default:
				return nil, fmt.Errorf("eventstore: load %s: direct get status %s %s", subj, status, desc)
			}

			rec, err := recordOf(m)
			if err != nil {
				return nil, err
			}
			if rec.Seq < from || rec.Subject != subj {
				return nil, fmt.Errorf("eventstore: load %s: direct get returned sequence %d on %s, expected ≥ %d on %s",
					subj, rec.Seq, rec.Subject, from, subj)
			}
			out = append(out, rec)
			from = rec.Seq + 1
			delivered++
			if m.Header.Get(hdrNumPending) == "" {
				break batch // no batch support: one message per request
			}
		}
	}
}

// responseStatus returns the status and description of a status-only
// response, "" for a message.
func responseStatus(m *nats.Msg) (string, string) {
	if len(m.Data) != 0 || m.Header == nil {
		return "", ""
	}
	return m.Header.Get(hdrStatus), m.Header.Get(hdrDescription)
}

// recordOf decodes a direct-get response into a Record. A message that is
// not an envelope is an error naming its sequence and wrapping ErrCorrupt.
func recordOf(m *nats.Msg) (Record, error) {
	subj := m.Header.Get(jetstream.SubjectHeader)
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil || subj == "" {
		return Record{}, fmt.Errorf("eventstore: direct get response without subject/sequence headers: %v", m.Header)
	}
	ev, err := DecodeEnvelope(m.Data)
	if err != nil {
		return Record{}, fmt.Errorf("eventstore: event at sequence %d on %s: %w", seq, subj, err)
	}
	return Record{Seq: seq, Subject: subj, Event: ev}, nil
}
