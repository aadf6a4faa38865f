package allinone_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// proc is a Hermod binary running as a separate process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func binPath(t *testing.T, name string) string {
	t.Helper()
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make build` (make test does) first", p)
	}
	return p
}

func startProc(t *testing.T, name string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(binPath(t, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := hermodtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

func httpGet(url string) (int, string) {
	c := &http.Client{Timeout: 3 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, p *proc, url string) {
	t.Helper()
	hermodtest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited at start:\n%s", p.name, tail(string(b), 3000))
		default:
		}
		if code, body := httpGet(url); code != 200 {
			return fmt.Errorf("%s not ready at %s: %d %s", p.name, url, code, tail(body, 500))
		}
		return nil
	})
}

var inFlightRe = regexp.MustCompile(`(?m)^hermod_deliveries_in_flight (\d+)`)

// The binaries as separate processes against one JetStream server and one
// Redis: kill -9 the deliverer holding a slow request; the other deliverer
// delivers it after the acquire TTL with the same webhook-id, and nothing is lost.
func TestE2ESeparateBinariesSurviveKill(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	p, dels, delOps := startFleet(t, map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(),
		"HERMOD_ENCRYPTION_KEY": testEncKey, "HERMOD_ACQUIRE_TTL": "2s", "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8",
		"HERMOD_SHUTDOWN_TIMEOUT": "5s", "HERMOD_DELIVERY_CONCURRENCY": "16"}, nil, 2)

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := hermodtest.NewSink(t)
	slow.SetAnswer(func(n int, r *http.Request) int {
		if n == 1 {
			select { // hold the first request until the test ends
			case <-release:
			case <-time.After(60 * time.Second):
			}
		}
		return 200
	})
	bulk := hermodtest.NewSink(t)
	slowID := p.createWebhook(map[string]any{"name": "slow", "url": slow.URL, "event_types": []string{"deployment.applied"}, "secret": testSecret})
	bulkID := p.createWebhook(map[string]any{"name": "bulk", "url": bulk.URL, "event_types": []string{"instance.*"}, "secret": testSecret})

	p.publish("deployment.applied", map[string]any{"deployment_id": "d-kill"})
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(slow, 1) })
	victim := -1
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var seen []string
		for i, ops := range delOps {
			_, body := httpGet("http://" + ops + "/metrics")
			m := inFlightRe.FindStringSubmatch(body)
			if m != nil && m[1] == "1" {
				victim = i
				return nil
			}
			seen = append(seen, fmt.Sprintf("deliverer %d: in flight %v", i, m))
		}
		return fmt.Errorf("no deliverer has the slow request in flight: %s", strings.Join(seen, "; "))
	})
	// While the attempt runs, the delivery is listed as acquired (derived from the deliverers).
	acq := p.deliveries(slowID, "acquired")
	if len(acq) != 1 || acq[0]["status"] != "acquired" {
		t.Errorf("acquired listing: %v", acq)
	}
	if all := p.deliveries(slowID, ""); len(all) != 1 || all[0]["status"] != "acquired" {
		t.Errorf("listing while in flight: %v", all)
	}
	if err := dels[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dels[victim].done
	const bulkN = 30
	for i := 0; i < bulkN; i++ {
		p.publish("instance.started", map[string]any{"i": i})
	}
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGot(slow, 2) })
	got := slow.Received()
	if got[0].Header.Get("webhook-id") != got[1].Header.Get("webhook-id") {
		t.Errorf("redelivery changed webhook-id: %q vs %q", got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"))
	}
	verifySig(t, testSecret, got[1])
	if gap := got[1].At.Sub(got[0].At); gap < 1500*time.Millisecond {
		t.Errorf("redelivered after %s, before the 2s acquire TTL", gap)
	}
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return sinkGot(bulk, bulkN) })
	ds := p.waitStatus(slowID, "success", 1, 10*time.Second)
	if ds[0]["delivered_by"] != "broker" {
		t.Errorf("slow delivery record %v", ds[0])
	}
	p.waitStatus(bulkID, "success", bulkN, 20*time.Second)
	// Once nothing is in hand, a duplicate (a copy the killed deliverer had
	// taken, redelivered beside its outcome) would have been sent already.
	p.waitIdle(20 * time.Second)
	if bulk.Count() != bulkN {
		t.Errorf("bulk sink got %d, want %d", bulk.Count(), bulkN)
	}
	once.Do(func() { close(release) })
}

// copyWorkingTree copies what a clone would hold, as the working tree has it
// now, from the repository at root into dst: the tracked files (with their
// uncommitted changes; those deleted are left out) and the untracked ones
// that are not ignored, never ignored files such as bin/ or data/.
func copyWorkingTree(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	copied := map[string]bool{}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" || copied[name] {
			continue
		}
		copied[name] = true
		src, to := filepath.Join(root, name), filepath.Join(dst, name)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				t.Fatal(err)
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(to, data, fi.Mode().Perm())
			}
			if err != nil {
				t.Fatal(err)
			}
		} // a directory is a submodule's checkout: a clone would not have it either
	}
	if len(copied) == 0 {
		t.Fatalf("git ls-files listed nothing in %s", root)
	}
}

// `make run` from a clean copy of the working tree (uncommitted changes
// included, nothing ignored): it starts and prints the key, the receiver to
// run and the curl lines; `bin/hermodctl listen --create` as the banner
// gives it (on a free address) receives the event the banner's curl line
// sends and shows it verified, as does the event of the banner's hermodctl
// line; after a restart the webhook is still there.
func TestMakeRunFromCleanClone(t *testing.T) {
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"git", "make", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this test (.ci/run installs it): %v", tool, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "hermod")
	copyWorkingTree(t, root, dir)
	addr := freeAddr(t)

	run := func() (banner string, stop func()) {
		cmd := exec.Command("make", "run")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HERMOD_API_ADDR="+addr)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(t.TempDir(), "stderr.log")
		ef, _ := os.Create(logPath)
		cmd.Stderr = ef
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var b strings.Builder
		timeout := time.After(5 * time.Minute)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					e, _ := os.ReadFile(logPath)
					t.Fatalf("make run ended before its banner:\n%s\n%s", b.String(), tail(string(e), 3000))
				}
				b.WriteString(l + "\n")
				if strings.HasPrefix(l, "See the webhooks") {
					for l := range lines { // the curl line after it
						b.WriteString(l + "\n")
						if strings.Contains(l, "curl") {
							break read
						}
					}
				}
			case <-timeout:
				t.Fatalf("no banner from make run within 5 minutes:\n%s", b.String())
			}
		}
		go func() {
			for range lines { // keep draining
			}
		}()
		return b.String(), func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			_ = ef.Close()
		}
	}

	banner, stop := run()
	keyRe := regexp.MustCompile(`(?m)^\s+(hermod_[0-9a-f]+)\s*$`)
	m := keyRe.FindStringSubmatch(banner)
	if m == nil {
		stop()
		t.Fatalf("no admin key in the banner:\n%s", banner)
	}
	key := m[1]
	cmds := curlCommands(banner)
	if len(cmds) != 2 {
		stop()
		t.Fatalf("want 2 curl commands in the banner, found %d:\n%s", len(cmds), banner)
	}
	exports := regexp.MustCompile(`(?m)^\s+export (HERMODCTL_SERVER=\S+ HERMODCTL_API_KEY=\S+)\s*$`).FindStringSubmatch(banner)
	listenLine := regexp.MustCompile(`(?m)^\s+(bin/hermodctl listen .+?)\s*$`).FindStringSubmatch(banner)
	sendLine := regexp.MustCompile(`(?m)with the same exports: (bin/hermodctl events send .+?)\s*$`).FindStringSubmatch(banner)
	if exports == nil || listenLine == nil || sendLine == nil || !strings.Contains(exports[1], key) {
		stop()
		t.Fatalf("the banner lacks the exports, the listen line or the events send line:\n%s", banner)
	}
	// The receiver as the banner gives it, on a free address instead of 9000.
	listenAddr := freeAddr(t)
	listen := startCtl(t, dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, "bash", "-c",
		"export "+exports[1]+"; exec "+listenLine[1]+" --addr "+listenAddr)
	listen.waitReady(t)
	created := regexp.MustCompile(`Created webhook (\S+)`).FindStringSubmatch(listen.stderr.String())
	if created == nil {
		stop()
		t.Fatalf("listen --create created no webhook:\n%s", listen.stderr.String())
	}
	out, err := exec.Command("bash", "-c", cmds[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"duplicate":false`) {
		stop()
		t.Fatalf("%s: %v\n%s", cmds[0], err, out)
	}
	send := exec.Command("bash", "-c", "export "+exports[1]+"; "+sendLine[1])
	send.Dir = dir
	send.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if out, err := send.CombinedOutput(); err != nil || !strings.Contains(string(out), "duplicate:  false") {
		stop()
		t.Fatalf("%s: %v\n%s", sendLine[1], err, out)
	}
	verified := regexp.MustCompile(`(?m)^\S+  deployment\.applied  delivery=\S+ webhook=` + regexp.QuoteMeta(created[1]) + ` event=\S+  verified  -> 200$`)
	hermodtest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		s := listen.stdout.String()
		if n := len(verified.FindAllString(s, -1)); n != 2 || strings.Count(s, `"deployment_id": "d-1"`) != 2 || strings.Contains(s, "NOT verified") {
			return fmt.Errorf("listen shows %d verified deliveries, want 2 (and no other):\n%s", n, s)
		}
		return nil
	})
	listen.stop(t)
	// The banner points at the Webhooks page, which answers with its sign-in form.
	pm := regexp.MustCompile(`open (http://\S+/) in a browser`).FindStringSubmatch(banner)
	if pm == nil {
		stop()
		t.Fatalf("the banner does not name the Webhooks page:\n%s", banner)
	}
	resp, err := http.Get(pm[1])
	if err != nil {
		stop()
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/signin" || !strings.Contains(string(page), `name="key"`) {
		stop()
		t.Fatalf("the Webhooks page at %s: %d %s", pm[1], resp.StatusCode, resp.Request.URL)
	}
	stop()

	banner2, stop2 := run()
	defer stop2()
	if !strings.Contains(banner2, key) {
		t.Errorf("admin key changed after restart:\n%s", banner2)
	}
	out, err = exec.Command("bash", "-c", curlCommands(banner2)[1]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), created[1]) || !strings.Contains(string(out), listenAddr) {
		t.Errorf("webhook gone after restart: %v %s", err, out)
	}
	if !strings.Contains(string(out), `"total_delivered":2`) {
		t.Errorf("statistics lost after restart: %s", out)
	}
}

