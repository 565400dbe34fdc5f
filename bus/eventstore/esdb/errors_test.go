package esdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// clientError builds the client library's *esdbc.Error with code and
// inner error, as its append returns for a wrong expected version
// (&Error{code: ErrorCodeWrongExpectedVersion, err: …}). Its fields are
// unexported and no exported constructor takes a code (FromError always
// gives ErrorCodeUnknown), so they are set through reflect; the test fails
// if the library's struct no longer has them.
func clientError(t *testing.T, code esdbc.ErrorCode, inner error) *esdbc.Error {
	t.Helper()
	e := &esdbc.Error{}
	v := reflect.ValueOf(e).Elem()
	set := func(name string, x reflect.Value) {
		f := v.FieldByName(name)
		if !f.IsValid() {
			t.Fatalf("esdbc.Error has no field %q any more", name)
		}
		reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem().Set(x)
	}
	set("code", reflect.ValueOf(code))
	if inner != nil {
		set("err", reflect.ValueOf(&inner).Elem())
	}
	if e.Code() != code || !errors.Is(e, inner) && inner != nil {
		t.Fatalf("built %v, code %d; want code %d wrapping %v", e, e.Code(), code, inner)
	}
	return e
}

func TestWrongExpectedVersionIsConflict(t *testing.T) {
	wev := clientError(t, esdbc.ErrorCodeWrongExpectedVersion, errors.New("wrong expected version: expecting '3' but got '5'"))
	for _, err := range []error{
		wev,
		fmt.Errorf("could not send append request. Reason: %w", wev), // how the library wraps send errors
	} {
		if !isWrongExpectedVersion(err) {
			t.Fatalf("isWrongExpectedVersion(%v) = false", err)
		}
		got := conflictError(err, "evt-1", "gallerist.instance-a", 4)
		if !errors.Is(got, eventstore.ErrConflict) {
			t.Fatalf("conflictError(%v) = %v, does not wrap ErrConflict", err, got)
		}
		var ce *esdbc.Error
		if !errors.As(got, &ce) || ce.Code() != esdbc.ErrorCodeWrongExpectedVersion {
			t.Fatalf("conflictError(%v) = %v lost the client error", err, got)
		}
		t.Log(got)
	}
}

func TestOtherClientErrorsAreNotConflicts(t *testing.T) {
	unknown, _ := esdbc.FromError(errors.New("boom")) // the library's only exported constructor
	if unknown.Code() != esdbc.ErrorCodeUnknown {
		t.Fatalf("FromError code %d", unknown.Code())
	}
	errs := []error{
		unknown,
		clientError(t, esdbc.ErrorCodeStreamDeleted, errors.New("stream 'x' is deleted")),
		clientError(t, esdbc.ErrorUnavailable, nil),
		clientError(t, esdbc.ErrorCodeDeadlineExceeded, nil),
		clientError(t, esdbc.ErrorCodeAccessDenied, nil),
		clientError(t, esdbc.ErrorCodeResourceNotFound, nil),
		clientError(t, esdbc.ErrorCodeConnectionClosed, nil),
		clientError(t, esdbc.ErrorCodeNotLeader, nil),
		errors.New("wrong expected version"), // text is never inspected
		context.DeadlineExceeded,
	}
	for _, err := range errs {
		if isWrongExpectedVersion(err) {
			t.Errorf("isWrongExpectedVersion(%v) = true", err)
		}
		got := conflictError(err, "evt-1", "gallerist.instance-a", 4)
		if errors.Is(got, eventstore.ErrConflict) {
			t.Errorf("conflictError(%v) = %v wraps ErrConflict", err, got)
		}
		if !errors.Is(got, err) {
			t.Errorf("conflictError(%v) = %v lost the cause", err, got)
		}
	}
}

func TestStreamNotFound(t *testing.T) {
	nf := clientError(t, esdbc.ErrorCodeResourceNotFound, errors.New("stream 'x' is not found"))
	if !isStreamNotFound(nf) || !isStreamNotFound(fmt.Errorf("read: %w", nf)) {
		t.Fatal("ResourceNotFound not recognised")
	}
	if isStreamNotFound(clientError(t, esdbc.ErrorCodeStreamDeleted, nil)) || isStreamNotFound(errors.New("not found")) {
		t.Fatal("other errors taken for not found")
	}
}

func TestExpectedRevision(t *testing.T) {
	for _, tc := range []struct {
		expected uint64
		want     esdbc.ExpectedRevision
	}{
		{0, esdbc.NoStream{}},
		{1, esdbc.Revision(0)},
		{2, esdbc.Revision(1)},
		{600, esdbc.Revision(599)},
		{math.MaxInt64, esdbc.Revision(math.MaxInt64 - 1)},
		{math.MaxInt64 + 1, nil},
		{math.MaxUint64 - 1, nil}, // would be -2 (any) on the server
		{math.MaxUint64, nil},
	} {
		got, ok := expectedRevision(tc.expected)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("expectedRevision(%d) = %#v, %v; want %#v", tc.expected, got, ok, tc.want)
		}
	}
}

func TestWithCtxErr(t *testing.T) {
	base := clientError(t, esdbc.ErrorCodeDeadlineExceeded, errors.New("rpc error: code = DeadlineExceeded"))
	ctx, cancel := context.WithCancel(t.Context())
	if got := withCtxErr(ctx, base); got != base {
		t.Fatalf("live context changed the error: %v", got)
	}
	cancel()
	got := withCtxErr(ctx, base)
	if !errors.Is(got, context.Canceled) || !errors.Is(got, base) {
		t.Fatalf("withCtxErr = %v", got)
	}
	if again := withCtxErr(ctx, got); again != got {
		t.Fatalf("context error added twice: %v", again)
	}
}
