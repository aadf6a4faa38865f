package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpnetwork "github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// The Webhooks page, driven in Debian's headless Chromium (installed by
// .ci/run) against the all-in-one binary and a loopback sink.

// chromiumPath finds the browser: HERMOD_CHROMIUM, else Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HERMOD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install Debian's chromium (apt-get install chromium; .ci/run does) or set HERMOD_CHROMIUM")
	return ""
}

type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// js evaluates a JS expression (a statement whose value is ignored).
func js(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }

// until polls a JS expression every 100 ms until it is true.
func (b *browser) until(timeout time.Duration, what, expr string) {
	b.t.Helper()
	hermodtest.CheckFor(b.t, timeout, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if !ok {
			return fmt.Errorf("waiting for %s: the page does not show it yet (%s)", what, expr)
		}
		return nil
	})
}

func (b *browser) text(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// click waits until the element sel finds is visible, then clicks it in
// the page (element.click(), the same event a mouse or the keyboard gives).
// The page redraws parts of itself every few seconds, so a click at screen
// coordinates could land beside a button that moved; this finds and clicks
// the element in one step.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	b.until(10*time.Second, "click "+sel, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el || el.disabled || !el.getClientRects().length) return false;
		el.scrollIntoView({block: "center"});
		el.click();
		return true;
	})()`, jsq(sel)))
}

// screenshot saves the viewport as a PNG in HERMOD_SCREENSHOTS_DIR (make
// screenshots points it at docs/images) or the test's temp dir, and checks
// it decodes.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if img.Bounds().Dx() < 300 || img.Bounds().Dy() < 300 {
		b.t.Fatalf("screenshot %s is %v", name, img.Bounds())
	}
	dir := os.Getenv("HERMOD_SCREENSHOTS_DIR")
	if dir == "" {
		dir = b.t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(key string) {
	b.t.Helper()
	b.run("open the sign-in page", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	b.run("sign in", chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Submit(chromedp.CSS("#signin-form")))
}

func (b *browser) sessionCookie() *cdpnetwork.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, cdpnetwork.GetCookies, cdpnetwork.GetCookiesParams{URLs: []string{b.base}})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == "hermod_session" {
			return c
		}
	}
	return nil
}

func jsq(s string) string { q, _ := json.Marshal(s); return string(q) }

// withCookie calls the API the way a page would, with a session cookie.
func withCookie(t *testing.T, method, url, cookie, csrf string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "hermod_session", Value: cookie})
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// evilSite serves, on a loopback port, a page that posts a form to target
// as soon as it loads: what a cross-site request forgery looks like.
func evilSite(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>prize</title><form id="f" method="post" action=%q>`+
			`<input name="enabled" value="false"></form><script>document.getElementById("f").submit()</script>`, target)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestBrowserWebhooksPage(t *testing.T) {
	t.Parallel()
	t.Run("binary", func(t *testing.T) {
		p := startPipeline(t, nil)
		sink := hermodtest.NewSink(t)
		b := newBrowser(t, p.Base)

		// Signed out, the page sends you to the sign-in form; a wrong key is refused there.
		b.signIn("not-the-admin-key-at-all")
		b.until(10*time.Second, "wrong key refused", `document.querySelector("#signin-error")?.textContent.includes("not valid") ?? false`)
		b.run("sign in", chromedp.SendKeys(chromedp.CSS("#key"), testAdminKey), chromedp.Submit(chromedp.CSS("#signin-form")))
		b.until(10*time.Second, "the webhooks page", `location.pathname === "/" && !!document.querySelector("#webhook-rows")`)
		ck := b.sessionCookie()
		if ck == nil || !ck.HTTPOnly || ck.SameSite != cdpnetwork.CookieSameSiteStrict {
			t.Fatalf("session cookie must be HttpOnly and SameSite=Strict: %+v", ck)
		}
		if strings.Contains(b.text(`document.documentElement.outerHTML + location.href + document.cookie`), testAdminKey) {
			t.Fatal("the page keeps the admin key")
		}

		// A second webhook, made through the API, for an agent: the list shows its labels.
		p.createWebhook(map[string]any{"name": "Cluster alerts (in-cluster)", "url": "http://alertmanager.monitoring.svc:9093/api/v2/alerts",
			"event_types": []string{"alert.*"}, "target_labels": []string{"env:production", "region:eu"}})

		// Escape closes the form and gives the focus back to the button that opened it.
		b.click("#add-webhook")
		b.until(10*time.Second, "form open", `!document.getElementById("webhook-form-section").hidden && document.activeElement.id === "f-name"`)
		b.run("Escape", chromedp.KeyEvent(kb.Escape))
		b.until(10*time.Second, "form closed, focus back", `document.getElementById("webhook-form-section").hidden && document.activeElement.id === "add-webhook"`)

		// The format selector: a template previews live as it is typed, Slack
		// on the Preview button; nothing is sent or saved.
		b.click("#add-webhook")
		b.until(10*time.Second, "event types loaded", `document.querySelectorAll('input[name=event_types]').length > 10`)
		// Hermod's own operational events are offered like any family.
		b.until(10*time.Second, "the operational family offered",
			`document.querySelector('input[name=event_types][value="hermod.*"]')?.parentElement.textContent === "hermod.* (operational)" && !!document.querySelector('input[name=event_types][value="hermod.delivery.dead"]')`)
		b.run("choose a template", js(`document.getElementById("f-format").value = "template"; document.getElementById("f-format").dispatchEvent(new Event("change"))`),
			chromedp.Click(chromedp.CSS(`input[name=event_types][value="deployment.*"]`)),
			chromedp.SendKeys(chromedp.CSS("#f-template"), `{said: .data.message, type: .event_type}`))
		b.until(10*time.Second, "live template preview", `document.getElementById("f-preview-out").textContent.includes('"said": "This is a sample deployment.created event."')`)
		b.run("choose Slack", js(`document.getElementById("f-format").value = "slack"; document.getElementById("f-format").dispatchEvent(new Event("change"))`))
		if hidden := b.text(`String(document.getElementById("template-field").hidden)`); hidden != "true" {
			t.Fatalf("the template field shows for Slack")
		}
		b.click("#f-preview")
		b.until(10*time.Second, "Slack preview", `document.getElementById("f-preview-out").textContent.includes('"blocks"')`)
		b.run("Escape", chromedp.KeyEvent(kb.Escape))
		b.until(10*time.Second, "form closed", `document.getElementById("webhook-form-section").hidden`)
		if sink.Count() != 0 {
			t.Fatalf("a preview sent %d requests", sink.Count())
		}

		// Add a webhook through the form: a bad URL gets a field error next to the URL field.
		b.click("#add-webhook")
		b.until(10*time.Second, "event types loaded", `document.querySelectorAll('input[name=event_types]').length > 10`)
		b.run("fill the form",
			chromedp.SendKeys(chromedp.CSS("#f-name"), "Deploy notifications"),
			chromedp.SendKeys(chromedp.CSS("#f-url"), "not a url"),
			chromedp.Click(chromedp.CSS(`input[name=event_types][value="deployment.*"]`)),
			chromedp.Click(chromedp.CSS(`input[name=event_types][value="instance.crash"]`)),
			chromedp.Click(chromedp.CSS("#form-submit")))
		b.until(10*time.Second, "URL field error", `document.querySelector("#err-url").textContent.length > 0`)
		if got := b.text(`document.querySelector("#f-url").getAttribute("aria-invalid") + " " + document.querySelector("#err-url").textContent`); !strings.HasPrefix(got, "true url") {
			t.Fatalf("the URL field error: %q", got)
		}
		if code, body := p.do("GET", "/api/v1/webhooks", nil); code != 200 || strings.Contains(string(body), "Deploy notifications") {
			t.Fatalf("a refused form created a webhook: %d %s", code, body)
		}
		b.run("fix the URL", js(`document.getElementById("f-url").value = ""`),
			chromedp.SendKeys(chromedp.CSS("#f-url"), sink.URL+"/hooks/deploy"),
			chromedp.Click(chromedp.CSS("#advanced summary")),
			chromedp.SendKeys(chromedp.CSS("#f-max_retries"), "1"),
			chromedp.SendKeys(chromedp.CSS("#f-description"), "Deployments and crashes for the on-call channel"))
		if e := b.text(`document.querySelector("#err-url").textContent`); e != "" {
			t.Fatalf("editing the URL should clear its error: %q", e)
		}
		b.run("scroll to the top", js(`window.scrollTo(0, 0)`))
		b.screenshot("add-webhook-form.png")
		b.click("#form-submit")
		b.until(10*time.Second, "the new webhook listed as active",
			`[...document.querySelectorAll("#webhook-rows tr.row")].some(r => r.textContent.includes("Deploy notifications") && r.querySelector(".badge").textContent === "active")`)
		id := b.text(`[...document.querySelectorAll("#webhook-rows tr.row")].find(r => r.textContent.includes("Deploy notifications")).dataset.id`)
		row := "#row-" + id
		w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		if w["max_retries"].(float64) != 1 || w["description"] != "Deployments and crashes for the on-call channel" {
			t.Fatalf("the form's advanced fields were not saved: %v", w)
		}
		secret := p.must(200, "GET", "/api/v1/webhooks/"+id+"/secret", nil)["secret"].(string)

		// Expand with the keyboard, then Play: the sink gets a signed webhook.test and the page says so.
		b.run("expand with Enter", chromedp.Focus(chromedp.CSS(row+" .expander")), chromedp.KeyEvent("\r"))
		b.until(10*time.Second, "expanded", fmt.Sprintf(`document.querySelector(%q)?.getAttribute("aria-expanded") === "true" && !!document.querySelector("#detail-%s .play")`, row+" .expander", id))
		b.click("#detail-" + id + " .play")
		b.until(15*time.Second, "play result", fmt.Sprintf(`document.querySelector("#detail-%s .result").textContent.includes("Test delivered: HTTP 200")`, id))
		got := sink.Received()
		if len(got) != 1 || !strings.Contains(string(got[0].Body), `"webhook.test"`) || got[0].Path != "/hooks/deploy" {
			t.Fatalf("the sink should have one webhook.test: %d received", len(got))
		}
		verifySig(t, secret, got[0])

		// Events: totals, success rate, the chart and the recent attempts update without a reload.
		for i := 0; i < 5; i++ {
			p.publish("deployment.applied", map[string]any{"deployment_id": fmt.Sprintf("d-%d", i), "stack_id": "s-1"})
		}
		hermodtest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error { return sinkGot(sink, 6) }) // the test event and 5
		b.until(20*time.Second, "totals", fmt.Sprintf(`document.querySelector("%s .delivered").textContent === "5" && document.querySelector("%s .rate").textContent === "100.00\u00a0%%"`, row, row))
		b.until(20*time.Second, "chart and attempts", fmt.Sprintf(`document.querySelectorAll("#detail-%s .deliveries-chart rect.bar-success").length >= 1 && `+
			`[...document.querySelectorAll("#detail-%s .attempts tbody tr")].filter(r => r.textContent.includes("success") && r.textContent.includes("deployment.applied") && r.textContent.includes("broker")).length === 5`, id, id))
		if n := b.text(fmt.Sprintf(`document.querySelector("#detail-%s .deliveries-chart").getAttribute("aria-label")`, id)); !strings.Contains(n, "5 succeeded") {
			t.Fatalf("chart summary: %q", n)
		}
		if n := b.text(fmt.Sprintf(`String(document.querySelectorAll("#detail-%s .latency-chart path.line-p50").length)`, id)); n != "1" {
			t.Fatalf("latency chart has %s p50 lines", n)
		}
		// Every latency mark lies between the chart's top and its 0 ms axis.
		if out := b.text(fmt.Sprintf(`(() => {
			const svg = document.querySelector("#detail-%s .latency-chart");
			const axis = svg.querySelector("line.axis"), top = 8, bottom = +axis.getAttribute("y1");
			const bad = [...svg.querySelectorAll("circle.dot")].filter(c => +c.getAttribute("cy") < top - 0.5 || +c.getAttribute("cy") > bottom + 0.5).length;
			const boxes = [...svg.querySelectorAll("path")].map(p => p.getBBox()).filter(bb => bb.y < top - 2 || bb.y + bb.height > bottom + 2).length;
			const dots = svg.querySelectorAll("circle.dot").length;
			return dots + " dots, " + bad + " outside, " + boxes + " lines outside";
		})()`, id)); !strings.HasSuffix(out, " 0 outside, 0 lines outside") || strings.HasPrefix(out, "0 dots") {
			t.Fatalf("latency chart: %s", out)
		}
		// A taller window for this picture, so it shows both charts and the recent attempts.
		b.run("tall window", chromedp.EmulateViewport(1280, 1500), js(`document.activeElement.blur(); window.scrollTo(0, 0)`))
		b.screenshot("webhook-expanded.png")
		b.run("desktop window", chromedp.EmulateViewport(1280, 900))

		// The list, collapsed.
		b.click(row + " .expander")
		b.until(10*time.Second, "collapsed", fmt.Sprintf(`!document.querySelector("#detail-%s")`, id))
		b.screenshot("webhooks-list.png")
		b.click(row + " .expander")
		b.until(10*time.Second, "expanded again", fmt.Sprintf(`!!document.querySelector("#detail-%s .play")`, id))

		// Focus stays on a detail button while refreshes redraw the list around it.
		b.run("focus Rotate", chromedp.Focus(chromedp.CSS("#detail-"+id+" .rotate")))
		p.publish("deployment.applied", map[string]any{"deployment_id": "focus-1"})
		b.until(20*time.Second, "the list redrawn with the new total", fmt.Sprintf(`document.querySelector("%s .delivered").textContent === "6"`, row))
		if f := b.text(`document.activeElement.className + "|" + (document.activeElement.closest("tr.detail")?.id ?? "")`); f != "rotate|detail-"+id {
			t.Fatalf("a refresh moved the focus to %q", f)
		}

		// The sink fails: each delivery dies after its one attempt and the webhook shows degraded.
		sink.SetAnswer(func(int, *http.Request) int { return 500 })
		for i := 0; i < 3; i++ {
			p.publish("instance.crash", map[string]any{"instance_id": fmt.Sprintf("i-%d", i)})
		}
		b.until(30*time.Second, "degraded", fmt.Sprintf(`document.querySelector("%s .badge").textContent === "degraded"`, row))

		// Retry a dead delivery from the deliveries view once the sink is healthy again.
		sink.SetAnswer(nil)
		b.run("filter dead", js(fmt.Sprintf(`document.getElementById("dl-status-%s").value = "dead"`, id)),
			js(fmt.Sprintf(`document.getElementById("dl-status-%s").dispatchEvent(new Event("change"))`, id)))
		b.until(15*time.Second, "dead deliveries listed", fmt.Sprintf(`document.querySelectorAll("#detail-%s .deliveries tr[data-status=dead]").length === 3`, id))
		dead := b.text(fmt.Sprintf(`document.querySelector("#detail-%s .deliveries tr[data-status=dead]").dataset.delivery`, id))
		b.click(fmt.Sprintf(`#detail-%s .deliveries tr[data-delivery=%q] .view`, id, dead))
		b.until(10*time.Second, "delivery view", fmt.Sprintf(`document.querySelector("#detail-%s .payload")?.textContent.includes("instance.crash") && document.querySelectorAll("#detail-%s .history tbody tr").length === 1`, id, id))
		b.click(fmt.Sprintf(`#detail-%s .deliveries tr[data-delivery=%q] .retry`, id, dead))
		b.until(10*time.Second, "retry accepted", fmt.Sprintf(`document.querySelector("#detail-%s .result").textContent.includes("requeued")`, id))
		hermodtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
			if d := p.must(200, "GET", "/api/v1/deliveries/"+dead, nil); d["status"] != "success" {
				return fmt.Errorf("the retried delivery is %v, want success: %v", d["status"], d)
			}
			return nil
		})

		// Replay the other two dead deliveries in bulk: the form (dead, the
		// last day), then the progress, polled until the replay is done.
		beforeReplay := sink.Count()
		b.click("#detail-" + id + " .replay-open")
		b.until(10*time.Second, "replay form", fmt.Sprintf(`!document.querySelector("#detail-%s .replay").hidden && document.getElementById("rp-since-%s").value !== "" && document.querySelector("#detail-%s input[name=replay-status][value=dead]").checked`, id, id, id))
		b.click("#detail-" + id + " .replay-start")
		b.until(30*time.Second, "replay done", fmt.Sprintf(`document.querySelector("#detail-%s .replay-state")?.textContent === "done" && document.querySelector("#detail-%s .replay-counts").textContent === "2 matched · 2 requeued · 0 skipped"`, id, id))
		hermodtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error { return sinkGot(sink, beforeReplay+2) })
		hermodtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
			if n := len(p.deliveries(id, "dead")); n != 0 {
				return fmt.Errorf("%d deliveries still dead after the replay", n)
			}
			return nil
		})

		// Edit: the form opens filled in (the URL is never sent back, so it stays empty and unchanged).
		b.click("#detail-" + id + " .edit")
		b.until(10*time.Second, "edit form", `!document.getElementById("webhook-form-section").hidden && document.getElementById("f-name").value === "Deploy notifications" && document.getElementById("f-url").value === "" && document.getElementById("f-max_retries").value === "1" && document.querySelector('input[name=event_types][value="deployment.*"]').checked`)
		// Meanwhile someone else changes the timeout: saving the rename must not undo it.
		p.must(200, "PATCH", "/api/v1/webhooks/"+id, map[string]any{"timeout_seconds": 45})
		b.run("rename", js(`document.getElementById("f-name").value = ""`), chromedp.SendKeys(chromedp.CSS("#f-name"), "Deploy notifications (prod)"))
		b.click("#form-submit")
		b.until(10*time.Second, "renamed", fmt.Sprintf(`document.querySelector("%s .expander").textContent === "Deploy notifications (prod)" && document.getElementById("webhook-form-section").hidden`, row))
		if w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil); w["name"] != "Deploy notifications (prod)" || w["url_redacted"] != strings.TrimSuffix(sink.URL, "/") ||
			w["max_retries"].(float64) != 1 || w["timeout_seconds"].(float64) != 45 {
			t.Fatalf("after Edit: %v", w)
		}

		// A filter expression that does not compile: the server's error,
		// with its position, shows at the field, and nothing is saved; a
		// valid one is saved and shown.
		b.click("#detail-" + id + " .edit")
		b.until(10*time.Second, "edit form", `!document.getElementById("webhook-form-section").hidden && document.getElementById("f-name").value === "Deploy notifications (prod)"`)
		b.run("type a broken filter", chromedp.Click(chromedp.CSS("#advanced summary")),
			chromedp.SendKeys(chromedp.CSS("#f-filter"), `data.deployment_id ==`))
		b.click("#form-submit")
		b.until(10*time.Second, "filter field error", `document.querySelector("#err-filter").textContent.includes("1:22")`)
		if got := b.text(`document.querySelector("#f-filter").getAttribute("aria-invalid") + " " + document.querySelector("#err-filter").textContent`); !strings.HasPrefix(got, "true filter does not compile: 1:22: Syntax error") {
			t.Fatalf("the filter field error: %q", got)
		}
		if w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil); w["filter"] != nil {
			t.Fatalf("a refused filter was saved: %v", w["filter"])
		}
		b.run("fix the filter", js(`document.getElementById("f-filter").value = ""`),
			chromedp.SendKeys(chromedp.CSS("#f-filter"), `!has(data.skip)`))
		b.click("#form-submit")
		b.until(10*time.Second, "filter saved", `document.getElementById("webhook-form-section").hidden`)
		if w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil); w["filter"] != "!has(data.skip)" || w["name"] != "Deploy notifications (prod)" {
			t.Fatalf("after saving the filter: %v", w)
		}
		b.until(10*time.Second, "filter shown", fmt.Sprintf(`document.querySelector("#detail-%s").textContent.includes("!has(data.skip)")`, id))

		// Copy: to the clipboard, or (where the browser refuses) shown and selected for Ctrl+C.
		b.click("#detail-" + id + " .copy")
		b.until(10*time.Second, "copied", fmt.Sprintf(`/copied|selected/.test(document.querySelector("#detail-%s .result").textContent)`, id))

		// Pause: events are held; Activate: they go out.
		b.click("#detail-" + id + " .pause")
		b.until(10*time.Second, "paused", fmt.Sprintf(`document.querySelector("%s .badge").textContent === "paused" && document.querySelector("#detail-%s .pause").textContent === "Activate"`, row, id))
		before := sink.Count()
		held := p.publish("deployment.failed", map[string]any{"deployment_id": "held-1"})
		hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			ds := p.deliveries(id, "pending")
			for _, d := range ds {
				if d["event_id"] == held {
					return nil
				}
			}
			return fmt.Errorf("event %s not among the %d pending deliveries (all: %s)", held, len(ds), statuses(p.deliveries(id, "")))
		})
		// Nothing in hand: a copy of the held delivery routed or released to
		// the deliverers would have been sent by now.
		p.waitIdle(10 * time.Second)
		if sink.Count() != before {
			t.Fatal("a paused webhook delivered")
		}
		b.click("#detail-" + id + " .pause")
		hermodtest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error { return sinkGot(sink, before+1) })
		if last := sink.Received()[before]; !strings.Contains(string(last.Body), held) {
			t.Fatalf("after Activate the sink got %s", last.Body)
		}
		b.until(10*time.Second, "active again", fmt.Sprintf(`document.querySelector("%s .badge").textContent !== "paused"`, row))

		// Rotate the secret: reveal shows the current one, Rotate (confirmed) shows the new one.
		b.click("#detail-" + id + " .reveal")
		b.until(10*time.Second, "secret revealed", fmt.Sprintf(`document.querySelector("#detail-%s .secret-value").textContent === %s`, id, jsq(secret)))
		b.click("#detail-" + id + " .rotate")
		b.until(10*time.Second, "confirmation", `document.getElementById("confirm").open`)
		b.click("#confirm-ok")
		b.until(10*time.Second, "rotated", fmt.Sprintf(`document.querySelector("#detail-%s .secret-value").textContent.startsWith("whsec_") && document.querySelector("#detail-%s .secret-value").textContent !== %s`, id, id, jsq(secret)))
		rot := p.must(200, "GET", "/api/v1/webhooks/"+id+"/secret", nil)
		if rot["secret"] == secret || rot["previous_secret_expires_at"] == nil ||
			b.text(fmt.Sprintf(`document.querySelector("#detail-%s .secret-value").textContent`, id)) != rot["secret"] {
			t.Fatalf("rotation: %v", rot)
		}

		// Accessibility basics: every control has a label or a name; no overflow at a phone's width.
		if n := b.text(`String([...document.querySelectorAll("input:not([type=hidden]), select")].filter(e => e.labels.length === 0 && !e.getAttribute("aria-label")).length)`); n != "0" {
			t.Fatalf("%s form controls have no label", n)
		}
		if n := b.text(`String([...document.querySelectorAll("button")].filter(e => !(e.textContent.trim() || e.getAttribute("aria-label"))).length)`); n != "0" {
			t.Fatalf("%s buttons have no name", n)
		}
		b.run("phone width", chromedp.EmulateViewport(390, 844))
		b.until(10*time.Second, "fits a phone", `document.documentElement.scrollWidth <= 392 && [...document.querySelectorAll(".table-wrap")].every(w => w.scrollWidth <= w.clientWidth + 1)`)
		b.run("scroll to the top", js(`window.scrollTo(0, 0)`))
		b.screenshot("webhooks-phone.png")
		b.run("desktop width", chromedp.EmulateViewport(1280, 900))

		// A cross-site form post is refused; so is a same-site one from another origin.
		sessionCK := b.sessionCookie()
		if c := withCookie(t, "GET", p.Base+"/api/v1/webhooks/"+id, sessionCK.Value, ""); c != 200 {
			t.Fatalf("the API refuses the page's session cookie: %d", c)
		}
		if c := withCookie(t, "POST", p.Base+"/api/v1/webhooks/"+id+"/pause", sessionCK.Value, ""); c != 403 {
			t.Fatalf("a cookie without the CSRF token may change state: %d", c)
		}
		target := p.Base + "/api/v1/webhooks/" + id + "/pause"
		port := evilSite(t, target)
		// From localhost (another site) SameSite=Strict keeps the cookie home: 401.
		// From 127.0.0.1 on another port (same site, another origin) the cookie
		// goes along, and the server's own check refuses it: 403 csrf.
		for origin, code := range map[string]string{"http://localhost:" + port: `"unauthorized"`, "http://127.0.0.1:" + port: `"csrf"`} {
			b.run("visit "+origin, chromedp.Navigate(origin+"/"))
			b.until(10*time.Second, "the forged post answered", fmt.Sprintf(`location.href === %s && document.body.textContent.includes('"code"')`, jsq(target)))
			body := b.text(`document.body.textContent`)
			if !strings.Contains(body, `"code":`+code) {
				t.Fatalf("forged post from %s: %s, want code %s", origin, body, code)
			}
			if w := p.must(200, "GET", "/api/v1/webhooks/"+id, nil); w["enabled"] != true {
				t.Fatalf("a forged post from %s paused the webhook", origin)
			}
		}

		// Delete, confirmed: the row goes and the API no longer knows it.
		b.run("back to the page", chromedp.Navigate(p.Base+"/"))
		b.until(10*time.Second, "listed", fmt.Sprintf(`!!document.querySelector("%s .expander")`, row))

		// Play on an agent-delivered webhook with no agent connected says so.
		agentRow := `[...document.querySelectorAll("#webhook-rows tr.row")].find(r => r.textContent.includes("Cluster alerts"))`
		agentID := b.text(agentRow + `.dataset.id`)
		b.click("#row-" + agentID + " .expander")
		b.click("#detail-" + agentID + " .play")
		b.until(10*time.Second, "no agent", fmt.Sprintf(`document.querySelector("#detail-%s .result").textContent.startsWith("Test not sent") && /agent/.test(document.querySelector("#detail-%s .result").textContent)`, agentID, agentID))

		b.click(row + " .expander")
		b.click("#detail-" + id + " .delete")
		b.until(10*time.Second, "confirmation", `document.getElementById("confirm").open`)
		b.click("#confirm-ok")
		b.until(10*time.Second, "row removed", fmt.Sprintf(`!document.querySelector("%s")`, row))
		if code, _ := p.do("GET", "/api/v1/webhooks/"+id, nil); code != 404 {
			t.Fatalf("deleted webhook: %d", code)
		}

		// Sign out: back to the sign-in form, and the API refuses the old cookie.
		old := b.sessionCookie()
		b.click("#signout")
		b.until(10*time.Second, "signed out", `location.pathname === "/signin" && !!document.querySelector("#key")`)
		if c := withCookie(t, "GET", p.Base+"/api/v1/webhooks", old.Value, ""); c != 401 {
			t.Fatalf("the API accepts a signed-out cookie: %d", c)
		}
	})
}
