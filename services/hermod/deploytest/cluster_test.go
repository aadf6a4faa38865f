//go:build compose

package deploytest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/streams"
)

// sampler polls the receiver's count of one path, so that how long
// delivery stalled after each fault can be read afterwards.
type sampler struct {
	mu      sync.Mutex
	at      []time.Time
	count   []int
	stop    chan struct{}
	stopped chan struct{}
}

func (s *stack) sample(path string) *sampler {
	sm := &sampler{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(sm.stopped)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sm.stop:
				return
			case <-tick.C:
			}
			var checks map[string]receiver.Check
			if err := s.getJSON(s.recv+"/checks", &checks); err != nil {
				continue
			}
			sm.mu.Lock()
			sm.at, sm.count = append(sm.at, time.Now()), append(sm.count, checks[path].Distinct)
			sm.mu.Unlock()
		}
	}()
	return sm
}

func (sm *sampler) close() { close(sm.stop); <-sm.stopped }

// stall is the longest time within [from, to) in which no new delivery
// arrived.
func (sm *sampler) stall(from, to time.Time) time.Duration {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var longest time.Duration
	last := from
	for i := 1; i < len(sm.at); i++ {
		if sm.at[i].Before(from) || !sm.at[i].Before(to) {
			continue
		}
		if sm.count[i] > sm.count[i-1] {
			longest = max(longest, sm.at[i-1].Sub(last))
			last = sm.at[i]
		}
	}
	return longest // a stall still open at to is counted in the next window
}

// watchAPI polls an API route that reads Redis (a webhook's deliveries)
// until the returned function is called and the route answers 200 again
// (or a minute passes). That function says the longest time the route did
// not answer 200: from the start of the first request that failed to the
// end of the next that succeeded, a slow success counting for its whole
// time (a request held while the client finds the new primary is an
// outage too), and the statuses of the failed answers.
func (s *stack) watchAPI(webhookID string) func() (time.Duration, map[string]int) {
	stop := make(chan struct{})
	type report struct {
		longest time.Duration
		failed  map[string]int
	}
	done := make(chan report, 1)
	go func() {
		r := report{failed: map[string]int{}}
		stopping := stop    // nil once asked to stop
		var since time.Time // zero: answering
		var giveUp <-chan time.Time
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopping:
				stopping, giveUp = nil, time.After(time.Minute)
			case <-giveUp:
				if !since.IsZero() {
					r.longest = max(r.longest, time.Since(since))
				}
				done <- r
				return
			case <-tick.C:
			}
			start := time.Now()
			req, _ := http.NewRequest(http.MethodGet, s.api+"/api/v1/webhooks/"+webhookID+"/deliveries?limit=1", nil)
			req.Header.Set("Authorization", "Bearer "+s.key)
			ok := false
			if resp, err := s.hc.Do(req); err != nil {
				r.failed["error"]++
			} else {
				ok = resp.StatusCode == http.StatusOK
				if !ok {
					r.failed[strconv.Itoa(resp.StatusCode)]++
				}
				_ = resp.Body.Close()
			}
			switch {
			case !ok && since.IsZero():
				since = start
			case ok && !since.IsZero():
				r.longest = max(r.longest, time.Since(since))
				since = time.Time{}
			case ok:
				r.longest = max(r.longest, time.Since(start))
			}
			if ok && stopping == nil {
				done <- r
				return
			}
		}
	}()
	return func() (time.Duration, map[string]int) { close(stop); r := <-done; return r.longest, r.failed }
}

// promoted waits until a majority of the Sentinels name addr (the cluster
// file gives every Redis node a fixed address) the Redis
// primary.
func (s *stack) promoted(addr string) {
	s.t.Helper()
	var last []string
	hermodtest.CheckFor(s.t, 2*time.Minute, 500*time.Millisecond, func() error {
		last = last[:0]
		agree := 0
		for _, sentinel := range []string{"sentinel-1", "sentinel-2", "sentinel-3"} {
			out, err := exec.Command("docker", "exec", s.container(sentinel, 0),
				"redis-cli", "-p", "26379", "sentinel", "get-master-addr-by-name", "hermod").Output()
			primary := strings.Fields(string(out))
			if err == nil && len(primary) > 0 && primary[0] == addr {
				agree++
			}
			last = append(last, fmt.Sprintf("%s: %q %v", sentinel, strings.Join(primary, ":"), err))
		}
		if agree < 2 {
			return fmt.Errorf("%d Sentinels name %s the primary: %s", agree, addr, strings.Join(last, "; "))
		}
		return nil
	})
}

