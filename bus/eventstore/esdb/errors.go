package esdb

import (
	"context"
	"errors"
	"fmt"
	"math"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// ErrClosed is returned by every call on a closed [Store].
var ErrClosed = errors.New("esdb: store closed")

// clientCode returns the code of the client library error in err's chain.
// The library wraps its *esdbc.Error with fmt.Errorf("…: %w") on some
// paths (e.g. "could not send append request. Reason: %w"), hence
// errors.As, never a type assertion or the message text.
func clientCode(err error) (esdbc.ErrorCode, bool) {
	var e *esdbc.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// hasCode reports whether err carries the client error code code.
func hasCode(err error, code esdbc.ErrorCode) bool {
	c, ok := clientCode(err)
	return ok && c == code
}

// isWrongExpectedVersion reports whether err is the server's answer to a
// failed optimistic concurrency check of an append.
func isWrongExpectedVersion(err error) bool {
	return hasCode(err, esdbc.ErrorCodeWrongExpectedVersion)
}

// isStreamNotFound reports whether err says that a read stream does not
// exist (never written, or soft-deleted).
func isStreamNotFound(err error) bool {
	return hasCode(err, esdbc.ErrorCodeResourceNotFound)
}

// conflictError maps a failed append onto the store's error contract: a
// wrong expected version wraps [eventstore.ErrConflict] (and keeps the
// client error in the chain); anything else is returned with context.
func conflictError(err error, evID, stream string, expected uint64) error {
	if isWrongExpectedVersion(err) {
		return fmt.Errorf("esdb: append %s to %s expecting sequence %d: %w: %w", evID, stream, expected, eventstore.ErrConflict, err)
	}
	return fmt.Errorf("esdb: append %s to %s: %w", evID, stream, err)
}

// withCtxErr adds ctx's error to err's chain when ctx is done, so that
// callers can test errors.Is(err, context.DeadlineExceeded) although gRPC
// reports a deadline as its own status (ErrorCodeDeadlineExceeded).
func withCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// maxRevision is the largest stream revision the store sends. The server
// keeps revisions as signed 64-bit numbers and reads the negative ones as
// the special expected versions (-1 no stream, -2 any, -4 stream exists):
// a larger uint64 must never reach it. 2⁶³−1 itself marks a deleted
// (tombstoned) stream, so the last real revision is one less.
const maxRevision = math.MaxInt64 - 1

// expectedRevision maps the store's expected sequence onto EventStoreDB's
// expected revision (sequence = revision + 1, see [Store]): 0 is NoStream,
// n is revision n-1. ok is false when no stream can be at that sequence
// (n-1 beyond maxRevision): the append is then a conflict without asking
// the server.
func expectedRevision(expected uint64) (esdbc.ExpectedRevision, bool) {
	if expected == 0 {
		return esdbc.NoStream{}, true
	}
	if expected-1 > maxRevision {
		return nil, false
	}
	return esdbc.Revision(expected - 1), true
}
