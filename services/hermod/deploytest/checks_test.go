//go:build compose

package deploytest

// The quick checks of deploy/compose: `docker compose config` reads the
// files, and the project's rules (policy_test.go) are applied to what it
// prints. This file's name sorts before those of the tests that start the
// stacks, so `make test-compose` runs these first.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// composeSetup returns compose.yaml alone, compose.yaml with
// compose.cluster.yaml, and the facts they are checked against.
func composeSetup(t *testing.T) (base, cluster composeFiles, f composeFacts) {
	t.Helper()
	requireCompose(t)
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "deploy", "compose")
	return newComposeFiles(dir, "compose.yaml"), newComposeFiles(dir, "compose.yaml", "compose.cluster.yaml"), loadComposeFacts(t, root)
}

// model returns the normalized model of the files with the values
// .env.example sets.
func model(t *testing.T, c composeFiles, f composeFacts) composeProject {
	t.Helper()
	p, err := decodeProject(c, exampleValues(f.EnvExample, false))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func reportProblems(t *testing.T, probs []string) {
	t.Helper()
	for _, p := range probs {
		t.Error(p)
	}
}

// TestComposeConfigFacts guards the scanners themselves: if they found
// nothing, every check against them would pass vacuously.
func TestComposeConfigFacts(t *testing.T) {
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f := loadComposeFacts(t, root)
	for _, b := range []string{"hermod-api", "hermod-router", "hermod-deliverer", "hermod-agent", "hermod", "hermodctl"} {
		if _, ok := f.Binaries[b]; !ok {
			t.Errorf("the Makefile's build target does not produce bin/%s (found %v)", b, sortedKeys(f.Binaries))
		}
	}
	for bin, want := range map[string][]string{
		"hermod-api":       {"HERMOD_API_ADDR", "HERMOD_NATS_URL", "HERMOD_ADMIN_KEYS", "HERMOD_ENCRYPTION_KEY", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL"},
		"hermod-router":    {"HERMOD_OPS_ADDR", "HERMOD_REDIS_URL", "HERMOD_SHUTDOWN_TIMEOUT", "HERMOD_STREAM_REPLICAS"},
		"hermod-deliverer": {"HERMOD_OPS_ADDR", "HERMOD_DELIVERY_CONCURRENCY", "HERMOD_ENCRYPTION_KEY"},
		"hermod-agent":     {"HERMOD_AGENT_ID", "HERMOD_NATS_URL"},
		"hermod":           {"HERMOD_DATA_DIR", "HERMOD_NATS_LISTEN"},
	} {
		for _, v := range want {
			if !f.Binaries[bin][v] {
				t.Errorf("scanner: %s should read %s; found %v", bin, v, sortedKeys(f.Binaries[bin]))
			}
		}
	}
	// The per-binary scan follows imports: the router reads no delivery setting.
	if f.Binaries["hermod-router"]["HERMOD_DELIVERY_CONCURRENCY"] || f.Binaries["hermod-router"]["HERMOD_API_ADDR"] {
		t.Errorf("scanner: hermod-router should not read deliverer/api settings; found %v", sortedKeys(f.Binaries["hermod-router"]))
	}
	for _, stream := range []string{"HERMOD_EVENTS", "HERMOD_DELIVERIES"} { // stream names, not variables
		if f.AllVars[stream] {
			t.Errorf("scanner: %s is a stream name, not a variable", stream)
		}
	}
	for _, v := range []string{"NATS_HERMOD_PASSWORD", "NATS_SYSTEM_PASSWORD", "NATS_CALLOUT_ISSUER"} {
		if !slices.Contains(f.NATSConfVars, v) {
			t.Errorf("scanner: nats.conf reads $%s; found %v", v, f.NATSConfVars)
		}
	}
	// The Makefile parser reads the build target only.
	mk := "build:\n\tcd services/x && go build -o ../../bin/hermod-x ./cmd/hermod-x\n\nother:\n\tgo build -o ../../bin/not-built ./cmd\n"
	bins := parseMakefileBinaries(mk)
	if len(bins) != 1 || bins[0].Name != "hermod-x" || bins[0].Dir != "services/x/cmd/hermod-x" {
		t.Errorf("parseMakefileBinaries = %+v", bins)
	}
}

// TestComposeConfig: compose.yaml as users run it.
func TestComposeConfig(t *testing.T) {
	base, _, f := composeSetup(t)
	probs, _ := audit(base, f)
	reportProblems(t, probs)

	p := model(t, base, f)
	for _, s := range []string{"nats", "redis", "api", "router", "deliverer", "agent"} {
		if _, ok := p.Services[s]; !ok {
			t.Errorf("compose.yaml: no %s service", s)
		}
	}
	if !slices.ContainsFunc(p.Services["api"].Ports, func(port composePort) bool { return port.Target == 8080 }) {
		t.Errorf("compose.yaml: the api does not publish container port 8080")
	}
}

// TestComposeConfigCluster: compose.yaml with compose.cluster.yaml merged
// over it: three NATS nodes in one cluster, Redis with a replica and three
// Sentinels, and every Hermod service told about all of them.
func TestComposeConfigCluster(t *testing.T) {
	_, cluster, f := composeSetup(t)
	probs, _ := audit(cluster, f)
	reportProblems(t, probs)

	p := model(t, cluster, f)
	var nodes, sentinels []string
	for _, n := range sortedKeys(p.Services) {
		s := p.Services[n]
		if _, ok := flagValue(s.Command, "--cluster_name", "-cluster_name"); ok && imageIs(s, "nats") {
			nodes = append(nodes, n)
		}
		if imageIs(s, "redis") && s.isSentinel() {
			sentinels = append(sentinels, n)
		}
	}
	if len(nodes) != 3 {
		t.Errorf("compose.cluster.yaml: %d clustered NATS services (%v), want 3", len(nodes), nodes)
	}
	if n := countServices(p, func(s composeService) bool { return imageIs(s, "redis") && !s.isSentinel() }); n != 2 || len(sentinels) != 3 {
		t.Errorf("compose.cluster.yaml: %d Redis servers and Sentinels %v, want 2 and 3", n, sentinels)
	}
	for _, sname := range []string{"api", "router", "deliverer"} {
		env := p.Services[sname].Environment
		if n := len(strings.Split(env["HERMOD_NATS_URL"], ",")); n != 3 {
			t.Errorf("compose.cluster.yaml: service %s: HERMOD_NATS_URL %q names %d servers, want 3", sname, env["HERMOD_NATS_URL"], n)
		}
		u := env["HERMOD_REDIS_URL"]
		if !strings.HasPrefix(u, "redis-sentinel://") || !slices.Equal(urlHosts(u), sentinels) {
			t.Errorf("compose.cluster.yaml: service %s: HERMOD_REDIS_URL %q, want redis-sentinel:// with the Sentinels %v", sname, u, sentinels)
		}
	}
}

// TestComposeConfigEnvExample: .env.example lists nothing stale, the keys
// are left for the operator to fill in, and Compose refuses to start
// without any of them.
func TestComposeConfigEnvExample(t *testing.T) {
	base, cluster, f := composeSetup(t)
	used := map[string]bool{}
	for _, c := range []composeFiles{base, cluster} {
		vars, err := composeVariables(c)
		if err != nil {
			t.Fatal(err)
		}
		for v := range vars {
			used[v] = true
		}
	}
	reportProblems(t, staleEnvExample(f, used))
	checkFillIn(t, f, secretEnv)
	for _, c := range []composeFiles{base, cluster} {
		reportProblems(t, checkRequired(c, f, secretEnv))
	}
}

// checkFillIn: each of names is an empty NAME= line of .env.example, for
// the operator to fill in.
func checkFillIn(t *testing.T, f composeFacts, names []string) {
	t.Helper()
	for _, k := range names {
		if e, ok := f.EnvExample[k]; !ok || e.Commented || e.Value != "" {
			t.Errorf(".env.example: %s should be an empty NAME= line for the operator to fill in, got %+v", k, e)
		}
	}
}

// TestComposeNATSAuth: every NATS server of both ways to run the files
// loads nats.conf and gets each variable it reads from .env (an empty
// NAME= line there, and Compose refuses to start without it); api, router
// and deliverer connect to every server as the services' user, hermod-api
// also as the system account's user, with the callout seed; the agent
// brings no credentials.
func TestComposeNATSAuth(t *testing.T) {
	base, cluster, f := composeSetup(t)
	checkFillIn(t, f, f.NATSConfVars)
	for _, c := range []struct {
		composeFiles
		servers int
	}{{base, 1}, {cluster, 3}} {
		vars := exampleValues(f.EnvExample, false)
		p, err := decodeProject(c.composeFiles, vars)
		if err != nil {
			t.Fatal(err)
		}
		if n := countServices(p, func(s composeService) bool { return imageIs(s, "nats") }); n != c.servers {
			t.Errorf("%s: %d NATS servers, want %d", c.Name, n, c.servers)
		}
		reportProblems(t, checkNATSAuth(c.Name, c.Dir, p, f, vars))
		reportProblems(t, checkRequired(c.composeFiles, f, f.NATSConfVars))
	}
}

// staleEnvExample: each entry of .env.example is read by a binary or used
// by a Compose file.
func staleEnvExample(f composeFacts, used map[string]bool) []string {
	var probs []string
	for _, v := range sortedKeys(f.EnvExample) {
		if !f.AllVars[v] && !used[v] {
			probs = append(probs, ".env.example lists "+v+", which no binary reads and no Compose file uses")
		}
	}
	return probs
}

// TestComposeConfigCatchesProblems proves the rules are not vacuous: the
// shipped files with a mistake merged over them (an override file, as
// Compose merges it), made in a copy of compose.yaml, or made in
// .env.example yield that mistake.
func TestComposeConfigCatchesProblems(t *testing.T) {
	base, cluster, facts := composeSetup(t)
	for _, c := range []composeFiles{base, cluster} {
		probs, models := audit(c, facts)
		for _, m := range models {
			probs = append(probs, checkNATSAuth(c.Name, c.Dir, m.Project, facts, m.Vars)...)
		}
		if len(probs) != 0 {
			t.Fatalf("the shipped files have problems; the self-test needs them clean:\n%s", strings.Join(probs, "\n"))
		}
	}
	tmp := t.TempDir()
	// The whole .env handed to the router: what an env_file of it gives.
	dotenv := filepath.Join(tmp, "dotenv")
	if err := os.WriteFile(dotenv, []byte("HERMOD_ADMIN_KEYS=k\nNATS_SYSTEM_PASSWORD=p\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		cluster  bool
		edit     [2]string           // replaces edit[0] with edit[1] in compose.yaml
		override string              // merged over the files
		facts    func(*composeFacts) // changes what the repository says
		required []string            // also check that Compose requires these
		want     []string            // substrings, each expected in some problem
	}{
		{name: "unknown variable and unknown binary", override: `
services:
  deliverer:
    command: !override ["hermod-frobnicator"]
    environment: {HERMOD_FOO: "1"}`,
			want: []string{"sets HERMOD_FOO, which no Hermod binary reads", `runs "hermod-frobnicator", which is not a binary`}},
		{name: "variable of another binary", override: `
services:
  deliverer:
    environment: {HERMOD_API_ADDR: ":9"}`,
			want: []string{"sets HERMOD_API_ADDR, which hermod-deliverer does not read"}},
		{name: "the whole .env as env_file", override: `
services:
  router:
    env_file: [` + dotenv + `]`,
			want: []string{"service router: sets HERMOD_ADMIN_KEYS, which hermod-router does not read",
				"service router: sets NATS_SYSTEM_PASSWORD, which is no Hermod setting"}},
		{name: "services disagree on a stream setting", override: `
services:
  api:
    environment: {HERMOD_DEDUP_WINDOW: 10m}`,
			want: []string{"disagree on HERMOD_DEDUP_WINDOW"}},
		{name: "no command", override: `
services:
  api:
    command: !reset null`,
			want: []string{"service api: has no command naming the binary"}},
		{name: "wrong binary for the service", override: `
services:
  deliverer:
    command: !override [hermod-api]`,
			want: []string{`runs "hermod-api"; the deliverer service must run hermod-deliverer`}},
		{name: "deliverer not scalable", override: `
services:
  deliverer:
    container_name: hermod-deliverer
    ports: ["8082:8082"]`,
			want: []string{"has container_name", "publishes host ports"}},
		{name: "variable missing from .env.example", override: `
services:
  router:
    environment: {HERMOD_ROUTER_WORKERS: "${HERMOD_WORKERS:-32}"}`,
			want: []string{"uses ${HERMOD_WORKERS}, which .env.example does not list"}},
		{name: "literal secret", // in compose.yaml itself: Compose interpolates each file before it merges them
			edit:     [2]string{"${HERMOD_ENCRYPTION_KEY:?set HERMOD_ENCRYPTION_KEY in .env (openssl rand -hex 32)}", strings.Repeat("ab", 32)},
			required: []string{"HERMOD_ENCRYPTION_KEY"},
			want: []string{"service api: sets HERMOD_ENCRYPTION_KEY to a value of its own",
				"starts without HERMOD_ENCRYPTION_KEY"}},
		{name: "missing required variable", override: `
services:
  deliverer:
    environment: {HERMOD_ENCRYPTION_KEY: !reset null}`,
			want: []string{"does not set HERMOD_ENCRYPTION_KEY, which hermod-deliverer requires"}},
		{name: "short grace period", override: `
services:
  api:
    stop_grace_period: 10s`,
			want: []string{"stop_grace_period 10s is shorter than HERMOD_SHUTDOWN_TIMEOUT 30s"}},
		{name: ".env.example shows another default", facts: func(f *composeFacts) {
			f.EnvExample["HERMOD_STOP_GRACE_PERIOD"] = envExampleVar{Value: "20s", Commented: true}
		}, want: []string{`defaults ${HERMOD_STOP_GRACE_PERIOD} to "45s", but .env.example shows the default "20s"`,
			`services.api.stop_grace_period is "45s" with the files' defaults but "20s"`,
			"stop_grace_period 20s is shorter than HERMOD_SHUTDOWN_TIMEOUT 30s"}},
		{name: "two defaults for one variable", override: `
services:
  deliverer:
    environment: {HERMOD_SHUTDOWN_TIMEOUT: "${HERMOD_SHUTDOWN_TIMEOUT:-20s}"}`,
			want: []string{`services.deliverer.environment.HERMOD_SHUTDOWN_TIMEOUT is "20s" with the files' defaults but "30s"`}},
		{name: "required variable commented out in .env.example", facts: func(f *composeFacts) {
			f.EnvExample["NATS_SYSTEM_PASSWORD"] = envExampleVar{Commented: true}
		}, want: []string{"requires ${NATS_SYSTEM_PASSWORD}, which .env.example shows only commented out",
			"required variable NATS_SYSTEM_PASSWORD is missing a value"}},
		{name: "healthcheck of another binary", override: `
services:
  deliverer:
    healthcheck: {test: ["CMD", "/usr/local/bin/hermod-router", "healthcheck"]}`,
			want: []string{`is not "CMD /usr/local/bin/hermod-deliverer healthcheck"`}},
		{name: "redis may evict and has no AOF", override: `
services:
  redis:
    command: !override redis-server --maxmemory 1gb --maxmemory-policy allkeys-lru`,
			want: []string{`lacks "--appendonly yes"`, `lacks "--maxmemory-policy noeviction"`}},
		{name: "redis data on no volume", override: `
services:
  redis:
    volumes: !reset []`,
			want: []string{"keeps Redis data (/data) on no named volume"}},
		{name: "nats without JetStream", override: `
services:
  nats:
    command: !override ["-c", "/etc/nats/hermod.conf", "-m", "8222"]`,
			want: []string{"does not enable JetStream", "sets no JetStream store directory"}},
		{name: "store directory not on a volume", override: `
services:
  nats:
    volumes: !override [nats-data:/elsewhere, ./nats.conf:/etc/nats/hermod.conf:ro]`,
			want: []string{"JetStream store directory /data is on no named volume"}},
		{name: "dependency without healthcheck", override: `
services:
  redis:
    healthcheck: !reset null`,
			want: []string{"service redis: has no healthcheck", "waits for redis to be healthy, but redis has no healthcheck"}},
		{name: "cluster node without a name", override: `
services:
  nats:
    command: !override ["-c", "/etc/nats/hermod.conf", "-js", "-sd", "/data", "-m", "8222", "--cluster", "nats://0.0.0.0:6222",
                        "--routes", "nats://nats:6222,nats://nats-9:6222"]`,
			want: []string{"without --cluster_name", "without a --server_name", `routes to "nats-9"`}},
		{name: "nats without nats.conf", override: `
services:
  nats:
    command: !override ["-js", "-sd", "/data", "-m", "8222"]
    volumes: !override [nats-data:/data]
    environment: {NATS_CALLOUT_ISSUER: fixed}`,
			want: []string{"service nats: does not load /etc/nats/hermod.conf", "service nats: does not mount ./nats.conf",
				`service nats: NATS_CALLOUT_ISSUER="fixed", not the value from .env`}},
		{name: "services' NATS users", override: `
services:
  router:
    environment: {HERMOD_NATS_URL: "nats://nats:4222"}
  api:
    environment: {HERMOD_NATS_SYSTEM_URL: "nats://hermod:${NATS_HERMOD_PASSWORD:?}@nats:4222"}
  agent:
    environment: {HERMOD_NATS_URL: "nats://hermod:${NATS_HERMOD_PASSWORD:?}@nats:4222"}`,
			want: []string{`service router: HERMOD_NATS_URL "nats://nats:4222" does not connect as hermod`,
				"service api: HERMOD_NATS_SYSTEM_URL", "does not connect as sys",
				"service agent: HERMOD_NATS_URL", "has credentials"}},
		{name: "no callout seed", override: `
services:
  api:
    environment: {HERMOD_AUTH_CALLOUT_SEED: !reset null}`,
			want: []string{`service api: HERMOD_AUTH_CALLOUT_SEED="", not the seed from .env`}},
		{name: "URLs and dependencies", override: `
services:
  router:
    environment: {HERMOD_REDIS_URL: "redis://cache:6379/0"}
  agent:
    depends_on: {redis: {condition: service_healthy}}`,
			want: []string{`service router: HERMOD_REDIS_URL names "cache", which is no service`,
				"service agent: depends on redis: the agent never talks to Redis"}},
		{name: "cluster: a NATS node the services do not wait for", cluster: true, override: `
services:
  deliverer:
    depends_on: {nats-3: !reset null}`,
			want: []string{"service deliverer: does not depend on nats-3 (named by HERMOD_NATS_URL) with condition: service_healthy"}},
		{name: "cluster: a Redis replica without AOF, Sentinels exempt", cluster: true, override: `
services:
  redis-replica:
    command: !override ["redis-server", "--maxmemory", "1gb", "--maxmemory-policy", "noeviction", "--replicaof", "10.89.53.10", "6379"]`,
			want: []string{`service redis-replica: redis command`, `lacks "--appendonly yes"`}},
		{name: "cluster: the services' URL misses a node", cluster: true, override: `
services:
  api:
    environment: {HERMOD_NATS_SYSTEM_URL: "nats://sys:${NATS_SYSTEM_PASSWORD:?}@nats-1:4222"}`,
			want: []string{"service api: HERMOD_NATS_SYSTEM_URL", "names 1 servers; the project has 3"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := base
			if c.cluster {
				files = cluster
			}
			if c.edit[0] != "" {
				src, err := os.ReadFile(files.Files[0])
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(src), c.edit[0]) {
					t.Fatalf("compose.yaml does not contain %q", c.edit[0])
				}
				path := filepath.Join(tmp, fmt.Sprintf("compose-%d.yaml", i))
				if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(src), c.edit[0], c.edit[1])), 0o644); err != nil {
					t.Fatal(err)
				}
				files.Files = append([]string{path}, files.Files[1:]...)
			}
			if c.override != "" {
				path := filepath.Join(tmp, fmt.Sprintf("mistake-%d.yaml", i))
				if err := os.WriteFile(path, []byte(c.override), 0o644); err != nil {
					t.Fatal(err)
				}
				files = files.with(path)
			}
			f := facts
			f.EnvExample = maps.Clone(facts.EnvExample)
			if c.facts != nil {
				c.facts(&f)
			}
			probs, models := audit(files, f)
			for _, m := range models {
				probs = append(probs, checkNATSAuth(files.Name, files.Dir, m.Project, f, m.Vars)...)
			}
			probs = append(probs, checkRequired(files, f, c.required)...)
			t.Logf("reported:\n%s", strings.Join(probs, "\n"))
			for _, w := range c.want {
				if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem mentions %q; got:\n%s", w, strings.Join(probs, "\n"))
				}
			}
		})
	}

	// A stale .env.example entry.
	f := facts
	f.EnvExample = maps.Clone(facts.EnvExample)
	f.EnvExample["HERMOD_GONE"] = envExampleVar{Value: "1", Commented: true}
	if probs := staleEnvExample(f, map[string]bool{}); !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, "lists HERMOD_GONE") }) {
		t.Errorf("a stale .env.example entry is not reported: %v", probs)
	}
}
