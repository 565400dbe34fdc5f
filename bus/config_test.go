package bus

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func TestServerConfigValidate(t *testing.T) {
	if err := (ServerConfig{DataDir: "/tmp/x"}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, c := range []ServerConfig{
		{},
		{DataDir: "d", Sync: "sometimes"},
		{DataDir: "d", SyncInterval: -time.Second},
		{DataDir: "d", Listen: "nohostport"},
		{DataDir: "d", Listen: "127.0.0.1:99999"},
		{DataDir: "d", Listen: "127.0.0.1:http"},
		{DataDir: "d", MaxMemory: -1},
		{DataDir: "d", MaxStore: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestServerConfigDefaults(t *testing.T) {
	c := ServerConfig{DataDir: "d"}.withDefaults()
	if c.Sync != SyncInterval || c.SyncInterval != 100*time.Millisecond || c.ServerName != DefaultServerName {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestServerOptions pins how the configuration maps onto nats-server.
func TestServerOptions(t *testing.T) {
	o, err := serverOptions(ServerConfig{DataDir: "d", Sync: SyncAlways}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if !o.SyncAlways || !o.JetStream || o.StoreDir != "d" || !o.DontListen || !o.NoSigs || o.HTTPPort != 0 || o.Cluster.Port != 0 {
		t.Fatalf("sync always, no listener: %+v", o)
	}
	o, err = serverOptions(ServerConfig{DataDir: "d", SyncInterval: 250 * time.Millisecond, Listen: "127.0.0.1:0"}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if o.SyncAlways || o.SyncInterval != 250*time.Millisecond || o.DontListen || o.Host != "127.0.0.1" || o.Port != server.RANDOM_PORT {
		t.Fatalf("sync interval, random port: %+v", o)
	}
}
