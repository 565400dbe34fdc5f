package bus

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// SyncMode says when the embedded JetStream file store calls fsync.
//
// The trade-off:
//
//   - [SyncAlways]: every write is fsynced before JetStream acknowledges it.
//     An acknowledged event (and so an answer sent to KooGallery) survives a
//     power loss or kernel crash. Each append pays one fsync, so append
//     latency and throughput are bound by the disk's sync latency.
//   - [SyncInterval]: writes go to the OS page cache and are acknowledged at
//     once; a background fsync runs every SyncInterval. A crash of the
//     gallerist process loses nothing (the data is in the kernel already),
//     but an OS crash or power loss can lose up to SyncInterval worth of
//     acknowledged events. With R3 on a cluster the other replicas cover a
//     single machine's loss.
type SyncMode string

const (
	// SyncAlways fsyncs every write (nats-server `sync: always`).
	SyncAlways SyncMode = "always"
	// SyncInterval fsyncs in the background every ServerConfig.SyncInterval
	// (nats-server `sync: <duration>`).
	SyncInterval SyncMode = "interval"
)

// Defaults of [ServerConfig]; a zero field takes its default.
const (
	DefaultSync         = SyncInterval
	DefaultSyncInterval = 100 * time.Millisecond
	DefaultServerName   = "gallerist"
)

// ServerConfig configures the embedded nats-server. Zero values take the
// documented defaults; only DataDir is required.
type ServerConfig struct {
	// DataDir is the JetStream store directory (required). The server
	// keeps its streams under DataDir/jetstream.
	DataDir string
	// Sync selects the fsync policy; default [SyncInterval]. See [SyncMode]
	// for the durability trade-off.
	Sync SyncMode
	// SyncInterval is the background fsync period when Sync is
	// [SyncInterval]; default 100ms. Ignored with [SyncAlways].
	SyncInterval time.Duration
	// Listen is "" for no TCP listener at all (in-process connections
	// only), else host:port for NATS clients. Port 0 picks a free port; see
	// [Embedded.ClientURL].
	Listen string
	// ServerName names the server in logs and monitoring; default
	// "gallerist".
	ServerName string
	// MaxMemory and MaxStore cap JetStream memory and file storage in bytes;
	// 0 lets nats-server size them from the machine (75% of RAM / 1 TB or
	// the free disk space).
	MaxMemory, MaxStore int64
}

// withDefaults returns c with zero fields set to their defaults.
func (c ServerConfig) withDefaults() ServerConfig {
	if c.Sync == "" {
		c.Sync = DefaultSync
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.ServerName == "" {
		c.ServerName = DefaultServerName
	}
	return c
}

// Validate reports whether c (with defaults applied) can start a server.
// Errors wrap [ErrInvalidConfig].
func (c ServerConfig) Validate() error {
	c = c.withDefaults()
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is required", ErrInvalidConfig)
	}
	switch c.Sync {
	case SyncAlways, SyncInterval:
	default:
		return fmt.Errorf("%w: Sync %q is neither %q nor %q", ErrInvalidConfig, c.Sync, SyncAlways, SyncInterval)
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("%w: SyncInterval %s is negative", ErrInvalidConfig, c.SyncInterval)
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			return fmt.Errorf("%w: Listen %q: %w", ErrInvalidConfig, c.Listen, err)
		}
	}
	if c.MaxMemory < 0 {
		return fmt.Errorf("%w: MaxMemory %d is negative", ErrInvalidConfig, c.MaxMemory)
	}
	if c.MaxStore < 0 {
		return fmt.Errorf("%w: MaxStore %d is negative", ErrInvalidConfig, c.MaxStore)
	}
	return nil
}

// splitListen parses host:port; port 0 means "any free port".
func splitListen(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", p)
	}
	return host, port, nil
}
