package chartcheck

import (
	"os"
	"strings"
	"testing"
)

func readGood(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckAcceptsGood shows the fixture passes, so each failure below is
// the one change's doing.
func TestCheckAcceptsGood(t *testing.T) {
	objs, err := Decode([]byte(readGood(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("decoded %d objects, want 4", len(objs))
	}
	if p := Check(objs, Options{}); len(p) > 0 {
		t.Fatalf("problems in the good fixture:\n%s", strings.Join(p, "\n"))
	}
}

// TestDecodeRefuses feeds documents the API server would refuse or
// silently misread, and expects strict decoding to fail on each.
func TestDecodeRefuses(t *testing.T) {
	breakFixture(t, []fixtureChange{
		{"unknown field", "  replicas: 2\n", "  replicas: 2\n  replica: 2\n", `unknown field "spec.replica"`},
		{"misplaced field", "        runAsNonRoot: true\n", "        runAsNonRoot: true\n        readOnlyRootFilesystem: true\n", `unknown field "spec.template.spec.securityContext.readOnlyRootFilesystem"`},
		{"duplicate key", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", `"replicas" already set`},
		{"wrong type", "  replicas: 2\n", "  replicas: two\n", "cannot unmarshal"},
		{"unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", `unexpected kind "policy/v1/PodDisruptionBudgets"`},
		{"old apiVersion", "apiVersion: policy/v1", "apiVersion: policy/v1beta1", `unexpected kind "policy/v1beta1/PodDisruptionBudget"`},
		{"no name", "  name: t-worker\nspec:\n  maxUnavailable", "  labels: {}\nspec:\n  maxUnavailable", "without metadata.name"},
	}, func(t *testing.T, src string) string {
		_, err := Decode([]byte(src))
		if err == nil {
			return ""
		}
		return err.Error()
	})
}

// TestCheckReports breaks one promise at a time and expects it reported.
func TestCheckReports(t *testing.T) {
	breakFixture(t, []fixtureChange{
		{"privilege escalation", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation is not false"},
		{"writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem is not true"},
		{"capabilities kept", "drop: [ALL]", "drop: [NET_RAW]", "do not drop ALL"},
		{"capability added", "drop: [ALL]", "drop: [ALL], add: [NET_ADMIN]", "adds capabilities"},
		{"root allowed", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot is not true"},
		{"uid 0", "runAsUser: 10001", "runAsUser: 0", "runs as uid 0"},
		{"no seccomp", "        seccompProfile: {type: RuntimeDefault}\n", "", "seccompProfile is not RuntimeDefault"},
		{"token mounted", "automountServiceAccountToken: false", "automountServiceAccountToken: true", "mounts a service account token"},
		{"liveness path", "path: /healthz", "path: /readyz", `liveness: path "/readyz", want "/healthz"`},
		{"no readiness", "          readinessProbe:\n            httpGet: {path: /readyz, port: http}\n", "", "readiness: no HTTP probe"},
		{"probe port", "{path: /readyz, port: http}", "{path: /readyz, port: ops}", "port ops is not a port of the container"},
		{"no requests", "requests: {cpu: 100m, memory: 64Mi}", "requests: {memory: 64Mi}", "no cpu request"},
		{"no limit", "limits: {memory: 128Mi}", "limits: {}", "no memory limit"},
		{"short grace", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "not longer than HERMOD_SHUTDOWN_TIMEOUT"},
		{"bad timeout", "value: 30s", "value: thirty", `HERMOD_SHUTDOWN_TIMEOUT "thirty"`},
		{"no pdb", "  maxUnavailable: 1\n  selector:\n    matchLabels: {app: worker}", "  maxUnavailable: 1\n  selector:\n    matchLabels: {app: other}", "covered by 0 PodDisruptionBudgets"},
		{"missing key", "secretKeyRef: {name: t, key: HERMOD_NATS_URL}", "secretKeyRef: {name: t, key: HERMOD_REDIS_URL}", "Secret/t has no key HERMOD_REDIS_URL"},
		{"missing secret", "secretKeyRef: {name: t, key: HERMOD_NATS_URL}", "secretKeyRef: {name: keys, key: HERMOD_NATS_URL}", "Secret/keys is neither rendered"},
		{"service port", "targetPort: http}", "targetPort: metrics}", "targetPort metrics is not a port"},
		{"service selector", "  selector: {app: worker}\n  ports:", "  selector: {app: nothing}\n  ports:", "selects the pods of 0 Deployments"},
		{"own selector", "    matchLabels: {app: worker}\n  template:", "    matchLabels: {app: other}\n  template:", "selector does not pick its own pods"},
	}, func(t *testing.T, src string) string {
		objs, err := Decode([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(Check(objs, Options{}), "\n")
	})
}

// TestCheckExistingSecret accepts a reference to the Secret made outside
// the release, and only that one.
func TestCheckExistingSecret(t *testing.T) {
	src := replaceOnce(t, readGood(t), "secretKeyRef: {name: t,", "secretKeyRef: {name: keys,")
	objs, err := Decode([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p := Check(objs, Options{ExistingSecret: "keys"}); len(p) > 0 {
		t.Fatalf("problems with the existing Secret named: %q", p)
	}
	if p := Check(objs, Options{ExistingSecret: "other"}); len(p) != 1 {
		t.Fatalf("problems %q, want the one unresolved Secret", p)
	}
}

// fixtureChange replaces old by new in the good fixture and expects want
// in what the step reports of the result.
type fixtureChange struct{ name, old, new, want string }

// breakFixture runs each change as a subtest; report returns what the step
// under test said of the changed fixture (an error, problems).
func breakFixture(t *testing.T, changes []fixtureChange, report func(t *testing.T, src string) string) {
	good := readGood(t)
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			if got := report(t, replaceOnce(t, good, c.old, c.new)); !strings.Contains(got, c.want) {
				t.Fatalf("reported %q, want %q in it", got, c.want)
			}
		})
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q occurs %d times in the fixture, want once", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}
