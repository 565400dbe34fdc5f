package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/cmd/gallerist/app"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/projections/views"
)

const benchKey = "BENCH-ACCESS-KEY-0123456789"

// BenchmarkV2Mix drives the real server end to end over HTTP on loopback
// with a realistic signed mix of SaaS V2 calls: 25% newInstance (new
// orders), 45% queryInstance, 15% refreshInstance, 15% updateInstanceStatus.
// Requests are signed before the timer starts so that the client's signing
// does not compete with the server for the CPU. It reports calls/s and the
// p50/p99 latency of one call.
//
//	go test -run '^$' -bench BenchmarkV2Mix -benchtime 20000x ./cmd/gallerist/app/
//
// The read models are off here (this measures the production interface);
// BenchmarkV2MixWithViews runs the same mix with the SQLite views projected
// in the same process.
func BenchmarkV2Mix(b *testing.B) {
	for _, mode := range []bus.SyncMode{bus.SyncInterval, bus.SyncAlways} {
		b.Run("sync="+string(mode), func(b *testing.B) { benchMix(b, mode, false, realisticMix) })
	}
}

// BenchmarkV2MixWithViews is BenchmarkV2Mix with the default SQLite read
// models following the log in the same process (they share the 2 cores).
// It also reports the projection lag under that load: every 20ms the
// stream's last sequence is noted, and the lag of a note is the time until
// every view's checkpoint reached it (lag_p50_ms, lag_p99_ms, lag_max_ms),
// plus the largest number of entries the views were behind (lag_max_entries).
func BenchmarkV2MixWithViews(b *testing.B) {
	benchMix(b, bus.SyncInterval, true, realisticMix)
}

// BenchmarkV2Activity measures one activity alone (embedded NATS, default
// sync), to show what each costs.
func BenchmarkV2Activity(b *testing.B) {
	for _, act := range []string{"newInstance", "queryInstance", "refreshInstance", "updateInstanceStatus"} {
		b.Run("activity="+act, func(b *testing.B) {
			benchMix(b, bus.SyncInterval, false, func(int) string { return act })
		})
	}
}

// realisticMix: per 20 calls, 2 newInstance, 10 queryInstance (KooGallery
// polls after 000004, the buyer's console reads it synchronously, dial tests
// replay it), 4 refreshInstance and 4 updateInstanceStatus.
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

