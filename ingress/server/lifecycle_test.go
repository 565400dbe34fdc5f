package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/koogallery"
	"github.com/gallerist/gallerist/ingress/server"
)

func TestRefreshInstance(t *testing.T) {
	h := newHarness(t)

	t.Run("RENEWAL sets the expiry: 14 and 17 digits, UTC", func(t *testing.T) {
		id, _, _ := h.create(t)
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20301231235959"))
		if got, want := h.state(t, id).ExpireTime, time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC); !got.Equal(want) {
			t.Errorf("expiry %v, want %v", got, want)
		}
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20311124023618256"))
		if got, want := h.state(t, id).ExpireTime, time.Date(2031, 11, 24, 2, 36, 18, 256e6, time.UTC); !got.Equal(want) {
			t.Errorf("expiry %v, want %v", got, want)
		}
	})

	t.Run("the same order again is 000000 and changes nothing", func(t *testing.T) {
		id, _, _ := h.create(t)
		order, line := uid("CS"), uid("line")
		h.expect(t, "000000", refreshBody("RENEWAL", order, line, id, "20300101000000"))
		before := h.instanceEvents(t, id)
		h.expect(t, "000000", refreshBody("RENEWAL", order, line, id, "20300101000000"))
		h.expect(t, "000000", refreshBody("RENEWAL", order, line, id, "20350101000000"))
		after := h.instanceEvents(t, id)
		if len(after) != len(before) {
			t.Errorf("a repeated refresh appended %v", typesOf(after[len(before):]))
		}
		if countType(after, instance.TypeRefreshed) != 1 {
			t.Errorf("InstanceRefreshed %d times, want 1", countType(after, instance.TypeRefreshed))
		}
		if got := h.state(t, id).ExpireTime; !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("expiry %v after a repeat, want 2030-01-01", got)
		}
	})

	t.Run("TRIAL_TO_FORMAL marks the instance formal", func(t *testing.T) {
		id, _, _ := h.create(t)
		if h.state(t, id).Formal {
			t.Fatal("a new instance is already formal")
		}
		h.expect(t, "000000", refreshBody("TRIAL_TO_FORMAL", uid("CS"), uid("line"), id, "20300601000000"))
		st := h.state(t, id)
		if !st.Formal || !st.ExpireTime.Equal(time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("after TRIAL_TO_FORMAL: formal %v expiry %v", st.Formal, st.ExpireTime)
		}
	})

	t.Run("UNSUBSCRIBE_RENEWAL_PERIOD moves the expiry earlier", func(t *testing.T) {
		id, _, _ := h.create(t)
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20300101000000"))
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20310101000000"))
		h.expect(t, "000000", refreshBody("UNSUBSCRIBE_RENEWAL_PERIOD", uid("CS-unsub"), uid("line"), id, "20300101000000"))
		if got := h.state(t, id).ExpireTime; !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("expiry %v, want it moved back to 2030-01-01", got)
		}
	})

	t.Run("UNSUBSCRIBE_RENEWAL_PERIOD carrying the cancelled renewal's order moves the expiry earlier", func(t *testing.T) {
		// saas-v2.md §5 UNCERTAIN: older and English pages say orderId is
		// the renewal order being cancelled; Gallerist treats it as opaque.
		// With that reading the cancellation carries the same orderId and
		// orderLineId as the renewal it cancels, and must still apply.
		id, _, _ := h.create(t)
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20300101000000"))
		order, line := uid("CS-renew"), uid("line")
		h.expect(t, "000000", refreshBody("RENEWAL", order, line, id, "20310101000000"))
		h.expect(t, "000000", refreshBody("UNSUBSCRIBE_RENEWAL_PERIOD", order, line, id, "20300101000000"))
		if got := h.state(t, id).ExpireTime; !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("BUG: expiry %v, want 2030-01-01: the cancellation was dropped as a repeat of the renewal "+
				"(domain/instance decideRefresh de-duplicates on orderId+orderLineId regardless of scene)", got)
		}
	})

	t.Run("RENEWAL_CHANGE is accepted and records the new product", func(t *testing.T) {
		id, _, _ := h.create(t)
		b := with(refreshBody("RENEWAL_CHANGE", uid("CS"), uid("line"), id, "20320101000000"), "productId", "OFFI-NEW-PRODUCT")
		h.expect(t, "000000", b)
		st := h.state(t, id)
		if st.ProductID != "OFFI-NEW-PRODUCT" || !st.ExpireTime.Equal(time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("after RENEWAL_CHANGE: product %q expiry %v", st.ProductID, st.ExpireTime)
		}
	})

	t.Run("a renewal does not unfreeze (V2: UNFREEZE is separate)", func(t *testing.T) {
		id, _, _ := h.create(t)
		h.expect(t, "000000", statusBody(id, "FREEZE"))
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20330101000000"))
		if st := h.state(t, id); st.Status != instance.StatusFrozen || !st.ExpireTime.Equal(time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("after FREEZE + RENEWAL: status %s expiry %v, want frozen and 2033", st.Status, st.ExpireTime)
		}
	})

	t.Run("unknown instance is 000003; debug of an unknown instance is 000000", func(t *testing.T) {
		missing := uid("missing")
		h.expect(t, "000003", refreshBody("RENEWAL", uid("CS"), uid("line"), missing, "20300101000000"))
		h.expect(t, "000000", debug(refreshBody("RENEWAL", uid("CS"), uid("line"), missing, "20300101000000")))
		if n := len(h.instanceEvents(t, missing)); n != 0 {
			t.Errorf("%d events for an unknown instance", n)
		}
	})

	t.Run("debug refresh of a real instance changes nothing", func(t *testing.T) {
		id, _, _ := h.create(t)
		before := h.state(t, id)
		h.expect(t, "000000", debug(refreshBody("TRIAL_TO_FORMAL", uid("CS"), uid("line"), id, "20400101000000")))
		if after := h.state(t, id); after.Events != before.Events || after.Formal || !after.ExpireTime.IsZero() {
			t.Errorf("debug refresh changed the instance: %+v", after)
		}
	})
}

