package kg

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// ErrLoadErrors is wrapped by the error of a load run in which some calls
// failed (the summary says which).
var ErrLoadErrors = errors.New("some calls failed")

// loadConfig is one load run.
type loadConfig struct {
	target      target
	insecure    bool
	rate        float64 // calls/s; 0 = --max
	duration    time.Duration
	calls       int
	concurrency int
	mix         string
	existing    int
	serverPID   int
	timeout     time.Duration
	progress    time.Duration
	log         *slog.Logger
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("kg load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf targetFlags
	tf.register(fs)
	rate := fs.Float64("rate", 0, "open loop: schedule this many calls per second at fixed intervals; latency counts from the scheduled time")
	maxRate := fs.Bool("max", false, "closed loop: --concurrency clients send back to back, as fast as the server answers")
	duration := fs.Duration("duration", 0, "run this long (with --rate: schedule rate×duration calls)")
	calls := fs.Int("calls", 0, "run this many calls (with --duration: whichever comes first)")
	concurrency := fs.Int("concurrency", 0, "clients (--max; default 64) or most calls in flight (--rate; default max(64, rate/20)); one keep-alive connection each")
	mix := fs.String("mix", "v2", "v2: per 20 calls 2 newInstance, 10 queryInstance, 4 refreshInstance, 4 updateInstanceStatus; or one activity of those alone")
	existing := fs.Int("existing", 500, "instances created (newInstance) before the run, for the query, refresh and status calls")
	serverPID := fs.Int("server-pid", 0, "Linux: read /proc/PID/stat before and after to report the server's CPU per call and cores used")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on one call (KooGallery waits 5s); a call over it is a transport error")
	progress := fs.Duration("progress", 5*time.Second, "log progress this often (0: never)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg load: unexpected argument %q", fs.Arg(0))
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	t, err := tf.resolve()
	if err != nil {
		return err
	}
	cfg := loadConfig{target: t, insecure: tf.insecure, rate: *rate, duration: *duration, calls: *calls,
		concurrency: *concurrency, mix: *mix, existing: *existing, serverPID: *serverPID, timeout: *timeout,
		progress: *progress, log: slog.New(slog.NewTextHandler(stderr, nil))}
	if err := cfg.validate(*maxRate); err != nil {
		return err
	}
	sum, err := runLoadWith(ctx, cfg)
	if err != nil {
		return err
	}
	if err := writeSummary(stdout, sum, *asJSON); err != nil {
		return err
	}
	if sum.Errors > 0 {
		return fmt.Errorf("kg load: %w: %d of %d", ErrLoadErrors, sum.Errors, sum.Calls)
	}
	return nil
}

func (c *loadConfig) validate(maxRate bool) error {
	switch {
	case c.target.family.Name() != FamilySaaSV2:
		return fmt.Errorf("--family %s: kg load drives SaaS V2 only for now", c.target.family.Name())
	case maxRate && c.rate != 0:
		return errors.New("give --rate N or --max, not both")
	case !maxRate && c.rate == 0:
		return errors.New("give --rate N (open loop) or --max (closed loop)")
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0):
		return fmt.Errorf("--rate must be a positive number, got %v", c.rate)
	case c.duration < 0:
		return fmt.Errorf("--duration must be positive, got %s", c.duration)
	case c.calls < 0:
		return fmt.Errorf("--calls must be positive, got %d", c.calls)
	case c.duration == 0 && c.calls == 0:
		return errors.New("give --duration D or --calls N")
	case c.concurrency < 0:
		return fmt.Errorf("--concurrency must be positive, got %d", c.concurrency)
	case c.existing < 0:
		return fmt.Errorf("--existing must not be negative, got %d", c.existing)
	case c.timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", c.timeout)
	case c.serverPID < 0:
		return fmt.Errorf("--server-pid must be positive, got %d", c.serverPID)
	}
	if _, err := mixOf(c.mix); err != nil {
		return err
	}
	if c.existing == 0 && c.mix != "newInstance" {
		return fmt.Errorf("--existing 0: --mix %s needs existing instances", c.mix)
	}
	if c.rate > 0 && c.duration > 0 && c.rate*c.duration.Seconds() < 1 {
		return fmt.Errorf("--rate %v for --duration %s schedules no call", c.rate, c.duration)
	}
	if c.concurrency == 0 {
		c.concurrency = 64
		if c.rate > 0 {
			c.concurrency = min(1024, max(64, int(math.Ceil(c.rate/20))))
		}
	}
	if c.serverPID > 0 {
		if _, err := readProcCPU(c.serverPID); err != nil {
			return fmt.Errorf("--server-pid %d: %w", c.serverPID, err)
		}
	}
	return nil
}

