package licenses_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/licenses"
)

var testKey = ed25519.NewKeyFromSeed([]byte("licenses-test-license-seed-00032"))

func openStore(t *testing.T) *eventstore.JetStreamStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), SyncInterval: time.Hour}, nil)
	if err != nil {
		t.Fatalf("embedded nats-server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func req(order, biz string) licenses.GetLicense {
	return licenses.GetLicense{OrderID: order, BusinessID: biz, Customer: license.Customer{ID: "cust"},
		Purchase: license.Purchase{ProductID: "p", SKUCode: "s"}}
}

func TestBuiltinIssuer(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	b, err := licenses.NewBuiltin(testKey, 48*time.Hour, map[string]string{"seats": "3"}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	pub := b.PublicKey()
	verify := func(text string, at time.Time) (licensetoken.License, error) {
		return licensetoken.Verify(pub, []byte(text), at)
	}
	r := licenses.IssueRequest{InstanceID: "i", OrderID: "o", Customer: license.Customer{ID: "c"}, Purchase: license.Purchase{ProductID: "p", SKUCode: "s"}}
	text, err := b.Issue(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	l, err := verify(text, now)
	if err != nil || !l.IssuedAt.Equal(now.Truncate(time.Second)) || !l.NotAfter.Equal(now.Truncate(time.Second).Add(48*time.Hour)) ||
		l.Features["seats"] != "3" || l.InstanceID != "i" || l.OrderID != "o" || l.CustomerID != "c" || l.ProductID != "p" || l.SKUCode != "s" {
		t.Fatalf("license %+v, %v", l, err)
	}
	r.Purchase.ExpireTime = now.Add(-time.Hour) // an order already expired: authentic, expired
	text, err = b.Issue(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := verify(text, now); !errors.Is(err, licensetoken.ErrExpired) || !l.NotAfter.Equal(now.Add(-time.Hour).Truncate(time.Second)) {
		t.Fatalf("expired order: %+v, %v", l, err)
	}
	if _, err := licenses.NewBuiltin(testKey[:10], 0, nil, nil); err == nil {
		t.Fatal("a short key was accepted")
	}
	if _, err := licenses.BuiltinFromConfig(config.BuiltinIssuer{PrivateKeyEnv: "GALLERIST_TEST_UNSET_LICENSE_KEY"}, nil); err == nil {
		t.Fatal("an unset key variable was accepted")
	}
}

func TestServiceIssue(t *testing.T) {
	store := openStore(t)
	var calls atomic.Int64
	b, err := licenses.NewBuiltin(testKey, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	counting := licenses.IssuerFunc(func(c context.Context, r licenses.IssueRequest) (string, error) {
		calls.Add(1)
		return b.Issue(c, r)
	})
	block := make(chan struct{})
	slow := licenses.IssuerFunc(func(c context.Context, r licenses.IssueRequest) (string, error) {
		<-block
		return b.Issue(c, r)
	})
	failing := licenses.IssuerFunc(func(context.Context, licenses.IssueRequest) (string, error) { return "", errors.New("vendor down") })
	svc, err := licenses.New(store, licenses.Config{Issuers: map[string]licenses.Issuer{"/a": counting, "/slow": slow, "/fail": failing}}, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	t.Cleanup(func() { close(block) })
	cause := event.Causation{Activity: "getLicense"}

	t.Run("concurrent duplicates: one binding, one license", func(t *testing.T) {
		var wg sync.WaitGroup
		sts := make([]license.State, 6)
		for i := range sts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := svc.Issue(ctx(t), "/a", req("o1", "biz-"+string(rune('a'+i))), cause, 2*time.Second)
				if err != nil {
					t.Error(err)
				}
				sts[i] = st
			}()
		}
		wg.Wait()
		for _, st := range sts {
			if st.ID != sts[0].ID || st.Text != sts[0].Text || st.Text == "" {
				t.Fatalf("answers differ: %+v vs %+v", st, sts[0])
			}
		}
		recs, err := store.Load(ctx(t), eventstore.StreamID{Kind: license.Kind, Keys: []string{sts[0].ID}}, 0)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%d license events, %v", len(recs), err)
		}
	})
	t.Run("invalid requests are refused before anything is stored", func(t *testing.T) {
		if _, err := svc.Issue(ctx(t), "/a", licenses.GetLicense{OrderID: "o2", BusinessID: "b"}, cause, time.Second); !errors.Is(err, license.ErrInvalid) {
			t.Fatalf("no customer: %v", err)
		}
		if last, err := store.Last(ctx(t), eventstore.StreamID{Kind: license.IndexKind, Keys: []string{"o2"}}); err != nil || last != 0 {
			t.Fatalf("an invalid request bound the order: %d %v", last, err)
		}
	})
	t.Run("no issuer", func(t *testing.T) {
		if _, err := svc.Issue(ctx(t), "/none", req("o3", "b3"), cause, time.Second); !errors.Is(err, licenses.ErrNoIssuer) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a failing issuer records nothing; the retry tries again", func(t *testing.T) {
		for range 2 {
			if _, err := svc.Issue(ctx(t), "/fail", req("o4", "b4"), cause, time.Second); err == nil || errors.Is(err, licenses.ErrInProgress) {
				t.Fatalf("err = %v", err)
			}
		}
		if _, err := svc.Get(ctx(t), "b4"); !errors.Is(err, license.ErrNotFound) {
			t.Fatalf("Get after failures: %v", err)
		}
	})
	t.Run("a slow issuer is in progress", func(t *testing.T) {
		if _, err := svc.Issue(ctx(t), "/slow", req("o5", "b5"), cause, 10*time.Millisecond); !errors.Is(err, licenses.ErrInProgress) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("license B codes", func(t *testing.T) {
		if _, err := svc.ExecuteCode(ctx(t), "PL1", licensecode.SetStatus{Target: licensecode.TargetFreeze}, cause); !errors.Is(err, licensecode.ErrNotFound) {
			t.Fatalf("unknown code: %v", err)
		}
		if _, err := svc.RegisterCode(ctx(t), "", "", cause); !errors.Is(err, licensecode.ErrInvalid) {
			t.Fatalf("empty code: %v", err)
		}
		for range 2 {
			if _, err := svc.RegisterCode(ctx(t), "PL1", "shop", cause); err != nil {
				t.Fatal(err)
			}
		}
		st, err := svc.ExecuteCode(ctx(t), "PL1", licensecode.SetStatus{Target: licensecode.TargetFreeze}, cause)
		if err != nil || st.Status != licensecode.StatusFrozen || st.Events != 2 {
			t.Fatalf("freeze: %+v %v", st, err)
		}
		if st, err := svc.Code(ctx(t), "PL1"); err != nil || st.Reference != "shop" {
			t.Fatalf("code: %+v %v", st, err)
		}
	})
}
