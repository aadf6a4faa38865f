package hermodtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallDir is where `go install` puts programs, and so where `make tools`
// puts the ones the tests run beside Hermod: GOBIN when it is set, else the
// bin directory of GOPATH's first entry.
func InstallDir() (string, error) {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	gobin, gopath, _ := strings.Cut(string(out), "\n")
	if gobin = strings.TrimSpace(gobin); gobin != "" {
		return gobin, nil
	}
	if list := filepath.SplitList(strings.TrimSpace(gopath)); len(list) > 0 && list[0] != "" {
		return filepath.Join(list[0], "bin"), nil
	}
	return "", errors.New("go env: neither GOBIN nor GOPATH is set")
}

// Tool finds a program `make tools` installs (nats-server, alertmanager):
// in InstallDir, else on PATH.
func Tool(name string) (string, error) {
	dir, dirErr := InstallDir()
	if dirErr == nil {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if dirErr != nil {
		return "", fmt.Errorf("%s is not on PATH (%w): `make tools` installs it", name, dirErr)
	}
	return "", fmt.Errorf("%s is neither in %s nor on PATH: `make tools` installs it", name, dir)
}
