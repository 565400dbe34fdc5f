package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/domain/event"
)

// resolve follows a local $ref ("#/a/b").
func resolve(doc, s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			panic("unresolvable $ref " + ref)
		}
		s = next
	}
}

// validate checks v (decoded with UseNumber) against an OpenAPI 3.0
// schema: the keywords this API's document uses ($ref, allOf, anyOf,
// nullable, type, format, enum, properties, required,
// additionalProperties, items, minimum, maximum).
func validate(doc, schema map[string]any, v any, at string) error {
	s := resolve(doc, schema)
	if v == nil && s["nullable"] == true {
		return nil
	}
	if all, ok := s["allOf"].([]any); ok {
		if err := validateAll(doc, all, v, at); err != nil {
			return err
		}
	}
	if any_, ok := s["anyOf"].([]any); ok {
		var errs []string
		for _, sub := range any_ {
			err := validate(doc, sub.(map[string]any), v, at)
			if err == nil {
				errs = nil
				break
			}
			errs = append(errs, err.Error())
		}
		if errs != nil {
			return fmt.Errorf("%s: matches no anyOf branch: %s", at, strings.Join(errs, "; "))
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
	}
	switch s["type"] {
	case nil:
		return nil
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					return fmt.Errorf("%s: required member %q is missing", at, r)
				}
			}
		}
		for k, val := range m {
			if ps, ok := props[k].(map[string]any); ok {
				if err := validate(doc, ps, val, at+"."+k); err != nil {
					return err
				}
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: member %q is not documented", at, k)
				}
			case map[string]any:
				if err := validate(doc, ap, val, at+"."+k); err != nil {
					return err
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		for i, e := range a {
			if err := validate(doc, s["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
		switch s["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, str)
			}
		case "date":
			if _, err := time.Parse(time.DateOnly, str); err != nil {
				return fmt.Errorf("%s: %q is not a date", at, str)
			}
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: %T, want a number", at, v)
		}
		f, err := n.Float64()
		if err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		if s["type"] == "integer" {
			if _, err := n.Int64(); err != nil {
				return fmt.Errorf("%s: %s is not an integer", at, n)
			}
		}
		if lo, ok := s["minimum"].(json.Number); ok {
			if l, _ := lo.Float64(); f < l {
				return fmt.Errorf("%s: %s below the minimum %s", at, n, lo)
			}
		}
		if hi, ok := s["maximum"].(json.Number); ok {
			if h, _ := hi.Float64(); f > h {
				return fmt.Errorf("%s: %s above the maximum %s", at, n, hi)
			}
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want a boolean", at, v)
		}
	default:
		return fmt.Errorf("%s: unknown schema type %v", at, s["type"])
	}
	return nil
}

func validateAll(doc map[string]any, all []any, v any, at string) error {
	for _, sub := range all {
		if err := validate(doc, sub.(map[string]any), v, at); err != nil {
			return err
		}
	}
	return nil
}

// ginPathToOpenAPI turns "/v1/instances/:id" into "/v1/instances/{id}".
func ginPathToOpenAPI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestEveryRouteIsDocumented walks the routes registered in the router:
// each must be an operation of /openapi.json (as served, without a
// token), and each documented operation must be routed.
func TestEveryRouteIsDocumented(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	srv := newServer(t, st, nil, Config{})
	c := newClient(t, srv)

	a := c.do(http.MethodGet, "/openapi.json", "", nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", a.status, a.header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.0.3" {
		t.Fatalf("openapi = %v, want 3.0.3", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)

	routed := map[string]bool{}
	routes := srv.engine.Routes()
	if len(routes) == 0 {
		t.Fatal("the router has no routes")
	}
	for _, r := range routes {
		p := ginPathToOpenAPI(r.Path)
		routed[r.Method+" "+p] = true
		item, ok := paths[p].(map[string]any)
		if !ok {
			t.Errorf("route %s %s: path %s is not in /openapi.json", r.Method, r.Path, p)
			continue
		}
		if _, ok := item[strings.ToLower(r.Method)].(map[string]any); !ok {
			t.Errorf("route %s %s: no %s operation on %s in /openapi.json", r.Method, r.Path, strings.ToLower(r.Method), p)
		}
	}
	var documented []string
	for p, item := range paths {
		for method := range item.(map[string]any) {
			op := strings.ToUpper(method) + " " + p
			documented = append(documented, op)
			if !routed[op] {
				t.Errorf("/openapi.json documents %s, which the router does not serve", op)
			}
		}
	}
	slices.Sort(documented)
	t.Logf("documented and routed: %s", strings.Join(documented, ", "))
}

// TestDocumentIsCoherent checks the document itself: every $ref resolves,
// path parameters are declared, the bearer scheme guards everything but
// the open routes, and every authenticated operation lists 401.
func TestDocumentIsCoherent(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	c := newClient(t, newServer(t, st, nil, Config{}))
	doc := c.doc
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%s: %v", at, r)
						}
					}()
					resolve(doc, v)
				}()
				if !strings.HasPrefix(ref, "#/components/") {
					t.Errorf("%s: $ref %s outside components", at, ref)
				}
			}
			for k, e := range v {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(doc, "#")

	sec := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)["bearerAuth"].(map[string]any)
	if sec["type"] != "http" || sec["scheme"] != "bearer" {
		t.Fatalf("bearerAuth = %v", sec)
	}
	for p, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, pr := range params {
				pm := pr.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
					if pm["required"] != true {
						t.Errorf("%s %s: path parameter %s is not required", method, p, pm["name"])
					}
				}
				if pm["description"] == "" || pm["schema"] == nil {
					t.Errorf("%s %s: parameter %s lacks a description or schema", method, p, pm["name"])
				}
			}
			for _, seg := range strings.Split(p, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s %s: path parameter %s is not declared", method, p, seg)
				}
			}
			security, overridden := op["security"].([]any)
			open := openPaths[p]
			if open != (overridden && len(security) == 0) {
				t.Errorf("%s %s: security %v, but open = %v", method, p, op["security"], open)
			}
			responses := op["responses"].(map[string]any)
			if _, ok := responses["401"]; !open && !ok {
				t.Errorf("%s %s: 401 is not documented", method, p)
			}
			if op["operationId"] == "" || op["summary"] == "" {
				t.Errorf("%s %s: no operationId or summary", method, p)
			}
		}
	}
}