// curlCommands joins the banner's curl lines and their continuations.
func curlCommands(banner string) []string {
	var out []string
	var cur string
	for _, l := range strings.Split(banner, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "curl "):
			cur = t
		case cur != "":
			cur += " " + t
		default:
			continue
		}
		if strings.HasSuffix(cur, "\\") {
			cur = strings.TrimSuffix(cur, "\\")
			continue
		}
		out = append(out, cur)
		cur = ""
	}
	return out
}

// A delivery whose lease expires 5 times without an outcome is dead
// ("abandoned") instead of looping forever. A client that takes deliveries
// and never settles them plays the crashing deliverer.
func TestE2EAbandonedAfterFiveLostLeases(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_ACQUIRE_TTL": "1s", "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, nil, 0)
	s := hermodtest.NewSink(t)
	id := p.createWebhook(map[string]any{"name": "poison", "url": s.URL, "event_types": []string{"stack.*"}})
	p.publish("stack.created", map[string]any{})

	js := p.jetStream()
	ctx := context.Background()
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.DeliveriesStream, streams.DelivererConsumerConfig(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for lost := 0; lost < 5; {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
			lost++ // taken, never settled: the lease expires
		}
	}
	startReady(t, "hermod-deliverer", env)
	ds := p.waitStatus(id, "dead", 1, 20*time.Second)
	if ds[0]["dead_reason"] != "abandoned" || s.Count() != 0 {
		t.Errorf("poison delivery %v, sink %d", ds[0], s.Count())
	}
	if msg, _ := ds[0]["last_error"].(string); !strings.Contains(msg, "lease expired 5 times") {
		t.Errorf("last_error %q", msg)
	}
}

