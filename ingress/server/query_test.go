package server_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

var ivRE = regexp.MustCompile(`^[A-Za-z0-9]{16}$`)

// checkSecret checks an encrypted AppInfo value: a 16-character IV prefix,
// not the plaintext, and decrypting with c to want.
func checkSecret(t *testing.T, c *koogallery.Cipher, field string, app map[string]any, want string) {
	t.Helper()
	got := strOf(app, field)
	if len(got) <= koogallery.IVLen || !ivRE.MatchString(got[:koogallery.IVLen]) {
		t.Errorf("%s = %q: want a 16-character [A-Za-z0-9] IV prefix and a ciphertext", field, got)
		return
	}
	if got == want || strings.Contains(got, want) {
		t.Errorf("%s is sent in plain text: %q", field, got)
	}
	if len(got) > koogallery.MaxAppInfoCipherLen {
		t.Errorf("%s is %d characters, over KooGallery's %d", field, len(got), koogallery.MaxAppInfoCipherLen)
	}
	pt, err := c.Decrypt(got)
	if err != nil {
		t.Errorf("%s does not decrypt: %v", field, err)
		return
	}
	if pt != want {
		t.Errorf("%s decrypts to %q, want %q", field, pt, want)
	}
}

func cipherFor(t *testing.T, key string, typ koogallery.EncryptType) *koogallery.Cipher {
	t.Helper()
	c, err := koogallery.NewCipher([]byte(key), typ)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// appInfoOf returns the appInfo of the single info entry of m.
func appInfoOf(t *testing.T, m map[string]any, id string) map[string]any {
	t.Helper()
	in := infos(t, m)
	if len(in) != 1 || strOf(in[0], "instanceId") != id {
		t.Fatalf("info = %v, want one entry for %s", m["info"], id)
	}
	app, ok := in[0]["appInfo"].(map[string]any)
	if !ok {
		t.Fatalf("no appInfo in %v", in[0])
	}
	return app
}

func TestQueryInstance(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, onEnv(env))

	t.Run("appInfo: URLs in plain text, userName and password AES-256 encrypted", func(t *testing.T) {
		id, _, _ := h.create(t)
		st := h.state(t, id)
		m := h.expect(t, "000000", queryBody(id))
		if got := strOf(m, "encryptType"); got != "1" {
			t.Errorf("encryptType = %q, want 1", got)
		}
		app := appInfoOf(t, m, id)
		if got := strOf(app, "frontEndUrl"); got != "https://app.example.com/"+id {
			t.Errorf("frontEndUrl = %q", got)
		}
		if got := strOf(app, "adminUrl"); got != "https://admin.example.com/"+id {
			t.Errorf("adminUrl = %q", got)
		}
		if !strings.HasPrefix(st.AppInfo.UserName, "admin-") || len(st.AppInfo.Password) != 24 {
			t.Fatalf("stored app info is not the builtin's: %+v", st.AppInfo)
		}
		c := cipherFor(t, keyMain, koogallery.EncryptAES256)
		checkSecret(t, c, "userName", app, st.AppInfo.UserName)
		checkSecret(t, c, "password", app, st.AppInfo.Password)
		// A fresh IV on every answer.
		again := appInfoOf(t, h.expect(t, "000000", queryBody(id)), id)
		if strOf(again, "password") == strOf(app, "password") {
			t.Error("two answers carry the same ciphertext: the IV is not random")
		}
		checkSecret(t, c, "password", again, st.AppInfo.Password)
	})

	t.Run("encryptType 2: AES-128", func(t *testing.T) {
		order, line, id := uid("CS"), uid("line"), uid("biz")
		m := h.expectOneOf(t, []string{"000000", "000004"}, newInstanceBody(order, line, id), withPath(pathAES128), withKey(keyAES128))
		if got := strOf(m, "encryptType"); got != "2" {
			t.Errorf("newInstance encryptType = %q, want 2", got)
		}
		h.createFor(t, order, line, id, withPath(pathAES128), withKey(keyAES128))
		st := h.state(t, id)
		m = h.expect(t, "000000", queryBody(id), withPath(pathAES128), withKey(keyAES128))
		if got := strOf(m, "encryptType"); got != "2" {
			t.Errorf("queryInstance encryptType = %q, want 2", got)
		}
		app := appInfoOf(t, m, id)
		c := cipherFor(t, keyAES128, koogallery.EncryptAES128)
		checkSecret(t, c, "userName", app, st.AppInfo.UserName)
		checkSecret(t, c, "password", app, st.AppInfo.Password)
		if pt, err := cipherFor(t, keyAES128, koogallery.EncryptAES256).Decrypt(strOf(app, "password")); err == nil && pt == st.AppInfo.Password {
			t.Error("encryptType 2 answer decrypts with AES-256")
		}
	})

	t.Run("rotation: app info is encrypted with the key that signed the request", func(t *testing.T) {
		newKey := []mutator{withPath(pathRotate), withKey(keyRotateNew)}
		id, _, _ := h.create(t, newKey...)
		st := h.state(t, id)
		app := appInfoOf(t, h.expect(t, "000000", queryBody(id), newKey...), id)
		checkSecret(t, cipherFor(t, keyRotateNew, "1"), "password", app, st.AppInfo.Password)
		app = appInfoOf(t, h.expect(t, "000000", queryBody(id), withPath(pathRotate), withKey(keyRotateOld)), id)
		checkSecret(t, cipherFor(t, keyRotateOld, "1"), "password", app, st.AppInfo.Password)
	})

	t.Run("base64-marked key: the decoded key is the AES seed", func(t *testing.T) {
		mut := []mutator{withPath(pathB64), withKey(keyB64Plain)}
		id, _, _ := h.create(t, mut...)
		st := h.state(t, id)
		app := appInfoOf(t, h.expect(t, "000000", queryBody(id), mut...), id)
		checkSecret(t, cipherFor(t, keyB64Plain, "1"), "userName", app, st.AppInfo.UserName)
	})

	t.Run("a single unknown id is 000003", func(t *testing.T) {
		m := h.expect(t, "000003", queryBody(uid("missing")))
		if len(infos(t, m)) != 0 {
			t.Errorf("info for an unknown id: %v", m["info"])
		}
	})

	t.Run("a batch with known and unknown ids answers only the known", func(t *testing.T) {
		a, _, _ := h.create(t)
		b, _, _ := h.create(t)
		m := h.expect(t, "000000", queryBody(uid("missing"), a, uid("missing"), " "+b+" "))
		got := map[string]bool{}
		for _, in := range infos(t, m) {
			got[strOf(in, "instanceId")] = true
			if in["appInfo"] == nil {
				t.Errorf("no appInfo for %v", in)
			}
		}
		if len(got) != 2 || !got[a] || !got[b] {
			t.Errorf("info ids %v, want exactly %s and %s", got, a, b)
		}
	})

	t.Run("a batch of only unknown ids is 000003", func(t *testing.T) {
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = uid("missing")
		}
		h.expect(t, "000003", queryBody(ids[:3]...))
		h.expect(t, "000003", queryBody(ids...)) // 100 ids is within the limit
	})

	t.Run("a released instance is unknown", func(t *testing.T) {
		id, _, _ := h.create(t)
		live, _, _ := h.create(t)
		h.expect(t, "000000", releaseBody(id))
		h.expect(t, "000003", queryBody(id))
		m := h.expect(t, "000000", queryBody(id, live))
		if in := infos(t, m); len(in) != 1 || strOf(in[0], "instanceId") != live {
			t.Errorf("batch with a released id: info %v, want only %s", m["info"], live)
		}
	})

	t.Run("debug query: mock app info for every id, never 000003", func(t *testing.T) {
		ids := []string{"10e758d0-31ad-4c4b-8f1b-81d03469a10e", "huaweitest123456", uid("missing")}
		m := h.expect(t, "000000", debug(queryBody(ids...)))
		in := infos(t, m)
		if len(in) != len(ids) {
			t.Fatalf("info has %d entries, want %d: %v", len(in), len(ids), m["info"])
		}
		c := cipherFor(t, keyMain, "1")
		for i, entry := range in {
			if strOf(entry, "instanceId") != ids[i] {
				t.Errorf("info[%d].instanceId = %q, want %q", i, strOf(entry, "instanceId"), ids[i])
			}
			app, ok := entry["appInfo"].(map[string]any)
			if !ok {
				t.Errorf("info[%d] has no appInfo", i)
				continue
			}
			if u, err := url.Parse(strOf(app, "frontEndUrl")); err != nil || u.Scheme != "https" || u.Host == "" {
				t.Errorf("info[%d].frontEndUrl = %q is not an absolute URL", i, strOf(app, "frontEndUrl"))
			}
			for _, f := range []string{"userName", "password"} {
				v := strOf(app, f)
				if len(v) <= 16 || !ivRE.MatchString(v[:16]) {
					t.Errorf("info[%d].%s = %q is not iv+ciphertext", i, f, v)
					continue
				}
				if pt, err := c.Decrypt(v); err != nil || pt == "" {
					t.Errorf("info[%d].%s does not decrypt with the route key: %q, %v", i, f, pt, err)
				}
			}
		}
		// Debug queries read nothing: not even a real instance's data.
		id, _, _ := h.create(t)
		st := h.state(t, id)
		app := appInfoOf(t, h.expect(t, "000000", debug(queryBody(id))), id)
		if pt, _ := c.Decrypt(strOf(app, "password")); pt == st.AppInfo.Password {
			t.Error("a debug query handed out the real instance's password")
		}
		// And the debug variant of an id list that is 100 unknown ids.
		many := make([]string, 100)
		for i := range many {
			many[i] = uid("dbg")
		}
		if n := len(infos(t, h.expect(t, "000000", debug(queryBody(many...))))); n != 100 {
			t.Errorf("debug query of 100 ids: %d entries", n)
		}
	})

	t.Run("debug query mock frontEndUrl has no unexpanded template placeholders", func(t *testing.T) {
		// The route's builtin template uses {short} and {orderId}; real
		// instances get them expanded. The mock app info of a debug query
		// (codes-and-rules.md §7: "plausible data") must be a usable URL too.
		mut := []mutator{withPath(pathTemplate), withKey(keyTemplate)}
		real, _, _ := h.create(t, mut...)
		app := appInfoOf(t, h.expect(t, "000000", queryBody(real), mut...), real)
		if u := strOf(app, "frontEndUrl"); strings.ContainsAny(u, "{}") {
			t.Fatalf("test setup: real frontEndUrl %q is not expanded", u)
		}
		id := "huaweitest123456"
		app = appInfoOf(t, h.expect(t, "000000", debug(queryBody(id)), mut...), id)
		u := strOf(app, "frontEndUrl")
		if strings.ContainsAny(u, "{}") {
			t.Errorf("BUG: debug queryInstance answers frontEndUrl %q with unexpanded placeholders "+
				"(ingress/server/saasv2.go mockAppInfo replaces only {instanceId}); want a plausible absolute URL", u)
		}
	})
}
