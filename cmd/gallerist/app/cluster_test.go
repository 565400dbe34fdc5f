package app

// The scale topology of docker-compose.yml (design.md §8), in one process:
// a 3-node NATS JetStream cluster on loopback ports, an R3 event stream and
// nonce bucket, two gallerist replicas against it and their views in one
// PostgreSQL schema (TestClusterScaleTopology). Docker cannot run where the
// tests run; this is what proves the compose file's shape.
//
// The other tests here pin down, deterministically, what the cluster does
// only now and then and what the replicas make of it: a read answered by a
// follower a few milliseconds behind (TestClusterLaggingFollower*), a
// consumer that answers a moment late (TestClusterProvisioner*), a request
// lost with the node it went to (TestClusterStuckAppend*), a consumer that
// is gone for good (TestClusterViewsReader*).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gallerist/gallerist/internal/pgtest"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/aggregate"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
	"github.com/gallerist/gallerist/projections/provision"
	"github.com/gallerist/gallerist/projections/views"
)

// testCluster is a 3-node nats-server cluster with JetStream, running in
// this process.
type testCluster struct {
	// URLs are the client URLs, one per node (nats://127.0.0.1:<port>).
	URLs []string
	// Servers are the nodes, named n1..n3, in the order of URLs.
	Servers []*server.Server

	routePorts []int
	storeDirs  []string
}

// freePorts returns n distinct free loopback TCP ports. The listeners are
// held until all n are picked, so no port is returned twice; another
// process could still take one before the server binds it (unlikely).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startCluster starts three clustered nats-servers with JetStream on
// loopback, each with its own store directory, and waits until every node
// accepts clients and the JetStream meta group has a leader that sees all
// three peers, each of them current. They are shut down at cleanup (after
// anything started later, cleanups being last-in first-out).
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	const n = 3
	// Routes need the cluster ports before the servers start: pick them.
	// Client ports are chosen by the servers (RANDOM_PORT) and read back.
	c := &testCluster{routePorts: freePorts(t, n)}
	for i := range n {
		c.storeDirs = append(c.storeDirs, filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1)))
		c.Servers = append(c.Servers, c.run(t, i, server.RANDOM_PORT))
	}
	for _, srv := range c.Servers {
		c.URLs = append(c.URLs, c.ready(t, srv))
	}
	c.waitMeta(t)
	return c
}

