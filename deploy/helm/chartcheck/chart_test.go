//go:build helm

package chartcheck

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The chart and its example values, relative to this package.
const (
	chartDir    = "../hermod"
	examplesDir = "../examples/"
	secretsFile = "testdata/secrets.yaml"
)

// helm runs the helm binary HERMOD_HELM names (make test-helm builds it
// from its Go module) and returns its output and error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("HERMOD_HELM")
	if bin == "" {
		t.Fatal("HERMOD_HELM is not set: run make test-helm, which builds helm and sets it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Nothing of the user's helm setup (repositories, plugins) takes part.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	err := cmd.Run()
	return out.String(), err
}

// component describes what one Hermod binary's container must and must not get.
type component struct {
	needs, never []string
}

var components = map[string]component{
	"api": {
		needs: []string{"HERMOD_API_ADDR", "HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL"},
		never: []string{"HERMOD_OPS_ADDR", "HERMOD_AGENT_TOKEN"},
	},
	"router": {
		needs: []string{"HERMOD_OPS_ADDR", "HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ROUTER_WORKERS"},
		never: []string{"HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL", "HERMOD_AGENT_TOKEN"},
	},
	"deliverer": {
		needs: []string{"HERMOD_OPS_ADDR", "HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY", "HERMOD_DELIVERY_CONCURRENCY"},
		never: []string{"HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL", "HERMOD_AGENT_TOKEN"},
	},
	"agent": {
		needs: []string{"HERMOD_OPS_ADDR", "HERMOD_NATS_URL", "HERMOD_AGENT_ID", "HERMOD_AGENT_TOKEN"},
		never: []string{"HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY", "HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_NATS_SYSTEM_URL"},
	},
}

// streamSettings must agree across api, router and deliverer: each applies
// them to the streams at start.
var streamSettings = []string{"HERMOD_STREAM_REPLICAS", "HERMOD_DEDUP_WINDOW", "HERMOD_ACQUIRE_TTL", "HERMOD_RETENTION", "HERMOD_HISTORY_LIMIT", "HERMOD_MAX_HOLD", "HERMOD_MAX_EVENT_BYTES"}

type valueSet struct {
	name       string
	args       []string
	existing   string   // the Secret made outside the release
	components []string // the Deployments it renders, by component
	secretKeys []string // the keys of the Secret it renders
	check      func(t *testing.T, objs []Object)
}

var valueSets = []valueSet{
	{
		name:       "defaults",
		args:       []string{"-f", secretsFile},
		components: []string{"api", "deliverer", "router"},
		secretKeys: []string{"HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_ENCRYPTION_KEY", "HERMOD_NATS_SYSTEM_URL", "HERMOD_NATS_URL", "HERMOD_REDIS_URL"},
		check: func(t *testing.T, objs []Object) {
			d := deployment(t, objs, "deliverer")
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Errorf("deliverer replicas %v, want 2", d.Spec.Replicas)
			}
			if r := deployment(t, objs, "router"); r.Spec.Replicas == nil || *r.Spec.Replicas != 1 || r.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("router: replicas %v, strategy %q; want one, recreated", r.Spec.Replicas, r.Spec.Strategy.Type)
			}
			if n := len(Of[autoscalingv2.HorizontalPodAutoscaler](objs)); n != 0 {
				t.Errorf("%d autoscalers, want none", n)
			}
			if n := len(Of[networkingv1.Ingress](objs)); n != 0 {
				t.Errorf("%d Ingresses, want none", n)
			}
		},
	},
	{
		name:       "agent-remote",
		args:       []string{"-f", examplesDir + "agent-remote.yaml", "--set", "secrets.agentToken=hagt_test"},
		components: []string{"agent"},
		secretKeys: []string{"HERMOD_AGENT_TOKEN"},
		check: func(t *testing.T, objs []Object) {
			env := envOf(t, deployment(t, objs, "agent"))
			if env["HERMOD_NATS_URL"] != "tls://nats.hermod.example.com:4222" || env["HERMOD_AGENT_ID"] != "eu-prod-1" {
				t.Errorf("agent NATS URL %q, id %q", env["HERMOD_NATS_URL"], env["HERMOD_AGENT_ID"])
			}
		},
	},
	{
		name: "cluster-hpa",
		args: []string{"-f", examplesDir + "cluster-hpa.yaml", "-f", secretsFile,
			"--set", "config.shutdownTimeoutSeconds=90"},
		components: []string{"api", "deliverer", "router"},
		secretKeys: []string{"HERMOD_ADMIN_KEYS", "HERMOD_AUTH_CALLOUT_SEED", "HERMOD_ENCRYPTION_KEY", "HERMOD_NATS_SYSTEM_URL", "HERMOD_NATS_URL", "HERMOD_REDIS_URL"},
		check: func(t *testing.T, objs []Object) {
			hpas := Of[autoscalingv2.HorizontalPodAutoscaler](objs)
			if len(hpas) != 1 || hpas[0].Spec.ScaleTargetRef.Name != deployment(t, objs, "deliverer").Name || hpas[0].Spec.MaxReplicas != 12 {
				t.Errorf("autoscalers %+v, want one of the deliverers up to 12", hpas)
			}
			for _, c := range []string{"api", "router", "deliverer"} {
				d := deployment(t, objs, c)
				if env := envOf(t, d); env["HERMOD_STREAM_REPLICAS"] != "3" || env["HERMOD_SHUTDOWN_TIMEOUT"] != "90s" {
					t.Errorf("%s: stream replicas %q, shutdown timeout %q", c, env["HERMOD_STREAM_REPLICAS"], env["HERMOD_SHUTDOWN_TIMEOUT"])
				}
				if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 105 {
					t.Errorf("%s: terminationGracePeriodSeconds %v, want 105", c, g)
				}
			}
			if in := Of[networkingv1.Ingress](objs); len(in) != 1 || len(in[0].Spec.TLS) != 1 {
				t.Errorf("Ingresses %+v, want one with TLS", in)
			}
		},
	},
	{
		name: "existing-secret",
		args: []string{"-f", examplesDir + "existing-secret.yaml",
			"--set", "agent.enabled=true,agent.id=local,agent.natsUrl=nats://nats.nats:4222"},
		existing:   "hermod-keys",
		components: []string{"agent", "api", "deliverer", "router"},
		check: func(t *testing.T, objs []Object) {
			for _, d := range Of[appsv1.Deployment](objs) {
				if _, ok := d.Spec.Template.Annotations["checksum/secret"]; ok {
					t.Errorf("Deployment/%s: checksum of a Secret the chart does not render", d.Name)
				}
			}
		},
	},
}

