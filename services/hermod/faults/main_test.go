//go:build faults

// Package faults is Hermod's fault-injection suite (make test-faults,
// docs/reliability.md): every part runs as its own process on 127.0.0.1
// (package bench/fleet), thousands of deliveries flow to the counting
// receiver, a process is killed, stopped or restarted, and afterwards
// every delivery must have arrived, none may be stuck, and the API's
// statistics must equal what the receiver counted.
package faults

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hermod-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		printSummary()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	binDir   string
	binsOnce sync.Mutex
	bins     *fleet.Binaries
)

// binaries finds Hermod's binaries and nats-server and builds the receiver
// and the publisher, once for the whole suite.
func binaries(t *testing.T) fleet.Binaries {
	t.Helper()
	binsOnce.Lock()
	defer binsOnce.Unlock()
	if bins == nil {
		b := fleet.FindBinaries(t, binDir)
		bins = &b
	}
	return *bins
}