// exampleValue is a valid value of a documented parameter.
func exampleValue(p map[string]any) string {
	if ex, ok := p["example"].(string); ok {
		return ex
	}
	s := p["schema"].(map[string]any)
	if enum, ok := s["enum"].([]any); ok {
		return enum[0].(string)
	}
	if _, ok := s["anyOf"]; ok {
		return "2026-03-02"
	}
	switch s["type"] {
	case "boolean":
		return "true"
	case "integer":
		return fmt.Sprint(s["minimum"])
	case "array":
		return s["items"].(map[string]any)["enum"].([]any)[0].(string)
	}
	if s["format"] == "date" {
		return "2026-03-02"
	}
	return "x"
}

// TestDocumentedParametersAreAccepted sends every documented query
// parameter of every GET operation on its own (with the required ones) and
// expects no 400; an undocumented parameter must be refused with 400
// naming it. So the documented parameters are exactly the accepted ones.
func TestDocumentedParametersAreAccepted(t *testing.T) {
	st := openViews(t, "sqlite://"+t.TempDir()+"/v.db")
	project(t, st)
	codes, _ := newLicenseCodes(t)
	if _, err := codes.RegisterCode(t.Context(), "PL01", "", event.Causation{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, newServer(t, st, nil, Config{Usage: newUsage(t, time.Now), LicenseCodes: codes}))
	for p, item := range c.doc["paths"].(map[string]any) {
		op, ok := item.(map[string]any)["get"].(map[string]any)
		if !ok {
			continue
		}
		path := strings.NewReplacer("{id}", "i01", "{code}", "PL01").Replace(p)
		params, _ := op["parameters"].([]any)
		base := url.Values{}
		var query []map[string]any
		for _, pr := range params {
			pm := pr.(map[string]any)
			if pm["in"] != "query" {
				continue
			}
			if pm["required"] == true {
				base.Set(pm["name"].(string), exampleValue(pm))
			}
			query = append(query, pm)
		}
		send := func(v url.Values) answer {
			u := path
			if len(v) > 0 {
				u += "?" + v.Encode()
			}
			return c.do(http.MethodGet, u, token, nil)
		}
		if a := send(base); a.status != http.StatusOK {
			t.Errorf("GET %s?%s: %d %s", path, base.Encode(), a.status, a.body)
		}
		for _, pm := range query {
			v := url.Values{}
			for k, vals := range base {
				v[k] = vals
			}
			val := exampleValue(pm)
			if pm["name"] == "cursor" { // a cursor is only valid when it came from a page
				var l InstanceList
				c.get("/v1/instances?limit=1", http.StatusOK, &l)
				val = l.NextCursor
			}
			v.Set(pm["name"].(string), val)
			if a := send(v); a.status != http.StatusOK {
				t.Errorf("GET %s?%s: %d %s", path, v.Encode(), a.status, a.body)
			}
		}
		if openPaths[p] {
			continue
		}
		v := url.Values{}
		for k, vals := range base {
			v[k] = vals
		}
		v.Set("bogus", "1")
		a := send(v)
		var e ErrorBody
		_ = json.Unmarshal(a.body, &e)
		if a.status != http.StatusBadRequest || e.Field != "bogus" {
			t.Errorf("GET %s?%s: %d %s, want 400 naming bogus", path, v.Encode(), a.status, a.body)
		}
	}
}
