package server_test

// License A (license.md §2: GET with the V1 authToken) and License B
// (license.md §3: POST with the V2 signature) through real HTTP, on the
// harness's env (embedded NATS, the event store, the licenses service).

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/license"
	"github.com/gallerist/gallerist/domain/licensecode"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/licenses"
	"github.com/gallerist/gallerist/ingress/server"
)

const (
	// pathLicA is a License A route with the built-in issuer (key from
	// licenseKeyEnv); pathLicASlow's issuer waits for its gate.
	pathLicA     = "/koogallery/license-a"
	pathLicASlow = "/koogallery/license-a-slow"
	// pathLicB is a License B route with its own access key.
	pathLicB      = "/koogallery/license-b"
	keyLicB       = "LICENSE-B-ACCESS-KEY-00000011"
	licenseKeyEnv = "GALLERIST_TEST_LICENSE_PRIVATE_KEY"
)

// testLicenseKey is the built-in issuer's key of the tests.
var testLicenseKey = ed25519.NewKeyFromSeed([]byte("gallerist-test-license-seed-0032"))

var licenseFeatures = map[string]string{"edition": "pro", "seats": "10"}

func licenseRoutes() []config.Route {
	builtin := &config.Issuer{Builtin: &config.BuiltinIssuer{PrivateKeyEnv: licenseKeyEnv, Features: licenseFeatures}}
	return append([]config.Route{
		{Path: pathLicA, Family: config.FamilyLicenseA, Keys: []config.Key{{Value: keyMain}}, Issuer: builtin},
		{Path: pathLicASlow, Family: config.FamilyLicenseA, Keys: []config.Key{{Value: keyMain}}, Issuer: builtin},
		{Path: pathLicB, Family: config.FamilyLicenseB, Keys: []config.Key{{Value: keyLicB}}},
	}, licenseCRoutes()...) // licensec_test.go
}

// licenseGate is an issuer that waits for its order's gate, then signs
// like the built-in issuer.
type licenseGate struct {
	inner licenses.Issuer
	mu    sync.Mutex
	gates map[string]chan struct{}
	calls map[string]int
}

func (g *licenseGate) gate(order string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.gates[order]
	if !ok {
		ch = make(chan struct{})
		g.gates[order] = ch
	}
	return ch
}

