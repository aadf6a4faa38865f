package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
)

// result is one row of the external benchmark's tables.
type result struct {
	layout, scenario string
	want             int // deliveries expected at the checked prefix
	got              receiver.Stats
	perSecond        float64 // distinct deliveries from the first arrival to the last
	ingest           float64 // events accepted per second by the publisher; 0: none
	pubErrors        int
	otherDuplicates  int                      // duplicates at other answering prefixes (the slow one)
	requests         int                      // every request the receiver got in the window
	cpu              map[string]time.Duration // by role, in the window
	parked           map[string]int           // by reason, in the window
	notes            []string
	isolation        *isolationSeen // the isolation scenarios' further figures
}

// newResult builds the row of the deliveries checked at prefix (the
// runner fills in layout and scenario).
func newResult(want int, prefix string, m measured, pub *publisher.Result) result {
	r := result{want: want, got: m.stats[prefix], requests: m.requests, cpu: m.cpu, parked: m.parked, notes: m.notes}
	if span := r.got.Span(); span > 0 {
		r.perSecond = float64(r.got.Distinct) / span.Seconds()
	}
	if pub != nil {
		r.ingest, r.pubErrors = pub.PerSecond, pub.Errors
	}
	return r
}

// cpuPerDelivery is ms of CPU per request the receiver got, by role.
func (r result) cpuPerDelivery(role string) (float64, bool) {
	d, ok := r.cpu[role]
	if !ok || r.requests == 0 {
		return 0, false
	}
	return float64(d) / float64(time.Millisecond) / float64(r.requests), true
}

// serverRoles are Hermod, NATS and Redis: the server side users run.
var serverRoles = []string{fleet.RoleNATS, fleet.RoleRedis, fleet.RoleAPI, fleet.RoleRouter, fleet.RoleDeliverer, fleet.RoleHermod}

func (r result) serverCPUPerDelivery() float64 {
	sum := 0.0
	for _, role := range serverRoles {
		if v, ok := r.cpuPerDelivery(role); ok {
			sum += v
		}
	}
	return sum
}

// check fails the benchmark on loss, duplicates or refused events; the
// row is in the tables either way.
func (r result) check(b *testing.B) {
	if r.got.Distinct != r.want {
		b.Errorf("LOSS: %d of %d deliveries arrived (%s)", r.got.Distinct, r.want, strings.Join(r.notes, "; "))
	}
	if d := r.got.Duplicates + r.otherDuplicates; d > 0 {
		b.Errorf("DUPLICATES: %d deliveries arrived more than once", d)
	}
	if r.pubErrors > 0 {
		b.Errorf("the publisher's events were refused %d times", r.pubErrors)
	}
}

func (r result) report(b *testing.B) {
	b.ReportMetric(r.perSecond, "deliveries/s")
	b.ReportMetric(r.got.P50MS, "p50_ms")
	b.ReportMetric(r.got.P99MS, "p99_ms")
	b.ReportMetric(r.got.MaxMS, "max_ms")
	b.ReportMetric(r.serverCPUPerDelivery(), "cpu_ms/delivery")
	b.ReportMetric(float64(r.got.Duplicates+r.otherDuplicates), "duplicates")
	if r.ingest > 0 {
		b.ReportMetric(r.ingest, "ingest_events/s")
	}
}

// describeMachine says what the figures are measured on, at the start.
func describeMachine(bins fleet.Binaries) []string {
	_, tick := fleet.ClockTick()
	redisVersion := fleet.Version("redis-server", "--version")
	for _, f := range strings.Fields(redisVersion) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			redisVersion = "redis-server " + v
		}
	}
	return []string{
		fmt.Sprintf("- Date: %s, commit %s", time.Now().UTC().Format("2006-01-02 15:04 MST"),
			strings.TrimSpace(run("git", "describe", "--always", "--dirty"))),
		fmt.Sprintf("- Machine: nproc %s, %s, %s", strings.TrimSpace(run("nproc")), cpuModel(), memTotal()),
		fmt.Sprintf("- %s, %s, %s, %s", runtime.Version(), strings.Replace(fleet.Version(bins.NATSServer, "--version"), ":", "", 1),
			redisVersion, tick),
		"- Load average at the start: " + loadAverage(),
	}
}

