package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/usage"
	"github.com/gallerist/gallerist/projections/views"
)

// The OpenAPI 3.0.3 document is a Go value built when the server is: the
// parameters come from the definitions the handlers validate with
// (params.go) and the answer schemas from the Go types the handlers
// encode, by reflection (json tags; "doc" tags for descriptions), so the
// document follows the code.

// OpenAPI returns the server's OpenAPI 3.0.3 document (JSON), as served at
// GET /openapi.json.
func (s *Server) OpenAPI() []byte { return slices.Clone(s.openapi) }

// Health is the answer of GET /healthz.
type Health struct {
	Status string `json:"status" doc:"Always ok: the process serves HTTP."`
}

// obj is a JSON object of the document.
type obj = map[string]any

// componentNames names the types that are components/schemas.
var componentNames = map[reflect.Type]string{
	reflect.TypeFor[ErrorBody]():          "Error",
	reflect.TypeFor[Health]():             "Health",
	reflect.TypeFor[views.Instance]():     "Instance",
	reflect.TypeFor[InstanceList]():       "InstanceList",
	reflect.TypeFor[InstanceDetail]():     "InstanceDetail",
	reflect.TypeFor[Event]():              "Event",
	reflect.TypeFor[event.Causation]():    "Causation",
	reflect.TypeFor[Stats]():              "Stats",
	reflect.TypeFor[DayStats]():           "DayStats",
	reflect.TypeFor[views.DailyFact]():    "DailyFact",
	reflect.TypeFor[Latency]():            "Latency",
	reflect.TypeFor[views.ParkedEffect](): "ParkedEffect",
	reflect.TypeFor[ParkedList]():         "ParkedList",
	reflect.TypeFor[RedriveRequest]():     "RedriveRequest",
	reflect.TypeFor[RedriveResult]():      "RedriveResult",
	reflect.TypeFor[UsageReport]():        "UsageReport",
	reflect.TypeFor[UsageInput]():         "UsageInput",
	reflect.TypeFor[UsageReportResult]():  "UsageReportResult",
	reflect.TypeFor[UsageRecordResult]():  "UsageRecordResult",
	reflect.TypeFor[UsageList]():          "UsageList",
	reflect.TypeFor[UsageEntry]():         "UsageEntry",
}

// fieldDocs describes fields of types from other packages (which have no
// doc tags), by "Type.jsonName"; a value may also add keywords (enum).
var fieldDocs = map[string]obj{
	"Instance.instanceId":     {"description": "The instance id (the first newInstance's businessId)."},
	"Instance.status":         {"description": "Where the instance is in its life.", "enum": statuses},
	"Instance.route":          {"description": "The production route (path) the creating request arrived on."},
	"Instance.productId":      {"description": "Product, from a refresh or Query Order; \"\" while unknown."},
	"Instance.skuCode":        {"description": "From the latest Query Order answer that had one."},
	"Instance.chargingMode":   {"description": "From the latest Query Order answer that had one (ON_DEMAND, ONE_TIME, PERIOD, ON_DEMAND_PKG)."},
	"Instance.customerId":     {"description": "From the latest Query Order answer that had one."},
	"Instance.orderType":      {"description": "Query Order's type of the creating order (NEW, TRIAL, …)."},
	"Instance.trial":          {"description": "The creating order is a trial."},
	"Instance.formal":         {"description": "A trial converted to a paid order."},
	"Instance.testFlag":       {"description": "Created by a test (debug) call."},
	"Instance.expireTime":     {"description": "Expiry: the latest refresh's, else Query Order's; absent while unknown."},
	"Instance.createdAt":      {"description": "Time of InstanceCreated."},
	"Instance.provisionedAt":  {"description": "Time of the first InstanceProvisioned."},
	"Instance.failedAt":       {"description": "Time of the last InstanceProvisioningFailed."},
	"Instance.frozenAt":       {"description": "Frozen since; absent unless frozen."},
	"Instance.lastEventSeq":   {"description": "Stream sequence of the last event applied to the row."},
	"Instance.updatedAt":      {"description": "Time of the last event applied to the row."},
	"DailyFact.day":           {"description": "The day (UTC), YYYY-MM-DD.", "format": "date"},
	"DailyFact.productId":     {"description": "The product; \"\" while unknown."},
	"DailyFact.metric":        {"enum": views.Metrics},
	"ParkedEffect.effect":     {"description": "The effect that gave up, e.g. webhook."},
	"ParkedEffect.eventSeq":   {"description": "Stream sequence of the instance event the effect gave up on."},
	"ParkedEffect.attempts":   {"description": "Attempts before parking; 0 for an event held back behind an earlier parked one."},
	"ParkedEffect.reason":     {"description": "The last error."},
	"Causation.activity":      {"description": "The marketplace activity, e.g. newInstance."},
	"Causation.route":         {"description": "The production route the request arrived on."},
	"Causation.actor":         {"description": "A non-marketplace cause, e.g. provisioner or operator."},
	"Causation.testFlag":      {"description": "The request was a test (debug) call."},
	"Causation.nonce":         {"description": "The request's replay-guard nonce."},
	"Causation.orderId":       {"description": "The order of the request."},
	"Causation.orderLineId":   {"description": "The order line of the request."},
	"Causation.businessId":    {"description": "The businessId of the request."},
	"ParkedEffect.parkedAt":   {"description": "When the effect parked the event."},
	"ParkedEffect.eventType":  {"description": "Type of the parked instance event."},
	"ParkedEffect.eventId":    {"description": "Id of the parked instance event."},
	"ParkedEffect.instanceId": {"description": "The instance."},
	"UsageInput.usageValue": {"description": "The usage: > 0, at most 4 decimals, at most 20 characters; a string (e.g. \"99\" or \"0.25\") or a number, kept as decimal text (never a float).",
		"anyOf": []any{obj{"type": "string"}, obj{"type": "number"}}},
	"UsageRecordResult.outcome": {"enum": []string{string(usage.OutcomeRecorded), string(usage.OutcomeDuplicate), string(usage.OutcomeConflict)}},
	"UsageRecordResult.status":  {"enum": usageStatuses},
	"UsageEntry.status":         {"enum": usageStatuses},
	"UsageEntry.billing":        {"enum": []string{string(usage.BillingHourly), string(usage.BillingDaily)}},
	"UsageInput.billing":        {"enum": []string{string(usage.BillingHourly), string(usage.BillingDaily)}},
}