func (g *licenseGate) open(order string) {
	ch := g.gate(order)
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (g *licenseGate) openAll() {
	g.mu.Lock()
	orders := make([]string, 0, len(g.gates))
	for o := range g.gates {
		orders = append(orders, o)
	}
	g.mu.Unlock()
	for _, o := range orders {
		g.open(o)
	}
}

func (g *licenseGate) called(order string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[order]
}

func (g *licenseGate) Issue(ctx context.Context, r licenses.IssueRequest) (string, error) {
	g.mu.Lock()
	g.calls[r.OrderID]++
	g.mu.Unlock()
	select {
	case <-g.gate(r.OrderID):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.inner.Issue(ctx, r)
}

// newLicenses builds the licenses service of an env: the routes' built-in
// issuers read the test key from the environment.
func newLicenses(t testing.TB, store eventstore.Store, routes []config.Route, log *slog.Logger) (*licenses.Service, *licenseGate) {
	t.Helper()
	if err := os.Setenv(licenseKeyEnv, config.EncodeLicensePrivateKey(testLicenseKey)); err != nil {
		t.Fatal(err)
	}
	inner, err := licenses.NewBuiltin(testLicenseKey, 0, licenseFeatures, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := &licenseGate{inner: inner, gates: map[string]chan struct{}{}, calls: map[string]int{}}
	svc, err := licenses.New(store, licenses.Config{Issuers: map[string]licenses.Issuer{pathLicASlow: gate}}, routes, log)
	if err != nil {
		t.Fatalf("licenses service: %v", err)
	}
	t.Cleanup(svc.Close)
	t.Cleanup(gate.openAll) // runs first: Close waits for gated generations
	return svc, gate
}

// ---------------------------------------------------------------------------
// License A helpers.

func getLicenseParams(orderID, businessID string) map[string]string {
	return map[string]string{"activity": "getLicense", "customerId": "cust-" + orderID, "customerName": "Buyer Ltd",
		"businessId": businessID, "orderId": orderID, "skuCode": "sku-pro", "productId": "00301-666666-0--0",
		"expireTime": "20990131235959"}
}

func (h *harness) licA(t testing.TB, code string, params map[string]string, muts ...v1mut) map[string]any {
	t.Helper()
	return h.v1expect(t, code, params, append([]v1mut{v1Path(pathLicA)}, muts...)...)
}

// setP returns a copy of p with k set to v; delP one without k.
func setP(p map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(p)+1)
	for kk, vv := range p {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func delP(p map[string]string, k string) map[string]string {
	out := setP(p, k, "")
	delete(out, k)
	return out
}

func verifyLicense(t testing.TB, text string) licensetoken.License {
	t.Helper()
	l, err := licensetoken.Verify(testLicenseKey.Public().(ed25519.PublicKey), []byte(text), time.Now())
	if err != nil {
		t.Fatalf("the license does not verify with the issuer's public key: %v (%q)", err, text)
	}
	return l
}

func (h *harness) licenseState(t testing.TB, id string) license.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.lic.Get(ctx, id)
	if err != nil {
		t.Fatalf("license %s: %v", id, err)
	}
	return st
}

func TestLicenseAGetLicense(t *testing.T) {
	h := newHarness(t)

	t.Run("issues a signed license carrying the order", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		m := h.licA(t, "000000", getLicenseParams(order, biz))
		if strOf(m, "instanceId") != biz || msgOf(m) != "success." {
			t.Fatalf("answer %v: want instanceId = businessId %s", m, biz)
		}
		l := verifyLicense(t, strOf(m, "license"))
		want := time.Date(2099, 1, 31, 23, 59, 59, 0, time.UTC)
		if l.InstanceID != biz || l.OrderID != order || l.ProductID != "00301-666666-0--0" || l.SKUCode != "sku-pro" ||
			l.CustomerID != "cust-"+order || !l.NotAfter.Equal(want) || l.ID == "" {
			t.Fatalf("license = %+v", l)
		}
		if l.Features["edition"] != "pro" || l.Features["seats"] != "10" {
			t.Fatalf("features = %v", l.Features)
		}
		if d := time.Since(l.IssuedAt); d < -time.Minute || d > time.Minute {
			t.Fatalf("issuedAt = %v", l.IssuedAt)
		}
		st := h.licenseState(t, biz)
		if st.Status != license.StatusIssued || st.Text != strOf(m, "license") || st.Customer.Name != "Buyer Ltd" {
			t.Fatalf("state = %+v", st)
		}
		if got := typesOf(h.events(t, license.Kind, biz)); strings.Join(got, ",") != license.TypeIssued {
			t.Fatalf("license events = %v", got)
		}
	})

	t.Run("without expireTime the license lasts the configured validity", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		l := verifyLicense(t, strOf(h.licA(t, "000000", delP(getLicenseParams(order, biz), "expireTime")), "license"))
		if d := l.NotAfter.Sub(l.IssuedAt); d != config.DefaultLicenseValidity {
			t.Fatalf("validity = %v, want %v", d, config.DefaultLicenseValidity)
		}
	})

	t.Run("a retry answers the same instance and the same license", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		first := h.licA(t, "000000", getLicenseParams(order, biz))
		for i := range 3 {
			again := h.licA(t, "000000", getLicenseParams(order, uid("biz-retry")))
			if strOf(again, "instanceId") != biz || strOf(again, "license") != strOf(first, "license") {
				t.Fatalf("retry %d: %v, want %s and the first license", i, again, biz)
			}
		}
		if n := len(h.events(t, license.Kind, biz)); n != 1 {
			t.Fatalf("%d license events, want 1", n)
		}
		if n := len(h.events(t, license.IndexKind, order)); n != 1 {
			t.Fatalf("%d order bindings, want 1", n)
		}
	})

	t.Run("concurrent duplicates get one license", func(t *testing.T) {
		order := uid("LA")
		const n = 8
		ids, texts := make([]string, n), make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := h.licA(t, "000000", getLicenseParams(order, uid("biz-dup")))
				ids[i], texts[i] = strOf(m, "instanceId"), strOf(m, "license")
			}()
		}
		wg.Wait()
		for i := range n {
			if ids[i] != ids[0] || texts[i] != texts[0] || texts[i] == "" {
				t.Fatalf("answer %d: %s %q, answer 0: %s %q", i, ids[i], texts[i], ids[0], texts[0])
			}
		}
		if got := countType(h.events(t, license.Kind, ids[0]), license.TypeIssued); got != 1 {
			t.Fatalf("%d LicenseIssued events, want 1", got)
		}
		if n := len(h.events(t, license.IndexKind, order)); n != 1 {
			t.Fatalf("%d order bindings, want 1", n)
		}
	})

	t.Run("different orders never share an instance", func(t *testing.T) {
		a := h.licA(t, "000000", getLicenseParams(uid("LA"), uid("biz")))
		b := h.licA(t, "000000", getLicenseParams(uid("LA"), uid("biz")))
		if strOf(a, "instanceId") == strOf(b, "instanceId") || strOf(a, "license") == strOf(b, "license") {
			t.Fatalf("two orders answered %v and %v", a, b)
		}
	})

	t.Run("a businessId reused by another order gets a generated instanceId", func(t *testing.T) {
		biz := uid("biz")
		h.licA(t, "000000", getLicenseParams(uid("LA"), biz))
		order := uid("LA")
		m := h.licA(t, "000000", getLicenseParams(order, biz))
		id := strOf(m, "instanceId")
		if id == biz || id == "" {
			t.Fatalf("instanceId = %q, want a fresh id", id)
		}
		if l := verifyLicense(t, strOf(m, "license")); l.OrderID != order || l.InstanceID != id {
			t.Fatalf("license %+v", l)
		}
		if again := h.licA(t, "000000", getLicenseParams(order, uid("biz"))); strOf(again, "instanceId") != id {
			t.Fatalf("retry answered %v, want %s", again, id)
		}
	})

	t.Run("unknown parameters are kept with the order and signed", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		p := getLicenseParams(order, biz)
		p["provisionType"], p["chargingMode"], p["periodType"], p["periodNumber"], p["trialFlag"] = "2", "1", "year", "1", "1"
		h.licA(t, "000000", p)
		st := h.licenseState(t, biz)
		if st.Purchase.Extra["provisionType"] != "2" || st.Purchase.ChargingMode != "1" || st.Purchase.PeriodType != "year" ||
			st.Purchase.PeriodNumber != 1 || !st.Purchase.Trial {
			t.Fatalf("purchase = %+v", st.Purchase)
		}
	})

	t.Run("the POST-body variant", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		m := h.licA(t, "000000", getLicenseParams(order, biz), v1Post())
		if strOf(m, "instanceId") != biz {
			t.Fatalf("answer %v", m)
		}
		verifyLicense(t, strOf(m, "license"))
	})

	t.Run("a debug call answers a placeholder and stores nothing", func(t *testing.T) {
		order, biz := uid("LA"), uid("biz")
		p := getLicenseParams(order, biz)
		p["testFlag"] = "1"
		m := h.licA(t, "000000", p)
		if strOf(m, "instanceId") != biz || strOf(m, "license") != license.DebugText {
			t.Fatalf("debug answer %v", m)
		}
		if n := len(h.events(t, license.IndexKind, order)) + len(h.events(t, license.Kind, biz)); n != 0 {
			t.Fatalf("a debug call stored %d events", n)
		}
		// The real call afterwards is not affected.
		if m := h.licA(t, "000000", getLicenseParams(order, uid("biz"))); strOf(m, "license") == license.DebugText {
			t.Fatalf("real call answered the placeholder")
		}
	})

	t.Run("a slow issuer answers 000005, then the same license", func(t *testing.T) {
		hs := newHarness(t, onEnv(h.env), withOptions(func(o *server.Options) { o.ProvisionBudget = 20 * time.Millisecond }))
		order, biz := uid("LA"), uid("biz")
		p := getLicenseParams(order, biz)
		m := hs.v1expect(t, "000005", p, v1Path(pathLicASlow))
		if msgOf(m) != "license generation in progress" || strOf(m, "license") != "" {
			t.Fatalf("answer %v", m)
		}
		hs.v1expect(t, "000005", getLicenseParams(order, uid("biz")), v1Path(pathLicASlow))
		h.licGate.open(order)
		var text string
		eventually(t, "the license after the gate opened", func() (bool, string) {
			m := hs.v1do(t, getLicenseParams(order, uid("biz")), v1Path(pathLicASlow)).m
			text = strOf(m, "license")
			if codeOf(m) == "000000" && strOf(m, "instanceId") != biz {
				t.Fatalf("instanceId %v, want %s", m, biz)
			}
			return codeOf(m) == "000000", codeOf(m)
		})
		verifyLicense(t, text)
		if n := h.licGate.called(order); n != 1 {
			t.Fatalf("the issuer ran %d times, want 1 (one generation in flight per instance)", n)
		}
		if got := countType(h.events(t, license.Kind, biz), license.TypeIssued); got != 1 {
			t.Fatalf("%d LicenseIssued events", got)
		}
	})
}