// SIGTERM: the deliverer goes unready first, finishes the attempt in hand,
// settles it, and exits 0; nothing is redelivered afterwards.
func TestE2EGracefulShutdownDrains(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_ACQUIRE_TTL": "2s", "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "HERMOD_SHUTDOWN_TIMEOUT": "10s"}
	p, dels, ops := startFleet(t, env, nil, 1)
	del, delOps := dels[0], ops[0]
	s := hermodtest.NewSink(t)
	s.SetAnswer(func(n int, _ *http.Request) int {
		if n == 1 {
			// Not a wait: the endpoint is slow, so the attempt is still in
			// hand when the deliverer is told to stop.
			time.Sleep(1500 * time.Millisecond)
		}
		return 200
	})
	id := p.createWebhook(map[string]any{"name": "drain", "url": s.URL, "event_types": []string{"workorder.*"}})
	p.publish("workorder.completed", map[string]any{})
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGotExactly(s, 1) })
	if err := del.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Unready for the drain (1.5 s left of the request in hand), or gone
	// already: the check below tells these apart.
	sawUnready := false
	hermodtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		switch code, body := httpGet("http://" + delOps + "/readyz"); code {
		case 503:
			sawUnready = true
			return nil
		case 0:
			return nil // already gone
		default:
			return fmt.Errorf("the deliverer's /readyz still answers %d %s after SIGTERM", code, tail(body, 300))
		}
	})
	select {
	case <-del.done:
	case <-time.After(15 * time.Second):
		t.Fatal("deliverer did not exit")
	}
	if code := del.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("deliverer exited %d", code)
	}
	if !sawUnready {
		t.Errorf("/readyz never answered 503 during the drain")
	}
	// A new deliverer must find nothing to redeliver.
	startReady(t, "hermod-deliverer", env)
	p.waitStatus(id, "success", 1, 10*time.Second)
	// An attempt left unacked would stay in the deliveries stream until the
	// new deliverer took it again after the 2 s lease: once nothing is in
	// hand, any redelivery has been sent.
	p.waitIdle(20 * time.Second)
	if s.Count() != 1 {
		t.Errorf("drained attempt was redelivered: %d requests", s.Count())
	}
}