func TestUpdateInstanceStatus(t *testing.T) {
	h := newHarness(t)

	t.Run("FREEZE, FREEZE again, UNFREEZE, UNFREEZE again", func(t *testing.T) {
		id, _, _ := h.create(t)
		h.expect(t, "000000", statusBody(id, "FREEZE"))
		if st := h.state(t, id); st.Status != instance.StatusFrozen {
			t.Fatalf("status %s, want frozen", st.Status)
		}
		n := len(h.instanceEvents(t, id))
		h.expect(t, "000000", statusBody(id, "FREEZE"))
		if m := len(h.instanceEvents(t, id)); m != n {
			t.Errorf("FREEZE of a frozen instance appended %d events", m-n)
		}
		// Frozen data is kept: the app info is still handed out.
		if app := appInfoOf(t, h.expect(t, "000000", queryBody(id)), id); app["frontEndUrl"] == nil {
			t.Errorf("frozen instance lost its app info")
		}
		h.expect(t, "000000", statusBody(id, "UNFREEZE"))
		if st := h.state(t, id); st.Status != instance.StatusActive {
			t.Fatalf("status %s, want active", st.Status)
		}
		n = len(h.instanceEvents(t, id))
		h.expect(t, "000000", statusBody(id, "UNFREEZE"))
		if m := len(h.instanceEvents(t, id)); m != n {
			t.Errorf("UNFREEZE of an active instance appended %d events", m-n)
		}
		evs := h.instanceEvents(t, id)
		if countType(evs, instance.TypeFrozen) != 1 || countType(evs, instance.TypeUnfrozen) != 1 {
			t.Errorf("events %v, want one Frozen and one Unfrozen", typesOf(evs))
		}
	})

	t.Run("unknown instance is 000003; debug is 000000 and changes nothing", func(t *testing.T) {
		h.expect(t, "000003", statusBody(uid("missing"), "FREEZE"))
		h.expect(t, "000000", debug(statusBody(uid("missing"), "UNFREEZE")))
		id, _, _ := h.create(t)
		h.expect(t, "000000", debug(statusBody(id, "FREEZE")))
		if st := h.state(t, id); st.Status != instance.StatusActive {
			t.Errorf("debug FREEZE froze the instance: %s", st.Status)
		}
	})
}

