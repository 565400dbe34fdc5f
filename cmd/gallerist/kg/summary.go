package kg

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Summary is the outcome of a load run (`kg load --json` prints it).
//
// Counts add up: Calls = OK + Errors = the sum of Results = the sum of the
// activities' Calls; Results["transport"] = the sum of TransportErrors.
type Summary struct {
	Mode        string  `json:"mode"` // "rate" (open loop) or "max" (closed loop)
	TargetRate  float64 `json:"targetRate,omitempty"`
	Concurrency int     `json:"concurrency"`
	Mix         string  `json:"mix"`
	Existing    int     `json:"existing"` // instances seeded before the run
	// Scheduled is the number of calls the open loop scheduled.
	Scheduled      int     `json:"scheduled,omitempty"`
	Calls          int     `json:"calls"`
	OK             int     `json:"ok"`     // 000000 or 000004 with a valid Body-Sign
	Errors         int     `json:"errors"` // every other call
	ElapsedSeconds float64 `json:"elapsedSeconds"`
	CallsPerSecond float64 `json:"callsPerSecond"`
	// LatencyMs: from the scheduled send time (--rate) or the send (--max)
	// to the whole answer read.
	LatencyMs Percentiles `json:"latencyMs"`
	// SendDelayMs (--rate): from the scheduled time to the actual send; a
	// large value means the load tool ran out of clients or CPU.
	SendDelayMs *Percentiles `json:"sendDelayMs,omitempty"`
	// Results counts the calls by resultCode ("HTTP <status>" for an answer
	// without one, "transport" for no answer).
	Results         map[string]int             `json:"results"`
	TransportErrors map[string]int             `json:"transportErrors,omitempty"`
	BadBodySign     int                        `json:"badBodySign"`
	Activities      map[string]ActivitySummary `json:"activities"`
	Server          *ServerCPU                 `json:"server,omitempty"`
	Interrupted     bool                       `json:"interrupted,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ActivitySummary is one activity's share of a run.
type ActivitySummary struct {
	Calls  int     `json:"calls"`
	Errors int     `json:"errors"`
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
}

// ServerCPU is the server's CPU during the run, from /proc/PID/stat.
type ServerCPU struct {
	PID              int     `json:"pid"`
	CPUSeconds       float64 `json:"cpuSeconds"`
	CPUMicrosPerCall float64 `json:"cpuMicrosPerCall"`
	Cores            float64 `json:"cores"`
}

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3
// significant digits.
const (
	histMin  = 1
	histMax  = int64(10 * time.Minute / time.Microsecond)
	histSigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigs) }

type activityRec struct {
	hist   *hdrhistogram.Histogram
	errors int
}

// recorder collects the outcomes of a run; safe for concurrent use.
type recorder struct {
	mu        sync.Mutex
	all       *hdrhistogram.Histogram
	delay     *hdrhistogram.Histogram
	delays    bool
	acts      map[string]*activityRec
	results   map[string]int
	transport map[string]int
	badSign   int
	ok, calls int
	lastDone  time.Time
}

func newRecorder() *recorder {
	return &recorder{all: newHist(), delay: newHist(), acts: map[string]*activityRec{},
		results: map[string]int{}, transport: map[string]int{}}
}

func micros(d time.Duration) int64 { return max(histMin, min(histMax, d.Microseconds())) }

func (r *recorder) record(activity string, latency, delay time.Duration, withDelay bool, o outcome) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.lastDone = now
	_ = r.all.RecordValue(micros(latency)) // clamped into range: never fails
	if withDelay {
		r.delays = true
		_ = r.delay.RecordValue(micros(delay))
	}
	a := r.acts[activity]
	if a == nil {
		a = &activityRec{hist: newHist()}
		r.acts[activity] = a
	}
	_ = a.hist.RecordValue(micros(latency))
	r.results[o.result]++
	if o.transport != "" {
		r.transport[o.transport]++
	}
	if o.result != "transport" && !o.signOK {
		r.badSign++
	}
	if o.ok() {
		r.ok++
	} else {
		a.errors++
	}
}

func (r *recorder) counts() (calls, errors int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.calls - r.ok
}

func ms(us int64) float64 { return float64(us) / 1000 }

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

func (r *recorder) summary(start time.Time) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{Calls: r.calls, OK: r.ok, Errors: r.calls - r.ok, LatencyMs: percentiles(r.all),
		Results: map[string]int{}, BadBodySign: r.badSign, Activities: map[string]ActivitySummary{}}
	if r.calls > 0 {
		s.ElapsedSeconds = r.lastDone.Sub(start).Seconds()
		if s.ElapsedSeconds > 0 {
			s.CallsPerSecond = float64(r.calls) / s.ElapsedSeconds
		}
	}
	if r.delays {
		p := percentiles(r.delay)
		s.SendDelayMs = &p
	}
	for k, v := range r.results {
		s.Results[k] = v
	}
	if len(r.transport) > 0 {
		s.TransportErrors = map[string]int{}
		for k, v := range r.transport {
			s.TransportErrors[k] = v
		}
	}
	for k, a := range r.acts {
		s.Activities[k] = ActivitySummary{Calls: int(a.hist.TotalCount()), Errors: a.errors,
			P50Ms: ms(a.hist.ValueAtQuantile(50)), P99Ms: ms(a.hist.ValueAtQuantile(99))}
	}
	return s
}

func writeSummary(w io.Writer, s Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("kg load: write summary: %w", err)
		}
		return nil
	}
	var b strings.Builder
	switch s.Mode {
	case "rate":
		fmt.Fprintf(&b, "open loop at %g calls/s, at most %d in flight, mix %s, %d instances seeded\n", s.TargetRate, s.Concurrency, s.Mix, s.Existing)
	default:
		fmt.Fprintf(&b, "closed loop (--max) with %d clients, mix %s, %d instances seeded\n", s.Concurrency, s.Mix, s.Existing)
	}
	if s.Interrupted {
		b.WriteString("INTERRUPTED: partial summary\n")
	}
	fmt.Fprintf(&b, "calls      %d in %.2fs = %.0f calls/s; ok %d, errors %d\n", s.Calls, s.ElapsedSeconds, s.CallsPerSecond, s.OK, s.Errors)
	from := "from the send"
	if s.Mode == "rate" {
		from = "from the scheduled time"
	}
	l := s.LatencyMs
	fmt.Fprintf(&b, "latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms (%s)\n", f3(l.P50), f3(l.P90), f3(l.P99), f3(l.P999), f3(l.Max), from)
	if d := s.SendDelayMs; d != nil {
		fmt.Fprintf(&b, "send delay p50 %s  p99 %s  max %s ms (scheduled → sent; large = the load tool fell behind)\n", f3(d.P50), f3(d.P99), f3(d.Max))
	}
	fmt.Fprintf(&b, "results    %s\n", countsText(s.Results))
	if len(s.TransportErrors) > 0 {
		fmt.Fprintf(&b, "transport  %s\n", countsText(s.TransportErrors))
	}
	if s.BadBodySign > 0 {
		fmt.Fprintf(&b, "Body-Sign  %d answers missing or wrong\n", s.BadBodySign)
	}
	names := make([]string, 0, len(s.Activities))
	for k := range s.Activities {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "%-22s %8s %8s %9s %9s\n", "activity", "calls", "errors", "p50 ms", "p99 ms")
	for _, k := range names {
		a := s.Activities[k]
		fmt.Fprintf(&b, "%-22s %8d %8d %9s %9s\n", k, a.Calls, a.Errors, f3(a.P50Ms), f3(a.P99Ms))
	}
	if sv := s.Server; sv != nil {
		fmt.Fprintf(&b, "server pid %d: %.2fs CPU = %.0f µs/call, %.2f cores\n", sv.PID, sv.CPUSeconds, sv.CPUMicrosPerCall, sv.Cores)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("kg load: write summary: %w", err)
	}
	return nil
}

// f3 writes a millisecond figure with about three significant digits,
// never in exponent form.
func f3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func countsText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// procCPU is a process's user+system CPU time.
type procCPU time.Duration

func (c procCPU) Seconds() float64    { return time.Duration(c).Seconds() }
func (c procCPU) Microseconds() int64 { return time.Duration(c).Microseconds() }

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat times: 100 on
// every mainstream architecture.
const clockTicks = 100

// readProcCPU reads utime+stime of pid from /proc/PID/stat (Linux).
func readProcCPU(pid int) (procCPU, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read the server's CPU time (Linux /proc only): %w", err)
	}
	return parseProcStat(string(raw))
}

// parseProcStat reads fields 14 (utime) and 15 (stime) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses.
func parseProcStat(s string) (procCPU, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat line %q", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat line %q", s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat times %q %q", f[11], f[12])
	}
	return procCPU(time.Duration(ut+st) * time.Second / clockTicks), nil
}
