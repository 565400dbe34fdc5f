// Package nonce is the replay guard shared by every Gallerist replica: a
// JetStream KV bucket in which each accepted request nonce is created once
// and expires after a TTL (design.md §5, "replay checks").
package nonce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrReplay means the nonce was already recorded within the TTL.
	ErrReplay = errors.New("nonce: replayed")
	// ErrInvalidNonce means an empty scope or nonce.
	ErrInvalidNonce = errors.New("nonce: invalid nonce")
)

// Guard records nonces in a KV bucket. It is safe for concurrent use, and
// any number of replicas may share one bucket.
type Guard struct {
	kv  jetstream.KeyValue
	cfg Config
}

// Open creates the bucket (history 1, max age = cfg.TTL) or updates an
// existing one to cfg.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Gallerist replay guard: request nonces",
		History:     1,
		TTL:         cfg.TTL,
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
	if err != nil {
		return nil, fmt.Errorf("nonce: open bucket %s: %w", cfg.Bucket, err)
	}
	return &Guard{kv: kv, cfg: cfg}, nil
}

// Remember atomically records nonce under scope (e.g. the route or key
// id). It returns nil the first time, and an error wrapping [ErrReplay] if
// the same (scope, nonce) was recorded within the TTL — by this or any
// other replica. Empty scope or nonce wrap [ErrInvalidNonce].
func (g *Guard) Remember(ctx context.Context, scope, nonce string) error {
	k, err := key(scope, nonce)
	if err != nil {
		return err
	}
	// The value is for operators only: when the nonce was first seen.
	v := strconv.AppendInt(make([]byte, 0, 20), time.Now().UnixMilli(), 10)
	if _, err := g.kv.Create(ctx, k, v); err != nil {
		if isExists(err) {
			return fmt.Errorf("%w: scope %q", ErrReplay, scope)
		}
		return fmt.Errorf("nonce: remember in %s: %w", g.cfg.Bucket, err)
	}
	return nil
}

// isExists reports whether a KV create failed because the key exists:
// jetstream.ErrKeyExists, or the underlying "wrong last sequence" API error
// codes (10071; 10164 on replicated buckets) in case a client version
// reports them unwrapped.
func isExists(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// KeyValue returns the bucket (for operators' tools and tests).
func (g *Guard) KeyValue() jetstream.KeyValue { return g.kv }

// Config returns the effective configuration (defaults applied).
func (g *Guard) Config() Config { return g.cfg }