func TestReleaseInstance(t *testing.T) {
	h := newHarness(t)

	t.Run("release, release again, then everything is 000003", func(t *testing.T) {
		id, _, _ := h.create(t)
		unsubOrder, unsubLine := uid("CS-unsub"), uid("line")
		rb := with(with(releaseBody(id), "orderId", unsubOrder), "orderLineId", unsubLine)
		h.expect(t, "000000", rb)
		if st := h.state(t, id); st.Status != instance.StatusReleased {
			t.Fatalf("status %s, want released", st.Status)
		}
		n := len(h.instanceEvents(t, id))
		h.expect(t, "000000", releaseBody(id))
		evs := h.instanceEvents(t, id)
		if len(evs) != n || countType(evs, instance.TypeReleased) != 1 {
			t.Errorf("second release: events %v, want exactly one Released", typesOf(evs))
		}
		var rel instance.Released
		if err := json.Unmarshal(evs[len(evs)-1].Event.Data, &rel); err != nil || rel.OrderID != unsubOrder || rel.OrderLineID != unsubLine {
			t.Errorf("Released event %s (%v), want the unsubscribe order %s/%s", evs[len(evs)-1].Event.Data, err, unsubOrder, unsubLine)
		}
		for name, b := range map[string]obj{
			"refreshInstance":      refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20300101000000"),
			"updateInstanceStatus": statusBody(id, "FREEZE"),
			"upgradeInstance":      upgradeBody(id, uid("CS"), uid("line")),
			"changeInstanceCheck":  changeBody(id, productInfo()),
			"queryInstance":        queryBody(id),
		} {
			t.Run(name, func(t *testing.T) { h.expect(t, "000003", b) })
		}
		if m := len(h.instanceEvents(t, id)); m != n {
			t.Errorf("commands on a released instance appended %d events", m-n)
		}
	})

	t.Run("unknown instance is 000003; debug of an unknown instance is 000000", func(t *testing.T) {
		missing := uid("missing")
		h.expect(t, "000003", releaseBody(missing))
		h.expect(t, "000000", debug(releaseBody(missing)))
		id, _, _ := h.create(t)
		h.expect(t, "000000", debug(releaseBody(id)))
		if st := h.state(t, id); st.Status != instance.StatusActive {
			t.Errorf("debug release released the instance: %s", st.Status)
		}
	})

	t.Run("a refused instance can be released", func(t *testing.T) {
		refuse := newHarness(t, onEnv(h.env), signedBy(keyRefuse, pathRefuse))
		order, line, id := uid("CS"), uid("line"), uid("biz")
		eventually(t, "refused", func() (bool, string) {
			m := refuse.expectOneOf(t, []string{"000004", refusalCode}, newInstanceBody(order, line, id))
			return codeOf(m) == refusalCode, codeOf(m)
		})
		refuse.expect(t, "000000", releaseBody(id))
		refuse.expect(t, "000000", releaseBody(id))
		refuse.expect(t, "000003", queryBody(id))
	})
}

func TestUpgradeInstance(t *testing.T) {
	h := newHarness(t)

	t.Run("000000, idempotent per upgrade order", func(t *testing.T) {
		id, _, _ := h.create(t)
		order, line := uid("CS-up"), uid("line")
		for i := 0; i < 3; i++ {
			h.expect(t, "000000", upgradeBody(id, order, line))
		}
		if n := countType(h.instanceEvents(t, id), instance.TypeUpgraded); n != 1 {
			t.Errorf("InstanceUpgraded %d times, want 1", n)
		}
		h.expect(t, "000000", upgradeBody(id, uid("CS-up"), uid("line")))
		if n := countType(h.instanceEvents(t, id), instance.TypeUpgraded); n != 2 {
			t.Errorf("a second upgrade order: InstanceUpgraded %d times, want 2", n)
		}
		if st := h.state(t, id); st.Upgrades != 2 {
			t.Errorf("Upgrades = %d, want 2", st.Upgrades)
		}
		// The upgrade does not change the instance id or its app info.
		appInfoOf(t, h.expect(t, "000000", queryBody(id)), id)
	})

	t.Run("unknown instance is 000003; debug is 000000 and changes nothing", func(t *testing.T) {
		h.expect(t, "000003", upgradeBody(uid("missing"), uid("CS"), uid("line")))
		h.expect(t, "000000", debug(upgradeBody(uid("missing"), uid("CS"), uid("line"))))
		id, _, _ := h.create(t)
		h.expect(t, "000000", debug(upgradeBody(id, uid("CS"), uid("line"))))
		if st := h.state(t, id); st.Upgrades != 0 {
			t.Errorf("debug upgrade applied: %d", st.Upgrades)
		}
	})
}