// schemaGen builds schemas from Go types.
type schemaGen struct {
	components obj
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeTypeDoc    = reflect.TypeFor[time.Time]()
)

// ref returns the schema of t: a reference for a component type (built on
// first use), an inline schema otherwise.
func (g *schemaGen) ref(t reflect.Type) obj {
	if name, ok := componentNames[t]; ok {
		if _, done := g.components[name]; !done {
			g.components[name] = obj{} // guards recursion
			g.components[name] = g.build(t, name)
		}
		return obj{"$ref": "#/components/schemas/" + name}
	}
	return g.build(t, "")
}

// build returns the inline schema of t; name is its component name, if any.
func (g *schemaGen) build(t reflect.Type, name string) obj {
	switch {
	case t == timeTypeDoc:
		return obj{"type": "string", "format": "date-time"}
	case t == rawMessageType:
		return obj{"description": "Any JSON value."}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return obj{"allOf": []any{g.ref(t.Elem())}, "nullable": true}
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return obj{"type": "integer", "format": "int64"}
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer", "format": "int64", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return obj{"type": "number", "format": "double"}
	case reflect.Slice:
		return obj{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return obj{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Struct:
		props := obj{}
		var required []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if !f.IsExported() || jname == "-" {
				continue
			}
			if jname == "" {
				jname = f.Name
			}
			omitempty := strings.Contains(","+opts+",", ",omitempty,")
			var ps obj
			if f.Type.Kind() == reflect.Pointer && omitempty {
				ps = g.ref(f.Type.Elem()) // omitted when nil, never null
			} else {
				ps = g.ref(f.Type)
			}
			desc := f.Tag.Get("doc")
			extra := fieldDocs[name+"."+jname]
			if d, ok := extra["description"].(string); ok && desc == "" {
				desc = d
			}
			if desc != "" || len(extra) > 0 {
				if _, isRef := ps["$ref"]; isRef {
					ps = obj{"allOf": []any{ps}}
				} else {
					ps = cloneObj(ps)
				}
				for k, v := range extra {
					ps[k] = v
				}
				if desc != "" {
					ps["description"] = desc
				}
			}
			props[jname] = ps
			if !omitempty {
				required = append(required, jname)
			}
		}
		s := obj{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	panic(fmt.Sprintf("api: no schema for %s", t))
}

func cloneObj(o obj) obj {
	out := make(obj, len(o)+2)
	for k, v := range o {
		out[k] = v
	}
	return out
}

// paramDoc renders a parameter definition.
func paramDoc(p param) obj {
	var schema obj
	switch p.kind {
	case kindText:
		schema = obj{"type": "string", "minLength": 1, "maxLength": maxText}
	case kindEnum:
		schema = obj{"type": "string", "enum": p.enum}
	case kindEnumList:
		schema = obj{"type": "array", "items": obj{"type": "string", "enum": p.enum}, "minItems": 1}
	case kindBool:
		schema = obj{"type": "boolean"}
	case kindInstant:
		schema = obj{"anyOf": []any{obj{"type": "string", "format": "date-time"}, obj{"type": "string", "format": "date"}}}
	case kindDate:
		schema = obj{"type": "string", "format": "date"}
	case kindInt:
		schema = obj{"type": "integer", "minimum": p.min, "maximum": p.max}
	case kindCursor:
		schema = obj{"type": "string", "minLength": 1, "maxLength": maxCursor}
	default:
		panic(fmt.Sprintf("api: parameter %s has no kind", p.name))
	}
	if p.def != "" {
		if p.kind == kindInt {
			n, _ := strconv.Atoi(p.def)
			schema["default"] = n
		} else {
			schema["default"] = p.def
		}
	}
	d := obj{"name": p.name, "in": p.in, "description": p.desc, "schema": schema, "required": p.required || p.in == "path"}
	if p.kind == kindEnumList {
		d["style"], d["explode"] = "form", false
	}
	if p.example != "" {
		d["example"] = p.example
	}
	return d
}

func paramDocs(ps []param) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = paramDoc(p)
	}
	return out
}

// openAPIJSON builds the document.
func (s *Server) openAPIJSON() ([]byte, error) {
	g := &schemaGen{components: obj{}}
	jsonBody := func(t reflect.Type, desc string) obj {
		return obj{
			"description": desc,
			"headers":     obj{ConsistencyHeader: obj{"$ref": "#/components/headers/ConsistentTo"}},
			"content":     obj{"application/json": obj{"schema": g.ref(t)}},
		}
	}
	errRef := func(name string) obj { return obj{"$ref": "#/components/responses/" + name} }
	common := func(extra obj) obj {
		r := obj{"400": errRef("BadRequest"), "401": errRef("Unauthorized"), "500": errRef("InternalError"), "503": errRef("Unavailable")}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	open := []any{} // no security requirement
	paths := obj{
		"/healthz": obj{"get": obj{
			"operationId": "health", "summary": "Liveness", "tags": []string{"meta"}, "security": open,
			"responses": obj{"200": obj{"description": "The process serves HTTP.",
				"content": obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[Health]())}}}},
		}},
		"/openapi.json": obj{"get": obj{
			"operationId": "openapi", "summary": "This document", "tags": []string{"meta"}, "security": open,
			"responses": obj{"200": obj{"description": "The OpenAPI 3.0.3 document of this API.",
				"content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}},
		}},
		"/v1/instances": obj{"get": obj{
			"operationId": "listInstances", "summary": "List instances", "tags": []string{"instances"},
			"description": "One page of the instances view, filtered; keyset pagination: follow nextCursor until it is absent. " +
				"Instances created between two pages never make a row appear twice or be skipped. Unknown or repeated parameters are errors (400).",
			"parameters": paramDocs(s.listParams()),
			"responses":  common(obj{"200": jsonBody(reflect.TypeFor[InstanceList](), "One page.")}),
		}},
		"/v1/instances.csv": obj{"get": obj{
			"operationId": "exportInstances", "summary": "Export instances as CSV", "tags": []string{"instances"},
			"description": "Every instance matching the filters, as CSV (RFC 4180, UTF-8) with a header row naming the columns " +
				"as the JSON members of Instance; times RFC 3339 UTC (empty when unknown), booleans true/false. Text starting with " +
				"= + - @, a tab or a carriage return gets a leading apostrophe (no spreadsheet formulas). The rows are read and sent " +
				fmt.Sprintf("%d at a time, each page its own read: the %s header is the first page's sequence (every row reflects at least ", s.cfg.MaxPageSize, ConsistencyHeader) +
				fmt.Sprintf("the events up to it), the %s trailer the last page's; a row's lastEventSeq shows whether it reflects later events. ", ConsistencyTrailer) +
				"A failure after the first page aborts the connection, so an incomplete export never looks complete.",
			"parameters": paramDocs(exportParams),
			"responses": common(obj{"200": obj{
				"description": "The CSV export.",
				"headers": obj{
					ConsistencyHeader:     obj{"$ref": "#/components/headers/ConsistentTo"},
					"Content-Disposition": obj{"description": "attachment; filename=instances.csv", "schema": obj{"type": "string"}},
				},
				"content": obj{"text/csv": obj{"schema": obj{"type": "string"}}},
			}}),
		}},
		"/v1/instances/{id}": obj{"get": obj{
			"operationId": "getInstance", "summary": "One instance and its history", "tags": []string{"instances"},
			"description": "The instance's row from the instances view and its full event history from the log, " +
				"with passwords (and any member named like a password or secret) redacted.",
			"parameters": paramDocs([]param{idParam}),
			"responses": common(obj{
				"200": jsonBody(reflect.TypeFor[InstanceDetail](), "The instance."),
				"404": errRef("NotFound"),
			}),
		}},
		"/v1/stats": obj{"get": obj{
			"operationId": "stats", "summary": "Statistics of a date range", "tags": []string{"statistics"},
			"description": "Per-day counts (daily facts) and provisioning latency for the days from..to (UTC, inclusive).",
			"parameters":  paramDocs(statsParams),
			"responses":   common(obj{"200": jsonBody(reflect.TypeFor[Stats](), "The statistics.")}),
		}},
		"/v1/effects/parked": obj{"get": obj{
			"operationId": "listParked", "summary": "Parked effects", "tags": []string{"effects"},
			"description": "The events side effects (vendor webhook, Query Order, …) gave up on, from the effects view, oldest first.",
			"parameters":  paramDocs(parkedParams),
			"responses":   common(obj{"200": jsonBody(reflect.TypeFor[ParkedList](), "The parked events.")}),
		}},
		"/v1/usage": usagePathDoc(g, jsonBody, common),
		"/v1/effects/redrive": obj{"post": obj{
			"operationId": "redrive", "summary": "Re-drive parked effects", "tags": []string{"effects"},
			"description": "Runs the parked events of one instance (instanceId), or of every instance (instanceId omitted), of an effect " +
				"again; the operator is recorded in the log. Answers once the re-drive ran (a re-driven event that fails again is parked again).",
			"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[RedriveRequest]())}}},
			"responses": common(obj{
				"202": jsonBody(reflect.TypeFor[RedriveResult](), "Re-driven."),
				"404": errRef("NotFound"),
			}),
		}},
	}
	for p, item := range licenseCodePathDocs(g, jsonBody, common) {
		paths[p] = item
	}
	for p, item := range s.licensePathDocs(jsonBody, common) { // licenses.go
		paths[p] = item
	}
	errContent := obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[ErrorBody]())}}
	doc := obj{
		"openapi": "3.0.3",
		"info": obj{
			"title":   "Gallerist query API",
			"version": "1",
			"description": "Read access to Gallerist's SQL views and event log, and re-drive of parked effects. " +
				"Every answer states the stream sequence it is consistent to (consistentTo, and the " + ConsistencyHeader + " header). " +
				"Errors answer {\"error\": \"…\", \"field\": \"…\"}.",
		},
		"tags": []any{
			obj{"name": "instances"}, obj{"name": "statistics"}, obj{"name": "effects"}, obj{"name": "usage"}, obj{"name": "license-codes"}, obj{"name": "meta"},
		},
		"security": []any{obj{"bearerAuth": []any{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{"bearerAuth": obj{"type": "http", "scheme": "bearer",
				"description": "Authorization: Bearer <token>, one of the tokens configured for the API."}},
			"schemas": g.components,
			"headers": obj{"ConsistentTo": obj{
				"description": "The stream sequence the answer is consistent to (as consistentTo in the body).",
				"schema":      obj{"type": "integer", "format": "int64", "minimum": 0},
			}},
			"responses": obj{
				"BadRequest": obj{"description": "A parameter or the body is invalid; field names it.", "content": errContent},
				"Unauthorized": obj{"description": "No or an unknown bearer token.", "content": errContent,
					"headers": obj{"WWW-Authenticate": obj{"description": "Bearer realm=\"gallerist\" (with error=\"invalid_token\" for an unknown token).", "schema": obj{"type": "string"}}}},
				"NotFound":      obj{"description": "No such instance (or, for a re-drive, unknown effect or nothing parked).", "content": errContent},
				"Unavailable":   obj{"description": "A store timed out, or re-drive is not available on this server.", "content": errContent},
				"InternalError": obj{"description": "An unexpected error (logged).", "content": errContent},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("api: OpenAPI document: %w", err)
	}
	return append(b, '\n'), nil
}