func benchMix(b *testing.B, mode bus.SyncMode, withViews bool, mix func(int) string) {
	cfg := app.Defaults()
	cfg.Listen, cfg.DataDir, cfg.Sync = "127.0.0.1:0", b.TempDir(), mode
	cfg.DisableViews = !withViews
	// A wide timestamp window: requests are signed before the timer starts.
	cfg.Routes = []config.Route{{Path: "/kg/v2", Family: config.FamilySaaSV2, Keys: []config.Key{{Value: benchKey}}, TimestampWindow: time.Hour}}
	ctx := context.Background()
	a, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = a.Shutdown(ctx) }()
	base := "http://" + a.Addr() + "/kg/v2"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

	// Existing instances the query/refresh/status calls act on.
	const existing = 500
	ids := make([]string, existing)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-inst-%d", i)
		body := mustJSON(map[string]string{"activity": "newInstance", "orderId": "bench-o-" + ids[i], "orderLineId": "l1", "businessId": ids[i]})
		if code := send(client, signed(base, body)); code != "000000" {
			b.Fatalf("seeding instance %d: %s", i, code)
		}
	}
	reqs := make([]request, b.N)
	for i := range reqs {
		id := ids[i%existing]
		var body []byte
		switch mix(i) {
		case "newInstance":
			body = mustJSON(map[string]string{"activity": "newInstance", "orderId": fmt.Sprintf("bench-new-%d", i), "orderLineId": "l1", "businessId": fmt.Sprintf("bench-new-%d-b", i)})
		case "queryInstance":
			body = mustJSON(map[string]string{"activity": "queryInstance", "instanceId": id})
		case "refreshInstance":
			body = mustJSON(map[string]string{"activity": "refreshInstance", "scene": "RENEWAL", "orderId": fmt.Sprintf("bench-r-%d", i), "orderLineId": "l1", "instanceId": id, "expireTime": "20301231235959000"})
		default:
			status := "FREEZE"
			if i%2 == 0 {
				status = "UNFREEZE"
			}
			body = mustJSON(map[string]string{"activity": "updateInstanceStatus", "instanceId": id, "status": status})
		}
		reqs[i] = signed(base, body)
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failures sync.Map
	b.SetParallelism(32) // 32 × GOMAXPROCS concurrent clients
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var stopLag func() lagStats
	if withViews {
		stopLag = sampleLag(b, a)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			t0 := time.Now()
			code := send(client, reqs[i])
			lat[i] = time.Since(t0)
			if code != "000000" && code != "000004" {
				failures.Store(code, true)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if stopLag != nil {
		ls := stopLag()
		if len(ls.lags) > 0 {
			b.ReportMetric(float64(ls.lags[len(ls.lags)/2].Microseconds())/1000, "lag_p50_ms")
			b.ReportMetric(float64(ls.lags[len(ls.lags)*99/100].Microseconds())/1000, "lag_p99_ms")
			b.ReportMetric(float64(ls.lags[len(ls.lags)-1].Microseconds())/1000, "lag_max_ms")
		}
		b.ReportMetric(float64(ls.maxBehind), "lag_max_entries")
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
		syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
	failures.Range(func(k, _ any) bool { b.Errorf("a call answered %v", k); return true })
	per := map[string][]time.Duration{}
	for i := range reqs {
		per[mix(i)] = append(per[mix(i)], lat[i])
	}
	for k, v := range per {
		slices.Sort(v)
		b.Logf("%s p50 %v p99 %v max %v", k, v[len(v)/2], v[len(v)*99/100], v[len(v)-1])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	// CPU of the whole process (server and load generator) per call, and
	// how many of the machine's cores the run kept busy.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/call")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
}

type lagStats struct {
	lags      []time.Duration // sorted
	maxBehind uint64
}

// sampleLag notes the stream's last sequence every 20ms and measures how
// long the views took to reach each note; the returned stop ends the
// sampling once the views caught up with the last note.
func sampleLag(b *testing.B, a *app.App) (stop func() lagStats) {
	type note struct {
		at  time.Time
		seq uint64
	}
	proj, st := a.Projector(), a.Store().Stream()
	lowest := func() uint64 {
		return min(proj.Checkpoint(views.ViewInstances), proj.Checkpoint(views.ViewFacts), proj.Checkpoint(views.ViewEffects))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		out     lagStats
		pending []note
		wg      sync.WaitGroup
	)
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var doneAt time.Time
		for {
			done := ctx.Err() != nil
			if done && doneAt.IsZero() {
				doneAt = time.Now()
			}
			if !done {
				if info, err := st.Info(ctx); err == nil {
					pending = append(pending, note{at: time.Now(), seq: info.State.LastSeq})
				}
			}
			cp := lowest()
			for len(pending) > 0 && cp >= pending[0].seq {
				out.lags = append(out.lags, time.Since(pending[0].at))
				pending = pending[1:]
			}
			if n := len(pending); n > 0 && pending[n-1].seq > cp {
				out.maxBehind = max(out.maxBehind, pending[n-1].seq-cp)
			}
			if done && len(pending) == 0 {
				return
			}
			if done && time.Since(doneAt) > time.Minute {
				b.Errorf("views did not catch up within a minute of the load's end; %d notes pending", len(pending))
				return
			}
			<-t.C
		}
	})
	return func() lagStats {
		cancel()
		wg.Wait()
		slices.Sort(out.lags)
		return out
	}
}

type request struct {
	url  string
	body []byte
}

func signed(base string, body []byte) request {
	q := koogallery.SignV2Request([]byte(benchKey), body, time.Now(), koogallery.NewNonce())
	u, _ := url.Parse(base)
	u.RawQuery = q.Encode()
	return request{url: u.String(), body: body}
}

func send(c *http.Client, r request) string {
	resp, err := c.Post(r.url, "application/json;charset=utf8", bytes.NewReader(r.body))
	if err != nil {
		return "transport: " + err.Error()
	}
	defer resp.Body.Close()
	var out struct {
		ResultCode string `json:"resultCode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Sprintf("HTTP %d undecodable", resp.StatusCode)
	}
	return out.ResultCode
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
