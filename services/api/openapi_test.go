package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestMain(m *testing.M) {
	formats.RunnerMain() // a test that renders a template starts its runner from this binary
	goleak.VerifyTestMain(m)
}

const testAdminKey = "openapi-test-admin-key"

// openAPIDoc is the embedded document, decoded generically.
type openAPIDoc map[string]any

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// resolve follows a local $ref ("#/a/b/c").
func (d openAPIDoc) resolve(ref string) (any, bool) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = map[string]any(d)
	for _, part := range strings.Split(p, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deref returns v, or what its $ref points at.
func (d openAPIDoc) deref(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if r, ok := m["$ref"].(string); ok {
		target, ok := d.resolve(r)
		if !ok {
			t.Fatalf("unresolved $ref %s", r)
		}
		return d.deref(t, target)
	}
	return m
}

type operation struct {
	method, path string // method in upper case, path as in the document
	op           map[string]any
	params       []map[string]any // path-level then operation-level, dereferenced
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func (d openAPIDoc) operations(t *testing.T) []operation {
	t.Helper()
	paths, _ := d["paths"].(map[string]any)
	var out []operation
	for path, item := range paths {
		pi, _ := item.(map[string]any)
		var shared []map[string]any
		if ps, ok := pi["parameters"].([]any); ok {
			for _, p := range ps {
				shared = append(shared, d.deref(t, p))
			}
		}
		for k, v := range pi {
			if k == "parameters" || k == "summary" || k == "description" {
				continue
			}
			if !slices.Contains(httpMethods, k) {
				t.Errorf("paths[%s] has an unknown key %q", path, k)
				continue
			}
			o, _ := v.(map[string]any)
			params := slices.Clone(shared)
			if ps, ok := o["parameters"].([]any); ok {
				for _, p := range ps {
					params = append(params, d.deref(t, p))
				}
			}
			out = append(out, operation{method: strings.ToUpper(k), path: path, op: o, params: params})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

func (o operation) responds(code string) bool {
	rs, _ := o.op["responses"].(map[string]any)
	_, ok := rs[code]
	return ok
}

func (o operation) public() bool {
	sec, ok := o.op["security"].([]any)
	return ok && len(sec) == 0
}

func testServer() *Server { return newTestServer(nil, nil, zerolog.Nop(), testAdminKey) }

// newTestServer is the API on st (nil: none) with kicker k, logging to
// log, accepting keys: what the unit tests of the API need.
func newTestServer(st *store.Store, k AgentKicker, log zerolog.Logger, keys ...string) *Server {
	return New(st, nil, nil, nil, k, catalog.New(catalog.Default), nil, ops.NewHealth(nil, zerolog.Nop()), metrics.New("test"), log,
		Options{AdminKeys: keys})
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// The document lists exactly the routes the server registers.
func TestOpenAPIRoutesMatchServer(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Errorf("openapi is %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if v, _ := info["version"].(string); v == "" {
		t.Error("info.version is empty")
	}
	if v, _ := info["title"].(string); v == "" {
		t.Error("info.title is empty")
	}

	s := testServer()
	registered := map[string]bool{}
	for _, r := range s.e.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "/*") {
			continue // echo's group catch-alls and our /api/v1/* fallback
		}
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}
	documented := map[string]bool{}
	for _, o := range doc.operations(t) {
		documented[o.method+" "+o.path] = true
	}
	var missing, extra []string
	for k := range registered {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server registers but openapi.json lacks: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json documents routes the server lacks: %v", extra)
	}
}

// Every operation is well formed: responses, a unique operationId, its path
// parameters declared, the bearer scheme on /api/v1 and none elsewhere.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	scheme, ok := doc.resolve("#/components/securitySchemes/adminKey")
	if sm, _ := scheme.(map[string]any); !ok || sm["type"] != "http" || sm["scheme"] != "bearer" {
		t.Errorf("components.securitySchemes.adminKey is %v, want an http bearer scheme", scheme)
	}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for _, o := range doc.operations(t) {
		name := o.method + " " + o.path
		rs, _ := o.op["responses"].(map[string]any)
		if len(rs) == 0 {
			t.Errorf("%s has no responses", name)
		}
		for code, r := range rs {
			if rm := doc.deref(t, r); rm["description"] == nil {
				t.Errorf("%s response %s has no description", name, code)
			}
		}
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", name)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("operationId %s used by %s and %s", id, prev, name)
		}
		ids[id] = name

		declared := map[string]bool{}
		for _, p := range o.params {
			if p["in"] == "path" {
				declared[p["name"].(string)] = true
				if p["required"] != true {
					t.Errorf("%s: path parameter %v is not required", name, p["name"])
				}
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(o.path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %s is not declared", name, m[1])
			}
			delete(declared, m[1])
		}
		for p := range declared {
			t.Errorf("%s declares path parameter %s that is not in its path", name, p)
		}

		if strings.HasPrefix(o.path, "/api/v1/") {
			sec, _ := o.op["security"].([]any)
			if sec == nil {
				sec, _ = doc["security"].([]any)
			}
			has := false
			for _, req := range sec {
				if _, ok := req.(map[string]any)["adminKey"]; ok {
					has = true
				}
			}
			if !has {
				t.Errorf("%s does not require the adminKey scheme", name)
			}
			if !o.responds("401") {
				t.Errorf("%s does not document 401", name)
			}
		} else if !o.public() {
			t.Errorf("%s should be public (security: [])", name)
		}
	}
}

// Every $ref anywhere in the document resolves.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	n := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"]; ok {
				n++
				rs, _ := r.(string)
				if _, ok := doc.resolve(rs); !ok {
					t.Errorf("%s: $ref %v does not resolve", at, r)
				}
			}
			for k, c := range x {
				walk(at+"/"+k, c)
			}
		case []any:
			for i, c := range x {
				walk(at+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#", map[string]any(doc))
	if n == 0 {
		t.Error("no $ref at all")
	}
}

// schemaShape merges properties and required over allOf.
func schemaShape(t *testing.T, doc openAPIDoc, name string) (props, required map[string]bool) {
	t.Helper()
	props, required = map[string]bool{}, map[string]bool{}
	var add func(s map[string]any)
	add = func(s map[string]any) {
		if all, ok := s["allOf"].([]any); ok {
			for _, sub := range all {
				add(doc.deref(t, sub))
			}
		}
		if ps, ok := s["properties"].(map[string]any); ok {
			for p := range ps {
				props[p] = true
			}
		}
		if rs, ok := s["required"].([]any); ok {
			for _, r := range rs {
				required[r.(string)] = true
			}
		}
	}
	s, ok := doc.resolve("#/components/schemas/" + name)
	if !ok {
		t.Fatalf("schema %s is missing", name)
	}
	add(doc.deref(t, s))
	return props, required
}

// jsonFields lists the JSON fields of a struct type and whether each is
// always present (no omitempty).
func jsonFields(typ reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = !strings.Contains(","+opts+",", ",omitempty,")
	}
	return out
}

// The response schemas have exactly the fields the Go views marshal, and
// require every field that is always present.
func TestOpenAPISchemasMatchViews(t *testing.T) {
	doc := loadOpenAPI(t)
	cases := []struct {
		typ     reflect.Type
		schemas []string // merged: a list schema and its single view
	}{
		{reflect.TypeFor[WebhookView](), []string{"Webhook"}},
		{reflect.TypeFor[DeliveryView](), []string{"Delivery", "DeliveryDetail"}},
		{reflect.TypeFor[AgentView](), []string{"Agent", "AgentCreated"}},
		{reflect.TypeFor[TestResult](), []string{"TestResult"}},
		{reflect.TypeFor[SecretView](), []string{"Secret"}},
		{reflect.TypeFor[APIError](), []string{"Error"}},
		{reflect.TypeFor[ops.Readiness](), []string{"Health"}},
		{reflect.TypeFor[store.AttemptEntry](), []string{"AttemptEntry"}},
		{reflect.TypeFor[store.MinuteBucket](), []string{"StatsBucket"}},
		{reflect.TypeFor[catalog.EventType](), []string{"EventType"}},
		{reflect.TypeFor[webhooks.Filters](), []string{"Filters"}},
		{reflect.TypeFor[matching.Envelope](), []string{"Envelope"}},
		{reflect.TypeFor[Page[WebhookView]](), []string{"WebhookList"}},
		{reflect.TypeFor[Page[DeliveryView]](), []string{"DeliveryList"}},
		{reflect.TypeFor[Page[AgentView]](), []string{"AgentList"}},
		{reflect.TypeFor[ReplayView](), []string{"Replay"}},
		{reflect.TypeFor[Page[ReplayView]](), []string{"ReplayList"}},
	}
	for _, c := range cases {
		props, required := map[string]bool{}, map[string]bool{}
		for _, name := range c.schemas {
			p, r := schemaShape(t, doc, name)
			for k := range p {
				props[k] = true
			}
			for k := range r {
				required[k] = true
			}
		}
		fields := jsonFields(c.typ)
		for f, always := range fields {
			if !props[f] {
				t.Errorf("%v: field %s is not in schema %v", c.typ, f, c.schemas)
			}
			if always && !required[f] {
				t.Errorf("%v: field %s is always present but not required by %v", c.typ, f, c.schemas)
			}
		}
		for p := range props {
			if _, ok := fields[p]; !ok {
				t.Errorf("schema %v has property %s that %v does not marshal", c.schemas, p, c.typ)
			}
		}
		for r := range required {
			if _, ok := fields[r]; !ok {
				t.Errorf("schema %v requires %s that %v does not marshal", c.schemas, r, c.typ)
			}
		}
	}
}

func enumOf(t *testing.T, doc openAPIDoc, name string) []string {
	t.Helper()
	s, ok := doc.resolve("#/components/schemas/" + name)
	if !ok {
		t.Fatalf("schema %s is missing", name)
	}
	var out []string
	for _, v := range doc.deref(t, s)["enum"].([]any) {
		out = append(out, v.(string))
	}
	sort.Strings(out)
	return out
}

// The event type enums are the catalogue the server is built with.
func TestOpenAPIEventTypesMatchCatalogue(t *testing.T) {
	doc := loadOpenAPI(t)
	cat := catalog.New(catalog.Default)
	var types, publishable []string
	patterns := []string{"*"}
	for _, et := range cat.Types() {
		types = append(types, et.Type)
		if et.Type != catalog.TestEventType && !catalog.IsOperational(et.Type) {
			publishable = append(publishable, et.Type)
		}
		patterns = append(patterns, et.Type)
	}
	for _, f := range cat.Families() {
		patterns = append(patterns, f+".*")
	}
	for _, l := range [][]string{types, publishable, patterns} {
		sort.Strings(l)
	}
	if got := enumOf(t, doc, "EventTypeName"); !slices.Equal(got, types) {
		t.Errorf("EventTypeName enum %v, catalogue %v", got, types)
	}
	if got := enumOf(t, doc, "PublishableEventType"); !slices.Equal(got, publishable) {
		t.Errorf("PublishableEventType enum %v, want %v", got, publishable)
	}
	got := enumOf(t, doc, "EventTypePattern")
	if !slices.Equal(got, patterns) {
		t.Errorf("EventTypePattern enum %v, want %v", got, patterns)
	}
	for _, p := range got {
		if !cat.ValidPattern(p) {
			t.Errorf("EventTypePattern %q is refused by the catalogue", p)
		}
	}
	statuses := map[string]bool{}
	for _, st := range streams.Statuses {
		statuses[string(st)] = true
	}
	if got := enumOf(t, doc, "DeliveryStatus"); !slices.Equal(got, sortedKeys(statuses)) {
		t.Errorf("DeliveryStatus enum %v, the handler accepts %v", got, sortedKeys(statuses))
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The webhook bodies name the fields the decoder accepts, and create
// requires what Apply requires.
func TestOpenAPIWebhookBodies(t *testing.T) {
	doc := loadOpenAPI(t)
	cat := catalog.New(catalog.Default)
	createProps, createReq := schemaShape(t, doc, "WebhookCreate")
	updateProps, updateReq := schemaShape(t, doc, "WebhookUpdate")
	for _, props := range []map[string]bool{createProps, updateProps} {
		for p := range props {
			if _, err := webhooks.DecodeBody([]byte(`{"` + p + `": null}`)); err != nil {
				t.Errorf("documented webhook field %s is refused by the decoder: %v", p, err)
			}
		}
	}
	if !createProps["secret"] || updateProps["secret"] {
		t.Error("secret belongs to WebhookCreate only (an update refuses it)")
	}
	if len(updateReq) != 0 {
		t.Errorf("WebhookUpdate requires %v; an update is partial", updateReq)
	}
	full := map[string]json.RawMessage{"name": json.RawMessage(`"n"`), "url": json.RawMessage(`"https://example.test/h"`),
		"event_types": json.RawMessage(`["*"]`)}
	if err := webhooks.Apply(&webhooks.Webhook{}, full, true, cat); err != nil {
		t.Fatalf("minimal create body refused: %v", err)
	}
	for f := range full {
		raw := map[string]json.RawMessage{}
		for k, v := range full {
			if k != f {
				raw[k] = v
			}
		}
		err := webhooks.Apply(&webhooks.Webhook{}, raw, true, cat)
		var fe *webhooks.FieldError
		refused := errors.As(err, &fe) && fe.Field == f
		if refused != createReq[f] {
			t.Errorf("create without %s: refused=%v, documented required=%v", f, refused, createReq[f])
		}
	}
	if len(createReq) != len(full) {
		t.Errorf("WebhookCreate requires %v, the code requires name, url, event_types", createReq)
	}
	if err := webhooks.Apply(&webhooks.Webhook{}, map[string]json.RawMessage{"secret": json.RawMessage(`null`)}, false, cat); err == nil {
		t.Error("an update with secret was accepted; the document says 422")
	}
}

func do(s *Server, method, path, key string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.e.ServeHTTP(rec, req)
	return rec
}

// The answers the server gives without touching Redis or NATS are
// documented: 401 without a key, 404 for an id of the wrong form, 400/413/422
// for bodies and query parameters checked before any store access, and the
// public endpoints.
func TestOpenAPIStatusCodesObserved(t *testing.T) {
	doc := loadOpenAPI(t)
	s := testServer()
	idParam := regexp.MustCompile(`\{[^}]+\}`)
	for _, o := range doc.operations(t) {
		name := o.method + " " + o.path
		if o.public() {
			rec := do(s, o.method, o.path, "", nil)
			if !o.responds(strconv.Itoa(rec.Code)) {
				t.Errorf("%s answered %d, not documented", name, rec.Code)
			}
			if o.path == "/openapi.json" && !bytes.Equal(rec.Body.Bytes(), openAPI) {
				t.Error("/openapi.json does not serve the embedded document")
			}
			continue
		}
		path := idParam.ReplaceAllString(o.path, "probe-0000")
		if rec := do(s, o.method, path, "", nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without a key: %d, want 401", name, rec.Code)
		} else if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", name)
		}
		if rec := do(s, o.method, path, "wrong-key", nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong key: %d, want 401", name, rec.Code)
		}
		if strings.Contains(o.path, "{") {
			// An id that is neither a UUID nor an agent id is 404 before any lookup.
			bad := idParam.ReplaceAllString(o.path, "not%20an%20id")
			if rec := do(s, o.method, bad, testAdminKey, []byte(`{}`)); rec.Code != http.StatusNotFound || !o.responds("404") {
				t.Errorf("%s with a malformed id: %d (404 documented: %v)", name, rec.Code, o.responds("404"))
			}
			continue
		}
		if _, ok := o.op["requestBody"]; ok {
			checks := []struct {
				body []byte
				want int
			}{
				{[]byte(`{`), http.StatusBadRequest},
				{[]byte(`{"no_such_field": 1}`), http.StatusUnprocessableEntity},
				{[]byte(`{"x": "` + strings.Repeat("a", 1<<20) + `"}`), http.StatusRequestEntityTooLarge}, // over every limit (a preview takes an event and a webhook body)
			}
			for _, c := range checks {
				rec := do(s, o.method, path, testAdminKey, c.body)
				if rec.Code != c.want || !o.responds(strconv.Itoa(c.want)) {
					t.Errorf("%s: answered %d, want %d documented (documented: %v)", name, rec.Code, c.want, o.responds(strconv.Itoa(c.want)))
				}
				var e APIError
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Details == nil {
					t.Errorf("%s: error body is not the envelope: %s", name, rec.Body.String())
				}
				if e.RequestID == "" || rec.Header().Get(RequestIDHeader) != e.RequestID {
					t.Errorf("%s: request_id %q, X-Request-Id %q: want the same, not empty", name, e.RequestID, rec.Header().Get(RequestIDHeader))
				}
			}
		}
		for _, p := range o.params {
			if p["in"] == "query" && p["name"] == "limit" {
				if rec := do(s, o.method, path+"?limit=0", testAdminKey, nil); rec.Code != http.StatusUnprocessableEntity || !o.responds("422") {
					t.Errorf("%s?limit=0: %d, want 422 documented", name, rec.Code)
				}
				if rec := do(s, o.method, path+"?limit=x", testAdminKey, nil); rec.Code != http.StatusBadRequest || !o.responds("400") {
					t.Errorf("%s?limit=x: %d, want 400 documented", name, rec.Code)
				}
			}
		}
	}
}

// Every documented JSON error answer declares the X-Request-Id header the
// server sends with it.
func TestOpenAPIErrorsDeclareRequestID(t *testing.T) {
	doc := loadOpenAPI(t)
	n := 0
	for _, o := range doc.operations(t) {
		rs, _ := o.op["responses"].(map[string]any)
		for code, r := range rs {
			if c, _ := strconv.Atoi(code); c < 400 {
				continue
			}
			resp := doc.deref(t, r)
			content, _ := resp["content"].(map[string]any)
			if _, ok := content["application/json"]; !ok {
				continue // the sign-in form's HTML answers
			}
			n++
			headers, _ := resp["headers"].(map[string]any)
			h := doc.deref(t, headers[RequestIDHeader])
			if h["schema"] == nil {
				t.Errorf("%s %s: response %s does not declare %s", o.method, o.path, code, RequestIDHeader)
			}
		}
	}
	if n == 0 {
		t.Error("no JSON error response at all")
	}
}
