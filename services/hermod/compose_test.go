package allinone_test

// No Docker engine runs where these tests run, so `docker compose config`
// cannot check deploy/compose. These tests check the Compose files against
// the code instead: the binary names the Makefile builds, the HERMOD_*
// variables each binary's Go code reads, and deploy/compose/.env.example.

import (
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ---------------------------------------------------------------------------
// What the repository says: binaries, variables, .env.example.

// composeFacts is what the Compose files are checked against.
type composeFacts struct {
	// Binaries maps each binary `make build` produces to the HERMOD_*
	// variables its code (its main package and every workspace package it
	// imports) reads.
	Binaries map[string]map[string]bool
	// AllVars holds every HERMOD_* variable read anywhere in services/ and shared/.
	AllVars map[string]bool
	// EnvExample holds the variables .env.example lists; Commented when the
	// line is "# NAME=default" (optional) rather than "NAME=value".
	EnvExample map[string]envExampleVar
}

type envExampleVar struct {
	Value     string
	Commented bool
}

// requiredEnv: what each separate binary refuses to start without (docs/configuration.md;
// the keys are checked in code paths a scanner cannot see, such as
// envconfig.EncryptionKey(r, true)).
var requiredEnv = map[string][]string{
	"hermod-api":       {"HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS"},
	"hermod-router":    {"HERMOD_NATS_URL", "HERMOD_REDIS_URL"},
	"hermod-deliverer": {"HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY"},
	"hermod-agent":     {"HERMOD_NATS_URL", "HERMOD_AGENT_ID"},
}

// secretEnv must never be written into a Compose file: only interpolated,
// with ${NAME:?message} so Compose refuses to start when it is missing.
var secretEnv = []string{"HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED"}

// streamSettings are read by every service that creates or updates the
// JetStream streams and consumers at start (api, router, deliverer) or
// applies the record limits: they must have one value across services, or
// each start would re-apply a different stream configuration.
var streamSettings = []string{"HERMOD_DEDUP_WINDOW", "HERMOD_RETENTION", "HERMOD_ACQUIRE_TTL", "HERMOD_HISTORY_LIMIT", "HERMOD_MAX_HOLD"}

// defaultShutdownTimeout is HERMOD_SHUTDOWN_TIMEOUT's default (envconfig.ReadCommon).
const defaultShutdownTimeout = 30 * time.Second

// repoRoot walks up from the working directory to the directory holding go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the working directory")
		}
		dir = parent
	}
}

// makeBinary is one `go build -o ../../bin/NAME PKG` line of the Makefile.
type makeBinary struct {
	Name string
	Dir  string // the main package's directory, relative to the root ("" if not found)
}

var (
	makeTargetRe = regexp.MustCompile(`^([A-Za-z0-9_.-]+):`)
	makeOutRe    = regexp.MustCompile(`-o\s+\.\./\.\./bin/([A-Za-z0-9_.-]+)(?:\s+(\./\S+))?`)
	makeCdRe     = regexp.MustCompile(`\bcd\s+(\S+)\s+&&`)
)

// parseMakefileBinaries returns the binaries the recipe of the `build`
// target writes to bin/.
func parseMakefileBinaries(makefile string) []makeBinary {
	var out []makeBinary
	inBuild := false
	for _, line := range strings.Split(makefile, "\n") {
		if m := makeTargetRe.FindStringSubmatch(line); m != nil && !strings.HasPrefix(line, "\t") {
			inBuild = m[1] == "build"
			continue
		}
		if !inBuild || !strings.HasPrefix(line, "\t") {
			continue
		}
		m := makeOutRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		b := makeBinary{Name: m[1]}
		if cd := makeCdRe.FindStringSubmatch(line); cd != nil && m[2] != "" {
			b.Dir = filepath.ToSlash(filepath.Join(cd[1], m[2]))
		}
		out = append(out, b)
	}
	return out
}

// workspaceModules maps each module path of go.work's `use` list to its directory.
func workspaceModules(t testing.TB, root string) map[string]string {
	t.Helper()
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]string{}
	for _, dir := range regexp.MustCompile(`(?m)(?:^use\s+|^\s+)(\./[^\s)]*|\.)\s*$`).FindAllStringSubmatch(string(work), -1) {
		gomod, err := os.ReadFile(filepath.Join(root, dir[1], "go.mod"))
		if err != nil {
			t.Fatalf("go.work uses %s: %v", dir[1], err)
		}
		m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(gomod)
		if m == nil {
			t.Fatalf("%s/go.mod has no module line", dir[1])
		}
		mods[string(m[1])] = filepath.Join(root, dir[1])
	}
	if len(mods) == 0 {
		t.Fatal("go.work lists no modules")
	}
	return mods
}

// goFiles lists the non-test .go files of one package directory.
func goFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out, nil
}

var envNameRe = regexp.MustCompile(`^HERMOD_[A-Z0-9_]+$`)

// envReaders are the calls that read a variable (envconfig.Reader's methods,
// the os package) or name one in a configuration error (Reader.Check).
var envReaders = map[string]bool{"String": true, "Int": true, "Duration": true, "Required": true,
	"Secret": true, "URL": true, "Bool": true, "Check": true, "Getenv": true, "LookupEnv": true}