func TestChartValueSets(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			if out, err := helm(t, append([]string{"lint", "--strict", chartDir}, vs.args...)...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			out, err := helm(t, append([]string{"template", "hermod", chartDir, "--namespace", "hermod"}, vs.args...)...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			objs, err := Decode([]byte(out))
			if err != nil {
				t.Fatalf("decoding the rendered chart: %v", err)
			}
			if p := Check(objs, Options{ExistingSecret: vs.existing}); len(p) > 0 {
				t.Errorf("%d problems:\n%s", len(p), strings.Join(p, "\n"))
			}
			var got []string
			for _, d := range Of[appsv1.Deployment](objs) {
				c := d.Spec.Template.Labels["app.kubernetes.io/component"]
				got = append(got, c)
				checkEnv(t, c, d)
			}
			slices.Sort(got)
			if !slices.Equal(got, vs.components) {
				t.Errorf("Deployments of %v, want %v", got, vs.components)
			}
			checkSecret(t, objs, vs.secretKeys)
			checkStreamSettings(t, objs)
			vs.check(t, objs)
		})
	}
}

// TestChartRefuses renders without what a component needs, or with values
// values.schema.json refuses, and expects helm to fail, naming the value.
func TestChartRefuses(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no values", nil, "secrets.natsUrl"},
		{"no encryption key", []string{"-f", secretsFile, "--set", "secrets.encryptionKey="}, "secrets.encryptionKey"},
		{"no admin keys", []string{"-f", secretsFile, "--set", "secrets.adminKeys="}, "secrets.adminKeys"},
		{"agent without token", []string{"-f", examplesDir + "agent-remote.yaml"}, "secrets.agentToken"},
		{"agent without id", []string{"-f", examplesDir + "agent-remote.yaml", "--set", "secrets.agentToken=t,agent.id="}, "agent.id"},
		{"agent without NATS", []string{"-f", examplesDir + "agent-remote.yaml", "--set", "secrets.agentToken=t,agent.natsUrl="}, "agent.natsUrl"},
		{"misspelt value", []string{"-f", secretsFile, "--set", "deliverer.replica=3"}, "/deliverer/replica"},
		{"misplaced value", []string{"-f", secretsFile, "--set", "api.workers=3"}, "/api/workers"},
		{"not a duration", []string{"-f", secretsFile, "--set", "config.retention=3days"}, "/config/retention"},
		{"short encryption key", []string{"-f", secretsFile, "--set", "secrets.encryptionKey=abc"}, "/secrets/encryptionKey"},
		{"not a variable name", []string{"-f", secretsFile, "--set", "api.env.lower=1"}, "/api/env"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "hermod", chartDir}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("helm template: error %v, output\n%s\nwant a failure naming %s", err, out, tc.want)
			}
		})
	}
}

