package hermodtest

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A tool is found where `go install` puts it: GOBIN when set, else the bin
// directory of GOPATH's first entry (not another entry's); a file there that
// is not executable does not count, and neither does a tool that is nowhere.
func TestTool(t *testing.T) {
	gobin, gopath, other := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(gopath, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	install := func(dir, name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inGOBIN := install(gobin, "hermod-tool-a", 0o755)
	install(filepath.Join(gopath, "bin"), "hermod-tool-a", 0o755)
	inGOPATH := install(filepath.Join(gopath, "bin"), "hermod-tool-b", 0o755)
	install(gobin, "hermod-tool-c", 0o644)
	if err := os.Mkdir(filepath.Join(other, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(filepath.Join(other, "bin"), "hermod-tool-d", 0o755) // go install never puts it there
	t.Setenv("GOPATH", gopath+string(os.PathListSeparator)+other)

	t.Setenv("GOBIN", gobin)
	if dir, err := InstallDir(); err != nil || dir != gobin {
		t.Errorf("InstallDir with GOBIN: %q, %v; want %q", dir, err, gobin)
	}
	if p, err := Tool("hermod-tool-a"); err != nil || p != inGOBIN {
		t.Errorf("with GOBIN set: %q, %v; want %q", p, err, inGOBIN)
	}
	if p, err := Tool("hermod-tool-c"); err == nil {
		t.Errorf("a file that is not executable was taken: %q", p)
	}

	t.Setenv("GOBIN", "")
	if dir, err := InstallDir(); err != nil || dir != filepath.Join(gopath, "bin") {
		t.Errorf("InstallDir without GOBIN: %q, %v; want %q", dir, err, filepath.Join(gopath, "bin"))
	}
	if p, err := Tool("hermod-tool-a"); err != nil || p != filepath.Join(gopath, "bin", "hermod-tool-a") {
		t.Errorf("without GOBIN: %q, %v", p, err)
	}
	if p, err := Tool("hermod-tool-b"); err != nil || p != inGOPATH {
		t.Errorf("in GOPATH/bin: %q, %v; want %q", p, err, inGOPATH)
	}
	for _, name := range []string{"hermod-tool-d", "hermod-tool-nowhere"} {
		if p, err := Tool(name); err == nil {
			t.Errorf("%s was found: %q", name, p)
		}
	}
}
