package bus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyPoll is how long one ReadyForConnections probe waits before the
// start-up loop re-checks ctx and fatal errors.
const readyPoll = 50 * time.Millisecond

// Embedded is an in-process nats-server with JetStream enabled.
type Embedded struct {
	srv *server.Server
	cfg ServerConfig
	log *slog.Logger

	unlock func() // releases the data directory's lock

	shutdownOnce sync.Once
}

// StartEmbedded starts an in-process nats-server with JetStream and a file
// store under cfg.DataDir and waits until it is ready for clients and
// JetStream is enabled. Without cfg.Listen no TCP port is opened: connect
// with [Embedded.Connect]. Cancelling ctx aborts the start: the server is
// shut down again once its (uninterruptible) start-up step has returned,
// so after an error nothing touches DataDir any more. Start-up failures
// (listen error, JetStream or store recovery failure) wrap [ErrStart]. A
// nil log discards the server's log.
//
// The sync setting maps to nats-server options as follows: [SyncAlways] sets
// Options.SyncAlways (every file-store write is fsynced before the ack;
// SyncInterval is then irrelevant), [SyncInterval] sets Options.SyncInterval
// to cfg.SyncInterval with SyncAlways false.
func StartEmbedded(ctx context.Context, cfg ServerConfig, log *slog.Logger) (*Embedded, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nats-server", "server", cfg.ServerName)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: data dir %s: %w", ErrStart, cfg.DataDir, err)
	}
	// nats-server takes no lock on its store: take one, so that a second
	// server (gallerist replay or events while serve runs) is refused
	// instead of corrupting the store.
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}

	opts, err := serverOptions(cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	sl := newServerLogger(log)
	srv.SetLoggerV2(sl, log.Enabled(ctx, slog.LevelDebug), false, false)

	e := &Embedded{srv: srv, cfg: cfg, log: log, unlock: unlock}
	// Start runs the start-up synchronously (JetStream store recovery
	// included) and leaves the accept loop running in the background. It
	// cannot be interrupted, so even a cancelled start waits for it to
	// return before shutting down: nothing may write to DataDir after
	// StartEmbedded returned an error.
	startDone := make(chan struct{})
	go func() {
		defer close(startDone)
		srv.Start()
	}()
	if err := e.waitReady(ctx, sl, startDone); err != nil {
		<-startDone
		e.Shutdown()
		return nil, err
	}
	log.Info("embedded nats-server ready",
		"data_dir", cfg.DataDir, "sync", string(cfg.Sync), "sync_interval", cfg.SyncInterval,
		"listen", cfg.Listen, "client_url", e.ClientURL())
	return e, nil
}

// serverOptions maps cfg (defaults applied) onto nats-server options.
func serverOptions(cfg ServerConfig) (*server.Options, error) {
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.DataDir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		// A library must not take over the process's signals.
		NoSigs: true,
		// No HTTP monitoring, cluster, leafnode, gateway, websocket or MQTT
		// listener is configured: their zero values leave them off.
	}
	switch cfg.Sync {
	case SyncAlways:
		opts.SyncAlways = true
	case SyncInterval:
		opts.SyncInterval = cfg.SyncInterval
	}
	if cfg.Listen == "" {
		opts.DontListen = true
		return opts, nil
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: Listen %q: %w", ErrInvalidConfig, cfg.Listen, err)
	}
	if port == 0 {
		// nats-server reads port 0 as "default port 4222"; -1 means any.
		port = server.RANDOM_PORT
	}
	opts.Host, opts.Port = host, port
	return opts, nil
}

func (e *Embedded) waitReady(ctx context.Context, sl *serverLogger, startDone <-chan struct{}) error {
	select {
	case <-startDone:
	case <-sl.fired:
		return fmt.Errorf("%w: %s", ErrStart, sl.fatalMessage())
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for readiness: %w", ErrStart, ctx.Err())
	}
	for {
		if msg := sl.fatalMessage(); msg != "" {
			return fmt.Errorf("%w: %s", ErrStart, msg)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: waiting for readiness: %w", ErrStart, err)
		}
		if e.srv.ReadyForConnections(readyPoll) {
			break
		}
	}
	if msg := sl.fatalMessage(); msg != "" {
		return fmt.Errorf("%w: %s", ErrStart, msg)
	}
	if !e.srv.JetStreamEnabled() {
		return fmt.Errorf("%w: JetStream is not enabled (see the server log)", ErrStart)
	}
	return nil
}

// Connect returns a client connection to the embedded server through an
// in-process pipe (no TCP). opts are applied after the defaults (name
// "gallerist", reconnect forever), so they can override them.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if !e.srv.Running() {
		return nil, ErrShutdown
	}
	all := append([]nats.Option{
		nats.Name(e.cfg.ServerName),
		nats.InProcessServer(e.srv),
		nats.MaxReconnects(-1),
	}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("bus: in-process connect: %w", err)
	}
	return nc, nil
}

// ClientURL returns the nats:// URL of the TCP listener. It is only
// meaningful when ServerConfig.Listen is set (with port 0 it reports the
// port actually chosen); without a listener it returns "".
func (e *Embedded) ClientURL() string {
	if e.cfg.Listen == "" {
		return ""
	}
	return e.srv.ClientURL()
}

// Server exposes the underlying nats-server, e.g. for monitoring.
func (e *Embedded) Server() *server.Server { return e.srv }

// Config returns the effective configuration (defaults applied).
func (e *Embedded) Config() ServerConfig { return e.cfg }

// Shutdown stops the server and waits until it has fully shut down
// (JetStream stores flushed and closed). It is safe to call more than once.
func (e *Embedded) Shutdown() {
	e.shutdownOnce.Do(func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.unlock()
		e.log.Info("embedded nats-server stopped")
	})
}