// mixOf returns the activity of the i-th call of a mix.
func mixOf(name string) (func(i int) string, error) {
	switch name {
	case "v2":
		return realisticMix, nil
	case "newInstance", "queryInstance", "refreshInstance", "updateInstanceStatus":
		return func(int) string { return name }, nil
	}
	return nil, fmt.Errorf("--mix %q: want v2, newInstance, queryInstance, refreshInstance or updateInstanceStatus", name)
}

// realisticMix: per 20 calls, 2 newInstance, 10 queryInstance, 4
// refreshInstance and 4 updateInstanceStatus (cmd/gallerist/app's
// BenchmarkV2Mix).
func realisticMix(i int) string {
	switch r := i % 20; {
	case r < 2:
		return "newInstance"
	case r < 12:
		return "queryInstance"
	case r < 16:
		return "refreshInstance"
	}
	return "updateInstanceStatus"
}

// bodies builds the JSON bodies of the mix: members sorted and every value
// a string, so that the canonical forms (a), (b) and (c) agree.
type bodies struct {
	tag    string   // distinguishes the run's orders from other runs'
	ids    [][]byte // JSON-quoted ids of the existing instances
	expire string
}

func (b *bodies) body(i int, activity string) []byte {
	n := strconv.Itoa(i)
	buf := make([]byte, 0, 192)
	switch activity {
	case "newInstance":
		buf = append(buf, `{"activity":"newInstance","businessId":"`...)
		buf = append(buf, b.tag+"-n"+n...)
		buf = append(buf, `","orderId":"`...)
		buf = append(buf, b.tag+"-o"+n...)
		buf = append(buf, `","orderLineId":"`...)
		buf = append(buf, b.tag+"-o"+n+"-1"...)
		return append(buf, `"}`...)
	case "queryInstance":
		buf = append(buf, `{"activity":"queryInstance","instanceId":`...)
		buf = append(buf, b.ids[i%len(b.ids)]...)
		return append(buf, '}')
	case "refreshInstance":
		buf = append(buf, `{"activity":"refreshInstance","expireTime":"`...)
		buf = append(buf, b.expire...)
		buf = append(buf, `","instanceId":`...)
		buf = append(buf, b.ids[i%len(b.ids)]...)
		buf = append(buf, `,"orderId":"`...)
		buf = append(buf, b.tag+"-r"+n...)
		buf = append(buf, `","orderLineId":"`...)
		buf = append(buf, b.tag+"-r"+n+"-1"...)
		return append(buf, `","scene":"RENEWAL"}`...)
	}
	status := "FREEZE"
	if i%2 == 0 {
		status = "UNFREEZE"
	}
	buf = append(buf, `{"activity":"updateInstanceStatus","instanceId":`...)
	buf = append(buf, b.ids[i%len(b.ids)]...)
	buf = append(buf, `,"status":"`...)
	buf = append(buf, status...)
	return append(buf, `"}`...)
}

// outcome is the result of one call.
type outcome struct {
	result     string // resultCode, "HTTP <status>" without one, or "transport"
	transport  string // kind of transport error
	signOK     bool
	instanceID string
}

func (o outcome) ok() bool {
	return o.signOK && (o.result == string(koogallery.CodeSuccess) || o.result == string(koogallery.CodeProcessing))
}

