//go:build compose

package deploytest

// The project's own rules for deploy/compose, which `docker compose config`
// cannot know. Compose itself reads the files: it checks the syntax and the
// schema, merges the override files and the anchors, interpolates the
// ${VARIABLES} (refusing to go on without a required one) and checks the
// references (dependencies, volumes, networks). The rules here read what it
// prints: the normalized model (`config --format json`) and the variables
// the files use (`config --variables`).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// composeProject is the part of the normalized model the rules read.
// Compose has merged the files and anchors, interpolated the variables,
// resolved env_file into environment, and expanded every short form (a
// command string into its words, "a:b" volumes into mounts, a depends_on
// list into conditions).
type composeProject struct {
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image           string                       `json:"image"`
	Build           json.RawMessage              `json:"build"`
	Command         []string                     `json:"command"`
	Entrypoint      []string                     `json:"entrypoint"`
	Environment     map[string]string            `json:"environment"`
	ContainerName   string                       `json:"container_name"`
	Ports           []composePort                `json:"ports"`
	Volumes         []composeMount               `json:"volumes"`
	DependsOn       map[string]composeDependency `json:"depends_on"`
	Healthcheck     *composeHealth               `json:"healthcheck"`
	StopGracePeriod string                       `json:"stop_grace_period"`
	Networks        map[string]*composeNetwork   `json:"networks"`
}

type composePort struct {
	Target    int    `json:"target"`
	Published string `json:"published"`
}

type composeMount struct {
	Type   string `json:"type"` // volume, bind, tmpfs ...
	Source string `json:"source"`
	Target string `json:"target"`
}

type composeDependency struct {
	Condition string `json:"condition"`
}

type composeHealth struct {
	Test    []string `json:"test"`
	Disable bool     `json:"disable"`
}

type composeNetwork struct {
	Aliases []string `json:"aliases"`
}

// composeVariable is one entry of `docker compose config --variables`.
type composeVariable struct {
	Name         string
	DefaultValue string
	Required     bool
}

// ---------------------------------------------------------------------------
// Running docker compose config.

// composeFiles is one way to use the Compose files: compose.yaml alone, or
// with compose.cluster.yaml merged over it (and, in the self-test, a file
// with a mistake merged over those).
type composeFiles struct {
	Name  string   // what problems are reported under
	Dir   string   // deploy/compose, the project directory
	Files []string // absolute paths, in order
}

func newComposeFiles(dir string, names ...string) composeFiles {
	c := composeFiles{Name: strings.Join(names, " + "), Dir: dir}
	for _, n := range names {
		c.Files = append(c.Files, filepath.Join(dir, n))
	}
	return c
}

// with returns the files with more merged over them.
func (c composeFiles) with(paths ...string) composeFiles {
	c.Files = append(slices.Clone(c.Files), paths...)
	return c
}

// requireCompose stops the test when the docker CLI has no Compose plugin
// (make test-compose builds it first: make compose-plugin).
func requireCompose(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Fatalf("docker compose version: %v\n%s\n(make compose-plugin builds the plugin)", err, out)
	}
}

