package server_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/server"
	"github.com/gallerist/gallerist/projections/provision"
)

func TestNewInstance(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, onEnv(env))

	t.Run("a real request answers instanceId = businessId once provisioned", func(t *testing.T) {
		order, line, biz := uid("CS"), uid("line"), uid("biz")
		m := h.expectOneOf(t, []string{"000000", "000004"}, newInstanceBody(order, line, biz))
		if got := strOf(m, "instanceId"); got != biz {
			t.Fatalf("instanceId = %q, want the businessId %q", got, biz)
		}
		if got := strOf(m, "encryptType"); got != "1" {
			t.Errorf("encryptType = %q, want 1", got)
		}
		h.createFor(t, order, line, biz) // re-sent until ready: 000000
		st := h.state(t, biz)
		if st.Status != instance.StatusActive || !st.Provisioned || st.AppInfo == nil {
			t.Errorf("state after 000000: %+v, want active and provisioned", st)
		}
		if st.OrderID != order || st.OrderLineID != line {
			t.Errorf("state order %s/%s, want %s/%s", st.OrderID, st.OrderLineID, order, line)
		}
		idx := h.indexEvents(t, order, line)
		if len(idx) != 1 || idx[0].Event.Type != instance.TypeBound {
			t.Errorf("order index events %v, want one %s", typesOf(idx), instance.TypeBound)
		}
		evs := h.instanceEvents(t, biz)
		if countType(evs, instance.TypeCreated) != 1 || countType(evs, instance.TypeProvisioned) != 1 {
			t.Errorf("instance events %v, want one Created and one Provisioned", typesOf(evs))
		}
		if c := evs[0].Event.Causation; c.Activity != "newInstance" || c.Route != pathMain || c.BusinessID != biz || c.Nonce == "" {
			t.Errorf("causation of InstanceCreated = %+v", c)
		}
	})

	t.Run("a retry with a new businessId answers the same instanceId", func(t *testing.T) {
		id, order, line := h.create(t)
		for i := 0; i < 3; i++ {
			biz2 := uid("biz-retry")
			m := h.expect(t, "000000", newInstanceBody(order, line, biz2))
			if got := strOf(m, "instanceId"); got != id {
				t.Errorf("retry %d: instanceId = %q, want the first businessId %q", i, got, id)
			}
			if n := len(h.instanceEvents(t, biz2)); n != 0 {
				t.Errorf("retry %d created a stream for the new businessId (%d events)", i, n)
			}
		}
		if n := countType(h.instanceEvents(t, id), instance.TypeCreated); n != 1 {
			t.Errorf("InstanceCreated %d times, want 1", n)
		}
		if n := len(h.indexEvents(t, order, line)); n != 1 {
			t.Errorf("order index has %d events, want 1", n)
		}
	})

	t.Run("another order line of the same order is another instance", func(t *testing.T) {
		order := uid("CS")
		a, b := uid("biz"), uid("biz")
		h.createFor(t, order, order+"-000001", a)
		h.createFor(t, order, order+"-000002", b)
		if h.state(t, a).OrderLineID == h.state(t, b).OrderLineID {
			t.Error("two order lines share an instance")
		}
	})

	t.Run("50 concurrent requests for one order line make one instance", func(t *testing.T) {
		order, line := uid("CS"), uid("line")
		const n = 50
		bizs := make([]string, n)
		for i := range bizs {
			bizs[i] = fmt.Sprintf("%s-%02d", uid("biz-c"), i)
		}
		type answer struct {
			code, id string
			err      error
		}
		answers := make([]answer, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := h.do(newInstanceBody(order, line, bizs[i]))
				if err == nil {
					err = h.check(r)
				}
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("HTTP %d", r.status)
				}
				if err != nil {
					answers[i].err = err
					return
				}
				answers[i] = answer{code: codeOf(r.m), id: strOf(r.m, "instanceId")}
			}()
		}
		close(start)
		wg.Wait()
		ids := map[string]int{}
		for i, a := range answers {
			if a.err != nil {
				t.Errorf("request %d: %v", i, a.err)
				continue
			}
			if a.code != "000000" && a.code != "000004" {
				t.Errorf("request %d: resultCode %s, want 000000 or 000004", i, a.code)
			}
			ids[a.id]++
		}
		if len(ids) != 1 {
			t.Fatalf("instanceIds answered: %v, want one id %d times", ids, n)
		}
		var id string
		for k := range ids {
			id = k
		}
		if ids[id] != n {
			t.Errorf("instanceId %s answered %d times, want %d", id, ids[id], n)
		}
		found := false
		for _, b := range bizs {
			if b == id {
				found = true
			} else if evs := h.instanceEvents(t, b); len(evs) != 0 {
				t.Errorf("businessId %s has its own instance stream: %v", b, typesOf(evs))
			}
		}
		if !found {
			t.Errorf("instanceId %s is none of the businessIds sent", id)
		}
		if idx := h.indexEvents(t, order, line); len(idx) != 1 {
			t.Errorf("order index has %d events, want exactly 1", len(idx))
		}
		if c := countType(h.instanceEvents(t, id), instance.TypeCreated); c != 1 {
			t.Errorf("InstanceCreated appended %d times, want 1", c)
		}
		h.createFor(t, order, line, id) // and it becomes ready
	})

	t.Run("debug newInstance answers instanceId = businessId and appends nothing", func(t *testing.T) {
		for name, flag := range map[string]any{`"1"`: "1", `1`: 1} {
			t.Run(name, func(t *testing.T) {
				order, line, biz := uid("CS"), uid("line"), uid("biz")
				b := with(newInstanceBody(order, line, biz), "testFlag", flag)
				before := streamMessages(t, env)
				for i := 0; i < 2; i++ {
					m := h.expect(t, "000000", b)
					if got := strOf(m, "instanceId"); got != biz {
						t.Errorf("instanceId = %q, want %q", got, biz)
					}
					if got := strOf(m, "encryptType"); got != "1" {
						t.Errorf("encryptType = %q, want 1", got)
					}
				}
				if n := len(h.indexEvents(t, order, line)); n != 0 {
					t.Errorf("debug request bound the order line (%d events)", n)
				}
				if n := len(h.instanceEvents(t, biz)); n != 0 {
					t.Errorf("debug request appended %d instance events", n)
				}
				if after := streamMessages(t, env); after != before {
					t.Errorf("the event stream went from %d to %d messages", before, after)
				}
			})
		}
		// A debug request for an order that really exists touches nothing
		// and still answers with its own businessId.
		id, order, line := h.create(t)
		evs := len(h.instanceEvents(t, id))
		other := uid("biz-debug")
		m := h.expect(t, "000000", debug(newInstanceBody(order, line, other)))
		if got := strOf(m, "instanceId"); got != other {
			t.Errorf("debug request for a real order: instanceId %q, want its businessId %q", got, other)
		}
		if n := len(h.instanceEvents(t, id)); n != evs {
			t.Errorf("debug request changed the real instance: %d → %d events", evs, n)
		}
	})

	t.Run("a businessId already used by another order's instance", func(t *testing.T) {
		// KooGallery sends a new businessId on every request, and
		// instanceIds of different orders never collide (saas-v2.md §3).
		// Should a businessId ever come back on another order, that order
		// must not be harmed beyond the one request: its retries carry new
		// businessIds and must be able to create its instance.
		taken, _, _ := h.create(t)
		order, line := uid("CS"), uid("line")
		m := h.expect(t, "000000", newInstanceBody(order, line, taken))
		got := strOf(m, "instanceId")
		if got == taken || got == "" {
			t.Fatalf("answered instanceId %q; want a fresh id, not the other order's %q", got, taken)
		}
		if st := h.state(t, taken); st.OrderID == order {
			t.Errorf("the other order's instance was taken over: %+v", st)
		}
		if st := h.state(t, got); st.OrderID != order || st.OrderLineID != line {
			t.Errorf("the fresh instance belongs to %s/%s, want %s/%s", st.OrderID, st.OrderLineID, order, line)
		}
		// Retries of the order line (new businessIds) get the same fresh id.
		m = h.expect(t, "000000", newInstanceBody(order, line, uid("biz-retry")))
		if strOf(m, "instanceId") != got {
			t.Errorf("retry answered instanceId %q, want %q", strOf(m, "instanceId"), got)
		}
	})
}

