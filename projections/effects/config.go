package effects

import (
	"fmt"
	"time"
)

// RunnerConfig tunes a [Runner]. Zero fields take the values of
// [DefaultRunnerConfig] in [NewRunner]. Every replica sharing an effect's
// durable consumer must use the same AckWait and MaxAckPending: each
// replica's Start writes them to the consumer.
type RunnerConfig struct {
	// RetryBase and RetryMax shape the exponential backoff between the
	// attempts of one event: the wait after attempt n is drawn uniformly
	// from [d/2, d), d = min(RetryBase·2ⁿ⁻¹, RetryMax).
	RetryBase, RetryMax time.Duration
	// MaxAttempts is how many times the handler is tried for one event
	// before the event is parked (an error wrapped by [Permanent] parks at
	// once). Attempts are counted per delivery: an event handed back at a
	// shutdown, or redelivered after a crash, starts counting again.
	MaxAttempts int
	// Concurrency bounds the handler calls in flight in this runner (and
	// the messages it pulls ahead). An event waiting for its next attempt
	// does not hold a slot.
	Concurrency int
	// AckWait is how long JetStream waits for an ack before redelivering.
	// The runner extends it (InProgress) every AckWait/3 while it works on
	// or waits with a message, so it only matters when a runner dies.
	AckWait time.Duration

	// MaxAckPending bounds the messages delivered and not yet acked across
	// all replicas: those being handled, waiting for a retry, or waiting
	// for an earlier event of their instance. When it is reached the
	// consumer delivers nothing new, so keep it well above the number of
	// instances expected to fail at once. Default 10000; at least
	// Concurrency.
	MaxAckPending int
	// HandleTimeout bounds one handler call. Default 30s.
	HandleTimeout time.Duration
	// TurnWaitMax caps the delay before an event is offered again while an
	// earlier event of its instance is still being handled (the delay
	// starts at 25ms and doubles per delivery). Default 2s.
	TurnWaitMax time.Duration
}

// DefaultRunnerConfig returns the defaults: RetryBase 1s, RetryMax 5m,
// MaxAttempts 12 (about 17 minutes of retries), Concurrency 16, AckWait 30s,
// MaxAckPending 10000, HandleTimeout 30s, TurnWaitMax 2s.
func DefaultRunnerConfig() RunnerConfig {
	return RunnerConfig{
		RetryBase: time.Second, RetryMax: 5 * time.Minute, MaxAttempts: 12,
		Concurrency: 16, AckWait: 30 * time.Second,
		MaxAckPending: 10_000, HandleTimeout: 30 * time.Second, TurnWaitMax: 2 * time.Second,
	}
}

func (c RunnerConfig) withDefaults() RunnerConfig {
	d := DefaultRunnerConfig()
	if c.RetryBase == 0 {
		c.RetryBase = d.RetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(d.RetryMax, c.RetryBase)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.AckWait == 0 {
		c.AckWait = d.AckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(d.MaxAckPending, c.Concurrency)
	}
	if c.HandleTimeout == 0 {
		c.HandleTimeout = d.HandleTimeout
	}
	if c.TurnWaitMax == 0 {
		c.TurnWaitMax = d.TurnWaitMax
	}
	return c
}

// minAckWait keeps the InProgress heartbeat (every AckWait/3) sensible.
const minAckWait = 300 * time.Millisecond

// Validate checks the config as given (NewRunner applies the defaults
// first).
func (c RunnerConfig) Validate() error {
	switch {
	case c.RetryBase <= 0:
		return fmt.Errorf("effects: RetryBase must be > 0, got %s", c.RetryBase)
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("effects: RetryMax (%s) must be ≥ RetryBase (%s)", c.RetryMax, c.RetryBase)
	case c.MaxAttempts < 1:
		return fmt.Errorf("effects: MaxAttempts must be ≥ 1, got %d", c.MaxAttempts)
	case c.Concurrency < 1:
		return fmt.Errorf("effects: Concurrency must be ≥ 1, got %d", c.Concurrency)
	case c.AckWait < minAckWait:
		return fmt.Errorf("effects: AckWait must be ≥ %s, got %s", minAckWait, c.AckWait)
	case c.MaxAckPending < c.Concurrency:
		return fmt.Errorf("effects: MaxAckPending (%d) must be ≥ Concurrency (%d)", c.MaxAckPending, c.Concurrency)
	case c.HandleTimeout <= 0:
		return fmt.Errorf("effects: HandleTimeout must be > 0, got %s", c.HandleTimeout)
	case c.TurnWaitMax <= 0:
		return fmt.Errorf("effects: TurnWaitMax must be > 0, got %s", c.TurnWaitMax)
	}
	return nil
}

// backoff is the wait after attempt: d = min(base·2^(attempt-1), ceil),
// jittered uniformly into [d/2, d) with j in [0, 1).
func backoff(attempt int, base, ceil time.Duration, j float64) time.Duration {
	d := ceil
	if attempt < 1 {
		attempt = 1
	}
	if n := attempt - 1; n < 63 && base <= ceil>>n {
		d = base << n
	}
	half := d / 2
	return half + time.Duration(j*float64(d-half))
}
