package allinone_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// The operators' dashboard and alert rules (deploy/monitoring) use only
// metrics the built binaries export, with labels those metrics carry: the
// separate api, router and deliverer together, and the all-in-one alone.
// The test drives the traffic that gives every vector the rules and panels
// use a series (client_golang prints a vector only once it has one), then
// polls the scrapes until every reference is found, so a failure names what
// is missing.
func TestE2EMonitoringMetricsExported(t *testing.T) {
	t.Parallel()
	refs := monitoringRefs(t)
	for _, want := range []string{"hermod_delivery_attempts_total", "hermod_delivery_latency_seconds_bucket",
		"hermod_webhook_backlog_oldest_seconds", "hermod_filter_errors_total", "hermod_record_write_errors_total"} {
		if refs[want] == nil {
			t.Fatalf("the rules and dashboard do not reference %s; the expression reader missed it: %v", want, refs)
		}
	}
	base := map[string]string{"HERMOD_ENCRYPTION_KEY": testEncKey, "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8",
		"HERMOD_BREAKER_THRESHOLD": "2", "HERMOD_BREAKER_COOLDOWN": "1m", "HERMOD_WEBHOOK_MAX_INFLIGHT": "1"}
	t.Run("separate binaries", func(t *testing.T) {
		t.Parallel()
		ns := hermodtest.NATS(t)
		rd := hermodtest.StartRedis(t)
		env := merge(base, map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL()})
		_, apiAddr := startReady(t, "hermod-api", merge(env, map[string]string{"HERMOD_ADMIN_KEYS": testAdminKey}))
		_, routerOps := startReady(t, "hermod-router", env)
		_, delOps := startReady(t, "hermod-deliverer", env)
		checkMonitoringTraffic(t, "http://"+apiAddr, ns.ClientURL(), refs, "http://"+apiAddr, "http://"+routerOps, "http://"+delOps)
	})
	t.Run("all-in-one", func(t *testing.T) {
		t.Parallel()
		ns := hermodtest.NATS(t)
		rd := hermodtest.StartRedis(t)
		env := merge(base, map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(),
			"HERMOD_DATA_DIR": t.TempDir(), "HERMOD_ADMIN_KEYS": testAdminKey})
		_, addr := startReady(t, "hermod", env)
		checkMonitoringTraffic(t, "http://"+addr, ns.ClientURL(), refs, "http://"+addr)
	})
}

// checkMonitoringTraffic makes deliveries succeed, wait for a slot, retry,
// open a breaker, die and be held, and the router refuse an event, then
// waits until the union of the /metrics of bases has every metric and label
// of refs.
func checkMonitoringTraffic(t *testing.T, api, natsURL string, refs map[string]map[string]bool, bases ...string) {
	p := &pipeline{t: t, Base: api, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(p.hc.CloseIdleConnections)
	// A receiver slower than the slot wait's start, with one slot: the
	// deliveries after the first wait for the slot.
	slow := hermodtest.NewSink(t)
	slow.SetAnswer(func(int, *http.Request) int { time.Sleep(100 * time.Millisecond); return 200 })
	failing := hermodtest.NewSink(t)
	failing.SetAnswer(func(int, *http.Request) int { return 500 })
	gone := hermodtest.NewSink(t)
	gone.SetAnswer(func(int, *http.Request) int { return 410 })
	types := []string{"deployment.*"}
	p.createWebhook(map[string]any{"name": "slow", "url": slow.URL, "event_types": types})
	p.createWebhook(map[string]any{"name": "failing", "url": failing.URL, "event_types": types, "max_retries": 10})
	p.createWebhook(map[string]any{"name": "gone", "url": gone.URL, "event_types": types})
	paused := p.createWebhook(map[string]any{"name": "paused", "url": slow.URL, "event_types": types})
	p.must(200, "POST", "/api/v1/webhooks/"+paused+"/pause", nil)
	for i := range 3 {
		p.publish("deployment.applied", map[string]any{"deployment_id": fmt.Sprintf("d-%d", i)})
	}
	// Not an envelope: the router refuses it.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := nc.Publish(streams.EventSubject("deployment.applied"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	hermodtest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		exported := map[string]map[string]bool{}
		histograms := map[string]bool{}
		for _, b := range bases {
			code, text := httpGet(b + "/metrics")
			if code != 200 {
				return fmt.Errorf("%s/metrics: %d %s", b, code, tail(text, 300))
			}
			parseExposition(text, exported, histograms)
		}
		return missingRefs(refs, exported, histograms)
	})
}

