// Package testenv starts, for tests, the real components most packages
// build on: an embedded nats-server (in-process, no port), the JetStream
// event store and the instances service, all stopped at cleanup.
package testenv

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/ingress/instances"
)

// Env is one embedded server with the store and service on it.
type Env struct {
	Server *bus.Embedded
	NC     *nats.Conn
	Store  *eventstore.JetStreamStore
	Svc    *instances.Service
}

// Instances starts an Env under t.TempDir(). The server's fsync interval is
// an hour: nats-server v2.15.2 arms its file store's first sync timer
// without its lock, which a loaded -race run may report (docs/decisions.md);
// nothing in a test needs fsync.
func Instances(t testing.TB, log *slog.Logger) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), SyncInterval: time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := instances.New(store, nc, instances.Config{Prefix: store.Config().Prefix}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return &Env{Server: e, NC: nc, Store: store, Svc: svc}
}