// scanFile returns the HERMOD_* variables a file reads (string literals passed
// to an envReaders call) and the import paths it uses.
func scanFile(fset *token.FileSet, path string) (vars, imports []string, err error) {
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, nil, err
	}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		imports = append(imports, p)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		var name string
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			name = fn.Sel.Name
		case *ast.Ident:
			name = fn.Name
		}
		if !envReaders[name] {
			return true
		}
		for _, a := range call.Args {
			if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && envNameRe.MatchString(s) {
					vars = append(vars, s)
				}
			}
		}
		return true
	})
	return vars, imports, nil
}

// binaryVars returns the variables read by the main package in mainDir and
// by every workspace package it imports, directly or not.
func binaryVars(fset *token.FileSet, mods map[string]string, mainDir string) (map[string]bool, error) {
	vars := map[string]bool{}
	seen := map[string]bool{mainDir: true}
	queue := []string{mainDir}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		files, err := goFiles(dir)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no Go files", dir)
		}
		for _, f := range files {
			vs, imps, err := scanFile(fset, f)
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				vars[v] = true
			}
			for _, imp := range imps {
				best := ""
				for mod := range mods {
					if (imp == mod || strings.HasPrefix(imp, mod+"/")) && len(mod) > len(best) {
						best = mod
					}
				}
				if best == "" {
					continue // standard library or a third-party module
				}
				d := filepath.Join(mods[best], filepath.FromSlash(strings.TrimPrefix(imp, best)))
				if !seen[d] {
					seen[d] = true
					queue = append(queue, d)
				}
			}
		}
	}
	return vars, nil
}

// allVars returns every HERMOD_* variable read by non-test code under the dirs.
func allVars(t testing.TB, fset *token.FileSet, dirs ...string) map[string]bool {
	t.Helper()
	vars := map[string]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && (e.Name() == "testdata" || e.Name() == "vendor" || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			if e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			vs, _, err := scanFile(fset, p)
			for _, v := range vs {
				vars[v] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return vars
}

var envExampleLineRe = regexp.MustCompile(`^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

// parseEnvExample reads NAME=value and "# NAME=default" lines.
func parseEnvExample(src string) map[string]envExampleVar {
	out := map[string]envExampleVar{}
	for _, line := range strings.Split(src, "\n") {
		m := envExampleLineRe.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		v := envExampleVar{Value: strings.TrimSpace(m[3]), Commented: m[1] != ""}
		if old, ok := out[m[2]]; ok && !old.Commented {
			continue // a set line wins over a commented one
		}
		out[m[2]] = v
	}
	return out
}

// loadComposeFacts gathers the facts from the repository.
func loadComposeFacts(t testing.TB, root string) composeFacts {
	t.Helper()
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	bins := parseMakefileBinaries(string(makefile))
	if len(bins) == 0 {
		t.Fatal("Makefile: the build target writes no ../../bin/NAME")
	}
	fset := token.NewFileSet()
	mods := workspaceModules(t, root)
	f := composeFacts{Binaries: map[string]map[string]bool{},
		AllVars: allVars(t, fset, filepath.Join(root, "services"), filepath.Join(root, "shared"))}
	for _, b := range bins {
		if b.Dir == "" {
			t.Fatalf("Makefile: cannot tell the main package of bin/%s (expected `cd DIR && go build ... -o ../../bin/NAME ./PKG`)", b.Name)
		}
		vars, err := binaryVars(fset, mods, filepath.Join(root, filepath.FromSlash(b.Dir)))
		if err != nil {
			t.Fatalf("bin/%s: %v", b.Name, err)
		}
		f.Binaries[b.Name] = vars
	}
	example, err := os.ReadFile(filepath.Join(root, "deploy", "compose", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	f.EnvExample = parseEnvExample(string(example))
	return f
}

// ---------------------------------------------------------------------------
// The Compose model: only the keys the checks read.

type composeDoc struct {
	Version  any                       `yaml:"version"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string             `yaml:"image"`
	Build           any                `yaml:"build"`
	Command         words              `yaml:"command"`
	Entrypoint      words              `yaml:"entrypoint"`
	Environment     envMap             `yaml:"environment"`
	EnvFile         any                `yaml:"env_file"`
	ContainerName   string             `yaml:"container_name"`
	Ports           []any              `yaml:"ports"`
	Volumes         []any              `yaml:"volumes"`
	DependsOn       dependsOn          `yaml:"depends_on"`
	Healthcheck     *composeHealth     `yaml:"healthcheck"`
	StopGracePeriod string             `yaml:"stop_grace_period"`
	Networks        map[string]network `yaml:"networks"`
}

type composeHealth struct {
	Test    words `yaml:"test"`
	Disable bool  `yaml:"disable"`
}

type network struct {
	Aliases []string `yaml:"aliases"`
}

// words is a command in string form ("a b c") or list form ([a, b, c]).
type words []string

func (w *words) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*w = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*w = l
		return nil
	}
	return fmt.Errorf("line %d: a command must be a string or a list", n.Line)
}

// envMap is `environment:` in map form (NAME: value) or list form (NAME=value).
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	out := envMap{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]any // decoding resolves `<<: *anchor` merges
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			if v == nil {
				out[k] = ""
			} else {
				out[k] = fmt.Sprint(v)
			}
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment must be a map or a list", n.Line)
	}
	*e = out
	return nil
}

