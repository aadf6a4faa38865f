// Command bench-receiver is the webhook receiver of the external benchmark
// (docs/benchmarks.md): /fast/... answers 200 at once, /slow/... 200 after
// -slow, /fail/... 500; GET /counts and GET /stats report, per prefix, the
// requests, distinct webhook-ids, duplicates and latency (arrival minus
// the event's data.sent_ns); GET /paths the counts per whole path, and per
// path and event type; GET /inflight the requests open per prefix, now and
// at most; with -secret, GET /checks what the signature check saw. On
// SIGINT or SIGTERM it prints the stats as JSON on stdout and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	slow := flag.Duration("slow", 2*time.Second, "how long /slow/... waits before answering")
	secret := flag.String("secret", "", "check each delivery's signature with this webhook secret and note its sender (GET /checks)")
	flag.Parse()
	if err := run(*addr, *slow, *secret); err != nil {
		fmt.Fprintln(os.Stderr, "bench-receiver:", err)
		os.Exit(1)
	}
}

func run(addr string, slow time.Duration, secret string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	tally := receiver.NewTally()
	var h http.Handler = &receiver.Handler{Tally: tally, Paths: receiver.NewTally(), Inflight: receiver.NewInflight(), SlowDelay: slow}
	if secret != "" {
		if h, err = receiver.NewChecked(h, secret); err != nil {
			return fmt.Errorf("-secret: %w", err)
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "bench-receiver listening on", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Close, not Shutdown: requests still waiting on /slow/ are cut short.
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(tally.Stats())
}