// config runs `docker compose config` on the files with exactly vars to
// interpolate (relative paths are relative to Dir, wherever a file is):
// its environment holds only what the docker CLI needs to find
// the plugin (nothing of the caller's HERMOD_* or COMPOSE_* settings), and
// --env-file /dev/null keeps an operator's deploy/compose/.env out. Every
// profile is on, so the agent is in the model. It returns what Compose
// printed on stdout and any warning it printed on stderr.
func (c composeFiles) config(vars map[string]string, args ...string) (out []byte, warnings string, err error) {
	cmdArgs := []string{"compose", "--project-directory", c.Dir, "--env-file", os.DevNull, "--profile", "*"}
	for _, f := range c.Files {
		cmdArgs = append(cmdArgs, "--file", f)
	}
	cmdArgs = append(append(cmdArgs, "config"), args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", cmdArgs...)
	cmd.Dir = c.Dir
	for _, k := range []string{"PATH", "HOME", "DOCKER_CONFIG"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(vars) {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("docker compose config %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, strings.TrimSpace(stderr.String()), nil
}

// fillIn is the value the tests give a variable .env.example leaves for the
// operator to fill in (NAME=): a value that can only have come from .env.
func fillIn(name string) string { return "from-env-" + strings.ToLower(name) }

// exampleValues are the variables as .env.example sets them: its NAME=value
// lines (an empty one filled in), and with shown also its "# NAME=default"
// lines, as if the operator had uncommented them.
func exampleValues(ex map[string]envExampleVar, shown bool) map[string]string {
	out := map[string]string{}
	for k, v := range ex {
		switch {
		case !v.Commented && v.Value == "":
			out[k] = fillIn(k)
		case !v.Commented || shown:
			out[k] = v.Value
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The rules.

// composeModel is one normalized model and the values it was made with.
type composeModel struct {
	Project composeProject
	Vars    map[string]string
}

// audit runs `docker compose config` on the files twice, with the values
// .env.example sets and with the defaults it shows as well, and returns
// every problem checkProject finds in either model, and the models. The two
// must be the same (the defaults .env.example shows are the files'
// defaults), and every variable the files use is listed in .env.example.
func audit(c composeFiles, f composeFacts) (probs []string, models []composeModel) {
	add := func(format string, a ...any) { probs = append(probs, c.Name+": "+fmt.Sprintf(format, a...)) }
	used, err := composeVariables(c)
	if err != nil {
		add("%v", err)
	}
	for _, name := range sortedKeys(used) {
		v := used[name]
		ex, ok := f.EnvExample[name]
		switch {
		case !ok:
			add("uses ${%s}, which .env.example does not list", name)
		case v.Required && ex.Commented:
			add("requires ${%s}, which .env.example shows only commented out", name)
		case ex.Commented && ex.Value != v.DefaultValue:
			add("defaults ${%s} to %q, but .env.example shows the default %q", name, v.DefaultValue, ex.Value)
		}
	}

	var raw [2]any
	for i, label := range []string{"the values .env.example sets", "the defaults .env.example shows"} {
		vars := exampleValues(f.EnvExample, i == 1)
		out, warnings, err := c.config(vars, "--format", "json")
		if err != nil {
			add("with %s (a variable the files require must be an uncommented NAME= line there): %v", label, err)
			break
		}
		if warnings != "" {
			add("docker compose config warns: %s", warnings)
		}
		var p composeProject
		if err := json.Unmarshal(out, &p); err != nil {
			add("the model docker compose config printed: %v", err)
			break
		}
		if err := json.Unmarshal(out, &raw[i]); err != nil {
			add("the model docker compose config printed: %v", err)
			break
		}
		probs = append(probs, checkProject(c.Name, p, f, vars)...)
		models = append(models, composeModel{p, vars})
	}
	if len(models) == 2 { // else a run failed, reported above
		for _, d := range diffModels("", raw[0], raw[1]) {
			add("%s is %s with the files' defaults but %s with the defaults .env.example shows", d.path, d.a, d.b)
		}
	}

	slices.Sort(probs)
	return slices.Compact(probs), models
}

// decodeProject runs docker compose config with vars and decodes the model.
func decodeProject(c composeFiles, vars map[string]string) (composeProject, error) {
	var p composeProject
	out, _, err := c.config(vars, "--format", "json")
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return p, fmt.Errorf("the model docker compose config printed: %w", err)
	}
	return p, nil
}

// composeVariables returns the variables the files use, with their
// defaults, as `docker compose config --variables` lists them.
func composeVariables(c composeFiles) (map[string]composeVariable, error) {
	out, _, err := c.config(nil, "--variables", "--format", "json")
	if err != nil {
		return nil, err
	}
	vars := map[string]composeVariable{}
	if err := json.Unmarshal(out, &vars); err != nil {
		return nil, fmt.Errorf("docker compose config --variables: %w", err)
	}
	return vars, nil
}

// checkRequired: without each of names, Compose refuses the files (every
// use of it is ${NAME:?message}), naming the variable.
func checkRequired(c composeFiles, f composeFacts, names []string) []string {
	var probs []string
	for _, name := range names {
		vars := exampleValues(f.EnvExample, false)
		delete(vars, name)
		_, _, err := c.config(vars, "--quiet")
		switch {
		case err == nil:
			probs = append(probs, fmt.Sprintf("%s: starts without %s: interpolate it as ${%s:?message} wherever it is used", c.Name, name, name))
		case !strings.Contains(err.Error(), name):
			probs = append(probs, fmt.Sprintf("%s: without %s, refused for another reason: %v", c.Name, name, err))
		}
	}
	return probs
}

// modelDiff is one place where two models differ.
type modelDiff struct{ path, a, b string }

// diffModels lists where two decoded JSON values differ.
func diffModels(path string, a, b any) []modelDiff {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]any{}
		for k := range am {
			keys[k] = nil
		}
		for k := range bm {
			keys[k] = nil
		}
		var out []modelDiff
		for _, k := range sortedKeys(keys) {
			if path == "" && strings.HasPrefix(k, "x-") {
				continue // an extension: its values show where they are used
			}
			out = append(out, diffModels(strings.TrimPrefix(path+"."+k, "."), am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []modelDiff
		for i := range al {
			out = append(out, diffModels(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if bytes.Equal(ja, jb) {
		return nil
	}
	return []modelDiff{{path, string(ja), string(jb)}}
}

// checkProject applies the rules to one normalized model; vars are the
// values it was made with.
func checkProject(file string, p composeProject, f composeFacts, vars map[string]string) []string {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, file+": "+fmt.Sprintf(format, a...)) }

	// The names a URL or a route may use for a service: its own and its aliases.
	hosts := map[string]string{}
	for sname, s := range p.Services {
		hosts[sname] = sname
		for _, n := range s.Networks {
			if n != nil {
				for _, a := range n.Aliases {
					hosts[a] = sname
				}
			}
		}
	}
	names := sortedKeys(p.Services)
	serverNames := map[string]string{}
	for _, sname := range names {
		s := p.Services[sname]
		sadd := func(format string, a ...any) { add("service %s: "+format, append([]any{sname}, a...)...) }
		if s.isHermod(sname) {
			checkHermodService(s, sname, f, vars, hosts, sadd)
		} else {
			// Any HERMOD_* variable is still one some binary reads.
			for _, k := range sortedKeys(s.Environment) {
				if strings.HasPrefix(k, "HERMOD_") && !f.AllVars[k] {
					sadd("sets %s, which no Hermod binary reads", k)
				}
			}
		}
		switch {
		case imageIs(s, "redis") && s.isSentinel():
			// A Sentinel keeps no data: the servers' rules do not apply.
		case imageIs(s, "redis"):
			checkRedis(s, sadd)
		case imageIs(s, "nats"):
			checkNATS(s, hosts, serverNames, sname, sadd)
		}
		if (imageIs(s, "redis") || imageIs(s, "nats")) && !s.hasHealthcheck() {
			sadd("has no healthcheck (the Hermod services wait for it with condition: service_healthy)")
		}
		// A dependency waited for as healthy has a healthcheck.
		for _, dep := range sortedKeys(s.DependsOn) {
			if d, ok := p.Services[dep]; ok && s.DependsOn[dep].Condition == "service_healthy" && !d.hasHealthcheck() {
				sadd("waits for %s to be healthy, but %s has no healthcheck", dep, dep)
			}
		}
	}

	// The Hermod services agree on the stream settings.
	for _, v := range streamSettings {
		values := map[string][]string{}
		for _, sname := range names {
			if s := p.Services[sname]; s.isHermod(sname) && s.binary(sname) != "hermod-agent" {
				val, ok := s.Environment[v]
				if !ok {
					val = "(unset)"
				}
				values[val] = append(values[val], sname)
			}
		}
		if len(values) > 1 {
			add("the Hermod services disagree on %s: %v (set it once, for all)", v, values)
		}
	}

	slices.Sort(probs)
	return slices.Compact(probs)
}

// checkNATSAuth: every NATS server loads nats.conf and gets the variables
// it reads from .env; the services connect to every server as the
// services' user, hermod-api also as the system account's user; the agent
// brings no credentials (it authenticates with its id and token through
// hermod-api's auth callout).
func checkNATSAuth(file, dir string, p composeProject, f composeFacts, vars map[string]string) []string {
	var probs []string
	natsServers := countServices(p, func(s composeService) bool { return imageIs(s, "nats") })
	for _, sname := range sortedKeys(p.Services) {
		s := p.Services[sname]
		sadd := func(format string, a ...any) {
			probs = append(probs, file+": service "+sname+": "+fmt.Sprintf(format, a...))
		}
		if imageIs(s, "nats") {
			checkNATSServerAuth(s, dir, f, vars, sadd)
		}
		switch s.binary(sname) {
		case "hermod-api":
			if got := s.Environment["HERMOD_AUTH_CALLOUT_SEED"]; got != vars["HERMOD_AUTH_CALLOUT_SEED"] {
				sadd("HERMOD_AUTH_CALLOUT_SEED=%q, not the seed from .env (hermod-api is the auth callout for agents)", got)
			}
			checkServiceUser(s.Environment, "HERMOD_NATS_SYSTEM_URL", "sys", vars["NATS_SYSTEM_PASSWORD"], natsServers, sadd)
			fallthrough
		case "hermod-router", "hermod-deliverer":
			checkServiceUser(s.Environment, "HERMOD_NATS_URL", "hermod", vars["NATS_HERMOD_PASSWORD"], natsServers, sadd)
		case "hermod-agent":
			if u := s.Environment["HERMOD_NATS_URL"]; strings.Contains(u, "@") {
				sadd("HERMOD_NATS_URL %q has credentials: the agent authenticates with its id and token through the callout", u)
			}
		}
	}
	slices.Sort(probs)
	return slices.Compact(probs)
}

func checkHermodService(s composeService, sname string, f composeFacts, vars map[string]string, hosts map[string]string,
	sadd func(string, ...any)) {
	bin := s.binary(sname)
	read, known := f.Binaries[bin]
	switch {
	case bin == "":
		sadd("has no command naming the binary (one of %s)", strings.Join(sortedKeys(f.Binaries), ", "))
	case !known:
		sadd("runs %q, which is not a binary `make build` produces (%s)", bin, strings.Join(sortedKeys(f.Binaries), ", "))
	}
	if isHermodServiceName(sname) && len(s.Command)+len(s.Entrypoint) > 0 && bin != "hermod-"+sname {
		sadd("runs %q; the %s service must run hermod-%s", bin, sname, sname)
	}

	// The environment holds only HERMOD_* variables this binary reads (an
	// env_file, which Compose has resolved into it, shows here too: a
	// service must not get the whole .env with the keys).
	for _, k := range sortedKeys(s.Environment) {
		switch {
		case !strings.HasPrefix(k, "HERMOD_"):
			sadd("sets %s, which is no Hermod setting (a service gets only the HERMOD_* variables its binary reads)", k)
		case known && !read[k] && f.AllVars[k]:
			sadd("sets %s, which %s does not read", k, bin)
		case !f.AllVars[k]:
			sadd("sets %s, which no Hermod binary reads", k)
		}
	}
	for _, k := range requiredEnv[bin] {
		if _, ok := s.Environment[k]; !ok {
			sadd("does not set %s, which %s requires", k, bin)
		}
	}
	// Secrets come from .env, never from the file.
	for _, k := range secretEnv {
		if v, ok := s.Environment[k]; ok && v != vars[k] {
			sadd("sets %s to a value of its own, not the one from .env: interpolate it as ${%s:?message}", k, k)
		}
	}
	// The separate binaries are scalable: no fixed name, no host port.
	if sname == "deliverer" || sname == "router" || bin == "hermod-deliverer" || bin == "hermod-router" {
		if s.ContainerName != "" {
			sadd("has container_name %q: `docker compose up --scale %s=N` needs it unset", s.ContainerName, sname)
		}
		if len(s.Ports) > 0 {
			sadd("publishes host ports: replicas of a scaled service would collide on them")
		}
	}
	// It waits for every server its URLs name to be healthy.
	if _, ok := s.DependsOn["redis"]; ok && bin == "hermod-agent" {
		sadd("depends on redis: the agent never talks to Redis")
	}
	for _, k := range []string{"HERMOD_NATS_URL", "HERMOD_NATS_SYSTEM_URL", "HERMOD_REDIS_URL"} {
		for _, h := range urlHosts(s.Environment[k]) {
			dep, ok := hosts[h]
			switch {
			case !ok:
				sadd("%s names %q, which is no service or network alias", k, h)
			case s.DependsOn[dep].Condition != "service_healthy":
				sadd("does not depend on %s (named by %s) with condition: service_healthy", dep, k)
			}
		}
	}
	// The healthcheck is the binary's own: it reads the same environment,
	// so it asks /readyz on the address the binary listens on (the images
	// have no shell or HTTP client).
	if want := "CMD /usr/local/bin/" + bin + " healthcheck"; !s.hasHealthcheck() {
		sadd("has no healthcheck")
	} else if hc := strings.Join(s.Healthcheck.Test, " "); bin != "" && hc != want {
		sadd("healthcheck %q is not %q", hc, want)
	}
	// Docker waits longer than the binary drains.
	shutdown := defaultShutdownTimeout
	if v, ok := s.Environment["HERMOD_SHUTDOWN_TIMEOUT"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			sadd("HERMOD_SHUTDOWN_TIMEOUT %q: %v", v, err)
			return
		}
		shutdown = d
	}
	if s.StopGracePeriod == "" {
		sadd("has no stop_grace_period (Docker's default 10s cuts the shutdown short)")
	} else if grace, err := time.ParseDuration(s.StopGracePeriod); err != nil {
		sadd("stop_grace_period %q: %v", s.StopGracePeriod, err)
	} else if grace < shutdown {
		sadd("stop_grace_period %s is shorter than HERMOD_SHUTDOWN_TIMEOUT %s", grace, shutdown)
	}
}

func checkRedis(s composeService, sadd func(string, ...any)) {
	cmd := strings.Join(s.Command, " ")
	if v, _ := flagValue(s.Command, "--appendonly"); v != "yes" {
		sadd("redis command %q lacks %q", cmd, "--appendonly yes")
	}
	if _, ok := flagValue(s.Command, "--maxmemory"); !ok {
		sadd("redis command %q lacks %q", cmd, "--maxmemory")
	}
	if v, _ := flagValue(s.Command, "--maxmemory-policy"); v != "noeviction" {
		sadd("redis command %q lacks %q", cmd, "--maxmemory-policy noeviction")
	}
	if !s.onNamedVolume("/data") {
		sadd("keeps Redis data (/data) on no named volume")
	}
}

func checkNATS(s composeService, hosts, serverNames map[string]string, sname string, sadd func(string, ...any)) {
	args := s.Command
	if !slices.Contains(args, "-js") && !slices.Contains(args, "--jetstream") && !slices.Contains(args, "-jetstream") {
		sadd("nats command %q does not enable JetStream (-js)", strings.Join(args, " "))
	}
	dir, ok := flagValue(args, "-sd", "--sd", "-store_dir", "--store_dir")
	if !ok {
		sadd("nats command %q sets no JetStream store directory (-sd)", strings.Join(args, " "))
	} else if !s.onNamedVolume(dir) {
		sadd("JetStream store directory %s is on no named volume", dir)
	}
	if _, ok := flagValue(args, "-m", "--m", "-http_port", "--http_port"); !ok {
		sadd("nats command %q opens no monitoring port (-m) for its healthcheck", strings.Join(args, " "))
	}
	server, hasName := flagValue(args, "-n", "--n", "-name", "--name", "-server_name", "--server_name")
	if hasName {
		if other, dup := serverNames[server]; dup {
			sadd("has server name %q, as has %s", server, other)
		}
		serverNames[server] = sname
	}
	routes, clustered := flagValue(args, "-routes", "--routes")
	_, listens := flagValue(args, "-cluster", "--cluster", "-cluster_listen", "--cluster_listen")
	if !listens && !clustered {
		return
	}
	if _, ok := flagValue(args, "-cluster_name", "--cluster_name"); !ok {
		sadd("is clustered without --cluster_name")
	}
	if !hasName {
		sadd("is a JetStream cluster node without a --server_name")
	}
	if !listens {
		sadd("has --routes but no --cluster listen address")
	}
	for _, h := range urlHosts(routes) {
		if _, ok := hosts[h]; !ok {
			sadd("routes to %q, which is no service or alias", h)
		}
	}
}

func countServices(p composeProject, match func(composeService) bool) int {
	n := 0
	for _, s := range p.Services {
		if match(s) {
			n++
		}
	}
	return n
}

// natsConfPath is where the Compose files mount nats.conf in the container.
const natsConfPath = "/etc/nats/hermod.conf"

// checkNATSServerAuth: a NATS server loads nats.conf and gets each
// variable it reads from .env.
func checkNATSServerAuth(s composeService, dir string, f composeFacts, vars map[string]string, sadd func(string, ...any)) {
	if c, ok := flagValue(s.Command, "-c", "--config", "-config"); !ok || c != natsConfPath {
		sadd("does not load %s (-c)", natsConfPath)
	}
	conf := filepath.Join(dir, "nats.conf")
	if !slices.ContainsFunc(s.Volumes, func(m composeMount) bool { return m.Type == "bind" && m.Source == conf && m.Target == natsConfPath }) {
		sadd("does not mount ./nats.conf at %s", natsConfPath)
	}
	for _, v := range f.NATSConfVars {
		if got, ok := s.Environment[v]; !ok || got != vars[v] {
			sadd("%s=%q, not the value from .env (nats.conf reads it; interpolate it as ${%s:?message})", v, got, v)
		}
	}
}

// checkServiceUser: the URL in env[key] names n servers, each as user
// with the password from .env.
func checkServiceUser(env map[string]string, key, user, password string, n int, sadd func(string, ...any)) {
	url := env[key]
	parts := strings.Split(url, ",")
	if len(parts) != n {
		sadd("%s %q names %d servers; the project has %d", key, url, len(parts), n)
	}
	for _, p := range parts {
		if !strings.HasPrefix(p, "nats://"+user+":"+password+"@") {
			sadd("%s %q does not connect as %s with the password from .env", key, p, user)
		}
	}
}

// urlHosts returns the host names of a comma-separated list of URLs or
// host:port pairs: nats://u:p@a:4222,nats://u:p@b:4222, or
// redis-sentinel://a:26379,b:26379/0?master=x.
func urlHosts(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if i := strings.Index(part, "://"); i >= 0 {
			part = part[i+3:]
		}
		if i := strings.LastIndex(part, "@"); i >= 0 {
			part = part[i+1:]
		}
		if i := strings.IndexAny(part, "/?"); i >= 0 {
			part = part[:i]
		}
		if i := strings.LastIndex(part, ":"); i >= 0 {
			part = part[:i]
		}
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

// binary is the Hermod binary a service runs: its entrypoint's or
// command's first word.
func (s composeService) binary(name string) string {
	cmd := s.Command
	if len(s.Entrypoint) > 0 {
		cmd = s.Entrypoint
	}
	if len(cmd) > 0 {
		return filepath.Base(cmd[0])
	}
	return ""
}

func isHermodServiceName(name string) bool {
	return slices.Contains([]string{"api", "router", "deliverer", "agent"}, name)
}

// isHermod says whether a service runs a Hermod binary.
func (s composeService) isHermod(name string) bool {
	return isHermodServiceName(name) || len(s.Build) > 0 && string(s.Build) != "null" ||
		strings.HasPrefix(s.binary(name), "hermod") || strings.HasPrefix(imageRepo(s.Image), "hermod")
}

func (s composeService) isSentinel() bool {
	return slices.Contains(strings.Fields(strings.Join(s.Command, " ")), "--sentinel")
}

func (s composeService) hasHealthcheck() bool {
	h := s.Healthcheck
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

// onNamedVolume says whether dir is the target of a named volume.
func (s composeService) onNamedVolume(dir string) bool {
	return slices.ContainsFunc(s.Volumes, func(m composeMount) bool { return m.Type == "volume" && m.Source != "" && m.Target == dir })
}

// imageRepo is an image reference without registry, tag and digest.
func imageRepo(img string) string {
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	if i := strings.IndexAny(img, ":@"); i >= 0 {
		img = img[:i]
	}
	return img
}

func imageIs(s composeService, repo string) bool { return imageRepo(s.Image) == repo }

// flagValue returns the value of the first of names in args ("-f v" or "-f=v").
func flagValue(args []string, names ...string) (string, bool) {
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