func TestLicenseAFieldRules(t *testing.T) {
	h := newHarness(t)
	base := getLicenseParams("LA-fields", "biz-fields")
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, f := range []string{"customerId", "businessId", "orderId"} {
		t.Run("getLicense "+f+" is mandatory", func(t *testing.T) {
			h.v1invalid(t, f, delP(base, f), v1Path(pathLicA))
			h.v1invalid(t, f, setP(base, f, ""), v1Path(pathLicA))
		})
	}
	for f, n := range map[string]int{"customerId": 100, "customerName": 64, "businessId": 64, "orderId": 64, "skuCode": 64,
		"productId": 64, "userId": 64, "userName": 64, "periodType": 10} {
		t.Run("getLicense "+f+" length", func(t *testing.T) {
			h.v1invalid(t, f, setP(base, f, long(n+1)), v1Path(pathLicA))
		})
	}
	for f, v := range map[string]string{"expireTime": "2099-01-01", "chargingMode": "2", "periodNumber": "x", "trialFlag": "yes"} {
		t.Run("getLicense "+f+" format", func(t *testing.T) {
			h.v1invalid(t, f, setP(base, f, v), v1Path(pathLicA))
		})
	}
	t.Run("debug calls are validated too", func(t *testing.T) {
		h.v1invalid(t, "orderId", setP(delP(base, "orderId"), "testFlag", "1"), v1Path(pathLicA))
	})
	refresh := map[string]string{"activity": "refreshLicense", "orderId": "R1", "instanceId": "i1", "expireTime": "20990101000000"}
	for _, f := range []string{"orderId", "instanceId", "expireTime"} {
		t.Run("refreshLicense "+f+" is mandatory", func(t *testing.T) {
			h.v1invalid(t, f, delP(refresh, f), v1Path(pathLicA))
		})
	}
	t.Run("refreshLicense field formats", func(t *testing.T) {
		h.v1invalid(t, "expireTime", setP(refresh, "expireTime", "209901010000"), v1Path(pathLicA))
		h.v1invalid(t, "productId", setP(refresh, "productId", long(65)), v1Path(pathLicA))
		h.v1invalid(t, "periodNumber", setP(refresh, "periodNumber", "123"), v1Path(pathLicA))
		h.v1invalid(t, "periodType", setP(refresh, "periodType", long(11)), v1Path(pathLicA))
	})
	t.Run("expireLicense needs instanceId only", func(t *testing.T) {
		h.v1invalid(t, "instanceId", map[string]string{"activity": "expireLicense", "orderId": "o"}, v1Path(pathLicA))
		h.v1invalid(t, "orderId", map[string]string{"activity": "expireLicense", "instanceId": "i", "orderId": long(65)}, v1Path(pathLicA))
	})
	t.Run("releaseLicense needs orderId and instanceId", func(t *testing.T) {
		h.v1invalid(t, "orderId", map[string]string{"activity": "releaseLicense", "instanceId": "i"}, v1Path(pathLicA))
		h.v1invalid(t, "instanceId", map[string]string{"activity": "releaseLicense", "orderId": "o"}, v1Path(pathLicA))
	})
	t.Run("activity", func(t *testing.T) {
		h.v1invalid(t, "activity", map[string]string{"activity": "newInstance"}, v1Path(pathLicA))
		h.v1invalid(t, "activity", map[string]string{"activity": "refreshLicenseCode"}, v1Path(pathLicA))
		h.v1invalid(t, "activity", map[string]string{"customerId": "c"}, v1Path(pathLicA))
		h.v1invalid(t, "testFlag", setP(base, "testFlag", "100"), v1Path(pathLicA))
	})
	t.Run("a License A activity on a SaaS V1 route", func(t *testing.T) {
		h.v1invalid(t, "activity", base)
	})
}