// dependsOn is `depends_on:` as a list of names or a map name -> {condition}.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	out := dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, s := range l {
			out[s] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			out[k] = cmp.Or(v.Condition, "service_started")
		}
	default:
		return fmt.Errorf("line %d: depends_on must be a list or a map", n.Line)
	}
	*d = out
	return nil
}

// mount is one entry of a service's `volumes:`.
type mount struct{ Source, Target string }

func (s composeService) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				out = append(out, mount{Source: parts[0], Target: parts[1]})
			} else {
				out = append(out, mount{Target: parts[0]}) // anonymous volume
			}
		case map[string]any:
			src, _ := v["source"].(string)
			dst, _ := v["target"].(string)
			if typ, _ := v["type"].(string); typ != "" && typ != "volume" {
				src = "/" + src // a bind mount or tmpfs: not a named volume
			}
			out = append(out, mount{Source: src, Target: dst})
		}
	}
	return out
}

func isNamedVolume(src string) bool {
	return src != "" && !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "~")
}

// binary is the Hermod binary a service runs: its command's first word, or
// for the services named api, router, deliverer and agent (whose command an
// override file may leave out) hermod-<name>.
func (s composeService) binary(name string) string {
	cmd := s.Command
	if len(s.Entrypoint) > 0 {
		cmd = s.Entrypoint
	}
	if len(cmd) > 0 {
		return filepath.Base(cmd[0])
	}
	if isHermodServiceName(name) {
		return "hermod-" + name
	}
	return ""
}

func isHermodServiceName(name string) bool {
	return slices.Contains([]string{"api", "router", "deliverer", "agent"}, name)
}

// isHermod says whether a service runs a Hermod binary.
func (s composeService) isHermod(name string) bool {
	return isHermodServiceName(name) || s.Build != nil || strings.HasPrefix(s.binary(name), "hermod") ||
		strings.HasPrefix(s.Image, "hermod")
}

func imageIs(s composeService, repo string) bool {
	img := s.Image
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	return img == repo || strings.HasPrefix(img, repo+":") || strings.HasPrefix(img, repo+"@")
}

// ---------------------------------------------------------------------------
// Interpolation: ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME; $$ escapes.

