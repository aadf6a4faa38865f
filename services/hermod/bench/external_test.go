package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
)

// sizes of the external benchmark's scenarios, each adjustable by an
// environment variable (docs/benchmarks.md).
type sizes struct {
	oneEvents        int           // HERMOD_BENCH_ONE_EVENTS
	httpConns        int           // HERMOD_BENCH_HTTP_CONNS
	tenHTTPEvents    int           // HERMOD_BENCH_TEN_HTTP_EVENTS
	tenJSEvents      int           // HERMOD_BENCH_TEN_JS_EVENTS
	backlog          int           // HERMOD_BENCH_BACKLOG
	steadyRate       int           // HERMOD_BENCH_STEADY_RATE, deliveries/s
	steadySeconds    int           // HERMOD_BENCH_STEADY_SECONDS
	fanOutHooks      int           // HERMOD_BENCH_FANOUT_HOOKS
	isolationHooks   int           // HERMOD_BENCH_ISOLATION_HOOKS, healthy webhooks
	isolationRate    int           // HERMOD_BENCH_ISOLATION_RATE, deliveries/s to the healthy webhooks
	isolationSeconds int           // HERMOD_BENCH_ISOLATION_SECONDS
	slowDelay        time.Duration // HERMOD_BENCH_SLOW_DELAY, the slow webhook's answer
}

func readSizes(b *testing.B) sizes {
	return sizes{
		oneEvents:        envInt(b, "HERMOD_BENCH_ONE_EVENTS", 20000),
		httpConns:        envInt(b, "HERMOD_BENCH_HTTP_CONNS", 32),
		tenHTTPEvents:    envInt(b, "HERMOD_BENCH_TEN_HTTP_EVENTS", 2000),
		tenJSEvents:      envInt(b, "HERMOD_BENCH_TEN_JS_EVENTS", 5000),
		backlog:          envInt(b, "HERMOD_BENCH_BACKLOG", 20000),
		steadyRate:       envInt(b, "HERMOD_BENCH_STEADY_RATE", 1000),
		steadySeconds:    envInt(b, "HERMOD_BENCH_STEADY_SECONDS", 10),
		fanOutHooks:      envInt(b, "HERMOD_BENCH_FANOUT_HOOKS", 10000),
		isolationHooks:   envInt(b, "HERMOD_BENCH_ISOLATION_HOOKS", 100),
		isolationRate:    envInt(b, "HERMOD_BENCH_ISOLATION_RATE", 1000),
		isolationSeconds: envInt(b, "HERMOD_BENCH_ISOLATION_SECONDS", 20),
		slowDelay:        fleet.EnvDuration(b, "HERMOD_BENCH_SLOW_DELAY", 20*time.Second),
	}
}

// BenchmarkExternal measures Hermod as users run it: every part its own
// OS process on 127.0.0.1 (nats-server, redis-server, Hermod, the
// receiver, the publisher), in both layouts, one fresh fleet per scenario.
// It needs `make build` and `make tools`; `make bench` runs it and prints
// markdown tables for docs/benchmarks.md. HERMOD_BENCH_LAYOUTS (default
// "services,all-in-one") picks the layouts; -bench 'External/services/1-'
// picks scenarios.
func BenchmarkExternal(b *testing.B) {
	bins := fleet.FindBinaries(b, b.TempDir())
	s := readSizes(b)
	machine := describeMachine(bins)
	var rows []result
	for _, layout := range strings.Split(fleet.EnvOr("HERMOD_BENCH_LAYOUTS", fleet.LayoutServices+","+fleet.LayoutAllInOne), ",") {
		if layout != fleet.LayoutServices && layout != fleet.LayoutAllInOne {
			b.Fatalf("HERMOD_BENCH_LAYOUTS: unknown layout %q (services, all-in-one)", layout)
		}
		for _, sc := range scenarios {
			b.Run(layout+"/"+sc.name, func(b *testing.B) {
				for range b.N {
					f := &external{Fleet: fleet.Start(b, bins, fleet.Config{Layout: layout, SlowDelay: s.slowDelay, Env: isolationEnv}), b: b}
					r := sc.run(f, s)
					r.layout, r.scenario = layout, sc.title(s)
					rows = append(rows, r)
					r.check(b)
					r.report(b)
				}
			})
		}
	}
	printTables(machine, rows)
}

// external is one scenario's fleet as the benchmark drives it.
type external struct {
	*fleet.Fleet
	b *testing.B
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