// waitWorkerIdle waits until the provisioning worker has settled every
// event of the stream (nothing pending, nothing unacknowledged).
func (e *env) waitWorkerIdle(t testing.TB) {
	t.Helper()
	eventually(t, "provisioning worker idle", func() (bool, string) {
		c, err := e.store.Stream().Consumer(t.Context(), "effect-"+provision.Name)
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0,
			fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	})
}

// streamMessages is the number of messages in the event stream.
func streamMessages(t testing.TB, e *env) uint64 {
	t.Helper()
	info, err := e.store.Stream().Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestNewInstanceSlowAndRefused(t *testing.T) {
	env := newEnv(t)
	slow := newHarness(t, onEnv(env), signedBy(keyBlock, pathBlock),
		withOptions(func(o *server.Options) { o.ProvisionBudget = 100 * time.Millisecond }))

	t.Run("a provisioner slower than the budget: 000004, polled until ready", func(t *testing.T) {
		order, line, id := uid("CS"), uid("line"), uid("biz-slow")
		m := slow.expect(t, "000004", newInstanceBody(order, line, id))
		if got := strOf(m, "instanceId"); got != id {
			t.Fatalf("000004 without the instanceId: %q, want %q", got, id)
		}
		eventually(t, "the provisioner is called", func() (bool, string) { return env.gate.called(id) > 0, "not called" })

		// A re-sent newInstance answers from the stored state.
		m = slow.expect(t, "000004", newInstanceBody(order, line, uid("biz-retry")))
		if got := strOf(m, "instanceId"); got != id {
			t.Errorf("re-sent newInstance: instanceId %q, want %q", got, id)
		}
		// queryInstance: still provisioning, info without appInfo.
		for i := 0; i < 2; i++ {
			m = slow.expect(t, "000004", queryBody(id))
			in := infos(t, m)
			if len(in) != 1 || strOf(in[0], "instanceId") != id {
				t.Fatalf("info = %v, want one entry for %s", m["info"], id)
			}
			if _, has := in[0]["appInfo"]; has {
				t.Errorf("appInfo sent while provisioning: %v", in[0])
			}
		}
		// With a ready instance in the same batch the answer is 000000, and
		// the pending one still has no appInfo.
		ready, _, _ := slow.create(t, withPath(pathMain), withKey(keyMain))
		m = slow.expect(t, "000000", queryBody(id, ready), withPath(pathMain), withKey(keyMain))
		for _, in := range infos(t, m) {
			_, has := in["appInfo"]
			switch strOf(in, "instanceId") {
			case id:
				if has {
					t.Errorf("pending instance has appInfo in a batch")
				}
			case ready:
				if !has {
					t.Errorf("ready instance lacks appInfo in a batch")
				}
			default:
				t.Errorf("unexpected info %v", in)
			}
		}
		if len(infos(t, m)) != 2 {
			t.Errorf("batch info %v, want 2 entries", m["info"])
		}

		env.gate.open(id)
		eventually(t, "queryInstance 000000", func() (bool, string) {
			m := slow.expectOneOf(t, []string{"000000", "000004"}, queryBody(id))
			if codeOf(m) != "000000" {
				return false, codeOf(m)
			}
			in := infos(t, m)
			if len(in) != 1 || in[0]["appInfo"] == nil {
				t.Fatalf("000000 without appInfo: %v", m)
			}
			return true, ""
		})
		m = slow.expect(t, "000000", newInstanceBody(order, line, uid("biz-retry")))
		if got := strOf(m, "instanceId"); got != id {
			t.Errorf("newInstance after provisioning: instanceId %q, want %q", got, id)
		}
	})

	t.Run("releasing an instance still provisioning cancels it", func(t *testing.T) {
		order, line, id := uid("CS"), uid("line"), uid("biz-slow")
		slow.expect(t, "000004", newInstanceBody(order, line, id))
		slow.expect(t, "000000", releaseBody(id))
		env.gate.open(id)
		env.waitWorkerIdle(t)
		if evs := env.instanceEvents(t, id); countType(evs, instance.TypeProvisioned) != 0 {
			t.Errorf("a released instance was provisioned afterwards: %v", typesOf(evs))
		}
		slow.expect(t, "000003", queryBody(id))
		if st := env.state(t, id); st.Status != instance.StatusReleased {
			t.Errorf("status %s, want released", st.Status)
		}
	})

	t.Run("a refusing provisioner: 000100 with its message, and the retry too", func(t *testing.T) {
		refuse := newHarness(t, onEnv(env), signedBy(keyRefuse, pathRefuse))
		order, line, id := uid("CS"), uid("line"), uid("biz-refused")
		var first map[string]any
		eventually(t, "refusal recorded", func() (bool, string) {
			m := refuse.expectOneOf(t, []string{refusalCode, "000004"}, newInstanceBody(order, line, id))
			first = m
			return codeOf(m) == refusalCode, codeOf(m)
		})
		if msgOf(first) != refusalReason {
			t.Errorf("resultMsg = %q, want the provisioner's %q", msgOf(first), refusalReason)
		}
		for i := 0; i < 2; i++ {
			m := refuse.expect(t, refusalCode, newInstanceBody(order, line, uid("biz-retry")))
			if msgOf(m) != refusalReason {
				t.Errorf("retry %d: resultMsg %q, want %q", i, msgOf(m), refusalReason)
			}
		}
		if st := env.state(t, id); st.Status != instance.StatusFailed || st.Failure == nil || st.Failure.Code != refusalCode {
			t.Errorf("state %+v, want failed with %s", st, refusalCode)
		}
		// The refused instance never hands out app info.
		_, _, raw, m := refuse.call(t, queryBody(id))
		if c := codeOf(m); c == "000000" || c == "000004" {
			t.Errorf("queryInstance of a refused instance answered %s: %s", c, raw)
		}
		if len(infos(t, m)) != 0 {
			t.Errorf("queryInstance of a refused instance returned info: %s", raw)
		}
	})
}
