package nonce_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus/internal/bustest"
	"github.com/gallerist/gallerist/bus/nonce"
)

type backend struct {
	name string
	open func(t testing.TB, ttl time.Duration) *nonce.Guard
}

func backends() []backend {
	return []backend{
		{"Embedded", func(t testing.TB, ttl time.Duration) *nonce.Guard {
			return openGuard(t, bustest.Embedded(t), nonce.Config{TTL: ttl}, false)
		}},
		{"MachineNATS", func(t testing.TB, ttl time.Duration) *nonce.Guard {
			return openGuard(t, bustest.Machine(t), nonce.Config{Bucket: bustest.Unique("gallerist_test_nonces"), TTL: ttl}, true)
		}},
	}
}

func openGuard(t testing.TB, nc *nats.Conn, cfg nonce.Config, deleteAfter bool) *nonce.Guard {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	g, err := nonce.Open(bustest.Context(t), js, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if deleteAfter {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := js.DeleteKeyValue(ctx, g.Config().Bucket); err != nil {
				t.Errorf("delete bucket %s: %v", g.Config().Bucket, err)
			}
		})
	}
	return g
}

func TestRemember(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			g := b.open(t, time.Minute)
			ctx := bustest.Context(t)
			if err := g.Remember(ctx, "saas", "n-1"); err != nil {
				t.Fatalf("first Remember: %v", err)
			}
			if err := g.Remember(ctx, "saas", "n-1"); !errors.Is(err, nonce.ErrReplay) {
				t.Fatalf("second Remember: %v, want ErrReplay", err)
			}
			if err := g.Remember(ctx, "license", "n-1"); err != nil {
				t.Fatalf("same nonce, other scope: %v", err)
			}
			if err := g.Remember(ctx, "saas", "n-2"); err != nil {
				t.Fatalf("other nonce: %v", err)
			}
			// Nonces and scopes with bytes that are not valid in KV keys,
			// and a long nonce (hashed key).
			long := strings.Repeat("x", 500)
			for _, n := range []string{"a.b", "*", ">", "with space", "ü/订单", "%2E", "\x00\xff", long, long + "y"} {
				if err := g.Remember(ctx, "scope with.dots>", n); err != nil {
					t.Fatalf("Remember(%q): %v", n, err)
				}
				if err := g.Remember(ctx, "scope with.dots>", n); !errors.Is(err, nonce.ErrReplay) {
					t.Fatalf("replay of %q: %v, want ErrReplay", n, err)
				}
			}
			if err := g.Remember(ctx, "", "n"); !errors.Is(err, nonce.ErrInvalidNonce) {
				t.Fatalf("empty scope: %v, want ErrInvalidNonce", err)
			}
			if err := g.Remember(ctx, "s", ""); !errors.Is(err, nonce.ErrInvalidNonce) {
				t.Fatalf("empty nonce: %v, want ErrInvalidNonce", err)
			}
		})
	}
}

func TestRememberConcurrent(t *testing.T) {
	const n = 50
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			g := b.open(t, time.Minute)
			ctx := bustest.Context(t)
			start := make(chan struct{})
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					<-start
					errs <- g.Remember(ctx, "saas", "the-nonce")
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			ok, replays := 0, 0
			for err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, nonce.ErrReplay):
					replays++
				default:
					t.Fatalf("unexpected error: %v", err)
				}
			}
			if ok != 1 || replays != n-1 {
				t.Fatalf("%d successes, %d replays; want 1 and %d", ok, replays, n-1)
			}
		})
	}
}

// TestExpiry: after the TTL the nonce is forgotten. Polls with a deadline;
// no duration is asserted.
func TestExpiry(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			g := b.open(t, time.Second)
			ctx := bustest.Context(t)
			if err := g.Remember(ctx, "saas", "short-lived"); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				err := g.Remember(ctx, "saas", "short-lived")
				if err == nil {
					return
				}
				if !errors.Is(err, nonce.ErrReplay) {
					t.Fatalf("Remember: %v", err)
				}
				if time.Now().After(deadline) {
					t.Fatal("nonce still remembered long after its TTL")
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestOpenUpdatesTTL: opening again with another TTL updates the bucket.
func TestOpenUpdatesTTL(t *testing.T) {
	nc := bustest.Embedded(t)
	openGuard(t, nc, nonce.Config{TTL: time.Minute}, false)
	g := openGuard(t, nc, nonce.Config{TTL: 10 * time.Minute}, false)
	st, err := g.KeyValue().Status(bustest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 10*time.Minute {
		t.Fatalf("bucket TTL %s, want 10m", st.TTL())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (nonce.Config{TTL: time.Minute}).Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, c := range []nonce.Config{
		{},
		{TTL: -time.Second},
		{TTL: time.Minute, Bucket: "a.b"},
		{TTL: time.Minute, Bucket: "a b"},
		{TTL: time.Minute, Replicas: 9},
		{TTL: time.Minute, Storage: 7},
	} {
		if err := c.Validate(); !errors.Is(err, nonce.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}

// BenchmarkRemember records distinct nonces on the embedded server (file
// store, sync interval, in-process connection).
func BenchmarkRemember(b *testing.B) {
	g := openGuard(b, bustest.Embedded(b), nonce.Config{TTL: 10 * time.Minute}, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := g.Remember(ctx, "saas", "nonce-"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
