package provision

import (
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/effects"
)

func TestConfigDefaults(t *testing.T) {
	d := DefaultConfig()
	want := Config{ProvisionTimeout: 10 * time.Second, Runner: effects.RunnerConfig{
		RetryBase: 200 * time.Millisecond, RetryMax: 30 * time.Second, MaxAttempts: 480,
		Concurrency: 16, AckWait: 30 * time.Second, MaxAckPending: 10_000, HandleTimeout: 30 * time.Second, TurnWaitMax: 2 * time.Second,
	}}
	if d != want {
		t.Fatalf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).WithDefaults(); got != d {
		t.Fatalf("zero config with defaults = %+v", got)
	}
	// Defaults adapt to the fields that are set.
	got := Config{ProvisionTimeout: 20 * time.Second, Runner: effects.RunnerConfig{Concurrency: 20_000, RetryBase: time.Minute}}.WithDefaults()
	if got.Runner.MaxAckPending != 20_000 || got.Runner.HandleTimeout != time.Minute || got.Runner.RetryMax != time.Minute {
		t.Fatalf("derived defaults = %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultRetriesLastAboutThreeHours checks the arithmetic of
// DefaultMaxAttempts: the mean of the waits between the attempts is within
// KooGallery's 3 h window give or take 15 minutes, and even the shortest
// draw keeps retrying for over 1.5 h.
func TestDefaultRetriesLastAboutThreeHours(t *testing.T) {
	c := DefaultRunnerConfig()
	var lo, mean time.Duration
	for n := 1; n < c.MaxAttempts; n++ {
		d := c.RetryMax
		if n-1 < 63 && c.RetryBase <= c.RetryMax>>(n-1) {
			d = c.RetryBase << (n - 1)
		}
		lo += d / 2
		mean += d * 3 / 4
	}
	if mean < 2*time.Hour+45*time.Minute || mean > 3*time.Hour+15*time.Minute || lo < 90*time.Minute {
		t.Fatalf("retries wait %s on average, at least %s", mean, lo)
	}
	t.Logf("%d attempts: the waits last %s on average, %s at least", c.MaxAttempts, mean.Round(time.Second), lo.Round(time.Second))
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"timeout":              {func(c *Config) { c.ProvisionTimeout = -time.Second }, "ProvisionTimeout"},
		"concurrency":          {func(c *Config) { c.Runner.Concurrency = -1 }, "Concurrency"},
		"max ack pending":      {func(c *Config) { c.Runner.MaxAckPending = 15 }, "MaxAckPending"},
		"max attempts":         {func(c *Config) { c.Runner.MaxAttempts = -1 }, "MaxAttempts"},
		"retry base":           {func(c *Config) { c.Runner.RetryBase = -time.Second }, "RetryBase"},
		"retry max below base": {func(c *Config) { c.Runner.RetryMax = 100 * time.Millisecond }, "RetryMax"},
	}
	for name, tc := range cases {
		c := DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", name, err, tc.want)
		}
	}
}
