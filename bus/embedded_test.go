package bus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/internal/bustest"
)

func TestEmbeddedNoListener(t *testing.T) {
	e := bustest.StartEmbedded(t, bus.ServerConfig{})
	if addr := e.Server().Addr(); addr != nil {
		t.Fatalf("client listener open at %s", addr)
	}
	if addr := e.Server().MonitorAddr(); addr != nil {
		t.Fatalf("monitoring listener open at %s", addr)
	}
	if addr := e.Server().ClusterAddr(); addr != nil {
		t.Fatalf("cluster listener open at %s", addr)
	}
	if u := e.ClientURL(); u != "" {
		t.Fatalf("ClientURL without listener = %q, want empty", u)
	}
	nc := bustest.Conn(t, e)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(bustest.Context(t))
	if err != nil {
		t.Fatalf("JetStream over the in-process connection: %v", err)
	}
	if info.Tier.Streams != 0 {
		t.Fatalf("fresh server has %d streams", info.Tier.Streams)
	}
}

func TestEmbeddedSyncSettingsReachJetStream(t *testing.T) {
	always := bustest.StartEmbedded(t, bus.ServerConfig{Sync: bus.SyncAlways})
	if c := always.Server().JetStreamConfig(); c == nil || !c.SyncAlways {
		t.Fatalf("sync always: JetStream config %+v", c)
	}
	interval := bustest.StartEmbedded(t, bus.ServerConfig{SyncInterval: 300 * time.Millisecond})
	if c := interval.Server().JetStreamConfig(); c == nil || c.SyncAlways || c.SyncInterval != 300*time.Millisecond {
		t.Fatalf("sync interval: JetStream config %+v", c)
	}
	if got := interval.Config(); got.Sync != bus.SyncInterval {
		t.Fatalf("effective config %+v", got)
	}
}

func TestEmbeddedListen(t *testing.T) {
	e := bustest.StartEmbedded(t, bus.ServerConfig{Listen: "127.0.0.1:0"})
	u := e.ClientURL()
	if u == "" || strings.HasSuffix(u, ":4222") || strings.HasSuffix(u, ":0") {
		t.Fatalf("ClientURL = %q, want a free port", u)
	}
	nc, err := bus.Connect(bustest.Context(t), u, "listen-test", bustest.Logger())
	if err != nil {
		t.Fatalf("Connect(%s): %v", u, err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedListenBusyPortFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), Listen: l.Addr().String()}, bustest.Logger())
	if err == nil {
		e.Shutdown()
		t.Fatal("started on a busy port")
	}
	if !errors.Is(err, bus.ErrStart) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("busy port: %v, want ErrStart from the listen failure", err)
	}
}

func TestEmbeddedBadDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bus.StartEmbedded(bustest.Context(t), bus.ServerConfig{DataDir: file}, nil)
	if !errors.Is(err, bus.ErrStart) {
		t.Fatalf("data dir is a file: %v, want ErrStart", err)
	}
}

func TestEmbeddedInvalidConfig(t *testing.T) {
	if _, err := bus.StartEmbedded(bustest.Context(t), bus.ServerConfig{}, nil); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("no data dir: %v, want ErrInvalidConfig", err)
	}
}

func TestEmbeddedCanceledStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir()}, nil)
	if err == nil {
		// Readiness can win the race with the canceled context; that is fine.
		e.Shutdown()
		return
	}
	if !errors.Is(err, bus.ErrStart) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled start: %v", err)
	}
}

func TestEmbeddedShutdown(t *testing.T) {
	e := bustest.StartEmbedded(t, bus.ServerConfig{})
	nc := bustest.Conn(t, e)
	e.Shutdown()
	e.Shutdown() // idempotent
	if _, err := e.Connect(); !errors.Is(err, bus.ErrShutdown) {
		t.Fatalf("Connect after Shutdown: %v, want ErrShutdown", err)
	}
	if err := nc.Publish("x", nil); err == nil {
		if err := nc.FlushTimeout(time.Second); err == nil {
			t.Fatal("connection still works after Shutdown")
		}
	}
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConnectLogsDisconnect(t *testing.T) {
	e := bustest.StartEmbedded(t, bus.ServerConfig{Listen: "127.0.0.1:0"})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	nc, err := bus.Connect(bustest.Context(t), e.ClientURL(), "log-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !strings.Contains(logs.String(), "nats connected") {
		t.Fatalf("no connect log: %s", logs.String())
	}
	e.Shutdown()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "nats disconnected") {
		if time.Now().After(deadline) {
			t.Fatalf("no disconnect log: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if nc.IsClosed() {
		t.Fatal("connection closed instead of reconnecting")
	}
}

func TestConnectMachineNATS(t *testing.T) {
	bustest.Machine(t) // skips when the machine's NATS is absent
	nc, err := bus.Connect(bustest.Context(t), bustest.MachineURL+", "+bustest.MachineURL, "machine-test", bustest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if nc.Opts.MaxReconnect != -1 {
		t.Fatalf("MaxReconnect = %d, want -1 (forever)", nc.Opts.MaxReconnect)
	}
}

func TestConnectGivesUpWithContext(t *testing.T) {
	// A port nobody listens on: take a free one and release it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	nc, err := bus.Connect(ctx, "nats://user:secret@"+addr, "nobody", nil)
	if err == nil {
		nc.Close()
		t.Skip("something started listening on the released port")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, nats.ErrNoServers) {
		t.Fatalf("Connect to nowhere: %v, want deadline exceeded and the last dial error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestConnectNoURL(t *testing.T) {
	if _, err := bus.Connect(context.Background(), " ", "x", nil); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("empty URL: %v, want ErrInvalidConfig", err)
	}
}

// TestEmbeddedDataDirLock: a second embedded server on a data directory in
// use is refused (two servers would corrupt one JetStream store), and the
// directory is free again after Shutdown.
func TestEmbeddedDataDirLock(t *testing.T) {
	dir := t.TempDir()
	ctx := bustest.Context(t)
	cfg := bus.ServerConfig{DataDir: dir, SyncInterval: time.Hour}
	first, err := bus.StartEmbedded(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := bus.StartEmbedded(ctx, cfg, nil)
	if err == nil {
		second.Shutdown()
		first.Shutdown()
		t.Fatal("a second server started on a data directory in use")
	}
	if !errors.Is(err, bus.ErrDataDirInUse) || !errors.Is(err, bus.ErrStart) {
		t.Fatalf("second start: %v, want ErrDataDirInUse and ErrStart", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
	first.Shutdown()
	again, err := bus.StartEmbedded(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("start after Shutdown: %v", err)
	}
	again.Shutdown()
}
