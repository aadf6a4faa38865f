package bench

import (
	"bufio"
	"fmt"
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
		series, err := f.scrape(name)
		if err != nil {
			f.b.Fatal(err)
		}
		for s, v := range series {
			if rest, ok := strings.CutPrefix(s, parkedMetric+`{reason="`); ok {
				out[strings.TrimSuffix(rest, `"}`)] += v
			}
		}
	}
	return out
}

// scrape reads the /metrics of the Hermod process name: each sample's
// value by its series, as printed (name{labels}).
func (f *external) scrape(name string) (map[string]float64, error) {
	resp, err := f.HC.Get("http://" + f.Addr(name) + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", name, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", name, err)
	}
	return out, nil
}
