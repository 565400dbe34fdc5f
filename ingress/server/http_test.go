package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/server"
)

func TestHTTP(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, onEnv(env), withOptions(func(o *server.Options) { o.BodyLimit = 2048 }))

	t.Run("unknown path is 404 without Body-Sign", func(t *testing.T) {
		for _, p := range []string{"/nope", pathMain + "/", pathMain + "x", "/koogallery"} {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				st, _, _, _ := h.call(t, debug(newInstanceBody("o", "l", "b")), withPath(p), withMethod(method))
				if st != http.StatusNotFound {
					t.Errorf("%s %s: HTTP %d, want 404", method, p, st)
				}
			}
		}
	})

	t.Run("a method other than POST on a route is 405 with Body-Sign", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			for _, p := range []string{pathMain, pathRotate} {
				st, _, raw, _ := h.call(t, debug(newInstanceBody("o", "l", "b")), withPath(p), withMethod(method))
				if st != http.StatusMethodNotAllowed {
					t.Errorf("%s %s: HTTP %d, want 405: %s", method, p, st, raw)
				}
			}
		}
	})

	t.Run("a body over the limit is 413 with Body-Sign", func(t *testing.T) {
		big := debug(newInstanceBody(uid("CS"), uid("line"), uid("biz")))
		big["padding"] = strings.Repeat("x", 3000)
		for name, muts := range map[string][]mutator{
			"with Content-Length":   nil,
			"chunked":               {chunked()},
			"on the rotation route": {withPath(pathRotate), withKey(keyRotateNew)},
		} {
			t.Run(name, func(t *testing.T) {
				st, _, raw, _ := h.call(t, big, muts...)
				if st != http.StatusRequestEntityTooLarge {
					t.Errorf("HTTP %d, want 413: %s", st, raw)
				}
			})
		}
	})

	t.Run("a body of exactly the limit is served", func(t *testing.T) {
		b := debug(newInstanceBody(uid("CS"), uid("line"), uid("biz")))
		raw, _ := bodyBytes(b)
		b["padding"] = strings.Repeat("x", 2048-len(raw)-len(`,"padding":""`))
		raw, _ = bodyBytes(b)
		if len(raw) != 2048 {
			t.Fatalf("test bug: body is %d bytes", len(raw))
		}
		h.expect(t, "000000", raw)
		h.expect(t, "000000", b, chunked())
	})

	t.Run("healthz and readyz", func(t *testing.T) {
		if st, body := h.get(t, "/healthz"); st != http.StatusOK {
			t.Errorf("/healthz: %d %s", st, body)
		}
		if st, body := h.get(t, "/readyz"); st != http.StatusOK {
			t.Errorf("/readyz: %d %s", st, body)
		}
		ready := newHarness(t, onEnv(env), withReady(func(context.Context) error {
			if !env.nc.IsConnected() {
				return errors.New("NATS is not connected")
			}
			return nil
		}))
		if st, body := ready.get(t, "/readyz"); st != http.StatusOK {
			t.Errorf("/readyz with a passing check: %d %s", st, body)
		}
		down := newHarness(t, onEnv(env), withReady(func(context.Context) error { return errors.New("store unavailable") }))
		if st, body := down.get(t, "/readyz"); st != http.StatusServiceUnavailable {
			t.Errorf("/readyz with a failing check: %d %s, want 503", st, body)
		}
		if st, _ := down.get(t, "/healthz"); st != http.StatusOK {
			t.Errorf("/healthz must not depend on readiness: %d", st)
		}
	})

	t.Run("every protocol answer is HTTP 200, failures included", func(t *testing.T) {
		for name, b := range map[string]any{
			"auth failure":     []byte(`{"activity":"newInstance"}`),
			"unknown activity": obj{"activity": "nope"},
			"unknown instance": queryBody(uid("missing")),
			"body not JSON":    []byte("%%%"),
		} {
			t.Run(name, func(t *testing.T) {
				muts := []mutator{}
				if name == "auth failure" {
					muts = append(muts, withKey("WRONG-KEY-0000000000000000"))
				}
				st, _, raw, m := h.call(t, b, muts...)
				if st != http.StatusOK || codeOf(m) == "000000" {
					t.Errorf("HTTP %d %s, want 200 with a failure code", st, raw)
				}
			})
		}
	})
}