// floorPolicy refuses a change to fewer users than are in use.
type floorPolicy struct {
	inUse int64
	mu    sync.Mutex
	seen  []server.ProductInfo
	ids   []string
}

func (p *floorPolicy) CheckChange(_ context.Context, st instance.State, target server.ProductInfo) error {
	p.mu.Lock()
	p.seen = append(p.seen, target)
	p.ids = append(p.ids, st.ID)
	p.mu.Unlock()
	if target.LinearValue != nil && *target.LinearValue < p.inUse {
		return fmt.Errorf("current usage exceeds target spec: %d users in use, %s allows %d", p.inUse, target.SKUCode, *target.LinearValue)
	}
	return nil
}

func (p *floorPolicy) last() (server.ProductInfo, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return server.ProductInfo{}, ""
	}
	return p.seen[len(p.seen)-1], p.ids[len(p.ids)-1]
}

// verbosePolicy refuses every change with a long explanation.
type verbosePolicy struct{}

func (verbosePolicy) CheckChange(context.Context, instance.State, server.ProductInfo) error {
	return fmt.Errorf("usage %s", strings.Repeat("exceeds the target specification; ", 12))
}

func TestChangeInstanceCheck(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, onEnv(env))

	t.Run("the default policy accepts and nothing is appended", func(t *testing.T) {
		id, _, _ := h.create(t)
		n := len(h.instanceEvents(t, id))
		h.expect(t, "000000", changeBody(id, productInfo()))
		h.expect(t, "000000", changeBody(id, with(productInfo(), "linearValue", 1)))
		if m := len(h.instanceEvents(t, id)); m != n {
			t.Errorf("changeInstanceCheck appended %d events", m-n)
		}
	})

	t.Run("a refusing policy: 000002 with its reason", func(t *testing.T) {
		p := &floorPolicy{inUse: 10}
		ph := newHarness(t, onEnv(env), withPolicy(p))
		id, _, _ := ph.create(t)
		m := ph.expect(t, "000002", changeBody(id, with(with(productInfo(), "linearValue", 3), "skuCode", "sku-small")))
		if !strings.Contains(msgOf(m), "current usage exceeds target spec") {
			t.Errorf("resultMsg %q does not carry the policy's reason", msgOf(m))
		}
		got, gotID := p.last()
		if gotID != id || got.SKUCode != "sku-small" || got.ProductID != "OFFI461867333479178240" ||
			got.ProductName != "Basic" || got.LinearValue == nil || *got.LinearValue != 3 {
			t.Errorf("policy saw %+v for %s", got, gotID)
		}
		ph.expect(t, "000000", changeBody(id, with(productInfo(), "linearValue", 20)))
		ph.expect(t, "000000", changeBody(id, without(productInfo(), "linearValue")))
		if got, _ := p.last(); got.LinearValue != nil {
			t.Errorf("absent linearValue reached the policy as %d", *got.LinearValue)
		}
		// Existence comes before the policy, and debug requests skip it.
		calls := len(p.seen)
		ph.expect(t, "000003", changeBody(uid("missing"), with(productInfo(), "linearValue", 1)))
		ph.expect(t, "000000", debug(changeBody(id, with(productInfo(), "linearValue", 1))))
		if len(p.seen) != calls {
			t.Errorf("the policy was asked about an unknown or a debug request")
		}
	})

	t.Run("a long refusal reason still fits resultMsg (String, 255)", func(t *testing.T) {
		ph := newHarness(t, onEnv(env), withPolicy(verbosePolicy{}))
		id, _, _ := ph.create(t)
		m := ph.expect(t, "000002", changeBody(id, productInfo()))
		if n := utf8.RuneCountInString(msgOf(m)); n > koogallery.MaxResultMsgLen {
			t.Errorf("BUG: resultMsg is %d characters, over the documented %d (saas-v2.md §1, §9); "+
				"ingress/server/saasv2.go changeInstanceCheck builds it without truncation", n, koogallery.MaxResultMsgLen)
		}
		if !strings.HasPrefix(msgOf(m), "change refused: usage") {
			t.Errorf("resultMsg %.40q does not start with the reason", msgOf(m))
		}
	})

	t.Run("nested productInfo in any member order verifies (forms a, b, c)", func(t *testing.T) {
		id, _, _ := h.create(t)
		body := []byte(`{"instanceId":"` + id + `","activity":"changeInstanceCheck","productInfo":{"skuCode":"s","productName":"n","linearValue":7,"productId":"p"}}`)
		for _, f := range []koogallery.Form{koogallery.FormA, koogallery.FormB, koogallery.FormC} {
			h.expect(t, "000000", body, withForm(f))
		}
	})

	t.Run("unknown instance is 000003; debug is 000000", func(t *testing.T) {
		h.expect(t, "000003", changeBody(uid("missing"), productInfo()))
		h.expect(t, "000000", debug(changeBody(uid("missing"), productInfo())))
	})
}