// caller sends signed calls.
type caller struct {
	t       target
	client  *http.Client
	timeout time.Duration
}

func (c *caller) call(ctx context.Context, body []byte) outcome {
	p, err := c.t.family.Sign(c.t.url, Message{Body: body}, time.Now())
	if err != nil {
		return outcome{result: "transport", transport: "sign: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := p.Request(ctx)
	if err != nil {
		return outcome{result: "transport", transport: "request: " + err.Error()}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return outcome{result: "transport", transport: transportKind(err)}
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return outcome{result: "transport", transport: transportKind(err)}
	}
	o := outcome{signOK: koogallery.VerifyBodySign(c.t.key, raw, resp.Header.Get(koogallery.BodySignHeader)) == nil}
	var a struct {
		ResultCode string `json:"resultCode"`
		InstanceID string `json:"instanceId"`
	}
	if json.Unmarshal(raw, &a) != nil || a.ResultCode == "" {
		o.result = "HTTP " + strconv.Itoa(resp.StatusCode)
		return o
	}
	o.result, o.instanceID = a.ResultCode, a.InstanceID
	return o
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// runLoadWith seeds the instances, runs the load and summarises it.
func runLoadWith(ctx context.Context, cfg loadConfig) (Summary, error) {
	mix, err := mixOf(cfg.mix)
	if err != nil {
		return Summary{}, err
	}
	tr := httpTransport(cfg.concurrency, cfg.insecure)
	defer tr.CloseIdleConnections()
	c := &caller{t: cfg.target, client: &http.Client{Transport: tr}, timeout: cfg.timeout}
	// In-flight calls finish after Ctrl-C (bounded by --timeout): the
	// partial summary then counts no call as failed because of it.
	callCtx := context.WithoutCancel(ctx)

	b := &bodies{tag: "kg" + strings.ToLower(randomText(8)), expire: time.Now().UTC().AddDate(1, 0, 0).Format("20060102150405") + "000"}
	if cfg.existing > 0 {
		cfg.log.Info("seeding instances", "existing", cfg.existing, "url", cfg.target.url.Redacted())
		if b.ids, err = seed(ctx, callCtx, c, b.tag, cfg.existing, cfg.concurrency); err != nil {
			return Summary{}, err
		}
	}

	rec := newRecorder()
	var cpu0 procCPU
	if cfg.serverPID > 0 {
		if cpu0, err = readProcCPU(cfg.serverPID); err != nil {
			return Summary{}, fmt.Errorf("--server-pid %d: %w", cfg.serverPID, err)
		}
	}
	mode := "max"
	if cfg.rate > 0 {
		mode = "rate"
	}
	cfg.log.Info("load starts", "mode", mode, "rate", cfg.rate, "duration", cfg.duration, "calls", cfg.calls, "concurrency", cfg.concurrency, "mix", cfg.mix)
	start := time.Now()
	stopProgress := progressLog(cfg, rec, start)
	var scheduled int
	if cfg.rate > 0 {
		scheduled = openLoop(ctx, callCtx, cfg, c, b, mix, rec, start)
	} else {
		closedLoop(ctx, callCtx, cfg, c, b, mix, rec, start)
	}
	stopProgress()
	sum := rec.summary(start)
	sum.Mode, sum.TargetRate, sum.Concurrency, sum.Mix, sum.Existing = mode, cfg.rate, cfg.concurrency, cfg.mix, len(b.ids)
	sum.Scheduled = scheduled
	sum.Interrupted = ctx.Err() != nil
	if cfg.serverPID > 0 {
		cpu1, err := readProcCPU(cfg.serverPID)
		if err != nil {
			return sum, fmt.Errorf("--server-pid %d: %w", cfg.serverPID, err)
		}
		s := &ServerCPU{PID: cfg.serverPID, CPUSeconds: (cpu1 - cpu0).Seconds()}
		if sum.Calls > 0 {
			s.CPUMicrosPerCall = float64((cpu1 - cpu0).Microseconds()) / float64(sum.Calls)
		}
		if sum.ElapsedSeconds > 0 {
			s.Cores = s.CPUSeconds / sum.ElapsedSeconds
		}
		sum.Server = s
	}
	cfg.log.Info("load done", "calls", sum.Calls, "errors", sum.Errors, "calls_per_s", math.Round(sum.CallsPerSecond), "interrupted", sum.Interrupted)
	return sum, nil
}

// seed creates n instances with newInstance and returns their ids, JSON-quoted.
func seed(ctx, callCtx context.Context, c *caller, tag string, n, conc int) ([][]byte, error) {
	ids := make([][]byte, n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	failed := 0
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s := strconv.Itoa(i)
				body := []byte(`{"activity":"newInstance","businessId":"` + tag + `-s` + s + `","orderId":"` + tag + `-so` + s + `","orderLineId":"` + tag + `-so` + s + `-1"}`)
				o := c.call(callCtx, body)
				if !o.ok() || o.instanceID == "" {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("answered %s (Body-Sign valid: %v, instanceId %q)", o.result+o.transportSuffix(), o.signOK, o.instanceID)
					}
					mu.Unlock()
					continue
				}
				q, _ := json.Marshal(o.instanceID) // a string always marshals
				ids[i] = q
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kg load: seeding interrupted: %w", err)
	}
	if failed > 0 {
		return nil, fmt.Errorf("kg load: seeding --existing %d: %d newInstance calls failed; first: %w", n, failed, firstErr)
	}
	return ids, nil
}

func (o outcome) transportSuffix() string {
	if o.transport == "" {
		return ""
	}
	return " (" + o.transport + ")"
}

// openLoop schedules calls at fixed intervals from start and measures each
// one's latency from its scheduled time, so that a slow server cannot hide
// latency by slowing the load down (no coordinated omission). At most
// cfg.concurrency calls are in flight; a call that waits for a free client
// counts the wait as latency. It returns the number of calls scheduled.
func openLoop(ctx, callCtx context.Context, cfg loadConfig, c *caller, b *bodies, mix func(int) string, rec *recorder, start time.Time) int {
	n := math.MaxInt
	if cfg.duration > 0 {
		n = int(cfg.rate * cfg.duration.Seconds())
	}
	if cfg.calls > 0 {
		n = min(n, cfg.calls)
	}
	type job struct {
		i  int
		at time.Time
	}
	jobs := make(chan job, cfg.concurrency)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for j := range jobs {
				act := mix(j.i)
				body := b.body(j.i, act)
				sent := time.Now()
				o := c.call(callCtx, body)
				rec.record(act, time.Since(j.at), sent.Sub(j.at), true, o)
			}
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	scheduled := 0
loop:
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(float64(i) / cfg.rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		}
		select {
		case jobs <- job{i: i, at: at}:
			scheduled++
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	return scheduled
}

// closedLoop runs cfg.concurrency clients that send back to back.
func closedLoop(ctx, callCtx context.Context, cfg loadConfig, c *caller, b *bodies, mix func(int) string, rec *recorder, start time.Time) {
	var deadline time.Time
	if cfg.duration > 0 {
		deadline = start.Add(cfg.duration)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				i := int(next.Add(1) - 1)
				if cfg.calls > 0 && i >= cfg.calls {
					return
				}
				act := mix(i)
				body := b.body(i, act)
				sent := time.Now()
				o := c.call(callCtx, body)
				rec.record(act, time.Since(sent), 0, false, o)
			}
		})
	}
	wg.Wait()
}

// progressLog logs the calls so far every cfg.progress; the returned
// function stops it.
func progressLog(cfg loadConfig, rec *recorder, start time.Time) (stop func()) {
	if cfg.progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				calls, errs := rec.counts()
				el := time.Since(start)
				cfg.log.Info("progress", "elapsed", el.Round(time.Millisecond), "calls", calls, "errors", errs,
					"calls_per_s", math.Round(float64(calls)/el.Seconds()))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