func TestLicenseAAuthentication(t *testing.T) {
	h := newHarness(t)
	p := getLicenseParams(uid("LA"), uid("biz"))
	t.Run("another key", func(t *testing.T) {
		h.licA(t, "000001", p, v1Key(keyLicB))
	})
	t.Run("a changed parameter", func(t *testing.T) {
		h.licA(t, "000001", p, v1After(func(q url.Values) { q["orderId"] = []string{"other"} }))
	})
	t.Run("no authToken", func(t *testing.T) {
		h.licA(t, "000001", p, v1After(func(q url.Values) { delete(q, "authToken") }))
	})
	t.Run("no timeStamp", func(t *testing.T) {
		h.licA(t, "000002", p, v1After(func(q url.Values) { delete(q, "timeStamp") }))
	})
	t.Run("a debug call with a bad token", func(t *testing.T) {
		h.licA(t, "000001", setP(p, "testFlag", "1"), v1Key(keyLicB))
	})
	t.Run("nothing was stored", func(t *testing.T) {
		if n := len(h.events(t, license.IndexKind, p["orderId"])); n != 0 {
			t.Fatalf("%d bindings after refused calls", n)
		}
	})
	t.Run("methods", func(t *testing.T) {
		r, err := h.do(nil, withPath(pathLicA), withMethod(http.MethodPut))
		if err != nil || r.status != http.StatusMethodNotAllowed || !strings.Contains(string(r.raw), "GET or POST") {
			t.Fatalf("PUT: %v %v", r, err)
		}
		if err := h.check(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLicenseALifecycle(t *testing.T) {
	h := newHarness(t)
	order, biz := uid("LA"), uid("biz")
	text := strOf(h.licA(t, "000000", getLicenseParams(order, biz)), "license")
	refresh := func(renewal, expire string) map[string]string {
		return map[string]string{"activity": "refreshLicense", "orderId": renewal, "instanceId": biz, "expireTime": expire}
	}
	expire := map[string]string{"activity": "expireLicense", "instanceId": biz}
	release := map[string]string{"activity": "releaseLicense", "instanceId": biz, "orderId": order}

	t.Run("unknown ids are 000003", func(t *testing.T) {
		unknown := "never-issued-" + uid("x")
		h.licA(t, "000003", setP(refresh("R0", "20990101000000"), "instanceId", unknown))
		h.licA(t, "000003", setP(expire, "instanceId", unknown))
		h.licA(t, "000003", setP(release, "instanceId", unknown))
	})
	t.Run("debug calls on unknown ids are 000000 and change nothing", func(t *testing.T) {
		unknown := "huaweitest123456"
		h.licA(t, "000000", setP(setP(refresh("R0", "20990101000000"), "instanceId", unknown), "testFlag", "1"))
		h.licA(t, "000000", setP(setP(expire, "instanceId", unknown), "testFlag", "1"))
		h.licA(t, "000000", setP(setP(release, "instanceId", unknown), "testFlag", "1"))
		h.licA(t, "000000", setP(release, "testFlag", "1"))
		if st := h.licenseState(t, biz); st.Status != license.StatusIssued || st.Events != 1 {
			t.Fatalf("state after debug calls: %+v", st)
		}
	})
	t.Run("refresh moves the expiry; a repeat is a no-op", func(t *testing.T) {
		h.licA(t, "000000", setP(refresh("R1", "21000101000000"), "productId", "new-product"))
		h.licA(t, "000000", refresh("R1", "21000101000000"))
		st := h.licenseState(t, biz)
		if !st.ExpireTime.Equal(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) || st.ProductID != "new-product" || st.Renewals != 1 || st.Events != 2 {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("expire freezes; a repeat is 000000", func(t *testing.T) {
		h.licA(t, "000000", expire)
		h.licA(t, "000000", setP(expire, "orderId", order))
		if st := h.licenseState(t, biz); st.Status != license.StatusFrozen || st.Events != 3 {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("a renewal unfreezes", func(t *testing.T) {
		h.licA(t, "000000", refresh("R2", "21010101000000000"))
		if st := h.licenseState(t, biz); st.Status != license.StatusIssued || st.Renewals != 2 {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("release; a repeat is 000000", func(t *testing.T) {
		h.licA(t, "000000", release)
		h.licA(t, "000000", release)
		if st := h.licenseState(t, biz); st.Status != license.StatusReleased || countType(h.events(t, license.Kind, biz), license.TypeReleased) != 1 {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("a released license cannot be renewed or expired", func(t *testing.T) {
		h.licA(t, "000003", refresh("R3", "21020101000000"))
		h.licA(t, "000003", expire)
	})
	t.Run("getLicense for the order still answers the same license", func(t *testing.T) {
		m := h.licA(t, "000000", getLicenseParams(order, uid("biz")))
		if strOf(m, "instanceId") != biz || strOf(m, "license") != text {
			t.Fatalf("answer %v", m)
		}
	})
}

// ---------------------------------------------------------------------------
// License B.

func (h *harness) licB(t testing.TB, code string, body any, mutate ...mutator) map[string]any {
	t.Helper()
	return h.expect(t, code, body, append([]mutator{withPath(pathLicB), withKey(keyLicB)}, mutate...)...)
}

func (h *harness) licBInvalid(t testing.TB, field string, body any) {
	t.Helper()
	h.invalid(t, field, body, withPath(pathLicB), withKey(keyLicB))
}

func (h *harness) register(t testing.TB) string {
	t.Helper()
	code := "PL" + strings.ToUpper(strings.ReplaceAll(uid("code"), "-", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.lic.RegisterCode(ctx, code, "test", event.Causation{Actor: "test"}); err != nil {
		t.Fatalf("register %s: %v", code, err)
	}
	return code
}

func (h *harness) codeState(t testing.TB, code string) licensecode.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.lic.Code(ctx, code)
	if err != nil {
		t.Fatalf("code %s: %v", code, err)
	}
	return st
}

func refreshCodeBody(code, scene, orderID, expire string) obj {
	return obj{"activity": "refreshLicenseCode", "scene": scene, "orderId": orderID, "orderLineId": orderID + "-000001",
		"license": code, "productId": "OFFI-1", "expireTime": expire}
}

func codeStatusBody(code, status string) obj {
	return obj{"activity": "updateLicenseCodeStatus", "license": code, "status": status}
}

func releaseCodeBody(code string) obj { return obj{"activity": "releaseLicenseCode", "license": code} }

func TestLicenseBLifecycle(t *testing.T) {
	h := newHarness(t)
	code := h.register(t)

	t.Run("unknown codes are 000003", func(t *testing.T) {
		m := h.licB(t, "000003", refreshCodeBody("PL-NEVER-SEEN", "RENEWAL", uid("CS"), "20990101000000"))
		if !strings.Contains(msgOf(m), "authorization code") {
			t.Errorf("resultMsg %q", msgOf(m))
		}
		h.licB(t, "000003", codeStatusBody("PL-NEVER-SEEN", "FREEZE"))
		h.licB(t, "000003", releaseCodeBody("PL-NEVER-SEEN"))
	})
	t.Run("debug calls are 000000 and change nothing", func(t *testing.T) {
		for _, c := range []string{"PL-NEVER-SEEN", code} {
			h.licB(t, "000000", debug(refreshCodeBody(c, "RENEWAL", uid("CS"), "20990101000000")))
			h.licB(t, "000000", debug(codeStatusBody(c, "FREEZE")))
			h.licB(t, "000000", debug(releaseCodeBody(c)))
		}
		if st := h.codeState(t, code); st.Status != licensecode.StatusActive || st.Events != 1 {
			t.Fatalf("state after debug calls: %+v", st)
		}
	})
	t.Run("refresh sets the expiry; a repeat is a no-op", func(t *testing.T) {
		order := uid("CS")
		h.licB(t, "000000", refreshCodeBody(code, "RENEWAL", order, "20990101000000"))
		h.licB(t, "000000", refreshCodeBody(code, "RENEWAL", order, "20990101000000"))
		st := h.codeState(t, code)
		if !st.ExpireTime.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) || st.Renewals != 1 || st.ProductID != "OFFI-1" {
			t.Fatalf("state = %+v", st)
		}
		h.licB(t, "000000", refreshCodeBody(code, "UNSUBSCRIBE_RENEWAL_PERIOD", order, "20980101000000123"))
		if st := h.codeState(t, code); !st.ExpireTime.Equal(time.Date(2098, 1, 1, 0, 0, 0, 123e6, time.UTC)) || st.Renewals != 2 {
			t.Fatalf("state after cancellation = %+v", st)
		}
	})
	t.Run("freeze and unfreeze, idempotent", func(t *testing.T) {
		h.licB(t, "000000", codeStatusBody(code, "FREEZE"))
		h.licB(t, "000000", codeStatusBody(code, "FREEZE"))
		if st := h.codeState(t, code); st.Status != licensecode.StatusFrozen {
			t.Fatalf("state = %+v", st)
		}
		h.licB(t, "000000", refreshCodeBody(code, "RENEWAL", uid("CS"), "21000101000000"))
		if st := h.codeState(t, code); st.Status != licensecode.StatusFrozen {
			t.Fatalf("a refresh unfroze the code: %+v", st)
		}
		h.licB(t, "000000", codeStatusBody(code, "UNFREEZE"))
		h.licB(t, "000000", codeStatusBody(code, "UNFREEZE"))
		st := h.codeState(t, code)
		if st.Status != licensecode.StatusActive {
			t.Fatalf("state = %+v", st)
		}
		recs := h.events(t, licensecode.Kind, code)
		if countType(recs, licensecode.TypeFrozen) != 1 || countType(recs, licensecode.TypeUnfrozen) != 1 {
			t.Fatalf("events = %v", typesOf(recs))
		}
	})
	t.Run("release; a repeat is 000000; nothing else after it", func(t *testing.T) {
		order := uid("CS-unsub")
		h.licB(t, "000000", with(with(releaseCodeBody(code), "orderId", order), "orderLineId", order+"-000001"))
		h.licB(t, "000000", releaseCodeBody(code))
		if st := h.codeState(t, code); st.Status != licensecode.StatusReleased {
			t.Fatalf("state = %+v", st)
		}
		h.licB(t, "000003", refreshCodeBody(code, "RENEWAL", uid("CS"), "21000101000000"))
		h.licB(t, "000003", codeStatusBody(code, "UNFREEZE"))
		recs := h.events(t, licensecode.Kind, code)
		if countType(recs, licensecode.TypeReleased) != 1 {
			t.Fatalf("events = %v", typesOf(recs))
		}
		var rel licensecode.Released
		for _, r := range recs {
			if r.Event.Type == licensecode.TypeReleased {
				e, err := licensecode.Decode(r.Event.Type, r.Event.Version, r.Event.Data)
				if err != nil {
					t.Fatal(err)
				}
				rel = e.(licensecode.Released)
			}
		}
		if rel.OrderID != order {
			t.Fatalf("released event %+v, want the unsubscribe order", rel)
		}
	})
}

func TestLicenseBFieldRules(t *testing.T) {
	h := newHarness(t)
	code := h.register(t)
	long := func(n int) string { return strings.Repeat("x", n) }
	r := refreshCodeBody(code, "RENEWAL", "CS-1", "20990101000000")
	for _, f := range []string{"scene", "orderId", "orderLineId", "license", "expireTime"} {
		t.Run("refreshLicenseCode "+f+" is mandatory", func(t *testing.T) {
			h.licBInvalid(t, f, without(r, f))
			h.licBInvalid(t, f, with(r, f, ""))
		})
	}
	for f, n := range map[string]int{"scene": 64, "orderId": 64, "orderLineId": 64, "license": 64, "productId": 64, "expireTime": 20} {
		t.Run("refreshLicenseCode "+f+" length", func(t *testing.T) {
			h.licBInvalid(t, f, with(r, f, long(n+1)))
		})
	}
	t.Run("refreshLicenseCode formats", func(t *testing.T) {
		h.licBInvalid(t, "scene", with(r, "scene", "TRIAL_TO_FORMAL"))
		h.licBInvalid(t, "scene", with(debug(r), "scene", "renewal"))
		h.licBInvalid(t, "expireTime", with(r, "expireTime", "2099-01-01"))
		h.licBInvalid(t, "license", with(r, "license", "PL\n1"))
		h.licBInvalid(t, "orderId", with(r, "orderId", 12))
	})
	t.Run("updateLicenseCodeStatus", func(t *testing.T) {
		s := codeStatusBody(code, "FREEZE")
		h.licBInvalid(t, "license", without(s, "license"))
		h.licBInvalid(t, "status", without(s, "status"))
		h.licBInvalid(t, "status", with(s, "status", "NORMAL"))
		h.licBInvalid(t, "status", with(debug(s), "status", "freeze"))
		h.licBInvalid(t, "status", with(s, "status", long(33)))
	})
	t.Run("releaseLicenseCode", func(t *testing.T) {
		h.licBInvalid(t, "license", without(releaseCodeBody(code), "license"))
		h.licBInvalid(t, "orderId", with(releaseCodeBody(code), "orderId", long(65)))
		h.licBInvalid(t, "orderLineId", with(releaseCodeBody(code), "orderLineId", long(65)))
	})
	t.Run("activity", func(t *testing.T) {
		h.licBInvalid(t, "activity", obj{"activity": "newInstance", "orderId": "o", "orderLineId": "l", "businessId": "b"})
		h.licBInvalid(t, "activity", obj{"activity": "getLicense"})
		h.licBInvalid(t, "activity", obj{"license": code})
		h.licBInvalid(t, "testFlag", with(releaseCodeBody(code), "testFlag", "100"))
		h.invalid(t, "activity", releaseCodeBody(code)) // a License B activity on a SaaS V2 route
	})
	t.Run("nothing changed", func(t *testing.T) {
		if st := h.codeState(t, code); st.Status != licensecode.StatusActive || st.Events != 1 {
			t.Fatalf("state = %+v", st)
		}
	})
}

func TestLicenseBAuthentication(t *testing.T) {
	h := newHarness(t)
	code := h.register(t)
	body := codeStatusBody(code, "FREEZE")
	t.Run("the key of another route", func(t *testing.T) {
		h.expect(t, "000001", body, withPath(pathLicB), withKey(keyMain), answeredWith(keyLicB))
	})
	t.Run("a tampered body", func(t *testing.T) {
		h.licB(t, "000001", body, tampered(func(b []byte) []byte { return []byte(strings.Replace(string(b), "FREEZE", "UNFREEZE", 1)) }))
	})
	t.Run("a stale timestamp", func(t *testing.T) {
		h.licB(t, "000001", body, withTime(time.Now().Add(-2*time.Minute)))
	})
	t.Run("a replayed nonce", func(t *testing.T) {
		n := uid("nonce")
		h.licB(t, "000000", debug(body), withNonce(n))
		h.licB(t, "000001", debug(body), withNonce(n))
	})
	t.Run("nothing changed", func(t *testing.T) {
		if st := h.codeState(t, code); st.Status != licensecode.StatusActive {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("methods", func(t *testing.T) {
		r, err := h.do(nil, withPath(pathLicB), withMethod(http.MethodGet))
		if err != nil || r.status != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %v %v", r, err)
		}
		if err := h.check(r); err != nil {
			t.Fatal(err)
		}
	})
}

// vectors.md §11.2: the License B examples of the pages. Their signatures
// cannot verify (000001); signed with the route's key they are debug calls
// (000000, nothing stored).
func TestLicenseBVectors(t *testing.T) {
	h := newHarness(t)
	bodies := []string{
		`{"activity":"refreshLicenseCode","expireTime":"20230523201932","license":"******","orderId":"******","orderLineId":"******","productId":"******","scene":"RENEWAL","testFlag":"1"}`,
		`{"activity":"updateLicenseCodeStatus","license":"******","status":"FREEZE","testFlag":"1"}`,
		`{"activity":"releaseLicenseCode","license":"*******","orderId":"******","orderLineId":"******","testFlag":"1"}`,
	}
	for _, b := range bodies {
		h.licB(t, "000001", b, withRawQuery("signature=af71******a50189ffa81a95cc284379ebaa5eb61155c0&timestamp=1666677988730&nonce=RLLUammMSInlrNWb"))
		h.licB(t, "000000", b)
		h.licB(t, "000003", strings.Replace(b, `"testFlag":"1"`, `"testFlag":"0"`, 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.lic.Code(ctx, "******"); !errors.Is(err, licensecode.ErrNotFound) {
		t.Fatalf("the example code exists after the calls: %v", err)
	}
}
