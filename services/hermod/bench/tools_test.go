package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// binaries are the programs the external benchmark runs as processes.
type binaries struct {
	bin        string // the repository's bin/ (make build)
	natsServer string // make tools
	receiver   string // built by the benchmark
	publisher  string
}

// findBinaries finds Hermod's binaries and nats-server and builds the
// receiver and the publisher into dir.
func findBinaries(b *testing.B, dir string) binaries {
	b.Helper()
	root, err := hermodtest.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bs := binaries{bin: filepath.Join(root, "bin"), receiver: filepath.Join(dir, "bench-receiver"),
		publisher: filepath.Join(dir, "bench-publisher")}
	for _, name := range []string{"hermod", "hermod-api", "hermod-router", "hermod-deliverer"} {
		if _, err := os.Stat(filepath.Join(bs.bin, name)); err != nil {
			b.Fatalf("%s is missing: run `make build` first (make bench does)", filepath.Join(bs.bin, name))
		}
	}
	if bs.natsServer, err = natsServerPath(); err != nil {
		b.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/bench-receiver", "./cmd/bench-publisher")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the receiver and the publisher: %v\n%s", err, out)
	}
	return bs
}

// natsServerPath is $HERMOD_BENCH_NATS_SERVER, else nats-server in GOBIN or
// GOPATH/bin (where `make tools` installs it), else on PATH.
func natsServerPath() (string, error) {
	if p := os.Getenv("HERMOD_BENCH_NATS_SERVER"); p != "" {
		return p, nil
	}
	p, err := hermodtest.Tool("nats-server")
	if err != nil {
		return "", fmt.Errorf("%w (make bench runs `make tools`)", err)
	}
	return p, nil
}

// version is the first line a program prints for args (e.g. --version).
func version(path string, args ...string) string {
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