// Without HERMOD_REDIS_URL and without redis-server on PATH, the all-in-one
// uses its embedded Redis-protocol store, which survives a restart.
func TestE2EAllInOneEmbeddedStoreSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	env := map[string]string{"HERMOD_API_ADDR": addr, "HERMOD_DATA_DIR": dataDir, "HERMOD_ADMIN_KEYS": testAdminKey}
	env["PATH"] = "/nonexistent" // no redis-server to find
	start := func() *proc {
		t.Helper()
		p := startProc(t, "hermod", env)
		waitReady(t, p, "http://"+addr+"/readyz")
		return p
	}
	stop := func(p *proc) {
		t.Helper()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatal("hermod did not stop")
		}
	}
	first := start()
	b, _ := os.ReadFile(first.log)
	if !strings.Contains(string(b), "embedded Redis-protocol store") {
		t.Fatalf("the embedded store was not used:\n%s", tail(string(b), 2000))
	}
	p := &pipeline{t: t, Base: "http://" + addr, hc: &http.Client{Timeout: 30 * time.Second}}
	defer p.hc.CloseIdleConnections()
	s := hermodtest.NewSink(t)
	id := p.createWebhook(map[string]any{"name": "embedded", "url": s.URL, "event_types": []string{"alert.*"}, "secret": testSecret})
	p.publish("alert.triggered", map[string]any{"x": 1})
	p.waitStatus(id, "success", 1, 15*time.Second)
	verifySig(t, testSecret, s.Received()[0])
	stop(first)

	second := start()
	w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
	if w["total_delivered"].(float64) != 1 || w["name"] != "embedded" {
		t.Errorf("after restart: %v", w)
	}
	if sec := p.must(200, "GET", "/api/v1/webhooks/"+id+"/secret", nil); sec["secret"] != testSecret {
		t.Errorf("secret after restart: %v", sec)
	}
	if ds := p.deliveries(id, "success"); len(ds) != 1 {
		t.Errorf("deliveries after restart: %v", ds)
	}
	p.publish("alert.resolved", map[string]any{"x": 2})
	p.waitStatus(id, "success", 2, 15*time.Second)
	stop(second)
}