func TestOrderNotify(t *testing.T) {
	h := newHarness(t)
	notifications := func(order string) []map[string]any {
		recs := h.events(t, instance.NotifyKind, order)
		out := make([]map[string]any, len(recs))
		for i, r := range recs {
			if r.Event.Type != instance.TypeOrderNotified {
				t.Errorf("event type %s, want %s", r.Event.Type, instance.TypeOrderNotified)
			}
			if r.Event.Causation.Activity != "orderNotify" || r.Event.Causation.Route != pathMain {
				t.Errorf("causation %+v", r.Event.Causation)
			}
			_ = json.Unmarshal(r.Event.Data, &out[i])
		}
		return out
	}

	t.Run("recorded on the ordernotify stream", func(t *testing.T) {
		order, line := uid("CS"), uid("line")
		h.expect(t, "000000", notifyBody(order, line))
		got := notifications(order)
		if len(got) != 1 || got[0]["orderId"] != order || got[0]["orderLineId"] != line {
			t.Fatalf("notifications %v, want one for %s/%s", got, order, line)
		}
		// Every notification is kept; orderLineId is optional.
		h.expect(t, "000000", notifyBody(order, ""))
		if got := notifications(order); len(got) != 2 {
			t.Errorf("%d notifications, want 2", len(got))
		}
	})

	t.Run("debug is 000000 and records nothing", func(t *testing.T) {
		order := uid("CS")
		h.expect(t, "000000", debug(notifyBody(order, uid("line"))))
		if got := notifications(order); len(got) != 0 {
			t.Errorf("a debug notification was recorded: %v", got)
		}
	})
}

func TestEscaping(t *testing.T) {
	h := newHarness(t, signedBy(keyMemo, pathMemo))
	id, _, _ := h.create(t)
	st, hdr, raw, m := h.call(t, queryBody(id))
	if st != 200 || codeOf(m) != "000000" {
		t.Fatalf("HTTP %d: %s", st, raw)
	}
	const escaped = `"memo":"\u5f00\u901a\u6210\u529f"`
	if !bytes.Contains(raw, []byte(escaped)) {
		t.Errorf("raw body lacks %s: %s", escaped, raw)
	}
	if got := strOf(appInfoOf(t, m, id), "memo"); got != memoChinese {
		t.Errorf("memo decodes to %q, want %q", got, memoChinese)
	}
	sign := hdr.Get(koogallery.BodySignHeader)
	if err := koogallery.VerifyBodySign([]byte(keyMemo), raw, sign); err != nil {
		t.Errorf("Body-Sign does not verify over the escaped bytes: %v", err)
	}
	unescaped := bytes.Replace(raw, []byte(`\u5f00\u901a\u6210\u529f`), []byte(memoChinese), 1)
	if err := koogallery.VerifyBodySign([]byte(keyMemo), unescaped, sign); err == nil {
		t.Error("Body-Sign verifies over the unescaped body: the wrong bytes were signed")
	}
}
