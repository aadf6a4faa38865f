package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Binaries are the programs a fleet runs as processes.
type Binaries struct {
	Bin        string // the repository's bin/ (make build)
	NATSServer string // make tools
	Receiver   string // bench-receiver, built by FindBinaries
	Publisher  string // bench-publisher, built by FindBinaries
}

// FindBinaries finds Hermod's binaries (make build) and nats-server (make
// tools) and builds the receiver and the publisher into dir.
func FindBinaries(tb testing.TB, dir string) Binaries {
	tb.Helper()
	root, err := hermodtest.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	bs := Binaries{Bin: filepath.Join(root, "bin"), Receiver: filepath.Join(dir, "bench-receiver"),
		Publisher: filepath.Join(dir, "bench-publisher")}
	for _, name := range HermodBinary {
		if _, err := os.Stat(filepath.Join(bs.Bin, name)); err != nil {
			tb.Fatalf("%s is missing: run `make build` first", filepath.Join(bs.Bin, name))
		}
	}
	if bs.NATSServer, err = NATSServerPath(); err != nil {
		tb.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/hermodhq/hermod/services/hermod/bench/cmd/bench-receiver",
		"github.com/hermodhq/hermod/services/hermod/bench/cmd/bench-publisher")
	build.Dir = filepath.Join(root, "services", "hermod")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build the receiver and the publisher: %v\n%s", err, out)
	}
	return bs
}

// NATSServerPath is $HERMOD_BENCH_NATS_SERVER, else nats-server where
// `make tools` installs it (GOBIN, else GOPATH/bin), else on PATH.
func NATSServerPath() (string, error) {
	if p := os.Getenv("HERMOD_BENCH_NATS_SERVER"); p != "" {
		return p, nil
	}
	p, err := hermodtest.Tool("nats-server")
	if err != nil {
		return "", fmt.Errorf("%w (make bench runs `make tools`)", err)
	}
	return p, nil
}

// Version is the first line a program prints for args (e.g. --version),
// "unknown" when it cannot be run.
func Version(path string, args ...string) string {
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