// Every binary refuses an invalid configuration with exit code 2 and a
// message naming each bad variable, and prints its effective configuration
// with secrets masked.
func TestE2EConfigurationCheckedAndMasked(t *testing.T) {
	for _, c := range []struct {
		bin   string
		env   map[string]string
		names []string
	}{
		{"hermod-api", map[string]string{"HERMOD_NATS_URL": "nats://127.0.0.1:1", "HERMOD_ACQUIRE_TTL": "soon",
			"HERMOD_NATS_SYSTEM_URL": "http://sys:pw@127.0.0.1:1", "HERMOD_SESSION_TTL": "1s", "HERMOD_COOKIE_SECURE": "yes",
			"HERMOD_REPLAY_RATE": "0"},
			[]string{"HERMOD_REDIS_URL", "HERMOD_ADMIN_KEYS", "HERMOD_ENCRYPTION_KEY", "HERMOD_ACQUIRE_TTL", "HERMOD_NATS_SYSTEM_URL",
				"HERMOD_SESSION_TTL", "HERMOD_COOKIE_SECURE", "HERMOD_REPLAY_RATE"}},
		{"hermod-router", map[string]string{"HERMOD_REDIS_URL": "redis-sentinel://:hunter2@127.0.0.1:1/0", "HERMOD_HISTORY_LIMIT": "0"},
			[]string{"HERMOD_NATS_URL", "HERMOD_HISTORY_LIMIT", "HERMOD_REDIS_URL", "?master=<name>"}},
		{"hermod-deliverer", map[string]string{"HERMOD_NATS_URL": "nats://127.0.0.1:1", "HERMOD_REDIS_URL": "redis://127.0.0.1:1",
			"HERMOD_ENCRYPTION_KEY": "abc", "HERMOD_DELIVERY_ALLOW_CIDRS": "10.0.0.1", "HERMOD_DELIVERY_CONCURRENCY": "0"},
			[]string{"HERMOD_ENCRYPTION_KEY", "HERMOD_DELIVERY_ALLOW_CIDRS", "HERMOD_DELIVERY_CONCURRENCY"}},
		{"hermod", map[string]string{"HERMOD_LOG_LEVEL": "chatty", "HERMOD_NATS_LISTEN": "nowhere", "HERMOD_SESSION_TTL": "90d",
			"HERMOD_REPLAY_RATE": "fast"},
			[]string{"HERMOD_LOG_LEVEL", "HERMOD_NATS_LISTEN", "HERMOD_SESSION_TTL", "HERMOD_REPLAY_RATE"}},
		{"hermod-agent", map[string]string{}, []string{"HERMOD_AGENT_ID", "HERMOD_NATS_URL"}},
	} {
		cmd := exec.Command(binPath(t, c.bin))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range c.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%s exited %d (%v), want 2:\n%s", c.bin, code, err, out)
			continue
		}
		for _, name := range c.names {
			if !strings.Contains(string(out), name) {
				t.Errorf("%s does not name %s:\n%s", c.bin, name, out)
			}
		}
		if strings.Contains(string(out), "hunter2") {
			t.Errorf("%s shows a password:\n%s", c.bin, out)
		}
	}
	// A valid configuration is printed with the secrets masked.
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	addr := freeAddr(t)
	api := startProc(t, "hermod-api", map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(),
		"HERMOD_ENCRYPTION_KEY": testEncKey, "HERMOD_ADMIN_KEYS": testAdminKey, "HERMOD_API_ADDR": addr,
		"HERMOD_NATS_SYSTEM_URL": "nats://sys:sys-s3cret-pw@" + ns.Addr().String(),
		// Not read by hermod-api: a typo, and a deliverer's variable.
		"HERMOD_REPLAY_RAET": "100", "HERMOD_DELIVERY_CONCURRENCY": "8"})
	waitReady(t, api, "http://"+addr+"/readyz")
	b, _ := os.ReadFile(api.log)
	logs := string(b)
	if !strings.Contains(logs, `"variables":["HERMOD_DELIVERY_CONCURRENCY","HERMOD_REPLAY_RAET"]`) ||
		!strings.Contains(logs, "are not read by hermod-api") {
		t.Errorf("the variables hermod-api does not read are not reported:\n%s", tail(logs, 2000))
	}
	if !strings.Contains(logs, `"effective configuration"`) || !strings.Contains(logs, `"HERMOD_ENCRYPTION_KEY":"****"`) ||
		!strings.Contains(logs, `"HERMOD_ADMIN_KEYS":"****"`) || !strings.Contains(logs, `"HERMOD_NATS_SYSTEM_URL":"nats://sys:****@`) {
		t.Errorf("effective configuration not printed masked:\n%s", tail(logs, 2000))
	}
	if strings.Contains(logs, testEncKey) || strings.Contains(logs, testAdminKey) || strings.Contains(logs, "sys-s3cret-pw") {
		t.Errorf("a secret appears in the log")
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// startReady runs bin with env on a free address (HERMOD_API_ADDR for the
// api, HERMOD_OPS_ADDR otherwise) and waits until its /readyz answers 200.
func startReady(t *testing.T, bin string, env map[string]string) (*proc, string) {
	t.Helper()
	addr := freeAddr(t)
	key := "HERMOD_OPS_ADDR"
	if bin == "hermod-api" || bin == "hermod" {
		key = "HERMOD_API_ADDR"
	}
	p := startProc(t, bin, merge(env, map[string]string{key: addr}))
	waitReady(t, p, "http://"+addr+"/readyz")
	return p, addr
}

// startFleet runs hermod-api (with apiEnv too), hermod-router and n
// hermod-deliverer processes sharing env, and returns an API client, the
// deliverers and their ops addresses.
func startFleet(t *testing.T, env, apiEnv map[string]string, n int) (*pipeline, []*proc, []string) {
	t.Helper()
	api, apiAddr := startReady(t, "hermod-api", merge(env, map[string]string{"HERMOD_ADMIN_KEYS": testAdminKey}, apiEnv))
	router, _ := startReady(t, "hermod-router", env)
	var dels []*proc
	var ops []string
	for i := 0; i < n; i++ {
		d, addr := startReady(t, "hermod-deliverer", env)
		dels, ops = append(dels, d), append(ops, addr)
	}
	p := &pipeline{t: t, Base: "http://" + apiAddr, hc: &http.Client{Timeout: 30 * time.Second},
		procs: map[string]*proc{"hermod-api": api, "hermod-router": router}, natsURL: env["HERMOD_NATS_URL"]}
	t.Cleanup(p.hc.CloseIdleConnections)
	return p, dels, ops
}

// The cost of waiting for a slot on recovery: deliveries waiting in a
// deliverer for one of their webhook's slots were never attempted, so when
// that deliverer is killed they are delivered once by the next one after
// their lease; only the attempts in flight at the kill are sent twice (the
// at-least-once cost every attempt has), each with its webhook-id.
func TestE2EDeliveriesWaitingForASlotSurviveKill(t *testing.T) {
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_ACQUIRE_TTL": "15s", "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "HERMOD_SHUTDOWN_TIMEOUT": "5s",
		"HERMOD_WEBHOOK_MAX_INFLIGHT": "2", "HERMOD_WEBHOOK_SLOT_WAIT": "10s"}
	p, dels, ops := startFleet(t, env, nil, 1)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	s := hermodtest.NewSink(t)
	s.SetAnswer(func(n int, _ *http.Request) int {
		if n <= 2 { // the first two requests hold both slots
			<-release
		}
		return 200
	})
	id := p.createWebhook(map[string]any{"name": "line", "url": s.URL, "event_types": []string{"stack.*"}, "secret": testSecret})
	for i := range 4 {
		p.publish("stack.created", map[string]any{"i": i})
	}
	// Two attempts in flight, two deliveries in line (no attempt ended yet,
	// and the slots were taken a moment ago, so they wait: the lease allows
	// 6 s of the 10 s asked for).
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, body := httpGet("http://" + ops[0] + "/metrics")
		if w := metricValue(body, "hermod_deliveries_waiting_for_slot"); w != 2 || s.Count() != 2 {
			return fmt.Errorf("%v deliveries wait for a slot and the sink got %d, want 2 and 2", w, s.Count())
		}
		return nil
	})
	inFlight := map[string]bool{}
	for _, r := range s.Received() {
		inFlight[r.Header.Get("webhook-id")] = true
	}
	if err := dels[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dels[0].done
	once.Do(func() { close(release) })
	startReady(t, "hermod-deliverer", env)
	p.waitStatus(id, "success", 4, 40*time.Second)
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGot(s, 6) })
	seen := map[string]int{}
	for _, r := range s.Received() {
		verifySig(t, testSecret, r)
		seen[r.Header.Get("webhook-id")]++
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct webhook-ids arrived, want 4: %v", len(seen), seen)
	}
	for wid, n := range seen {
		want := 1
		if inFlight[wid] {
			want = 2
		}
		if n != want {
			t.Errorf("%s arrived %d times, want %d (in flight at the kill: %v)", wid, n, want, inFlight[wid])
		}
	}
	p.waitIdle(15 * time.Second)
	if s.Count() != 6 {
		t.Errorf("the sink got %d requests, want 6", s.Count())
	}
}
