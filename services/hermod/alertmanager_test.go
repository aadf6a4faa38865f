package allinone_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// alertmanagerBin finds the alertmanager binary `make tools` installs.
func alertmanagerBin(t *testing.T) string {
	t.Helper()
	p, err := hermodtest.Tool("alertmanager")
	if err != nil {
		t.Fatalf("%v (go install github.com/prometheus/alertmanager/cmd/alertmanager@v0.28.1)", err)
	}
	return p
}

// startAlertmanager runs a real Alertmanager on 127.0.0.1 (no clustering)
// and returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(alertmanagerBin(t), "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = hermodtest.ChildProcAttr() // dies with the test binary
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() })
	base := "http://" + addr
	hermodtest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		code, body := httpGet(base + "/-/ready")
		if code != 200 {
			log, _ := os.ReadFile(filepath.Join(dir, "alertmanager.log"))
			return fmt.Errorf("alertmanager not ready: %d %s; log: %s", code, body, log)
		}
		return nil
	})
	return base
}

type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Annotations map[string]string `json:"annotations"`
}

func amAlerts(base string) ([]amAlert, error) {
	code, body := httpGet(base + "/api/v2/alerts")
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: %d %s", code, body)
	}
	var out []amAlert
	return out, json.Unmarshal([]byte(body), &out)
}

// Proved against the real thing: alert.triggered through a broker webhook
// and through an agent's webhook, both in the alertmanager format, shows
// in Alertmanager's own GET /api/v2/alerts; alert.resolved resolves both.
func TestE2EAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, nil, 1)
	token := p.registerAgent("eu-1", "env:production")
	ids := map[string]string{}
	for route, labels := range map[string][]string{"broker": nil, "agent": {"env:production"}} {
		body := map[string]any{"name": "alertmanager " + route, "url": am + "/api/v2/alerts", "event_types": []string{"alert.*"},
			"format": "alertmanager", "format_options": map[string]any{"labels": map[string]string{"route": route}}}
		if labels != nil {
			body["target_labels"] = labels
		}
		ids[route] = p.createWebhook(body)
	}
	startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_AGENT_ID": "eu-1", "HERMOD_AGENT_TOKEN": token})

	p.publish("alert.triggered", map[string]any{"alert_id": "a-1", "name": "HighCPU", "message": "cpu above 90%"})
	hermodtest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		alerts, err := amAlerts(am)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, a := range alerts {
			if a.Labels["alertname"] == "hermod_alert" && a.Labels["alert_id"] == "a-1" && a.Status.State == "active" &&
				strings.HasPrefix(a.Annotations["summary"], "An alert fired: alert a-1 (HighCPU)") {
				seen[a.Labels["route"]] = true
			}
		}
		if !seen["broker"] || !seen["agent"] {
			return fmt.Errorf("active alerts in Alertmanager: %+v", alerts)
		}
		return nil
	})
	for route, by := range map[string]string{"broker": "broker", "agent": "agent:eu-1"} {
		if ds := p.waitStatus(ids[route], "success", 1, 10*time.Second); ds[0]["delivered_by"] != by {
			t.Errorf("%s: delivered by %v", route, ds[0]["delivered_by"])
		}
	}

	p.publish("alert.resolved", map[string]any{"alert_id": "a-1"})
	hermodtest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		alerts, err := amAlerts(am)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Labels["alert_id"] == "a-1" {
				return fmt.Errorf("alert still listed after alert.resolved: %+v", a)
			}
		}
		return nil
	})
	for route := range ids {
		p.waitStatus(ids[route], "success", 2, 10*time.Second)
	}
}