// container is the id of a service's only (or i-th) container.
func (s *stack) container(service string, i int) string {
	s.t.Helper()
	ids := strings.Fields(s.must("ps", "--quiet", service))
	if len(ids) <= i {
		s.t.Fatalf("service %s has %d containers, want %d", service, len(ids), i+1)
	}
	return ids[i]
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// healthy waits until the container's healthcheck passes.
func healthy(t *testing.T, id string) {
	t.Helper()
	hermodtest.CheckFor(t, 3*time.Minute, 500*time.Millisecond, func() error {
		out, err := exec.Command("docker", "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", id).Output()
		if err != nil {
			return err
		}
		if st := strings.TrimSpace(string(out)); st != "running healthy" {
			return fmt.Errorf("container %.12s: %s", id, st)
		}
		return nil
	})
}

// deliveriesLeader is the compose service of the NATS node that leads the
// deliveries stream, asked of nats-1 (published on loopback).
func (s *stack) deliveriesLeader() string {
	s.t.Helper()
	nc, err := nats.Connect(s.nats, nats.Name("deploytest"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, streams.DeliveriesStream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Config.Replicas != 3 {
		s.t.Fatalf("deliveries stream: %+v %v, want 3 replicas", info, err)
	}
	return map[string]string{"nats-1": "nats", "nats-2": "nats-2", "nats-3": "nats-3"}[info.Cluster.Leader]
}

// The 3-node JetStream cluster of compose.cluster.yaml (streams with three
// replicas) started for real, with faults across containers while events
// flow through the API at a steady rate: the node that leads the
// deliveries stream killed and brought back, a node and then a deliverer
// cut off the network and reconnected, the Redis primary killed (its
// Sentinels fail over to the replica) and brought back, and every Hermod
// container restarted one at a time. Nothing accepted may be lost;
// duplicates are counted; the longest stall of delivery after each fault
// is reported.
func TestComposeCluster(t *testing.T) {
	secret, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := up(t, secret, []string{"compose.cluster.yaml"}, []string{"compose.ci.cluster.yaml"})
	const path = "/fast/cluster"
	hook := s.call(http.MethodPost, "/api/v1/webhooks", map[string]any{"name": "cluster", "url": "http://receiver:9000" + path,
		"event_types": []string{"deployment.*"}, "secret": secret}, http.StatusCreated)
	hookID, _ := hook["id"].(string)

	const rate = 50 // events per second, through the API
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan publisher.Result, 1)
	go func() {
		res, err := publisher.Run(ctx, publisher.Options{Mode: publisher.ModeHTTP, APIURL: s.api, AdminKey: s.key, Conns: 4,
			EventType: "deployment.applied", Events: rate * 600, Rate: rate, IDPrefix: "cluster-"})
		if err != nil {
			t.Logf("publisher: %v", err)
		}
		published <- res
	}()
	sm := s.sample(path)
	flow := func(d time.Duration) { // let deliveries flow; poll the receiver meanwhile
		end := time.Now().Add(d)
		hermodtest.CheckFor(t, d+time.Minute, 250*time.Millisecond, func() error {
			if time.Now().Before(end) {
				return fmt.Errorf("flowing until %s", end.Format(time.TimeOnly))
			}
			return nil
		})
	}
	network := s.project + "_default"
	type fault struct {
		name string
		do   func()
	}
	faults := []fault{
		{"kill the deliveries stream's leader, bring it back", func() {
			leader := s.deliveriesLeader()
			id := s.container(leader, 0)
			t.Logf("the deliveries stream's leader is %s", leader)
			docker(t, "kill", id)
			flow(10 * time.Second)
			docker(t, "start", id)
			healthy(t, id)
		}},
		{"cut a NATS node off the network, reconnect it", func() {
			id := s.container("nats-2", 0)
			docker(t, "network", "disconnect", network, id)
			flow(10 * time.Second)
			docker(t, "network", "connect", "--alias", "nats-2", network, id)
			healthy(t, id)
		}},
		{"cut a deliverer off the network, reconnect it", func() {
			id := s.container("deliverer", 0)
			docker(t, "network", "disconnect", network, id)
			flow(10 * time.Second)
			docker(t, "network", "connect", network, id)
			healthy(t, id)
		}},
		{"kill the Redis primary (the Sentinels fail over), bring it back", func() {
			id := s.container("redis", 0)
			down := s.watchAPI(hookID)
			docker(t, "kill", id)
			s.promoted(subnetPrefix + ".11") // redis-replica
			longest, failed := down()
			t.Logf("the Sentinels promoted redis-replica; the API did not answer 200 for at most %.1f s (failed answers: %v)", longest.Seconds(), failed)
			docker(t, "start", id)
			healthy(t, id)
		}},
		{"restart every Hermod container, one at a time", func() {
			for _, svc := range []string{"api", "router", "deliverer"} {
				for _, id := range strings.Fields(s.must("ps", "--quiet", svc)) {
					docker(t, "restart", "--time", "20", id)
					healthy(t, id)
				}
			}
		}},
	}
	flow(10 * time.Second)
	type mark struct {
		name     string
		from, to time.Time
	}
	var marks []mark
	for _, f := range faults {
		from := time.Now()
		f.do()
		flow(10 * time.Second)
		marks = append(marks, mark{f.name, from, time.Now()})
	}
	cancel() // stop publishing
	res := <-published
	ch := s.arrived(path, res.Accepted)
	sm.close()
	t.Logf("%d events sent, %d accepted (%d refused while a part was down); %d delivered in %d requests (%d duplicates), %d verified, %d not",
		res.Accepted+res.Errors, res.Accepted, res.Errors, ch.Distinct, ch.Requests, ch.Requests-ch.Distinct, ch.Verified, ch.Unverified)
	for _, m := range marks {
		t.Logf("%-52s longest delivery stall %5.1f s (window %4.0f s)", m.name, sm.stall(m.from, m.to).Seconds(), m.to.Sub(m.from).Seconds())
	}
	if ch.Unverified != 0 || ch.Verified != ch.Requests {
		t.Errorf("%d deliveries failed the signature check", ch.Unverified)
	}
	if ch.Distinct < res.Accepted || ch.Distinct > res.Accepted+res.Errors {
		t.Errorf("%d distinct deliveries for %d accepted events (%d refused)", ch.Distinct, res.Accepted, res.Errors)
	}
}
