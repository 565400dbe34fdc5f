// Package bustest holds test helpers shared by the bus packages: an
// embedded server on a temporary directory and the machine's NATS server.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus"
	"github.com/nats-io/nats.go"
)

// MachineURL is the NATS server (with JetStream) that belongs to the
// machine the tests run on.
const MachineURL = "nats://127.0.0.1:4222"

// RequireServicesEnv, when "1", turns a missing machine service into a test
// failure instead of a skip.
const RequireServicesEnv = "GALLERIST_REQUIRE_SERVICES"

// Logger returns a logger for servers under test: warnings and errors to
// stderr (never t.Log: server goroutines may outlive the test).
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Context returns a context that ends with the test (or after a minute).
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// StartEmbedded starts an embedded server with cfg (DataDir defaults to a
// fresh t.TempDir()) and shuts it down at cleanup.
func StartEmbedded(t testing.TB, cfg bus.ServerConfig) *bus.Embedded {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.SyncInterval == 0 && cfg.Sync != bus.SyncAlways {
		// nats-server's file store arms its first sync timer without its
		// lock (filestore.go setSyncTimer in newFileStore); under a loaded
		// race-detector run a timer firing early is reported as a race in
		// the server. A long interval keeps it from firing during a test.
		cfg.SyncInterval = time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, cfg, Logger())
	if err != nil {
		t.Fatalf("start embedded nats-server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// Conn opens an in-process connection to e, closed at cleanup.
func Conn(t testing.TB, e *bus.Embedded) *nats.Conn {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatalf("connect to embedded nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Embedded starts an embedded server (sync interval, no listener) on a
// temporary directory and returns an in-process connection to it.
func Embedded(t testing.TB) *nats.Conn {
	t.Helper()
	return Conn(t, StartEmbedded(t, bus.ServerConfig{}))
}

// Machine connects to the machine's NATS server at [MachineURL]. If it is
// unreachable the test is skipped, or fails when GALLERIST_REQUIRE_SERVICES=1.
func Machine(t testing.TB) *nats.Conn {
	t.Helper()
	addr := strings.TrimPrefix(MachineURL, "nats://")
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if os.Getenv(RequireServicesEnv) == "1" {
			t.Fatalf("machine NATS at %s unreachable and %s=1: %v", MachineURL, RequireServicesEnv, err)
		}
		t.Skipf("machine NATS at %s unreachable (%v); set %s=1 to make this a failure", MachineURL, err, RequireServicesEnv)
	}
	_ = c.Close()
	nc, err := nats.Connect(MachineURL, nats.Name("gallerist-bus-test"), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to machine NATS at %s: %v", MachineURL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Unique returns base followed by a random suffix, made of characters that
// are valid in stream names, bucket names and subject tokens.
func Unique(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base + "_" + strings.ToUpper(hex.EncodeToString(b[:]))
}
