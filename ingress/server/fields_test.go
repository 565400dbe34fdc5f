package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/instance"
)

// validBodies returns one valid body per activity, on instance id.
func validBodies(id string) map[string]obj {
	return map[string]obj{
		"newInstance":          newInstanceBody(uid("CS"), uid("line"), uid("biz")),
		"queryInstance":        queryBody(id),
		"refreshInstance":      refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20300101000000"),
		"updateInstanceStatus": statusBody(id, "FREEZE"),
		"releaseInstance":      releaseBody(id),
		"upgradeInstance":      upgradeBody(id, uid("CS"), uid("line")),
		"changeInstanceCheck":  changeBody(id, productInfo()),
		"orderNotify":          notifyBody(uid("CS"), uid("line")),
	}
}

// mandatory lists the mandatory string fields of every activity.
var mandatory = map[string][]string{
	"newInstance":          {"orderId", "orderLineId", "businessId"},
	"queryInstance":        {"instanceId"},
	"refreshInstance":      {"scene", "orderId", "orderLineId", "instanceId", "expireTime"},
	"updateInstanceStatus": {"instanceId", "status"},
	"releaseInstance":      {"instanceId"},
	"upgradeInstance":      {"instanceId", "orderId", "orderLineId"},
	"changeInstanceCheck":  {"instanceId", "productInfo"},
	"orderNotify":          {"orderId"},
}

// maxLens lists the documented lengths checked on each activity's fields.
var maxLens = map[string]map[string]int{
	"newInstance":          {"orderId": 64, "orderLineId": 64, "businessId": 64},
	"queryInstance":        {"instanceId": 64}, // per id
	"refreshInstance":      {"scene": 64, "orderId": 64, "orderLineId": 64, "instanceId": 64, "productId": 64, "expireTime": 20},
	"updateInstanceStatus": {"instanceId": 64, "status": 32},
	"releaseInstance":      {"instanceId": 64, "orderId": 64, "orderLineId": 64},
	"upgradeInstance":      {"instanceId": 64, "orderId": 64, "orderLineId": 64},
	"changeInstanceCheck":  {"instanceId": 64},
	"orderNotify":          {"orderId": 64, "orderLineId": 64},
}

