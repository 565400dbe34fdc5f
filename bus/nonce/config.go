package nonce

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of [Config]; a zero field takes its default (TTL has none).
const (
	DefaultBucket   = "gallerist_nonces"
	DefaultReplicas = 1
)

// ErrInvalidConfig wraps configuration validation errors.
var ErrInvalidConfig = errors.New("nonce: invalid config")

// Config configures the replay guard's KV bucket.
type Config struct {
	// Bucket is the KV bucket name; default "gallerist_nonces".
	Bucket string
	// TTL is how long a nonce is remembered (required). It must cover the
	// whole acceptance window of a request timestamp, e.g. 2× the window,
	// or a replay could arrive after its nonce was forgotten and still
	// pass the timestamp check.
	TTL time.Duration
	// Replicas of the bucket's stream: 1 (default) embedded, 3 on a cluster.
	Replicas int
	// Storage is the storage type; the zero value is file storage.
	Storage jetstream.StorageType
}

func (c Config) withDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	return c
}

// Validate reports whether c (with defaults applied) is usable. Errors wrap
// [ErrInvalidConfig].
func (c Config) Validate() error {
	c = c.withDefaults()
	if !validBucket(c.Bucket) {
		return fmt.Errorf("%w: bucket name %q must be non-empty [A-Za-z0-9_-]", ErrInvalidConfig, c.Bucket)
	}
	if c.TTL <= 0 {
		return fmt.Errorf("%w: TTL is required and must be positive, got %s", ErrInvalidConfig, c.TTL)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("%w: Replicas %d not in 1..5", ErrInvalidConfig, c.Replicas)
	}
	switch c.Storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return fmt.Errorf("%w: unknown Storage %d", ErrInvalidConfig, c.Storage)
	}
	return nil
}

func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
