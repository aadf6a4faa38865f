// Command bench-publisher sends the external benchmark's events
// (docs/benchmarks.md) by HTTP ingest or straight to JetStream, as fast as
// possible or at -rate events per second, and prints the result as one
// JSON line on stdout: events, accepted, errors, seconds, events_per_s.
// The admin key of http mode is read from HERMOD_BENCH_ADMIN_KEY.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
)

func main() {
	var o publisher.Options
	flag.StringVar(&o.Mode, "mode", publisher.ModeHTTP, "http (POST /api/v1/events) or jetstream (publish on the event's subject)")
	flag.StringVar(&o.EventType, "type", "deployment.applied", "event type")
	flag.IntVar(&o.Events, "events", 1000, "events to send")
	flag.StringVar(&o.IDPrefix, "id-prefix", "bench-", "event id prefix (the sequence number follows)")
	flag.Float64Var(&o.Rate, "rate", 0, "events per second; 0: as fast as possible")
	flag.StringVar(&o.APIURL, "api", "", "http mode: Hermod's API base URL, e.g. http://127.0.0.1:8080")
	flag.IntVar(&o.Conns, "conns", 32, "http mode: requests at once")
	flag.StringVar(&o.NATSURL, "nats", "", "jetstream mode: NATS URL, e.g. nats://127.0.0.1:4222")
	flag.Parse()
	o.AdminKey = os.Getenv("HERMOD_BENCH_ADMIN_KEY") // http mode; not a flag, so it never shows in ps
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := publisher.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-publisher:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "bench-publisher:", err)
		os.Exit(1)
	}
}
