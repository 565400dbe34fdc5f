package eventstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of [JetStreamConfig]; a zero field takes its default.
const (
	DefaultStream          = "GALLERIST"
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 2 * time.Minute
)

// JetStreamConfig configures [OpenJetStream]. Zero values take the
// documented defaults.
type JetStreamConfig struct {
	// Stream is the JetStream stream name; default "GALLERIST".
	Stream string
	// Prefix is the subject prefix of every event, "gallerist" by default:
	// the stream captures <Prefix>.>.
	Prefix string
	// Replicas is the stream's replication factor when the store creates
	// it: 1 (default) embedded, 3 on a cluster. An existing stream keeps
	// its replica count (a mismatch is logged, never "fixed" by scaling).
	Replicas int
	// Storage is the storage type; the zero value is file storage.
	Storage jetstream.StorageType
	// DuplicateWindow is how long JetStream remembers event ids
	// (Nats-Msg-Id) to drop duplicate appends; default 2m.
	DuplicateWindow time.Duration
}

func (c JetStreamConfig) withDefaults() JetStreamConfig {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	return c
}

// Validate reports whether c (with defaults applied) is usable. Errors wrap
// [ErrInvalidConfig].
func (c JetStreamConfig) Validate() error {
	c = c.withDefaults()
	if strings.ContainsAny(c.Stream, " \t\r\n.*>/\\") {
		return fmt.Errorf("%w: stream name %q must not contain whitespace, '.', '*', '>', '/' or '\\'", ErrInvalidConfig, c.Stream)
	}
	if err := ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("%w: Replicas %d not in 1..5", ErrInvalidConfig, c.Replicas)
	}
	switch c.Storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return fmt.Errorf("%w: unknown Storage %d", ErrInvalidConfig, c.Storage)
	}
	if c.DuplicateWindow < 0 {
		return fmt.Errorf("%w: DuplicateWindow %s is negative", ErrInvalidConfig, c.DuplicateWindow)
	}
	return nil
}