// options are node i's server options with client port clientPort.
func (c *testCluster) options(i, clientPort int) *server.Options {
	var routes []*url.URL
	for j, p := range c.routePorts {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	return &server.Options{
		ServerName: fmt.Sprintf("n%d", i+1),
		Host:       "127.0.0.1",
		Port:       clientPort,
		JetStream:  true,
		StoreDir:   c.storeDirs[i],
		// nats-server arms its file store's first sync timer without its
		// lock; a long interval keeps a -race run from reporting it.
		SyncInterval: time.Hour,
		Cluster: server.ClusterOpts{
			Name: "gallerist-test", Host: "127.0.0.1", Port: c.routePorts[i],
		},
		Routes: routes,
		NoLog:  true,
		NoSigs: true,
	}
}

// run starts node i (without waiting) and shuts it down at cleanup.
func (c *testCluster) run(t *testing.T, i, clientPort int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(c.options(i, clientPort))
	if err != nil {
		t.Fatalf("nats-server n%d: %v", i+1, err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	go srv.Start()
	return srv
}

// ready waits until srv accepts clients and returns its client URL.
func (c *testCluster) ready(t *testing.T, srv *server.Server) string {
	t.Helper()
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatalf("nats-server %s not ready for connections", srv.Name())
	}
	return srv.ClientURL()
}

// waitMeta waits, like nats-server's own waitOnClusterReady, for a meta
// leader that sees all three peers, with every running node current.
func (c *testCluster) waitMeta(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.metaReady(len(c.Servers)) {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream meta group of %d nodes not ready after 30s", len(c.Servers))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metaReady reports whether a running node leads the JetStream meta group
// with peers peers, and every running node is current.
func (c *testCluster) metaReady(peers int) bool {
	var leader *server.Server
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			leader = s
		}
	}
	if leader == nil || len(leader.JetStreamClusterPeers()) != peers {
		return false
	}
	for _, s := range c.Servers {
		if s.Running() && !s.JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// index returns the position of the node named name.
func (c *testCluster) index(t *testing.T, name string) int {
	t.Helper()
	for i, s := range c.Servers {
		if s.Name() == name {
			return i
		}
	}
	t.Fatalf("no node %q in the cluster", name)
	return -1
}

// stop shuts node name down (gracefully: its raft leaderships are handed
// over first, as on a rolling restart) and waits until it is down.
func (c *testCluster) stop(t *testing.T, name string) {
	t.Helper()
	srv := c.Servers[c.index(t, name)]
	srv.Shutdown()
	srv.WaitForShutdown()
}

// restart starts node name again on its store directory and client port,
// and waits until it is back in the meta group.
func (c *testCluster) restart(t *testing.T, name string) {
	t.Helper()
	i := c.index(t, name)
	u, err := url.Parse(c.URLs[i])
	if err != nil {
		t.Fatal(err)
	}
	var port int
	if _, err := fmt.Sscan(u.Port(), &port); err != nil {
		t.Fatalf("client port of %s: %v", c.URLs[i], err)
	}
	c.Servers[i] = c.run(t, i, port)
	if got := c.ready(t, c.Servers[i]); got != c.URLs[i] {
		t.Fatalf("%s restarted on %s, was %s", name, got, c.URLs[i])
	}
	c.waitMeta(t)
}

// clusterConfig is the configuration of one gallerist replica on the
// cluster: every node's URL, R3, and a stream, subject prefix and nonce
// bucket named after suffix (shared by the replicas of one deployment).
func clusterConfig(urls []string, suffix string) Config {
	c := testConfig("")
	c.NATSURL = strings.Join(urls, ",")
	c.Replicas = 3
	c.Stream = "GALLERIST_CLUSTER_" + strings.ToUpper(suffix)
	c.Prefix = "gcluster." + strings.ToLower(suffix)
	c.NonceBucket = "gallerist_nonces_" + strings.ToLower(suffix)
	return c
}

// sharedViews returns the views DSN both replicas use, as docker-compose.yml
// gives them one PostgreSQL: a fresh schema in the machine's PostgreSQL,
// dropped at cleanup (after the replicas stopped). Without that PostgreSQL
// it says so and returns "": each replica then keeps its views in SQLite in
// its own data directory, and the test checks both; with
// GALLERIST_REQUIRE_SERVICES=1 that is a failure instead.
func sharedViews(t *testing.T) string {
	t.Helper()
	if err := pgtest.Reachable(); err != nil {
		if os.Getenv(pgtest.EnvRequireServices) == "1" {
			t.Fatalf("PostgreSQL for the views unreachable (%s) and %s=1: %v", pgtest.EnvDSN, pgtest.EnvRequireServices, err)
		}
		t.Logf("PostgreSQL for the views unreachable (%v): each replica keeps SQLite views of its own", err)
		return ""
	}
	return pgtest.Schema(t)
}

// viewsShow polls the views of every replica until instance id satisfies
// want (the projectors follow the stream asynchronously), for at most ten
// seconds.
func viewsShow(t *testing.T, what, id string, want func(views.Instance) bool, replicas ...*running) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range replicas {
		for {
			inst, _, err := r.Views().GetInstance(t.Context(), id)
			if err == nil && want(inst) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the views read through %s show %+v (%v; projector: %v)", what, r.Addr(), inst, err, r.Projector().Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// startReplica starts one gallerist replica on the cluster, with a data
// directory of its own (NATS does not use it with NATSURL set, but nothing
// a replica keeps on disk may land in the package directory or be shared
// by the replicas), and shuts it down at cleanup.
//
// A start that fails on a timeout is tried once more, as the restarting
// container of docker-compose.yml would be: on a fresh cluster the first
// request for the R3 stream can outlast the JetStream API's 5 s while its
// raft group elects a leader (seen now and then under -race).
// The shutdown is bounded, so that a replica that does not stop fails the
// test instead of hanging it.
func startReplica(t *testing.T, cfg Config) *running {
	t.Helper()
	cfg.DataDir = t.TempDir()
	var a *App
	for attempt := 1; ; attempt++ {
		// The App's effects live as long as Start's context: Shutdown ends them.
		var err error
		a, err = Start(context.Background(), cfg, testLogger())
		if err == nil {
			break
		}
		timedOut := errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline exceeded")
		if attempt == 2 || !timedOut {
			t.Fatalf("Start (attempt %d): %v", attempt, err)
		}
		t.Logf("Start failed (%v); starting again, as a restarting container would", err)
	}
	r := &running{App: a, kg: newKG(t, "http://"+a.Addr()+routePath)}
	t.Cleanup(func() {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- a.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown of the replica on %s: %v", a.Addr(), err)
			}
		case <-time.After(8 * time.Second):
			t.Errorf("Shutdown of the replica on %s has not returned after 8 s (given 5 s): something in App.close "+
				"waits without a bound", a.Addr())
		}
	})
	return r
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observer is a plain NATS client on the cluster, for stream info.
func observer(t *testing.T, urls []string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("gallerist-cluster-test"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect observer: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamCluster returns the stream's replica count and its current cluster
// view (leader and peers).
func streamCluster(ctx context.Context, js jetstream.JetStream, name string) (int, *jetstream.ClusterInfo, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, nil, err
	}
	return info.Config.Replicas, info.Cluster, nil
}

// peersOf lists the leader and the replicas of a stream's cluster view.
func peersOf(ci *jetstream.ClusterInfo) []string {
	if ci == nil {
		return nil
	}
	peers := []string{ci.Leader}
	for _, r := range ci.Replicas {
		peers = append(peers, r.Name)
	}
	slices.Sort(peers)
	return peers
}

// replayTransport sends every request with the query of a request seen
// before (its signature, timestamp and nonce): a replay of that request.
type replayTransport struct {
	rawQuery string
	base     http.RoundTripper
}

func (r *replayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.RawQuery = r.rawQuery
	return r.base.RoundTrip(req)
}

// recordTransport remembers the query of the last request it sent (one
// request at a time).
type recordTransport struct {
	rawQuery string
	base     http.RoundTripper
}

func (r *recordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.rawQuery = req.URL.RawQuery
	return r.base.RoundTrip(req)
}

// staleness counts fresh reads right after a write on the other replica
// that missed the write at first (used by the test's goroutine only).
type staleness struct {
	reads, stale int
	longest      time.Duration
}

// eventually runs read until it reports the write visible, polling for at
// most two seconds, and records whether the first read already saw it.
// Direct gets on an R3 stream may be answered by a follower that has not
// applied the write yet: such a miss is counted and logged, never hidden.
func (s *staleness) eventually(t *testing.T, what string, read func() (bool, string)) {
	t.Helper()
	start := time.Now()
	ok, last := read()
	s.reads++
	if ok {
		return
	}
	s.stale++
	t.Logf("STALE READ: %s missed the write at first: %s", what, last)
	for !ok {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%s: the write is still not visible after 2s: %s", what, last)
		}
		time.Sleep(5 * time.Millisecond)
		ok, last = read()
	}
	s.longest = max(s.longest, time.Since(start))
}

func (s *staleness) report(t *testing.T) {
	t.Logf("fresh reads across replicas: %d, missed the write at first: %d, longest until visible: %s", s.reads, s.stale, s.longest)
}

// leaderEvents returns the types of the events of stream id as the stream
// leader has them ($JS.API.STREAM.MSG.GET, answered by the leader only, not
// a direct get that a follower may answer), so that counts include every
// acknowledged append.
func leaderEvents(t *testing.T, nc *nats.Conn, a *App, kind string, keys ...string) []string {
	t.Helper()
	subj, err := a.Store().Subject(eventstore.StreamID{Kind: kind, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	api := "$JS.API.STREAM.MSG.GET." + a.Store().Config().Stream
	var types []string
	for from := uint64(1); ; {
		req, _ := json.Marshal(map[string]any{"seq": from, "next_by_subj": subj})
		m, err := nc.Request(api, req, 5*time.Second)
		if err != nil {
			t.Fatalf("message get on %s: %v", subj, err)
		}
		var resp struct {
			Message *struct {
				Seq  uint64 `json:"seq"`
				Data []byte `json:"data"`
			} `json:"message"`
			Error *struct {
				ErrCode     int    `json:"err_code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			t.Fatalf("message get on %s: %v: %s", subj, err, m.Data)
		}
		if resp.Error != nil {
			if resp.Error.ErrCode == 10037 { // no message found
				return types
			}
			t.Fatalf("message get on %s: %d %s", subj, resp.Error.ErrCode, resp.Error.Description)
		}
		if resp.Message == nil {
			t.Fatalf("message get on %s: %s", subj, m.Data)
		}
		env, err := eventstore.DecodeEnvelope(resp.Message.Data)
		if err != nil {
			t.Fatalf("event %d on %s: %v", resp.Message.Seq, subj, err)
		}
		types = append(types, env.Type)
		from = resp.Message.Seq + 1
	}
}

func count(types []string, typ string) int {
	n := 0
	for _, x := range types {
		if x == typ {
			n++
		}
	}
	return n
}

// untilOK sends body like KooGallery does after a failure or a timeout: the
// same body again (freshly signed, a new nonce) until the answer is ok or
// the deadline passes. It returns the answer and the number of attempts,
// and logs every failed attempt.
func untilOK(t *testing.T, k *kgClient, body map[string]any, ok func(answer) bool, within time.Duration) (answer, int) {
	t.Helper()
	a, n, failures, err := retry(t.Context(), k, body, ok, within)
	for _, f := range failures {
		t.Logf("retried: %s", f)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a, n
}

// retry is untilOK for goroutines other than the test's: it returns the
// failed attempts instead of logging them.
func retry(ctx context.Context, k *kgClient, body map[string]any, ok func(answer) bool, within time.Duration) (answer, int, []string, error) {
	deadline := time.Now().Add(within)
	var failures []string
	for attempt := 1; ; attempt++ {
		began := time.Now()
		a, err := k.send(body)
		if err == nil && ok(a) {
			return a, attempt, failures, nil
		}
		failures = append(failures, fmt.Sprintf("%v attempt %d after %s: %s %s %v",
			body["activity"], attempt, time.Since(began).Round(time.Millisecond), a.ResultCode, a.ResultMsg, err))
		if time.Now().After(deadline) || ctx.Err() != nil {
			return a, attempt, failures, fmt.Errorf("%v: no success within %s after %d attempts; last: %+v, %v", body["activity"], within, attempt, a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func created(a answer) bool {
	return (a.ResultCode == "000000" || a.ResultCode == "000004") && a.InstanceID != ""
}

// provisioned reports a successful queryInstance of one instance with app info.
func provisioned(a answer) bool {
	return a.ResultCode == "000000" && len(a.Info) == 1 && a.Info[0].AppInfo != nil
}

// connectedTo names the NATS node of each of the App's connections.
func connectedTo(a *App) []string {
	var names []string
	for _, nc := range a.conns {
		names = append(names, nc.ConnectedServerName())
	}
	return names
}

// leaders returns the leaders of the event stream, of the nonce bucket's
// stream and of the provisioning consumer, waiting (bounded) until each has
// one and, for the two streams, all replicas are current.
func leaders(t *testing.T, js jetstream.JetStream, cfg Config) (stream, bucket, consumer string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		stream, bucket, consumer = currentLeader(ctx, js, cfg.Stream), currentLeader(ctx, js, "KV_"+cfg.NonceBucket), consumerLeader(ctx, js, cfg.Stream)
		cancel()
		if stream != "" && bucket != "" && consumer != "" {
			return stream, bucket, consumer
		}
		if time.Now().After(deadline) {
			t.Fatalf("no settled leaders after 20s: stream %q, bucket %q, consumer %q", stream, bucket, consumer)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// currentLeader is the stream's leader when it has one and its two other
// replicas are current, else "".
func currentLeader(ctx context.Context, js jetstream.JetStream, name string) string {
	_, ci, err := streamCluster(ctx, js, name)
	if err != nil || ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
		return ""
	}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return ""
		}
	}
	return ci.Leader
}

func consumerLeader(ctx context.Context, js jetstream.JetStream, stream string) string {
	cons, err := js.Consumer(ctx, stream, "effect-"+provision.Name)
	if err != nil {
		return ""
	}
	info, err := cons.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// ---------------------------------------------------------------------------

// TestClusterScaleTopology is docker-compose.yml's topology in one process:
// three clustered nats-servers, an R3 stream and nonce bucket, two
// gallerist replicas (A and B) on all three URLs, one PostgreSQL schema for
// both replicas' views.
func TestClusterScaleTopology(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	clusterUp := time.Since(began)
	cfg := clusterConfig(c.URLs, randomSuffix())
	cfg.ViewsDSN = sharedViews(t)
	a := startReplica(t, cfg)
	b := startReplica(t, cfg)
	js := observer(t, c.URLs)
	nc := js.Conn()
	stale := &staleness{}
	t.Logf("cluster %v up in %s, both replicas in %s; A's connections on %v, B's on %v",
		c.URLs, clusterUp.Round(time.Millisecond), (time.Since(began) - clusterUp).Round(time.Millisecond), connectedTo(a.App), connectedTo(b.App))

	var id string
	if !t.Run("created on A, read fresh on B", func(t *testing.T) {
		order := newOrder()
		ans := a.kg.must(t, newInstanceBody(order))
		if ans.ResultCode != "000000" || ans.InstanceID == "" {
			t.Fatalf("newInstance on A = %+v, want 000000 (provisioned within the budget); after \"consuming … no responders\" "+
				"in the log, see TestClusterProvisionerStartsBeforeItsConsumerAnswers", ans)
		}
		id = ans.InstanceID
		var q answer
		stale.eventually(t, "queryInstance on B of an instance created on A", func() (bool, string) {
			q = b.kg.must(t, queryBody(id))
			return provisioned(q), fmt.Sprintf("%+v", q)
		})
		checkAppInfo(t, q, id)
		// And in the views (one PostgreSQL for both replicas), fed from
		// the stream by the replicas' projectors.
		viewsShow(t, "instance created on A", id, func(v views.Instance) bool {
			return v.Status == "active" && v.ProvisionedAt != nil && v.OrderID == order
		}, a, b)
	}) {
		t.FailNow()
	}

	// Writes on one replica read right away on the other, both ways, on
	// fresh instances: how often does a direct get answered by a follower
	// miss the write? Counted, logged, and polled for (bounded) rather
	// than failed on (the harm such reads do in the repository is pinned
	// down by the TestClusterLaggingFollower* tests).
	t.Run("fresh reads across replicas", func(t *testing.T) {
		ctx := testContext(t)
		const rounds = 30
		for i := range rounds {
			x, y, xn, yn := a, b, "A", "B"
			if i%2 == 1 {
				x, y, xn, yn = b, a, "B", "A"
			}
			ans := x.kg.must(t, newInstanceBody(newOrder()))
			if !created(ans) {
				t.Fatalf("newInstance on %s = %+v", xn, ans)
			}
			id := ans.InstanceID
			stale.eventually(t, "queryInstance on "+yn+" after newInstance on "+xn, func() (bool, string) {
				q := y.kg.must(t, queryBody(id))
				return provisioned(q), fmt.Sprintf("%+v", q)
			})
			if ans := y.kg.must(t, statusBody(id, "FREEZE")); ans.ResultCode != "000000" {
				t.Fatalf("FREEZE on %s = %+v", yn, ans)
			}
			stale.eventually(t, "fresh read on "+xn+" after FREEZE on "+yn, func() (bool, string) {
				st, err := x.Instances().Get(ctx, id)
				return err == nil && st.Status == instance.StatusFrozen, fmt.Sprintf("status %s, err %v", st.Status, err)
			})
			if ans := x.kg.must(t, statusBody(id, "UNFREEZE")); ans.ResultCode != "000000" {
				t.Fatalf("UNFREEZE on %s = %+v", xn, ans)
			}
			stale.eventually(t, "fresh read on "+yn+" after UNFREEZE on "+xn, func() (bool, string) {
				st, err := y.Instances().Get(ctx, id)
				return err == nil && st.Status == instance.StatusActive, fmt.Sprintf("status %s, err %v", st.Status, err)
			})
		}
		stale.report(t)
	})

	t.Run("frozen on B, seen on A", func(t *testing.T) {
		ctx := testContext(t)
		// A holds the instance in its cache since it created it.
		if st, _, err := a.Instances().Repo().Get(ctx, id, false); err != nil || st.Status != instance.StatusActive {
			t.Fatalf("A's cached state = %+v, %v; want active", st, err)
		}
		if ans := b.kg.must(t, statusBody(id, "FREEZE")); ans.ResultCode != "000000" {
			t.Fatalf("FREEZE on B = %+v", ans)
		}
		stale.eventually(t, "A's fresh read after FREEZE on B", func() (bool, string) {
			st, err := a.Instances().Get(ctx, id)
			return err == nil && st.Status == instance.StatusFrozen, fmt.Sprintf("status %s, err %v", st.Status, err)
		})
		viewsShow(t, "instance frozen on B", id, func(v views.Instance) bool { return v.Status == "frozen" }, a, b)
		checkAppInfo(t, a.kg.must(t, queryBody(id)), id) // a frozen instance still answers its app info
		if ans := a.kg.must(t, statusBody(id, "FREEZE")); ans.ResultCode != "000000" {
			t.Errorf("FREEZE again on A = %+v, want 000000", ans)
		}
		if n := count(leaderEvents(t, nc, a.App, instance.Kind, id), instance.TypeFrozen); n != 1 {
			t.Errorf("%d InstanceFrozen events, want exactly 1", n)
		}
		if ans := a.kg.must(t, statusBody(id, "UNFREEZE")); ans.ResultCode != "000000" {
			t.Fatalf("UNFREEZE on A = %+v", ans)
		}
		stale.eventually(t, "B's fresh read after UNFREEZE on A", func() (bool, string) {
			st, err := b.Instances().Get(ctx, id)
			return err == nil && st.Status == instance.StatusActive, fmt.Sprintf("status %s, err %v", st.Status, err)
		})
		viewsShow(t, "instance unfrozen on A", id, func(v views.Instance) bool { return v.Status == "active" }, a, b)
	})

	t.Run("concurrent duplicates over A and B", func(t *testing.T) {
		order := newOrder()
		body := newInstanceBody(order)
		const n = 20
		var wg sync.WaitGroup
		answers := make([]answer, n)
		errs := make([]error, n)
		for i := range n {
			k := a.kg
			if i%2 == 1 {
				k = b.kg
			}
			wg.Go(func() { answers[i], errs[i] = k.send(body) })
		}
		wg.Wait()
		// A duplicate that loses the race for the order line reads the
		// line's binding; when a lagging follower answers that read, the
		// call fails with 000005 (TestClusterLaggingFollowerFailsDuplicate).
		// KooGallery retries such a call: so does this test, counting them.
		ids := map[string]int{}
		failedFirst := 0
		for i := range n {
			k, on := a.kg, "A"
			if i%2 == 1 {
				k, on = b.kg, "B"
			}
			if errs[i] != nil || !created(answers[i]) {
				failedFirst++
				t.Logf("KNOWN BUG (TestClusterLaggingFollowerFailsDuplicate): duplicate %d on %s = %+v, %v; retrying", i, on, answers[i], errs[i])
				answers[i], _ = untilOK(t, k, body, created, 10*time.Second)
			}
			ids[answers[i].InstanceID]++
		}
		t.Logf("%d concurrent duplicates, %d failed at first (000005) and succeeded when retried", n, failedFirst)
		if len(ids) != 1 {
			t.Fatalf("one order line got %d instance ids: %v", len(ids), ids)
		}
		one := answers[0].InstanceID
		if c := count(leaderEvents(t, nc, a.App, instance.Kind, one), instance.TypeCreated); c != 1 {
			t.Errorf("%d InstanceCreated events for %s, want 1", c, one)
		}
		if c := len(leaderEvents(t, nc, a.App, instance.IndexKind, order, order+"-000001")); c != 1 {
			t.Errorf("%d order index events, want 1", c)
		}
	})

	t.Run("R3 stream and nonce bucket, one replay guard", func(t *testing.T) {
		ctx := testContext(t)
		for _, name := range []string{cfg.Stream, "KV_" + cfg.NonceBucket} {
			replicas, ci, err := streamCluster(ctx, js, name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			if replicas != 3 || ci == nil || ci.Name != "gallerist-test" || !slices.Equal(peersOf(ci), []string{"n1", "n2", "n3"}) {
				t.Errorf("stream %s: %d replicas, cluster %+v; want R3 on n1, n2, n3", name, replicas, ci)
			}
		}
		// One signed request, sent to A, then replayed as is to B and to A.
		rec := &recordTransport{base: a.kg.client.Transport}
		first := &kgClient{url: a.kg.url, client: &http.Client{Transport: rec, Timeout: 20 * time.Second}}
		body := newInstanceBody(newOrder())
		ans := first.must(t, body)
		if !created(ans) {
			t.Fatalf("newInstance on A = %+v", ans)
		}
		for _, to := range []*running{b, a} {
			replay := &kgClient{url: to.kg.url, client: &http.Client{Transport: &replayTransport{rawQuery: rec.rawQuery, base: to.kg.client.Transport}, Timeout: 20 * time.Second}}
			if got := replay.must(t, body); got.ResultCode != "000001" {
				t.Errorf("the replay on %s = %+v, want 000001 (nonce already used)", to.Addr(), got)
			}
		}
		order := body["orderId"].(string)
		if n := len(leaderEvents(t, nc, a.App, instance.IndexKind, order, order+"-000001")); n != 1 {
			t.Errorf("%d order index events after the replays, want 1", n)
		}
	})

	// Both replicas create (newInstance) and read (queryInstance on the
	// other replica) one instance each; every call retried like KooGallery
	// does. It returns the most attempts one call needed.
	roundTrip := func(t *testing.T, within time.Duration) int {
		t.Helper()
		most := 0
		for i, pair := range [][2]*running{{a, b}, {b, a}} {
			x, y := pair[0], pair[1]
			body := newInstanceBody(newOrder())
			ans, n := untilOK(t, x.kg, body, created, within)
			most = max(most, n)
			q, n := untilOK(t, y.kg, queryBody(ans.InstanceID), provisioned, within)
			most = max(most, n)
			checkAppInfo(t, q, ans.InstanceID)
			order := body["orderId"].(string)
			if c := count(leaderEvents(t, nc, x.App, instance.Kind, ans.InstanceID), instance.TypeCreated); c != 1 {
				t.Errorf("round %d: %d InstanceCreated for %s, want 1", i, c, ans.InstanceID)
			}
			if c := len(leaderEvents(t, nc, x.App, instance.IndexKind, order, order+"-000001")); c != 1 {
				t.Errorf("round %d: %d order index events, want 1", i, c)
			}
		}
		return most
	}

	var victim string
	if !t.Run("a follower node down", func(t *testing.T) {
		streamLeader, bucketLeader, consumerLeader := leaders(t, js, cfg)
		// Any node but the stream leader; preferably one that leads
		// neither the nonce bucket nor the provisioning consumer either.
		for _, s := range c.Servers {
			name := s.Name()
			if name == streamLeader {
				continue
			}
			if victim == "" || name != bucketLeader && name != consumerLeader {
				victim = name
			}
		}
		t.Logf("leaders: stream %s, nonce bucket %s, provisioning consumer %s; stopping %s", streamLeader, bucketLeader, consumerLeader, victim)
		stopped := time.Now()
		c.stop(t, victim)
		t.Logf("%s stopped in %s", victim, time.Since(stopped).Round(time.Millisecond))
		// Calls keep succeeding. A request that was on its way to the node
		// when it stopped is lost: the call waits its 4 s out, answers
		// 000005, and KooGallery's retry succeeds (seen now and then under
		// -race). More than that one retry is a failure.
		began := time.Now()
		for round := range 3 {
			if most := roundTrip(t, 10*time.Second); most > 2 {
				t.Errorf("round %d with %s down: a call needed %d attempts, want at most one retry", round, victim, most)
			}
		}
		t.Logf("3 rounds (12 calls) with %s down in %s; A's connections on %v, B's on %v",
			victim, time.Since(began).Round(time.Millisecond), connectedTo(a.App), connectedTo(b.App))
	}) {
		t.FailNow()
	}

	// Losing the stream leader used to run into bugs 4–6 of docs/decisions.md
	// (provisioning stalled while the consumer elected its leader; a replica's
	// Shutdown hung on its views reader, now bounded by App.Shutdown).
	t.Run("the stream leader down", func(t *testing.T) {
		restarted := time.Now()
		c.restart(t, victim)
		old, _, _ := leaders(t, js, cfg)
		t.Logf("%s back and current in %s; stopping the stream leader %s", victim, time.Since(restarted).Round(time.Millisecond), old)

		// Calls in flight while the leader goes: two clients per replica,
		// each creating instances (retrying like KooGallery) until told to
		// stop. Every order line must end with exactly one instance.
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			ids     = map[string]map[string]bool{} // order → instance ids answered
			tries   int
			failed  []error
			retried []string
		)
		bg, stop := context.WithCancel(context.Background())
		defer func() { stop(); wg.Wait() }()
		for i := range 4 {
			k := []*kgClient{a.kg, b.kg}[i%2]
			wg.Go(func() {
				for bg.Err() == nil {
					body := newInstanceBody(newOrder())
					order := body["orderId"].(string)
					ans, n, fails, err := retry(bg, k, body, created, 15*time.Second)
					mu.Lock()
					retried = append(retried, fails...)
					tries += n
					switch {
					case err != nil && bg.Err() == nil:
						failed = append(failed, err)
					case err == nil:
						if ids[order] == nil {
							ids[order] = map[string]bool{}
						}
						ids[order][ans.InstanceID] = true
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(200 * time.Millisecond)
		stopped := time.Now()
		c.stop(t, old)
		var now string
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, ci, err := streamCluster(ctx, js, cfg.Stream)
			cancel()
			if err == nil && ci != nil && ci.Leader != "" && ci.Leader != old {
				now = ci.Leader
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new stream leader 20s after stopping %s", old)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("new stream leader %s after %s", now, time.Since(stopped).Round(time.Millisecond))
		// Provisioning resumes within seconds once a new leader is there,
		// or the worker has stopped pulling (after "consuming … no
		// responders" in the log: TestClusterProvisionerStartsBeforeItsConsumerAnswers).
		most := roundTrip(t, 10*time.Second)
		recovered := time.Since(stopped)
		time.Sleep(200 * time.Millisecond)
		stop()
		wg.Wait()
		t.Logf("with the leader stopped: both replicas served again %s after the stop (at most %d attempts per call); "+
			"%d order lines created by the background clients in %d attempts", recovered.Round(time.Millisecond), most, len(ids), tries)
		for _, f := range retried {
			t.Logf("background client retried: %s", f)
		}
		for _, err := range failed {
			t.Errorf("background client: %v", err)
		}
		for order, got := range ids {
			if len(got) != 1 {
				t.Errorf("order %s answered with %d instance ids: %v", order, len(got), got)
				continue
			}
			for id := range got {
				if n := count(leaderEvents(t, nc, a.App, instance.Kind, id), instance.TypeCreated); n != 1 {
					t.Errorf("order %s: %d InstanceCreated for %s, want 1", order, n, id)
				}
			}
			if n := len(leaderEvents(t, nc, a.App, instance.IndexKind, order, order+"-000001")); n != 1 {
				t.Errorf("order %s: %d order index events, want 1", order, n)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// A lagging follower, made deterministic.
//
// On an R3 stream, direct gets (Last, LastEvent, Load) are answered by any
// replica, so a replica's read right after an append acknowledged by the
// leader may come from a follower that has not applied it yet: the stream
// up to some earlier sequence. TestClusterScaleTopology counts how often
// that happens; the tests below pin the follower at a known sequence to
// show what the repository and the instance service make of such a read.

// laggingStore reads like a follower that has applied the stream only up
// to sequence behind (0: not lagging); appends go to the leader as usual,
// and so do the reads of its leader read mode (Leader, the embedded
// store's), which are never behind.
type laggingStore struct {
	eventstore.Store
	behind atomic.Uint64
}

func (l *laggingStore) visible(recs []eventstore.Record) []eventstore.Record {
	h := l.behind.Load()
	if h == 0 {
		return recs
	}
	var out []eventstore.Record
	for _, r := range recs {
		if r.Seq <= h {
			out = append(out, r)
		}
	}
	return out
}

func (l *laggingStore) Load(ctx context.Context, id eventstore.StreamID, after uint64) ([]eventstore.Record, error) {
	recs, err := l.Store.Load(ctx, id, after)
	return l.visible(recs), err
}

func (l *laggingStore) Last(ctx context.Context, id eventstore.StreamID) (uint64, error) {
	if l.behind.Load() == 0 {
		return l.Store.Last(ctx, id)
	}
	recs, err := l.Load(ctx, id, 0)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	return recs[len(recs)-1].Seq, nil
}

func (l *laggingStore) LastEvent(ctx context.Context, id eventstore.StreamID) (eventstore.Record, error) {
	if l.behind.Load() == 0 {
		return l.Store.LastEvent(ctx, id)
	}
	recs, err := l.Load(ctx, id, 0)
	if err != nil {
		return eventstore.Record{}, err
	}
	if len(recs) == 0 {
		return eventstore.Record{}, eventstore.ErrNotFound
	}
	return recs[len(recs)-1], nil
}

// twoReplicas returns the instance services of two replicas, x and y, on
// one event stream (an embedded R1 server, whose reads are never stale);
// y's reads go through lag.
func twoReplicas(t *testing.T) (x, y *instances.Service, lag *laggingStore, store *eventstore.JetStreamStore) {
	t.Helper()
	ctx := testContext(t)
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: t.TempDir(), SyncInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err = eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lag = &laggingStore{Store: store}
	cfg := instances.Config{Aggregate: aggregate.DefaultConfig()} // several writers: not SingleWriter
	if x, err = instances.New(store, nil, cfg, testLogger()); err != nil {
		t.Fatal(err)
	}
	if y, err = instances.New(lag, nil, cfg, testLogger()); err != nil {
		t.Fatal(err)
	}
	return x, y, lag, store
}

// streamLast is the last sequence of the whole stream.
func streamLast(t *testing.T, store *eventstore.JetStreamStore) uint64 {
	t.Helper()
	info, err := store.Stream().Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestClusterLaggingFollowerLosesCommand: replica Y has the instance cached
// as frozen; X unfreezes it; Y is asked to FREEZE while its reads are served
// by a follower that has not applied the UNFREEZE yet. Y decides "already
// frozen, nothing to do" on its stale cache, confirms that with one Last
// read, which the lagging follower answers with the sequence Y already has,
// and answers success without appending anything. KooGallery is told
// 000000 and the instance stays active. (Seen for real on the 3-node
// cluster: a FREEZE answered 000000 and the leader's log ending in
// InstanceUnfrozen.) Fixed: the re-check reads from the stream leader
// (eventstore.Store.Leader).
func TestClusterLaggingFollowerLosesCommand(t *testing.T) {
	x, y, lag, store := twoReplicas(t)
	ctx := testContext(t)
	id := uuid.NewString()
	cause := event.Causation{Activity: "test"}
	if _, err := x.Create(ctx, "o-"+id, "l-1", id, cause, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := x.RecordProvisioning(ctx, id, instance.RecordProvisioning{AppInfo: &instance.AppInfo{FrontEndURL: "https://x/" + id}}, cause); err != nil {
		t.Fatal(err)
	}
	if st, err := y.Execute(ctx, id, instance.SetStatus{Target: instance.TargetFreeze}, cause); err != nil || st.Status != instance.StatusFrozen {
		t.Fatalf("FREEZE on Y = %s, %v", st.Status, err)
	}
	if st, err := x.Execute(ctx, id, instance.SetStatus{Target: instance.TargetUnfreeze}, cause); err != nil || st.Status != instance.StatusActive {
		t.Fatalf("UNFREEZE on X = %s, %v", st.Status, err)
	}
	lag.behind.Store(streamLast(t, store) - 1) // the follower misses the UNFREEZE

	st, err := y.Execute(ctx, id, instance.SetStatus{Target: instance.TargetFreeze}, cause)
	if err != nil {
		return // refusing (KooGallery retries) would be correct too
	}
	got, _, gerr := x.Repo().Get(ctx, id, true) // through the leader
	if gerr != nil || got.Status != instance.StatusFrozen {
		t.Errorf("FREEZE on Y answered success (state %s) but the log says %s (%v): the command was lost. "+
			"Repository.Execute confirmed its no-op against a read answered by a lagging follower", st.Status, got.Status, gerr)
	}
}

// TestClusterLaggingFollowerRewindsState: a replica's fresh read served by
// a follower behind the replica's own cached (acknowledged) state resets
// the cache and reloads the older prefix, as if the stream had been
// rewritten. The read goes back in time; in newInstance's wait for
// provisioning the rewound state is empty, so the call answers 000004
// without an instanceId. (Seen for real on the 3-node cluster.) Fixed: a
// lower last sequence is ignored.
func TestClusterLaggingFollowerRewindsState(t *testing.T) {
	t.Run("fresh read", func(t *testing.T) {
		x, y, lag, store := twoReplicas(t)
		ctx := testContext(t)
		id := uuid.NewString()
		cause := event.Causation{Activity: "test"}
		if _, err := x.Create(ctx, "o-"+id, "l-1", id, cause, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := y.RecordProvisioning(ctx, id, instance.RecordProvisioning{AppInfo: &instance.AppInfo{FrontEndURL: "https://x/" + id}}, cause); err != nil {
			t.Fatal(err)
		}
		before, seq, err := y.Repo().Get(ctx, id, false)
		if err != nil || !before.Provisioned {
			t.Fatalf("Y's state after its own write = %+v, %v", before, err)
		}
		lag.behind.Store(streamLast(t, store) - 1) // the follower misses Y's own write
		after, afterSeq, err := y.Repo().Get(ctx, id, true)
		if err != nil || !after.Provisioned || afterSeq < seq {
			t.Errorf("Y's fresh read = provisioned %v at sequence %d (%v), before it: provisioned at %d. "+
				"Repository.Get takes a lagging Last for a rewritten stream and reloads an older state", after.Provisioned, afterSeq, err, seq)
		}
	})
	t.Run("newInstance wait", func(t *testing.T) {
		_, y, lag, store := twoReplicas(t)
		ctx := testContext(t)
		// The follower stands at an earlier, unrelated instance.
		if _, err := y.Create(ctx, "o-earlier", "l-1", uuid.NewString(), event.Causation{}, 0); err != nil {
			t.Fatal(err)
		}
		lag.behind.Store(streamLast(t, store))
		id := uuid.NewString()
		// No provisioner runs: a correct wait answers "still provisioning"
		// (000004) with the instance after the budget.
		st, err := y.Create(ctx, "o-"+id, "l-1", id, event.Causation{Activity: "newInstance"}, 300*time.Millisecond)
		if err != nil || st.ID != id || st.Status != instance.StatusProvisioning {
			t.Errorf("Create = id %q status %q (%v), want id %s still provisioning: the wait re-read the instance through a "+
				"lagging follower, Repository.Get rewound it to the empty state and the wait took that for an outcome "+
				"(newInstance would answer 000004 without an instanceId)", st.ID, st.Status, err, id)
		}
	})
}

// lateConsumerJS hands out lateConsumerStream for every stream (the
// effect runner looks its stream up through the JetStream handle).
type lateConsumerJS struct {
	jetstream.JetStream
	stream *lateConsumerStream
}

func (j lateConsumerJS) Stream(context.Context, string) (jetstream.Stream, error) {
	return j.stream, nil
}

// lateConsumerStream hands out the provisioning consumer before anything
// answers its pull requests (as on a cluster, where the consumer's leader
// or the interest in its pull subject reaches the client's server a moment
// after the create returned): it removes the consumer right after creating
// it and puts it back after a short while.
type lateConsumerStream struct {
	jetstream.Stream
	after time.Duration
	back  chan struct{}
}

func (s *lateConsumerStream) CreateOrUpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := s.Stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Stream.DeleteConsumer(ctx, cfg.Durable); err != nil {
		return nil, err
	}
	go func() {
		defer close(s.back)
		time.Sleep(s.after)
		_, _ = s.Stream.CreateOrUpdateConsumer(context.Background(), cfg)
	}()
	return c, nil
}

// TestClusterProvisionerStartsBeforeItsConsumerAnswers: on an R3 cluster
// the provisioning runner's pull can find no responder, at start and after
// the node leading its consumer stopped (TestClusterScaleTopology logs
// "consuming … no responders available for request", then newInstance
// answers 000004). The runner only logs the error; nats.go sends no new
// pull until its heartbeat check fires, which took 2 × 15 s with the
// default 30 s expiry: provisioning stalled for 30 s although the consumer
// answered a moment later. Fixed: the runner asks for a 1 s heartbeat, so
// the pull is re-sent within 2 s; the test gives it 20 s.
func TestClusterProvisionerStartsBeforeItsConsumerAnswers(t *testing.T) {
	x, _, _, store := twoReplicas(t)
	def, err := provision.NewBuiltin(provision.DefaultBuiltinConfig())
	if err != nil {
		t.Fatal(err)
	}
	late := &lateConsumerStream{Stream: store.Stream(), after: 300 * time.Millisecond, back: make(chan struct{})}
	c := store.Config()
	w, err := provision.NewRunner(lateConsumerJS{JetStream: store.JetStream(), stream: late}, store, c.Stream, c.Prefix, x, nil, def,
		provision.Config{}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	<-late.back
	ctx := testContext(t)
	id := uuid.NewString()
	began := time.Now()
	st, err := x.Create(ctx, "o-"+id, "l-1", id, event.Causation{Activity: "newInstance"}, 20*time.Second)
	if err != nil || !st.Provisioned {
		t.Errorf("newInstance after the consumer answers: provisioned %v (%v) after %s; want it provisioned within 20 s "+
			"(nats.go's default heartbeat re-pulls only after 30 s). The provisioning runner's Start consumes before the consumer "+
			"answers and does not pull again soon after ErrNoResponders",
			st.Provisioned, err, time.Since(began).Round(time.Millisecond))
	}
}

// TestClusterLaggingFollowerFailsDuplicate: two replicas receive the same
// newInstance (KooGallery resends, or two concurrent deliveries). Y loses
// the race for the order line, so its append conflicts, and it reads the
// line's binding to answer with the winner's instance id; when a follower
// that has not applied X's binding yet answers that read, Create fails and
// newInstance answers 000005. (Seen for real in TestClusterScaleTopology:
// up to 7 of 20 concurrent duplicates.) Fixed: the binding is read from the
// stream leader.
func TestClusterLaggingFollowerFailsDuplicate(t *testing.T) {
	x, y, lag, store := twoReplicas(t)
	ctx := testContext(t)
	// The follower stands at an earlier, unrelated instance.
	if _, err := x.Create(ctx, "o-earlier", "l-1", uuid.NewString(), event.Causation{}, 0); err != nil {
		t.Fatal(err)
	}
	lag.behind.Store(streamLast(t, store))
	id := uuid.NewString()
	if st, err := x.Create(ctx, "o-"+id, "l-1", id, event.Causation{Activity: "newInstance"}, 0); err != nil || st.ID != id {
		t.Fatalf("newInstance on X = %q, %v", st.ID, err)
	}
	st, err := y.Create(ctx, "o-"+id, "l-1", uuid.NewString(), event.Causation{Activity: "newInstance"}, 0)
	if err != nil || st.ID != id {
		t.Errorf("the duplicate on Y = %q, %v; want %s. instances.Service.bind read the binding after its conflict through "+
			"a lagging follower (LastEvent: not found)", st.ID, err, id)
	}
}

// stuckStore loses appends while stuck is set: the request never gets an
// answer, and the append returns only when its context ends, as when the
// NATS node a connection was on goes away with the request in flight.
type stuckStore struct {
	eventstore.Store
	stuck   atomic.Bool
	entered chan struct{} // closed when the first append gets stuck
	once    sync.Once
}

func (s *stuckStore) Append(ctx context.Context, id eventstore.StreamID, expected uint64, ev event.Envelope) (uint64, error) {
	if s.stuck.Load() {
		s.once.Do(func() { close(s.entered) })
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.Store.Append(ctx, id, expected, ev)
}

// TestClusterStuckAppendHoldsUpOtherCalls: the provisioning worker records
// an outcome with a 10 s bound (ProvisionTimeout) and holds the instance's
// lock meanwhile (Repository.Execute); if its append is lost, every call on
// that instance, and on any instance sharing its lock stripe (one of 256),
// waited for that lock beyond its own deadline (the ingress gives each
// call 4 s). Seen for real when the stream leader stopped: a queryInstance
// answered after 9.4 s, a newInstance got no HTTP response at all (the
// server's 10 s write timeout). Fixed: a caller waiting for the lock gives
// up when its context ends; the holder keeps the lock.
func TestClusterStuckAppendHoldsUpOtherCalls(t *testing.T) {
	_, _, _, store := twoReplicas(t)
	stuck := &stuckStore{Store: store, entered: make(chan struct{})}
	svc, err := instances.New(stuck, nil, instances.Config{Aggregate: aggregate.DefaultConfig()}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	id := uuid.NewString()
	if _, err := svc.Create(ctx, "o-"+id, "l-1", id, event.Causation{}, 0); err != nil {
		t.Fatal(err)
	}
	stuck.stuck.Store(true)
	// The worker's bound: it ends only when the test is done with it.
	worker, cancel := context.WithCancel(ctx)
	holder := make(chan struct{})
	defer func() { cancel(); <-holder }()
	go func() {
		defer close(holder)
		_, _ = svc.RecordProvisioning(worker, id, instance.RecordProvisioning{AppInfo: &instance.AppInfo{FrontEndURL: "https://x/" + id}}, event.Causation{})
	}()
	select {
	case <-stuck.entered: // the worker holds the lock, its append lost
	case <-ctx.Done():
		t.Fatal("the worker's append never started")
	}

	// An ingress call (its 4 s shortened to 500 ms) on a replica that has
	// not cached the instance: the read catches up under the lock.
	call, done := context.WithTimeout(ctx, 500*time.Millisecond)
	defer done()
	svc.Repo().Forget(id)
	_, err = svc.Get(call, id)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a read with a 500 ms deadline behind a stuck command = %v, want its deadline exceeded", err)
	}
	select {
	case <-holder:
		t.Errorf("the stuck command returned before the read: the read waited for the aggregate lock " +
			"(Repository's per-aggregate lock ignored the caller's context)")
	default: // the read gave up while the lock is still held
	}
}