// deployment returns the Deployment of one component.
func deployment(t *testing.T, objs []Object, component string) *appsv1.Deployment {
	t.Helper()
	for _, d := range Of[appsv1.Deployment](objs) {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == component {
			return d
		}
	}
	t.Fatalf("no Deployment of %s", component)
	return nil
}

// envOf returns the plain values of the container's variables ("" for
// those from a Secret).
func envOf(t *testing.T, d *appsv1.Deployment) map[string]string {
	t.Helper()
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment/%s: %d containers, want 1", d.Name, len(d.Spec.Template.Spec.Containers))
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

// checkEnv checks a component gets what its binary needs and no secret of
// another, and that its listen address is the container's port.
func checkEnv(t *testing.T, name string, d *appsv1.Deployment) {
	t.Helper()
	c, ok := components[name]
	if !ok {
		t.Errorf("Deployment/%s: unknown component %q", d.Name, name)
		return
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	if want := "hermod-" + name + ":"; !strings.HasPrefix(ctr.Image, want) {
		t.Errorf("%s: image %q, want %s<tag>", name, ctr.Image, want)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	for _, n := range c.needs {
		if _, ok := env[n]; !ok {
			t.Errorf("%s: no %s", name, n)
		}
	}
	for _, n := range c.never {
		if _, ok := env[n]; ok {
			t.Errorf("%s: gets %s", name, n)
		}
	}
	for n, e := range env {
		if (strings.HasSuffix(n, "_KEY") || strings.HasSuffix(n, "_KEYS") || strings.HasSuffix(n, "_SEED") || strings.HasSuffix(n, "_TOKEN")) && secretRef(e) == nil {
			t.Errorf("%s: %s is not taken from a Secret", name, n)
		}
	}
	addr := env["HERMOD_OPS_ADDR"].Value + env["HERMOD_API_ADDR"].Value
	if len(ctr.Ports) != 1 || addr != ":"+strconv.Itoa(int(ctr.Ports[0].ContainerPort)) {
		t.Errorf("%s: listens on %q, container ports %+v", name, addr, ctr.Ports)
	}
}

// checkSecret checks the rendered Secret holds exactly the keys wanted
// (none rendered when none are wanted).
func checkSecret(t *testing.T, objs []Object, want []string) {
	t.Helper()
	secrets := Of[corev1.Secret](objs)
	if len(want) == 0 {
		if len(secrets) != 0 {
			t.Errorf("%d Secrets rendered, want none", len(secrets))
		}
		return
	}
	if len(secrets) != 1 {
		t.Fatalf("%d Secrets rendered, want 1", len(secrets))
	}
	var got []string
	for k, v := range secrets[0].StringData {
		if v == "" {
			t.Errorf("Secret key %s is empty", k)
		}
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Secret keys %v, want %v", got, want)
	}
}

// checkStreamSettings checks api, router and deliverer agree on the streams.
func checkStreamSettings(t *testing.T, objs []Object) {
	t.Helper()
	first := map[string]string{}
	for _, d := range Of[appsv1.Deployment](objs) {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "agent" {
			continue
		}
		env := envOf(t, d)
		for _, s := range streamSettings {
			v, ok := env[s]
			if !ok {
				t.Errorf("Deployment/%s: no %s", d.Name, s)
				continue
			}
			if f, seen := first[s]; seen && f != v {
				t.Errorf("Deployment/%s: %s=%q, another service has %q", d.Name, s, v, f)
			}
			first[s] = v
		}
	}
}
