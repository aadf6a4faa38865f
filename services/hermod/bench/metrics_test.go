package bench

import (
	"bufio"
	"strconv"
	"strings"
)

// parkedMetric counts deliveries a deliverer parked on the delay subject
// instead of attempting them, by reason (saturated: the webhook's in-flight
// limit was reached; breaker; backoff...). Each parking is a republish
// through JetStream, so it explains CPU that no delivery accounts for.
const parkedMetric = "hermod_deliveries_parked_total"

// parked sums parkedMetric by reason over the running Hermod processes.
func (f *external) parked() map[string]float64 {
	out := map[string]float64{}
	for _, name := range f.HermodNames() {
		resp, err := f.HC.Get("http://" + f.Addr(name) + "/metrics")
		if err != nil {
			f.b.Fatalf("metrics of %s: %v", name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), parkedMetric+`{reason="`)
			if !ok {
				continue
			}
			reason, value, ok := strings.Cut(rest, `"} `)
			if v, err := strconv.ParseFloat(value, 64); ok && err == nil {
				out[reason] += v
			}
		}
		_ = resp.Body.Close()
	}
	return out
}