// printTables prints the machine, the results and the CPU per delivery
// as one markdown block.
func printTables(machine []string, rows []result) {
	fmt.Printf("\n---- external benchmark: separate processes (markdown for docs/benchmarks.md) ----\n\n")
	for _, line := range machine {
		fmt.Println(line)
	}
	fmt.Printf("- Load average at the end: %s\n\n", loadAverage())
	fmt.Println("| layout | scenario | delivered | duplicates | deliveries/s | ingest events/s | p50 ms | p99 ms | max ms | parked | check |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ingest := "—"
		if r.ingest > 0 {
			ingest = fmt.Sprintf("%.0f", r.ingest)
		}
		fmt.Printf("| %s | %s | %d / %d | %d | %.0f | %s | %.1f | %.1f | %.1f | %s | %s |\n", r.layout, r.scenario,
			r.got.Distinct, r.want, r.got.Duplicates+r.otherDuplicates, r.perSecond, ingest, r.got.P50MS, r.got.P99MS, r.got.MaxMS,
			r.parkedText(), r.verdict())
	}
	fmt.Println()
	fmt.Println("CPU per delivery, ms (process CPU in the measured window / requests the receiver got):")
	fmt.Println()
	cols := []string{fleet.RoleNATS, fleet.RoleRedis, fleet.RoleAPI, fleet.RoleRouter, fleet.RoleDeliverer, fleet.RoleHermod}
	fmt.Println("| layout | scenario | " + strings.Join(cols, " | ") + " | server sum | receiver | publisher |")
	fmt.Println("|---|---|" + strings.Repeat("---|", len(cols)+3))
	for _, r := range rows {
		cells := []string{r.layout, r.scenario}
		for _, role := range append(cols, "sum", fleet.RoleReceiver, fleet.RolePublisher) {
			v, ok := r.cpuPerDelivery(role)
			if role == "sum" {
				v, ok = r.serverCPUPerDelivery(), true
			}
			if ok {
				cells = append(cells, fmt.Sprintf("%.3f", v))
			} else {
				cells = append(cells, "—")
			}
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	printIsolation(rows)
	fmt.Println()
	for _, r := range rows {
		if len(r.notes) > 0 {
			fmt.Printf("- %s, %s: %s\n", r.layout, r.scenario, strings.Join(r.notes, "; "))
		}
	}
	fmt.Println("\n---- end of the external benchmark ----")
}

// parkedText is the parkings by reason, e.g. "28219 saturated, 1000 breaker".
func (r result) parkedText() string {
	reasons := make([]string, 0, len(r.parked))
	for reason := range r.parked {
		reasons = append(reasons, reason)
	}
	sort.Slice(reasons, func(i, j int) bool { return r.parked[reasons[i]] > r.parked[reasons[j]] })
	var parts []string
	for _, reason := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", r.parked[reason], reason))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// verdict is "ok", or what failed the check.
func (r result) verdict() string {
	var bad []string
	if r.got.Distinct != r.want {
		bad = append(bad, fmt.Sprintf("LOSS %d", r.want-r.got.Distinct))
	}
	if d := r.got.Duplicates + r.otherDuplicates; d > 0 {
		bad = append(bad, fmt.Sprintf("DUPLICATES %d", d))
	}
	if r.pubErrors > 0 {
		bad = append(bad, fmt.Sprintf("REFUSED %d", r.pubErrors))
	}
	if len(bad) == 0 {
		return "ok"
	}
	return strings.Join(bad, ", ")
}

func run(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return string(out)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(v), &kb); err == nil {
				return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown memory"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min)"
}