func TestFields(t *testing.T) {
	h := newHarness(t)
	id, _, _ := h.create(t)

	for _, mode := range []struct {
		name string
		mark func(obj) obj
	}{{"real", func(b obj) obj { return b }}, {"debug", debug}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Run("mandatory field missing, null or empty is 000002 naming it", func(t *testing.T) {
				for activity, fields := range mandatory {
					for _, f := range fields {
						t.Run(activity+"/"+f, func(t *testing.T) {
							b := mode.mark(validBodies(id)[activity])
							h.invalid(t, f, without(b, f))
							h.invalid(t, f, with(b, f, nil))
							if f != "productInfo" {
								h.invalid(t, f, with(b, f, ""))
							}
						})
					}
				}
			})

			t.Run("over-long field is 000002 naming it", func(t *testing.T) {
				for activity, lens := range maxLens {
					for f, n := range lens {
						t.Run(fmt.Sprintf("%s/%s/%d", activity, f, n+1), func(t *testing.T) {
							b := mode.mark(validBodies(id)[activity])
							h.invalid(t, f, with(b, f, strings.Repeat("1", n+1)))
							// Length counts characters, not bytes: n Chinese
							// characters are not too long for the length rule.
							if f == "orderId" && activity == "orderNotify" {
								h.expect(t, "000000", with(b, f, strings.Repeat("中", n)))
							}
						})
					}
				}
				t.Run("activity longer than 32", func(t *testing.T) {
					h.invalid(t, "activity", mode.mark(obj{"activity": strings.Repeat("a", 33)}))
				})
				t.Run("testFlag longer than 2", func(t *testing.T) {
					h.invalid(t, "testFlag", with(validBodies(id)["queryInstance"], "testFlag", "100"))
				})
			})

			t.Run("non-string value is 000002 naming the field", func(t *testing.T) {
				for _, c := range []struct {
					activity, field string
					v               any
				}{
					{"newInstance", "orderId", 12345},
					{"newInstance", "businessId", obj{"id": "x"}},
					{"newInstance", "orderLineId", []any{"a"}},
					{"queryInstance", "instanceId", true},
					{"queryInstance", "instanceId", []any{id}},
					{"refreshInstance", "expireTime", 20300101000000},
					{"refreshInstance", "scene", 1},
					{"updateInstanceStatus", "status", []any{"FREEZE"}},
					{"releaseInstance", "instanceId", 1.5},
					{"upgradeInstance", "orderId", false},
					{"changeInstanceCheck", "instanceId", 7},
					{"orderNotify", "orderId", obj{}},
				} {
					t.Run(fmt.Sprintf("%s/%s/%T", c.activity, c.field, c.v), func(t *testing.T) {
						h.invalid(t, c.field, with(mode.mark(validBodies(id)[c.activity]), c.field, c.v))
					})
				}
			})

			t.Run("unknown, missing or malformed activity is 000002 naming activity", func(t *testing.T) {
				for name, b := range map[string]obj{
					"unknown":          {"activity": "deleteEverything", "instanceId": id},
					"V1 activity":      {"activity": "expireInstance", "instanceId": id},
					"License activity": {"activity": "getLicenseAsync", "instanceId": id},
					"wrong case":       {"activity": "NewInstance", "orderId": "o", "orderLineId": "l", "businessId": "b"},
					"missing":          {"instanceId": id},
					"empty":            {"activity": "", "instanceId": id},
					"null":             {"activity": nil, "instanceId": id},
					"number":           {"activity": 1, "instanceId": id},
					"object":           {"activity": obj{"name": "newInstance"}},
					"trailing space":   {"activity": "queryInstance ", "instanceId": id},
				} {
					t.Run(name, func(t *testing.T) { h.invalid(t, "activity", mode.mark(b)) })
				}
			})

			t.Run("bad scene is 000002 naming scene", func(t *testing.T) {
				for _, s := range []string{"RENEW", "renewal", "TRIAL", "UNSUBSCRIBE", " RENEWAL"} {
					h.invalid(t, "scene", mode.mark(refreshBody(s, uid("CS"), uid("line"), id, "20300101000000")))
				}
			})

			t.Run("bad status is 000002 naming status", func(t *testing.T) {
				for _, s := range []string{"freeze", "FROZEN", "NORMAL", "DELETE", "UNFREEZE "} {
					h.invalid(t, "status", mode.mark(statusBody(id, s)))
				}
			})

			t.Run("bad expireTime is 000002 naming expireTime", func(t *testing.T) {
				for _, s := range []string{
					"2030010100000",       // 13 digits
					"203001010000001",     // 15 digits
					"2030-01-01T00:00:00", // not digits
					"2030010100000a",      // 14, not all digits
					"20301301000000",      // month 13
					"20300230000000",      // 30 February
					"20300101250000",      // hour 25
					" 20300101000000",     // padded
					"20300101000000.123",  // separator
				} {
					t.Run(s, func(t *testing.T) {
						h.invalid(t, "expireTime", mode.mark(refreshBody("RENEWAL", uid("CS"), uid("line"), id, s)))
					})
				}
			})

			t.Run("queryInstance id list", func(t *testing.T) {
				ids := make([]string, 101)
				for i := range ids {
					ids[i] = uid("q")
				}
				h.invalid(t, "instanceId", mode.mark(queryBody(ids...)))
				for _, blank := range []string{"", " ", ",", " , ,", "\t"} {
					h.invalid(t, "instanceId", mode.mark(obj{"activity": "queryInstance", "instanceId": blank}))
				}
				h.invalid(t, "instanceId", mode.mark(queryBody(id, strings.Repeat("x", 65))))
			})

			t.Run("changeInstanceCheck productInfo", func(t *testing.T) {
				base := mode.mark(changeBody(id, productInfo()))
				for name, c := range map[string]struct {
					pi    any
					field string
				}{
					"not an object (string)":     {"sku", "productInfo"},
					"not an object (array)":      {[]any{productInfo()}, "productInfo"},
					"not an object (number)":     {5, "productInfo"},
					"skuCode missing":            {without(productInfo(), "skuCode"), "productInfo.skuCode"},
					"skuCode empty":              {with(productInfo(), "skuCode", ""), "productInfo.skuCode"},
					"skuCode not a string":       {with(productInfo(), "skuCode", 9), "productInfo.skuCode"},
					"skuCode too long":           {with(productInfo(), "skuCode", strings.Repeat("s", 65)), "productInfo.skuCode"},
					"productId missing":          {without(productInfo(), "productId"), "productInfo.productId"},
					"productName missing":        {without(productInfo(), "productName"), "productInfo.productName"},
					"linearValue a string":       {with(productInfo(), "linearValue", "abc"), "productInfo.linearValue"},
					"linearValue numeric string": {with(productInfo(), "linearValue", "5"), "productInfo.linearValue"},
					"linearValue fractional":     {with(productInfo(), "linearValue", 1.5), "productInfo.linearValue"},
					"linearValue boolean":        {with(productInfo(), "linearValue", true), "productInfo.linearValue"},
				} {
					t.Run(name, func(t *testing.T) { h.invalid(t, c.field, with(base, "productInfo", c.pi)) })
				}
				// linearValue is optional.
				h.expect(t, "000000", with(base, "productInfo", without(productInfo(), "linearValue")))
			})
		})
	}

	t.Run("unknown body members are ignored (but signed)", func(t *testing.T) {
		extra := obj{"productId": "OFFI1", "foo": obj{"nested": []any{1, "2", nil}}, "bar": nil, "n": 1.5, "zzz": true}
		for activity, b := range validBodies(id) {
			if activity == "releaseInstance" || activity == "updateInstanceStatus" {
				continue // would end or change the shared instance
			}
			t.Run(activity, func(t *testing.T) {
				for k, v := range extra {
					if _, taken := b[k]; !taken {
						b = with(b, k, v)
					}
				}
				h.expectOneOf(t, []string{"000000", "000004"}, b)
			})
		}
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		id, _, _ := h.create(t)
		good := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
		h.expect(t, "000000", refreshBody("RENEWAL", uid("CS"), uid("line"), id, "20310506070809"))
		before := h.state(t, id)
		if !before.ExpireTime.Equal(good) {
			t.Fatalf("expiry = %v, want %v", before.ExpireTime, good)
		}
		order, line := uid("CS"), uid("line")
		for name, b := range map[string]obj{
			"bad expireTime":              refreshBody("RENEWAL", order, line, id, "2040010100000"),
			"bad scene":                   refreshBody("RENEW", order, line, id, "20400101000000"),
			"orderLineId missing":         without(refreshBody("RENEWAL", order, line, id, "20400101000000"), "orderLineId"),
			"productId too long":          with(refreshBody("RENEWAL", order, line, id, "20400101000000"), "productId", strings.Repeat("p", 65)),
			"productId a number":          with(refreshBody("RENEWAL", order, line, id, "20400101000000"), "productId", 5),
			"bad status":                  statusBody(id, "DELETE"),
			"upgrade without orderLineId": without(upgradeBody(id, order, line), "orderLineId"),
			"testFlag too long":           with(statusBody(id, "FREEZE"), "testFlag", "111"),
		} {
			t.Run(name, func(t *testing.T) {
				h.invalid(t, "", b)
				after := h.state(t, id)
				if !after.ExpireTime.Equal(before.ExpireTime) || after.Status != before.Status ||
					after.Events != before.Events || after.Upgrades != before.Upgrades {
					t.Errorf("state changed by a rejected request: before %+v, after %+v", before, after)
				}
			})
		}
		// The order key of the rejected refreshes was not consumed: the same
		// order, well-formed, applies.
		h.expect(t, "000000", refreshBody("RENEWAL", order, line, id, "20400101000000"))
		if st := h.state(t, id); !st.ExpireTime.Equal(time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("expiry after a valid refresh = %v, want 2040-01-01", st.ExpireTime)
		}
		if st := h.state(t, id); st.Status != instance.StatusActive {
			t.Errorf("status = %s, want active", st.Status)
		}
	})

	t.Run("testFlag values: \"1\" and 1 are debug, everything else is real", func(t *testing.T) {
		for name, c := range map[string]struct {
			flag  any
			debug bool
		}{
			`"1"`: {"1", true}, `1`: {1, true}, `"0"`: {"0", false}, `""`: {"", false}, `0`: {0, false},
			`absent`: {nil, false}, `"2"`: {"2", false}, `2`: {2, false},
		} {
			t.Run(name, func(t *testing.T) {
				order, line, biz := uid("CS"), uid("line"), uid("biz")
				b := newInstanceBody(order, line, biz)
				if c.flag != nil {
					b["testFlag"] = c.flag
				}
				h.expectOneOf(t, []string{"000000", "000004"}, b)
				bound := len(h.indexEvents(t, order, line))
				if c.debug && bound != 0 {
					t.Errorf("debug request bound the order line")
				}
				if !c.debug && bound != 1 {
					t.Errorf("real request: order line bound %d times, want 1", bound)
				}
			})
		}
	})
}
