package provision

import (
	"strings"
	"testing"
	"time"
)

func TestWorkerConfigDefaults(t *testing.T) {
	d := DefaultWorkerConfig()
	want := WorkerConfig{
		Durable: "provisioner", Concurrency: 16, MaxAckPending: 1000, AckWait: 30 * time.Second,
		RetryBase: 200 * time.Millisecond, RetryMax: 30 * time.Second, ProvisionTimeout: 10 * time.Second,
	}
	if d != want {
		t.Fatalf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (WorkerConfig{}).withDefaults(); got != d {
		t.Fatalf("zero config with defaults = %+v", got)
	}
	// Defaults adapt to the fields that are set.
	got := WorkerConfig{Concurrency: 2000, ProvisionTimeout: 20 * time.Second, RetryBase: time.Minute}.withDefaults()
	if got.MaxAckPending != 2000 || got.AckWait != 40*time.Second || got.RetryMax != time.Minute {
		t.Fatalf("derived defaults = %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (WorkerConfig{AckWait: 4 * time.Second}).withDefaults(); got.ProvisionTimeout != 2*time.Second {
		t.Fatalf("ProvisionTimeout default with a short AckWait = %s", got.ProvisionTimeout)
	}
}

func TestWorkerConfigValidate(t *testing.T) {
	cases := map[string]struct {
		mod  func(*WorkerConfig)
		want string
	}{
		"durable with dot":     {func(c *WorkerConfig) { c.Durable = "a.b" }, "Durable"},
		"durable empty":        {func(c *WorkerConfig) { c.Durable = "" }, "Durable"},
		"concurrency":          {func(c *WorkerConfig) { c.Concurrency = -1 }, "Concurrency"},
		"max ack pending":      {func(c *WorkerConfig) { c.MaxAckPending = 15 }, "MaxAckPending"},
		"ack wait vs timeout":  {func(c *WorkerConfig) { c.AckWait = 19 * time.Second }, "AckWait"},
		"timeout":              {func(c *WorkerConfig) { c.ProvisionTimeout = -time.Second }, "ProvisionTimeout"},
		"retry base":           {func(c *WorkerConfig) { c.RetryBase = -time.Second }, "RetryBase"},
		"retry max below base": {func(c *WorkerConfig) { c.RetryMax = 100 * time.Millisecond }, "RetryMax"},
	}
	for name, tc := range cases {
		c := DefaultWorkerConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", name, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	base, ceil := 200*time.Millisecond, 30*time.Second
	for attempt := uint64(0); attempt < 200; attempt++ {
		d := base
		for i := uint64(1); i < attempt && d < ceil; i++ {
			d *= 2
		}
		d = min(d, ceil)
		lo, hi := backoff(attempt, base, ceil, 0), backoff(attempt, base, ceil, 0.999999)
		if lo != d/2 || hi < lo || hi > d {
			t.Fatalf("attempt %d: backoff in [%s, %s], want [%s, %s)", attempt, lo, hi, d/2, d)
		}
	}
	if got := backoff(^uint64(0), base, ceil, 0.5); got > ceil {
		t.Fatalf("huge attempt: %s", got)
	}
	if got := backoff(3, time.Hour, 2*time.Hour, 0); got != time.Hour {
		t.Fatalf("capped backoff = %s", got)
	}
}
