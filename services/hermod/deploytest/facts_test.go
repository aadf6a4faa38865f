//go:build compose

package deploytest

// What the repository says about the Compose files, read from the
// repository itself rather than from lists kept here: the binaries the
// Makefile builds, the HERMOD_* variables each binary's Go code reads,
// deploy/compose/.env.example and the $VARIABLES nats.conf reads.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
	// NATSConfVars are the $VARIABLES nats.conf reads from the environment.
	NATSConfVars []string
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

// secretEnv must never be written into a Compose file: each comes from .env
// only, and Compose refuses to start without it (${NAME:?message}).
var secretEnv = []string{"HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED"}

// streamSettings are read by every service that creates or updates the
// JetStream streams and consumers at start (api, router, deliverer) or
// applies the record limits: they must have one value across services, or
// each start would re-apply a different stream configuration.
var streamSettings = []string{"HERMOD_DEDUP_WINDOW", "HERMOD_RETENTION", "HERMOD_ACQUIRE_TTL", "HERMOD_HISTORY_LIMIT",
	"HERMOD_MAX_HOLD", "HERMOD_STREAM_REPLICAS"}

// defaultShutdownTimeout is HERMOD_SHUTDOWN_TIMEOUT's default (envconfig.ReadCommon).
const defaultShutdownTimeout = 30 * time.Second

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
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if f.NATSConfVars = parseNATSConfVars(string(conf)); len(f.NATSConfVars) == 0 {
		t.Fatal("nats.conf reads no $VARIABLE: the passwords and the callout issuer should come from .env")
	}
	return f
}

var (
	confVarRe = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
	// A $ inside a quoted string is text (a subject such as "$SYS.REQ..."), not a variable.
	confQuotedRe = regexp.MustCompile(`"[^"]*"`)
)

// parseNATSConfVars lists the $VARIABLES a nats.conf reads from the environment.
func parseNATSConfVars(src string) []string {
	var out []string
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		for _, m := range confVarRe.FindAllStringSubmatch(confQuotedRe.ReplaceAllString(line, ""), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	return out
}