var (
	interpNameRe = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	interpFullRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}`)
)

func unescapeDollars(s string) string { return strings.ReplaceAll(s, "$$", "") }

// interpolated returns the variables a string interpolates.
func interpolated(s string) []string {
	var out []string
	for _, m := range interpNameRe.FindAllStringSubmatch(unescapeDollars(s), -1) {
		out = append(out, m[1])
	}
	return out
}

// requiredInterpolation says whether s is exactly ${name:?message}.
func requiredInterpolation(s, name string) bool {
	m := interpFullRe.FindStringSubmatch(s)
	return m != nil && m[0] == s && m[1] == name && m[2] == ":?"
}

// resolve interpolates s as Compose would, with the values of .env.example:
// its NAME=value lines, and also its "# NAME=default" lines when
// withCommented (the operator uncommented them), else the ${NAME:-default}
// defaults.
func resolve(s string, example map[string]envExampleVar, withCommented bool) (string, error) {
	var bad error
	out := interpFullRe.ReplaceAllStringFunc(unescapeDollars(s), func(m string) string {
		p := interpFullRe.FindStringSubmatch(m)
		if v, ok := example[p[1]]; ok && v.Value != "" && (withCommented || !v.Commented) {
			return v.Value
		}
		if p[2] == ":-" || p[2] == "-" {
			return p[3]
		}
		bad = fmt.Errorf("%s has no value", p[1])
		return ""
	})
	return out, bad
}

// scalars returns every scalar (keys and values) of a YAML document.
func scalars(n *yaml.Node, out *[]string) {
	if n == nil || n.Kind == yaml.AliasNode {
		return
	}
	if n.Kind == yaml.ScalarNode {
		*out = append(*out, n.Value)
	}
	for _, c := range n.Content {
		scalars(c, out)
	}
}

// ---------------------------------------------------------------------------
// The checker.

// checkOptions says what kind of file is checked.
type checkOptions struct {
	// Override: an override file (compose.cluster.yaml), merged over the base
	// file, whose services need not repeat what the base file defines.
	Override bool
	// KnownHosts are service names and aliases of the base file, which an
	// override's nats routes may name.
	KnownHosts []string
}

// checkCompose returns every problem found in one Compose file.
func checkCompose(name string, src []byte, f composeFacts, opt checkOptions) []string {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, name+": "+fmt.Sprintf(format, a...)) }

	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		add("not valid YAML: %v", err)
		return probs
	}
	var doc composeDoc
	if err := root.Decode(&doc); err != nil {
		add("not a Compose file this test understands: %v", err)
		return probs
	}
	if doc.Version != nil {
		add("has a top-level `version:` key (obsolete in the Compose specification)")
	}
	if len(doc.Services) == 0 {
		add("defines no services")
	}

	// Every interpolated variable is listed in .env.example; a required one
	// (${NAME:?...}) as a NAME= line, not only as a commented default.
	var all []string
	scalars(&root, &all)
	for _, s := range all {
		for _, v := range interpolated(s) {
			ex, ok := f.EnvExample[v]
			if !ok {
				add("interpolates ${%s}, which .env.example does not list", v)
				continue
			}
			for _, m := range interpFullRe.FindAllStringSubmatch(unescapeDollars(s), -1) {
				if m[1] != v {
					continue
				}
				if m[2] == ":?" && ex.Commented {
					add("requires ${%s:?}, which .env.example shows only commented out", v)
				}
				if (m[2] == ":-" || m[2] == "-") && ex.Commented && ex.Value != m[3] {
					add("defaults ${%s} to %q, but .env.example shows the default %q", v, m[3], ex.Value)
				}
			}
		}
	}

	hosts := slices.Clone(opt.KnownHosts)
	for sname, s := range doc.Services {
		hosts = append(hosts, sname)
		for _, n := range s.Networks {
			hosts = append(hosts, n.Aliases...)
		}
	}

	names := make([]string, 0, len(doc.Services))
	for n := range doc.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	serverNames := map[string]string{}
	for _, sname := range names {
		s := doc.Services[sname]
		sadd := func(format string, a ...any) { add("service %s: "+format, append([]any{sname}, a...)...) }

		// Mounts of named volumes are declared at the top level.
		for _, m := range s.mounts() {
			if isNamedVolume(m.Source) {
				if _, ok := doc.Volumes[m.Source]; !ok {
					sadd("mounts volume %q, which the top-level `volumes:` does not declare", m.Source)
				}
			}
		}

		if s.isHermod(sname) {
			probs = append(probs, checkHermodService(name, sname, s, f, opt)...)
		} else {
			// Any HERMOD_* variable is still one some binary reads.
			for _, k := range sortedKeys(s.Environment) {
				if strings.HasPrefix(k, "HERMOD_") && !f.AllVars[k] {
					sadd("sets %s, which no Hermod binary reads", k)
				}
			}
		}
		switch {
		case imageIs(s, "redis") && slices.Contains(s.Command, "--sentinel") || strings.Contains(strings.Join(s.Command, " "), " --sentinel"):
			// A Sentinel keeps no data: only the servers' rules do not apply.
		case imageIs(s, "redis"):
			checkRedis(s, sadd)
		case imageIs(s, "nats"):
			checkNATS(s, hosts, serverNames, sname, sadd)
		}
		if !opt.Override && s.Healthcheck == nil && (imageIs(s, "redis") || imageIs(s, "nats")) {
			sadd("has no healthcheck (the Hermod services wait for it with condition: service_healthy)")
		}
		// A dependency waited for as healthy has a healthcheck.
		for dep, cond := range s.DependsOn {
			d, ok := doc.Services[dep]
			if !ok {
				if !opt.Override {
					sadd("depends on %s, which is not defined", dep)
				}
				continue
			}
			if cond == "service_healthy" && (d.Healthcheck == nil || d.Healthcheck.Disable) && !opt.Override {
				sadd("waits for %s to be healthy, but %s has no healthcheck", dep, dep)
			}
		}
	}
	// The Hermod services agree on the stream settings.
	if !opt.Override {
		for _, v := range streamSettings {
			values := map[string][]string{}
			for _, sname := range names {
				if s := doc.Services[sname]; s.isHermod(sname) && s.binary(sname) != "hermod-agent" {
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
	}
	slices.Sort(probs)
	return slices.Compact(probs)
}

func checkHermodService(file, sname string, s composeService, f composeFacts, opt checkOptions) []string {
	var probs []string
	sadd := func(format string, a ...any) {
		probs = append(probs, file+": service "+sname+": "+fmt.Sprintf(format, a...))
	}
	bin := s.binary(sname)
	vars, known := f.Binaries[bin]
	switch {
	case len(s.Command)+len(s.Entrypoint) == 0 && !opt.Override:
		sadd("has no command naming the binary (one of %s)", strings.Join(sortedKeys(f.Binaries), ", "))
	case bin != "" && !known:
		sadd("runs %q, which is not a binary `make build` produces (%s)", bin, strings.Join(sortedKeys(f.Binaries), ", "))
	}
	if isHermodServiceName(sname) && bin != "" && bin != "hermod-"+sname {
		sadd("runs %q; the %s service must run hermod-%s", bin, sname, sname)
	}

	// Every HERMOD_* variable set is one this binary reads.
	for _, k := range sortedKeys(s.Environment) {
		if !strings.HasPrefix(k, "HERMOD_") {
			continue
		}
		switch {
		case known && !vars[k] && f.AllVars[k]:
			sadd("sets %s, which %s does not read", k, bin)
		case !f.AllVars[k]:
			sadd("sets %s, which no Hermod binary reads", k)
		}
	}
	// Secrets come from .env, never from the file, and Compose refuses to
	// start without them.
	for _, k := range secretEnv {
		if v, ok := s.Environment[k]; ok && !requiredInterpolation(v, k) {
			sadd("sets %s to %q: interpolate it as ${%s:?message} so it comes from .env", k, v, k)
		}
	}
	// The separate binaries are scalable: no fixed name, no host port.
	if sname == "deliverer" || sname == "router" || bin == "hermod-deliverer" || bin == "hermod-router" {
		if s.ContainerName != "" {
			sadd("has container_name %q: `docker compose up --scale %s=N` needs it unset", s.ContainerName, sname)
		}
		if len(s.Ports) > 0 {
			sadd("publishes host ports %v: replicas of a scaled service would collide on them", s.Ports)
		}
	}
	if opt.Override {
		return probs
	}

	for _, k := range requiredEnv[bin] {
		if _, ok := s.Environment[k]; !ok {
			sadd("does not set %s, which %s requires", k, bin)
		}
	}
	// Every service gets only the variables its environment lists, never
	// the whole .env (which holds keys that other services must not see).
	agent := bin == "hermod-agent"
	if s.EnvFile != nil {
		sadd("has env_file: a service must get only the variables it needs, not the whole .env with the keys")
	}
	deps := []string{"nats", "redis"}
	if agent {
		deps = deps[:1]
		if _, ok := s.DependsOn["redis"]; ok {
			sadd("depends on redis: the agent never talks to Redis")
		}
	}
	// Waits for NATS (and Redis) to be healthy.
	for _, dep := range deps {
		if s.DependsOn[dep] != "service_healthy" {
			sadd("does not depend on %s with condition: service_healthy", dep)
		}
	}
	// The healthcheck is the binary's own: it reads the same environment,
	// so it asks /readyz on the address the binary listens on (the images
	// have no shell or HTTP client).
	hc := ""
	if s.Healthcheck != nil && !s.Healthcheck.Disable {
		hc = strings.Join(s.Healthcheck.Test, " ")
	}
	if want := "CMD /usr/local/bin/" + bin + " healthcheck"; hc == "" {
		sadd("has no healthcheck")
	} else if hc != want {
		sadd("healthcheck %q is not %q", hc, want)
	}
	// Docker waits longer than the binary drains, with the defaults and
	// with the values .env.example shows.
	if s.StopGracePeriod == "" {
		sadd("has no stop_grace_period (Docker's default 10s cuts the shutdown short)")
	}
	for _, withCommented := range []bool{false, true} {
		shutdown := defaultShutdownTimeout
		if v, ok := s.Environment["HERMOD_SHUTDOWN_TIMEOUT"]; ok {
			r, err := resolve(v, f.EnvExample, withCommented)
			d, perr := time.ParseDuration(r)
			if err != nil || perr != nil {
				sadd("HERMOD_SHUTDOWN_TIMEOUT %q: not a duration (%v)", v, errors.Join(err, perr))
				break
			}
			shutdown = d
		}
		if s.StopGracePeriod == "" {
			break
		}
		r, err := resolve(s.StopGracePeriod, f.EnvExample, withCommented)
		grace, perr := time.ParseDuration(r)
		switch {
		case err != nil || perr != nil:
			sadd("stop_grace_period %q: not a duration (%v)", s.StopGracePeriod, errors.Join(err, perr))
		case grace < shutdown:
			sadd("stop_grace_period %s is shorter than HERMOD_SHUTDOWN_TIMEOUT %s", grace, shutdown)
		default:
			continue
		}
		break
	}
	return probs
}

func checkRedis(s composeService, sadd func(string, ...any)) {
	cmd := " " + strings.Join(s.Command, " ") + " "
	for _, want := range []string{" --appendonly yes ", " --maxmemory-policy noeviction ", " --maxmemory "} {
		if !strings.Contains(cmd, want) {
			sadd("redis command %q lacks %q", strings.TrimSpace(cmd), strings.TrimSpace(want))
		}
	}
	if !slices.ContainsFunc(s.mounts(), func(m mount) bool { return m.Target == "/data" && isNamedVolume(m.Source) }) {
		sadd("keeps Redis data (/data) on no named volume")
	}
}

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

func checkNATS(s composeService, hosts []string, serverNames map[string]string, sname string, sadd func(string, ...any)) {
	args := s.Command
	if !slices.Contains(args, "-js") && !slices.Contains(args, "--jetstream") && !slices.Contains(args, "-jetstream") {
		sadd("nats command %q does not enable JetStream (-js)", strings.Join(args, " "))
	}
	dir, ok := flagValue(args, "-sd", "--sd", "-store_dir", "--store_dir")
	if !ok {
		sadd("nats command %q sets no JetStream store directory (-sd)", strings.Join(args, " "))
	} else if !slices.ContainsFunc(s.mounts(), func(m mount) bool { return m.Target == dir && isNamedVolume(m.Source) }) {
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
	if _, listens := flagValue(args, "-cluster", "--cluster", "-cluster_listen", "--cluster_listen"); listens || clustered {
		if _, ok := flagValue(args, "-cluster_name", "--cluster_name"); !ok {
			sadd("is clustered without --cluster_name")
		}
		if !hasName {
			sadd("is a JetStream cluster node without a --server_name")
		}
		if !listens {
			sadd("has --routes but no --cluster listen address")
		}
		for _, r := range strings.Split(routes, ",") {
			host := r
			if i := strings.Index(host, "://"); i >= 0 {
				host = host[i+3:]
			}
			if i := strings.LastIndex(host, ":"); i >= 0 {
				host = host[:i]
			}
			if host != "" && !slices.Contains(hosts, host) {
				sadd("routes to %q, which is no service or alias", host)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// baseHosts lists the service names and network aliases of a Compose file.
func baseHosts(src []byte) []string {
	var doc composeDoc
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil
	}
	var out []string
	for n, s := range doc.Services {
		out = append(out, n)
		for _, nw := range s.Networks {
			out = append(out, nw.Aliases...)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The tests.

func readComposeFile(t *testing.T, root, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "compose", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reportProblems(t *testing.T, probs []string) {
	t.Helper()
	for _, p := range probs {
		t.Error(p)
	}
}

// TestComposeFacts guards the scanners themselves: if they found nothing,
// every check against them would pass vacuously.
func TestComposeFacts(t *testing.T) {
	f := loadComposeFacts(t, repoRoot(t))
	for _, b := range []string{"hermod-api", "hermod-router", "hermod-deliverer", "hermod-agent", "hermod"} {
		if _, ok := f.Binaries[b]; !ok {
			t.Errorf("the Makefile's build target does not produce bin/%s (found %v)", b, sortedKeys(f.Binaries))
		}
	}
	for bin, want := range map[string][]string{
		"hermod-api":       {"HERMOD_API_ADDR", "HERMOD_NATS_URL", "HERMOD_ADMIN_KEYS", "HERMOD_ENCRYPTION_KEY", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL"},
		"hermod-router":    {"HERMOD_OPS_ADDR", "HERMOD_REDIS_URL", "HERMOD_SHUTDOWN_TIMEOUT"},
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
}

func TestCompose(t *testing.T) {
	root := repoRoot(t)
	f := loadComposeFacts(t, root)
	src := readComposeFile(t, root, "compose.yaml")
	reportProblems(t, checkCompose("compose.yaml", src, f, checkOptions{}))

	// The services the brief asks for are there, running the right binaries.
	var doc composeDoc
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"nats", "redis", "api", "router", "deliverer"} {
		if _, ok := doc.Services[s]; !ok {
			t.Errorf("compose.yaml: no %s service", s)
		}
	}
	if api := doc.Services["api"]; !slices.ContainsFunc(api.Ports, func(p any) bool { return strings.HasSuffix(fmt.Sprint(p), ":8080") }) {
		t.Errorf("compose.yaml: the api does not publish container port 8080 (ports %v)", api.Ports)
	}
}

func TestComposeCluster(t *testing.T) {
	root := repoRoot(t)
	f := loadComposeFacts(t, root)
	base := readComposeFile(t, root, "compose.yaml")
	src := readComposeFile(t, root, "compose.cluster.yaml")
	reportProblems(t, checkCompose("compose.cluster.yaml", src, f, checkOptions{Override: true, KnownHosts: baseHosts(base)}))

	var doc composeDoc
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for n, s := range doc.Services {
		if imageIs(s, "nats") {
			if _, ok := flagValue(s.Command, "--cluster_name", "-cluster_name"); ok {
				nodes = append(nodes, n)
			}
		}
	}
	if len(nodes) != 3 {
		t.Errorf("compose.cluster.yaml: %d clustered nats services (%v), want 3", len(nodes), nodes)
	}
	// Every Hermod service is told about every node.
	for _, s := range []string{"api", "router", "deliverer"} {
		url := doc.Services[s].Environment["HERMOD_NATS_URL"]
		if n := len(strings.Split(url, ",")); n != 3 {
			t.Errorf("compose.cluster.yaml: service %s: HERMOD_NATS_URL %q names %d servers, want 3", s, url, n)
		}
		for _, n := range nodes {
			if doc.Services[s].DependsOn[n] != "service_healthy" {
				t.Errorf("compose.cluster.yaml: service %s does not wait for %s to be healthy", s, n)
			}
		}
	}
}

// TestComposeEnvExample: .env.example lists nothing stale. Each HERMOD_*
// entry is read by a binary or used by a Compose file.
func TestComposeEnvExample(t *testing.T) {
	root := repoRoot(t)
	f := loadComposeFacts(t, root)
	used := map[string]bool{}
	for _, name := range []string{"compose.yaml", "compose.cluster.yaml"} {
		var n yaml.Node
		if err := yaml.Unmarshal(readComposeFile(t, root, name), &n); err != nil {
			t.Fatal(err)
		}
		var all []string
		scalars(&n, &all)
		for _, s := range all {
			for _, v := range interpolated(s) {
				used[v] = true
			}
		}
	}
	for _, v := range sortedKeys(f.EnvExample) {
		if strings.HasPrefix(v, "HERMOD_") && !f.AllVars[v] && !used[v] {
			t.Errorf(".env.example lists %s, which no binary reads and no Compose file uses", v)
		}
	}
	for _, k := range secretEnv {
		if e, ok := f.EnvExample[k]; !ok || e.Commented || e.Value != "" {
			t.Errorf(".env.example: %s should be an empty NAME= line for the operator to fill in, got %+v", k, e)
		}
	}
}

// TestComposeCheckerCatchesProblems proves the checker is not vacuous: a
// Compose document with known mistakes yields exactly those problems.
func TestComposeCheckerCatchesProblems(t *testing.T) {
	f := composeFacts{
		Binaries: map[string]map[string]bool{
			"hermod-api":       {"HERMOD_NATS_URL": true, "HERMOD_REDIS_URL": true, "HERMOD_API_ADDR": true, "HERMOD_ENCRYPTION_KEY": true, "HERMOD_ADMIN_KEYS": true, "HERMOD_SHUTDOWN_TIMEOUT": true},
			"hermod-deliverer": {"HERMOD_NATS_URL": true, "HERMOD_REDIS_URL": true, "HERMOD_OPS_ADDR": true, "HERMOD_ENCRYPTION_KEY": true, "HERMOD_SHUTDOWN_TIMEOUT": true},
		},
		AllVars: map[string]bool{"HERMOD_NATS_URL": true, "HERMOD_REDIS_URL": true, "HERMOD_API_ADDR": true, "HERMOD_OPS_ADDR": true,
			"HERMOD_ENCRYPTION_KEY": true, "HERMOD_ADMIN_KEYS": true, "HERMOD_SHUTDOWN_TIMEOUT": true},
		EnvExample: map[string]envExampleVar{"HERMOD_ENCRYPTION_KEY": {}, "HERMOD_ADMIN_KEYS": {}},
	}
	good := func() map[string]any {
		svc := func(bin, addrVar, port string) map[string]any {
			env := map[string]any{"HERMOD_NATS_URL": "nats://nats:4222", "HERMOD_REDIS_URL": "redis://redis:6379/0",
				addrVar: ":" + port, "HERMOD_ENCRYPTION_KEY": "${HERMOD_ENCRYPTION_KEY:?set it}"}
			if bin == "hermod-api" {
				env["HERMOD_ADMIN_KEYS"] = "${HERMOD_ADMIN_KEYS:?set it}"
			}
			return map[string]any{
				"build": map[string]any{"context": "../..", "dockerfile": "deploy/Dockerfile"}, "command": []any{bin},
				"environment": env, "stop_grace_period": "45s",
				"depends_on":  map[string]any{"nats": map[string]any{"condition": "service_healthy"}, "redis": map[string]any{"condition": "service_healthy"}},
				"healthcheck": map[string]any{"test": []any{"CMD", "/usr/local/bin/" + bin, "healthcheck"}},
			}
		}
		api := svc("hermod-api", "HERMOD_API_ADDR", "8080")
		api["ports"] = []any{"8080:8080"}
		return map[string]any{
			"services": map[string]any{
				"nats": map[string]any{"image": "nats:2.15.2-alpine", "command": []any{"-js", "-sd", "/data", "-m", "8222"},
					"volumes": []any{"nats-data:/data"}, "healthcheck": map[string]any{"test": "wget -qO- http://127.0.0.1:8222/healthz"}},
				"redis": map[string]any{"image": "redis:7-alpine",
					"command":     "redis-server --appendonly yes --maxmemory 1gb --maxmemory-policy noeviction",
					"volumes":     []any{"redis-data:/data"},
					"healthcheck": map[string]any{"test": []any{"CMD", "redis-cli", "ping"}}},
				"api":       api,
				"deliverer": svc("hermod-deliverer", "HERMOD_OPS_ADDR", "8082"),
			},
			"volumes": map[string]any{"nats-data": nil, "redis-data": nil},
		}
	}
	run := func(t *testing.T, doc map[string]any) []string {
		t.Helper()
		b, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return checkCompose("fake.yaml", b, f, checkOptions{})
	}
	svc := func(doc map[string]any, name string) map[string]any {
		return doc["services"].(map[string]any)[name].(map[string]any)
	}

	if probs := run(t, good()); len(probs) != 0 {
		t.Fatalf("the good fake document has problems:\n%s", strings.Join(probs, "\n"))
	}

	cases := []struct {
		name   string
		mutate func(doc map[string]any)
		want   []string // substrings, each expected in some problem
	}{
		{"unknown variable and unknown binary", func(doc map[string]any) {
			d := svc(doc, "deliverer")
			d["environment"].(map[string]any)["HERMOD_FOO"] = "1"
			d["command"] = []any{"hermod-frobnicator"}
		}, []string{"sets HERMOD_FOO, which no Hermod binary reads", `runs "hermod-frobnicator", which is not a binary`}},
		{"list-form environment", func(doc map[string]any) {
			svc(doc, "api")["environment"] = []any{"HERMOD_NATS_URL=nats://nats:4222", "HERMOD_REDIS_URL=redis://redis:6379/0",
				"HERMOD_API_ADDR=:8080", "HERMOD_ENCRYPTION_KEY=${HERMOD_ENCRYPTION_KEY:?x}", "HERMOD_ADMIN_KEYS=${HERMOD_ADMIN_KEYS:?x}", "HERMOD_BAR=2"}
		}, []string{"sets HERMOD_BAR, which no Hermod binary reads"}},
		{"variable of another binary", func(doc map[string]any) {
			svc(doc, "deliverer")["environment"].(map[string]any)["HERMOD_API_ADDR"] = ":9"
		}, []string{"sets HERMOD_API_ADDR, which hermod-deliverer does not read"}},
		{"services disagree on a stream setting", func(doc map[string]any) {
			svc(doc, "api")["environment"].(map[string]any)["HERMOD_DEDUP_WINDOW"] = "10m"
		}, []string{"disagree on HERMOD_DEDUP_WINDOW"}},
		{"no command", func(doc map[string]any) {
			delete(svc(doc, "api"), "command")
		}, []string{"service api: has no command naming the binary"}},
		{"wrong binary for the service", func(doc map[string]any) {
			svc(doc, "deliverer")["command"] = "hermod-api"
		}, []string{`runs "hermod-api"; the deliverer service must run hermod-deliverer`}},
		{"deliverer not scalable", func(doc map[string]any) {
			d := svc(doc, "deliverer")
			d["container_name"] = "hermod-deliverer"
			d["ports"] = []any{"8082:8082"}
		}, []string{"has container_name", "publishes host ports"}},
		{"interpolation missing from .env.example", func(doc map[string]any) {
			svc(doc, "api")["environment"].(map[string]any)["HERMOD_SHUTDOWN_TIMEOUT"] = "${HERMOD_SHUTDOWN_TIMEOUT:-30s}"
		}, []string{"interpolates ${HERMOD_SHUTDOWN_TIMEOUT}, which .env.example does not list"}},
		{"literal secret", func(doc map[string]any) {
			svc(doc, "api")["environment"].(map[string]any)["HERMOD_ENCRYPTION_KEY"] = strings.Repeat("ab", 32)
		}, []string{"sets HERMOD_ENCRYPTION_KEY to"}},
		{"missing required variable", func(doc map[string]any) {
			delete(svc(doc, "deliverer")["environment"].(map[string]any), "HERMOD_ENCRYPTION_KEY")
		}, []string{"does not set HERMOD_ENCRYPTION_KEY, which hermod-deliverer requires"}},
		{"short grace period", func(doc map[string]any) {
			svc(doc, "api")["stop_grace_period"] = "10s"
		}, []string{"stop_grace_period 10s is shorter than HERMOD_SHUTDOWN_TIMEOUT 30s"}},
		{"grace period shorter with the default", func(doc map[string]any) {
			f.EnvExample["HERMOD_STOP_GRACE_PERIOD"] = envExampleVar{Value: "20s", Commented: true}
			svc(doc, "api")["stop_grace_period"] = "${HERMOD_STOP_GRACE_PERIOD:-20s}"
		}, []string{"stop_grace_period 20s is shorter than HERMOD_SHUTDOWN_TIMEOUT 30s"}},
		{".env.example shows another default", func(doc map[string]any) {
			f.EnvExample["HERMOD_STOP_GRACE_PERIOD"] = envExampleVar{Value: "45s", Commented: true}
			svc(doc, "api")["stop_grace_period"] = "${HERMOD_STOP_GRACE_PERIOD:-20s}"
		}, []string{`defaults ${HERMOD_STOP_GRACE_PERIOD} to "20s", but .env.example shows the default "45s"`,
			"stop_grace_period 20s is shorter than HERMOD_SHUTDOWN_TIMEOUT 30s"}},
		{"healthcheck of another binary", func(doc map[string]any) {
			svc(doc, "deliverer")["healthcheck"] = map[string]any{"test": []any{"CMD", "/usr/local/bin/hermod-router", "healthcheck"}}
		}, []string{`is not "CMD /usr/local/bin/hermod-deliverer healthcheck"`}},
		{"redis may evict and has no AOF", func(doc map[string]any) {
			svc(doc, "redis")["command"] = "redis-server --maxmemory 1gb --maxmemory-policy allkeys-lru"
		}, []string{`lacks "--appendonly yes"`, `lacks "--maxmemory-policy noeviction"`}},
		{"nats without JetStream volume", func(doc map[string]any) {
			n := svc(doc, "nats")
			n["command"] = []any{"-m", "8222"}
			delete(n, "volumes")
		}, []string{"does not enable JetStream", "sets no JetStream store directory"}},
		{"store directory not on a volume", func(doc map[string]any) {
			svc(doc, "nats")["volumes"] = []any{"nats-data:/elsewhere"}
		}, []string{"JetStream store directory /data is on no named volume"}},
		{"undeclared volume and obsolete version", func(doc map[string]any) {
			doc["version"] = "3.8"
			delete(doc["volumes"].(map[string]any), "redis-data")
		}, []string{"`version:`", `mounts volume "redis-data"`}},
		{"dependency without healthcheck", func(doc map[string]any) {
			delete(svc(doc, "redis"), "healthcheck")
		}, []string{"waits for redis to be healthy, but redis has no healthcheck"}},
		{"cluster node without a name", func(doc map[string]any) {
			svc(doc, "nats")["command"] = []any{"-js", "-sd", "/data", "-m", "8222", "--cluster", "nats://0.0.0.0:6222",
				"--routes", "nats://nats:6222,nats://nats-9:6222"}
		}, []string{"without --cluster_name", "without a --server_name", `routes to "nats-9"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer delete(f.EnvExample, "HERMOD_STOP_GRACE_PERIOD")
			doc := good()
			c.mutate(doc)
			probs := run(t, doc)
			for _, w := range c.want {
				if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem mentions %q; got:\n%s", w, strings.Join(probs, "\n"))
				}
			}
		})
	}

	// The Makefile parser reads the build target only.
	mk := "build:\n\tcd services/x && go build -o ../../bin/hermod-x ./cmd/hermod-x\n\nother:\n\tgo build -o ../../bin/not-built ./cmd\n"
	bins := parseMakefileBinaries(mk)
	if len(bins) != 1 || bins[0].Name != "hermod-x" || bins[0].Dir != "services/x/cmd/hermod-x" {
		t.Errorf("parseMakefileBinaries = %+v", bins)
	}
}