// Labels Prometheus adds to every series it scrapes (target labels), and the
// series it makes itself for each target.
var (
	targetLabels    = map[string]bool{"job": true, "instance": true}
	prometheusMades = map[string]bool{"up": true}
)

// missingRefs says which referenced metrics or labels the scrape lacks.
func missingRefs(refs, exported map[string]map[string]bool, histograms map[string]bool) error {
	var missing []string
	for name, labels := range refs {
		if prometheusMades[name] {
			for l := range labels {
				if !targetLabels[l] {
					missing = append(missing, fmt.Sprintf("%s{%s}: Prometheus gives it only target labels", name, l))
				}
			}
			continue
		}
		have, ok := exported[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if strings.HasSuffix(name, "_bucket") && !histograms[strings.TrimSuffix(name, "_bucket")] {
			missing = append(missing, name+": not the buckets of a histogram")
		}
		for l := range labels {
			if !have[l] && !targetLabels[l] {
				missing = append(missing, fmt.Sprintf("%s{%s}", name, l))
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("used by deploy/monitoring but not exported: %s", strings.Join(missing, ", "))
	}
	return nil
}

// parseExposition adds the series names of a Prometheus text exposition,
// each with the label names its series carry, to series, and the names of
// its histogram families to histograms.
func parseExposition(text string, series map[string]map[string]bool, histograms map[string]bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 && f[1] == "histogram" {
				histograms[f[0]] = true
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		name := line[:end]
		if series[name] == nil {
			series[name] = map[string]bool{}
		}
		if line[end] != '{' {
			continue
		}
		// label="value",... with \" and \\ escaped in values.
		for i := end + 1; i < len(line) && line[i] != '}'; {
			eq := strings.IndexByte(line[i:], '=')
			if eq < 0 {
				break
			}
			series[name][strings.TrimSpace(line[i:i+eq])] = true
			j := i + eq + 2 // past ="
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
			if i < len(line) && line[i] == ',' {
				i++
			}
		}
	}
}

// monitoringRefs reads every PromQL expression of the rules file and of the
// dashboard (panel targets, and the label_values queries of its variables),
// and returns each metric they select with the labels used on it.
func monitoringRefs(t *testing.T) map[string]map[string]bool {
	t.Helper()
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "deploy", "monitoring")
	refs := map[string]map[string]bool{}
	add := func(where, expr string) {
		got, err := promqlRefs(expr)
		if err != nil {
			t.Fatalf("%s: %v in %q", where, err, expr)
		}
		for m, ls := range got {
			if refs[m] == nil {
				refs[m] = map[string]bool{}
			}
			for l := range ls {
				refs[m][l] = true
			}
		}
	}

	b, err := os.ReadFile(filepath.Join(dir, "hermod.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			add("rule "+r.Alert+r.Record, r.Expr)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no rules in hermod.rules.yaml")
	}

	b, err = os.ReadFile(filepath.Join(dir, "hermod-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	exprs := 0
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				add("panel "+p.Title, tg.Expr)
				exprs++
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if exprs == 0 {
		t.Fatal("no panel expressions in the dashboard")
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: a query other than label_values(metric, label): %q", v.Name, v.Definition)
		}
		if refs[m[1]] == nil {
			refs[m[1]] = map[string]bool{}
		}
		refs[m[1]][m[2]] = true
	}
	return refs
}

type dashPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// The dashboard takes its Prometheus from the ${datasource} variable
// everywhere (no data source uid of one Grafana), and the expression reader
// finds metrics and their labels in selectors, by/without and on/ignoring.
func TestMonitoringDashboardAndExpressionReader(t *testing.T) {
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", "hermod-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if v, _ := dash["schemaVersion"].(float64); v < 36 {
		t.Errorf("schemaVersion %v, want a recent one (36 or later)", dash["schemaVersion"])
	}
	sources := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "datasource" {
					ds, ok := c.(map[string]any)
					if !ok {
						t.Errorf("%s.datasource: %v, want {type, uid}", path, c)
						continue
					}
					if ds["type"] != "grafana" { // the built-in annotations
						sources++
						if ds["uid"] != "${datasource}" || ds["type"] != "prometheus" {
							t.Errorf("%s.datasource: %v, want the ${datasource} variable", path, ds)
						}
					}
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", dash)
	if sources == 0 {
		t.Error("no data source references in the dashboard")
	}

	for _, c := range []struct {
		expr string
		want map[string][]string
	}{
		{`histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))`,
			map[string][]string{"a_bucket": {"job", "le"}}},
		{`sum(rate(b_total{outcome=~"retry|dead", x!='y'}[10m])) by (outcome) / sum(rate(c_total[10m]))`,
			map[string][]string{"b_total": {"outcome", "x"}, "c_total": nil}},
		{"max by (webhook_id) (d) > 3600 and on (webhook_id) max by (webhook_id) (e{state!=\"held\"}) > 0",
			map[string][]string{"d": {"webhook_id"}, "e": {"state", "webhook_id"}}},
		{`topk(10, count without (version) (f == 1)) or vector(0)`,
			map[string][]string{"f": {"version"}}},
		{`up == 0 and on (job, instance) last_over_time(g{binary!="a"}[1h:1m])`,
			map[string][]string{"up": {"instance", "job"}, "g": {"binary", "instance", "job"}}},
	} {
		got, err := promqlRefs(c.expr)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: metrics %v, want %v", c.expr, got, c.want)
		}
		for m, ls := range c.want {
			var have []string
			for l := range got[m] {
				have = append(have, l)
			}
			sort.Strings(have)
			if strings.Join(have, ",") != strings.Join(ls, ",") {
				t.Errorf("%q: %s labels %v, want %v", c.expr, m, have, ls)
			}
		}
	}
	for _, bad := range []string{`sum(rate(a[5m])`, `{__name__="a"}`, `a{b="c"`, `a{b="c}`} {
		if _, err := promqlRefs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A PromQL token: an identifier, a string, a number, or one other character.
type pqTok struct {
	kind byte // 'i' identifier, 's' string, 'n' number, 'p' punctuation or operator
	text string
}

// pqItem is a token or a parenthesised or braced group.
type pqItem struct {
	tok   pqTok
	group *pqGroup
}

type pqGroup struct {
	brace bool
	items []pqItem
}

// pqAggregations are PromQL's aggregation operators (never metric names).
var pqAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true}

var pqKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "atan2": true}

// promqlRefs returns each metric an expression selects with the label names
// used on it: in its selector's matchers, in a by/without of an aggregation
// over it, or in an on/ignoring/group_left/group_right of a binary operation
// it is an operand of. Range and subquery brackets are skipped, and so are
// Grafana's variables, which appear only in strings and brackets here.
func promqlRefs(expr string) (map[string]map[string]bool, error) {
	toks, err := pqLex(expr)
	if err != nil {
		return nil, err
	}
	top, rest, err := pqParse(toks, 0, "")
	if err != nil {
		return nil, err
	}
	if rest != len(toks) {
		return nil, fmt.Errorf("unbalanced %q", toks[rest].text)
	}
	refs := map[string]map[string]bool{}
	metricsOf := map[*pqGroup][]string{}
	type use struct {
		labels []string
		group  *pqGroup
	}
	var uses []use
	var walk func(g *pqGroup) error
	walk = func(g *pqGroup) error {
		var ms []string
		for k := 0; k < len(g.items); k++ {
			it := g.items[k]
			if it.group != nil {
				if it.group.brace {
					return fmt.Errorf("a selector without a metric name")
				}
				if err := walk(it.group); err != nil {
					return err
				}
				ms = append(ms, metricsOf[it.group]...)
				continue
			}
			if it.tok.kind != 'i' {
				continue
			}
			name := it.tok.text
			var next *pqGroup
			if k+1 < len(g.items) {
				next = g.items[k+1].group
			}
			switch {
			case name == "by" || name == "without":
				if next == nil || next.brace {
					return fmt.Errorf("%s without a label list", name)
				}
				target := (*pqGroup)(nil)
				if k > 0 && g.items[k-1].group == nil && pqAggregations[g.items[k-1].tok.text] {
					if k+2 < len(g.items) {
						target = g.items[k+2].group // sum by (l) (expr)
					}
				} else if k > 0 {
					target = g.items[k-1].group // sum (expr) by (l)
				}
				if target == nil {
					return fmt.Errorf("%s not after an aggregation", name)
				}
				uses = append(uses, use{pqIdents(next), target})
				k++
			case name == "on" || name == "ignoring" || name == "group_left" || name == "group_right":
				if next != nil && !next.brace {
					uses = append(uses, use{pqIdents(next), g})
					k++
				}
			case pqAggregations[name] || pqKeywords[name]:
			case next != nil && !next.brace: // a function call; its arguments are walked next
			default:
				if refs[name] == nil {
					refs[name] = map[string]bool{}
				}
				if next != nil { // the selector's matchers: label names, then strings
					for _, l := range pqIdents(next) {
						refs[name][l] = true
					}
					k++
				}
				ms = append(ms, name)
			}
		}
		metricsOf[g] = ms
		return nil
	}
	if err := walk(top); err != nil {
		return nil, err
	}
	for _, u := range uses {
		for _, m := range metricsOf[u.group] {
			for _, l := range u.labels {
				refs[m][l] = true
			}
		}
	}
	return refs, nil
}

// pqIdents are the identifiers of a group (label names).
func pqIdents(g *pqGroup) []string {
	var out []string
	for _, it := range g.items {
		if it.group == nil && it.tok.kind == 'i' {
			out = append(out, it.tok.text)
		}
	}
	return out
}

// pqParse groups toks from i until the closing token close ("" at the top).
func pqParse(toks []pqTok, i int, close string) (*pqGroup, int, error) {
	g := &pqGroup{brace: close == "}"}
	for i < len(toks) {
		t := toks[i]
		switch {
		case t.kind == 'p' && (t.text == "(" || t.text == "{"):
			want := ")"
			if t.text == "{" {
				want = "}"
			}
			sub, j, err := pqParse(toks, i+1, want)
			if err != nil {
				return nil, 0, err
			}
			g.items = append(g.items, pqItem{group: sub})
			i = j + 1
		case t.kind == 'p' && (t.text == ")" || t.text == "}"):
			if t.text != close {
				return nil, 0, fmt.Errorf("unexpected %q", t.text)
			}
			return g, i, nil
		default:
			g.items = append(g.items, pqItem{tok: t})
			i++
		}
	}
	if close != "" {
		return nil, 0, fmt.Errorf("missing %q", close)
	}
	return g, i, nil
}

// pqLex splits expr into tokens, dropping whitespace and the contents of
// square brackets (ranges, subqueries).
func pqLex(expr string) ([]pqTok, error) {
	var toks []pqTok
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, pqTok{'s', expr[i : j+1]})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [")
			}
			i += j + 1
		case c == '#':
			j := strings.IndexByte(expr[i:], '\n')
			if j < 0 {
				j = len(expr) - i
			}
			i += j
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			toks = append(toks, pqTok{'i', expr[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(expr) && (isIdent(expr[j]) || expr[j] == '.') {
				j++
			}
			toks = append(toks, pqTok{'n', expr[i:j]})
			i = j
		default:
			toks = append(toks, pqTok{'p', string(c)})
			i++
		}
	}
	return toks, nil
}
