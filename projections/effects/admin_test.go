package effects_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gallerist/gallerist/domain/effect"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/webhook"
)

func TestOperatorsAPIAndCommandLine(t *testing.T) {
	r := newRig(t)
	var fixed atomic.Bool
	r.vendor.setAnswer(func(webhook.Notification, int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	cfg := fastConfig()
	cfg.MaxAttempts = 2
	run := r.runner(t, r.notifier(t), cfg)
	admin, err := effects.NewAdmin(run)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := effects.NewAdmin(run, r.newRunner(t, r.notifier(t), cfg)); err == nil {
		t.Fatal("two runners of one effect were accepted")
	}
	api := httptest.NewServer(http.StripPrefix("/admin/effects", admin))
	t.Cleanup(api.Close)

	a := r.create(t, "a")
	b := r.create(t, "b")
	progress(t, run, a, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })
	progress(t, run, b, "parked", func(p effects.Progress) bool { return len(p.Parked) == 1 })

	get := func() []effects.ParkedEffect {
		t.Helper()
		resp, err := http.Get(api.URL + "/admin/effects/parked?effect=webhook")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Parked []effects.ParkedEffect }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
			t.Fatalf("GET parked: %s", resp.Status)
		}
		return body.Parked
	}
	post := func(req effects.RedriveRequest) (int, string) {
		t.Helper()
		b, _ := json.Marshal(req)
		resp, err := http.Post(api.URL+"/admin/effects/redrive", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body["error"] + body["status"]
	}

	if ps := get(); len(ps) != 2 || ps[0].InstanceID != a || ps[1].InstanceID != b || ps[0].Attempts != 2 {
		t.Fatalf("parked = %+v", ps)
	}
	for _, c := range []struct {
		req    effects.RedriveRequest
		status int
	}{
		{effects.RedriveRequest{InstanceID: a}, http.StatusBadRequest}, // no operator
		{effects.RedriveRequest{Operator: "x"}, http.StatusBadRequest}, // no scope
		{effects.RedriveRequest{Operator: "x", All: true, InstanceID: a}, http.StatusBadRequest},
		{effects.RedriveRequest{Operator: "x", Effect: "nope", InstanceID: a}, http.StatusNotFound},
		{effects.RedriveRequest{Operator: "x", Effect: "webhook", InstanceID: "biz-none"}, http.StatusNotFound},
		{effects.RedriveRequest{Operator: "x", Effect: "webhook", InstanceID: a}, http.StatusConflict}, // fails again
	} {
		if status, msg := post(c.req); status != c.status {
			t.Errorf("%+v: %d %s, want %d", c.req, status, msg, c.status)
		}
	}

	fixed.Store(true)
	if status, msg := post(effects.RedriveRequest{Operator: "alice", Effect: "webhook", InstanceID: a}); status != http.StatusOK {
		t.Fatalf("re-drive: %d %s", status, msg)
	}
	if ps := get(); len(ps) != 1 || ps[0].InstanceID != b {
		t.Fatalf("parked after re-driving %s: %+v", a, ps)
	}
	recs := r.progressEvents(t, webhook.Name, a)
	if recs[len(recs)-2] != effect.TypeRedriven || recs[len(recs)-1] != effect.TypeDone {
		t.Fatalf("progress events of %s: %v", a, recs)
	}

	// The command line.
	var out bytes.Buffer
	if err := effects.RunCLI(testContext(t), admin, []string{"parked"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), b) || !strings.Contains(out.String(), "InstanceCreated") || strings.Contains(out.String(), a) {
		t.Fatalf("parked listing:\n%s", out.String())
	}
	out.Reset()
	if err := effects.RunCLI(testContext(t), admin, []string{"redrive", "-all"}, &out); err == nil {
		t.Fatal("a re-drive without an operator was accepted")
	}
	if err := effects.RunCLI(testContext(t), admin, []string{"redrive", "-all", "-operator", "bob"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := effects.RunCLI(testContext(t), admin, []string{"parked", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Fatalf("parked after re-driving all: %s", out.String())
	}
	err = effects.RunCLI(testContext(t), admin, []string{"redrive", "-instance", b, "-operator", "bob"}, &out)
	if !errors.Is(err, effects.ErrNotParked) {
		t.Fatalf("re-driving an instance with nothing parked: %v", err)
	}
}
