package eventstore

import (
	"context"
	"sync/atomic"

	"github.com/gallerist/gallerist/domain/event"
)

// Pool spreads calls over several stores, typically JetStreamStores on
// separate NATS connections to the same stream: the server reads each
// connection in a single loop, so one connection serialises every append
// and direct read of the process. All members must address the same stream.
// On a single server (R1) an append acknowledged through one member is
// visible to reads through every other member, because the acknowledgement
// follows the write; on a replicated stream a direct get may be answered by
// a follower that is a few milliseconds behind (docs/decisions.md).
type Pool struct {
	stores []Store
	next   atomic.Uint64
}

// NewPool returns a pool over stores; it panics on an empty list, a
// programming error.
func NewPool(stores ...Store) *Pool {
	if len(stores) == 0 {
		panic("eventstore: NewPool needs at least one store")
	}
	return &Pool{stores: stores}
}

func (p *Pool) pick() Store {
	return p.stores[p.next.Add(1)%uint64(len(p.stores))]
}

// Append implements Store.
func (p *Pool) Append(ctx context.Context, s StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	return p.pick().Append(ctx, s, expected, ev)
}

// Load implements Store.
func (p *Pool) Load(ctx context.Context, s StreamID, after uint64) ([]Record, error) {
	return p.pick().Load(ctx, s, after)
}

// Last implements Store.
func (p *Pool) Last(ctx context.Context, s StreamID) (uint64, error) {
	return p.pick().Last(ctx, s)
}

// LastEvent implements Store.
func (p *Pool) LastEvent(ctx context.Context, s StreamID) (Record, error) {
	return p.pick().LastEvent(ctx, s)
}

// Leader implements Store: the leader read mode of one member.
func (p *Pool) Leader() Store {
	return p.pick().Leader()
}
