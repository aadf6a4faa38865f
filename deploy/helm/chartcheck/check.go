package chartcheck

import (
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Options says what lies outside the rendered objects.
type Options struct {
	// ExistingSecret is a Secret the release uses but does not render.
	ExistingSecret string
}

// Check returns every broken promise among the objects, one line each;
// none means they hold.
func Check(objs []Object, opt Options) []string {
	c := checker{opt: opt, secrets: map[string]*corev1.Secret{}}
	for _, s := range Of[corev1.Secret](objs) {
		c.secrets[s.Name] = s
	}
	seen := map[string]bool{}
	for _, o := range objs {
		id := o.Kind + "/" + o.Name
		if seen[id] {
			c.addf("%s: rendered twice", id)
		}
		seen[id] = true
		if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
			c.addf("%s: invalid name: %v", id, errs)
		}
	}
	deps := Of[appsv1.Deployment](objs)
	pdbs := Of[policyv1.PodDisruptionBudget](objs)
	for _, d := range deps {
		c.deployment(d, pdbs)
	}
	for _, s := range Of[corev1.Service](objs) {
		c.service(s, deps)
	}
	for _, h := range Of[autoscalingv2.HorizontalPodAutoscaler](objs) {
		c.autoscaler(h, deps)
	}
	for _, in := range Of[networkingv1.Ingress](objs) {
		c.ingress(in, Of[corev1.Service](objs))
	}
	return c.problems
}

type checker struct {
	opt      Options
	secrets  map[string]*corev1.Secret
	problems []string
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// deployment checks one workload and that one PodDisruptionBudget covers it.
func (c *checker) deployment(d *appsv1.Deployment, pdbs []*policyv1.PodDisruptionBudget) {
	id := "Deployment/" + d.Name
	pod := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		c.addf("%s: selector does not pick its own pods (%v)", id, err)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		c.addf("%s: mounts a service account token", id)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		c.addf("%s: shares a host namespace", id)
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if len(pod.Containers) == 0 {
		c.addf("%s: no containers", id)
	}
	for _, ctr := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		c.container(id+" container "+ctr.Name, ctr, psc)
	}
	c.shutdownWindow(id, pod)
	var covering []string
	for _, p := range pdbs {
		ps, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			c.addf("PodDisruptionBudget/%s: selector: %v", p.Name, err)
			continue
		}
		if !ps.Empty() && ps.Matches(podLabels) {
			covering = append(covering, p.Name)
			if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
				c.addf("PodDisruptionBudget/%s: neither maxUnavailable nor minAvailable", p.Name)
			}
		}
	}
	if len(covering) != 1 {
		c.addf("%s: covered by %d PodDisruptionBudgets %v, want 1", id, len(covering), covering)
	}
}

// container checks Pod Security "restricted", probes and resources.
func (c *checker) container(id string, ctr corev1.Container, psc *corev1.PodSecurityContext) {
	sc := ctr.SecurityContext
	if sc == nil {
		c.addf("%s: no securityContext", id)
		sc = &corev1.SecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		c.addf("%s: runAsNonRoot is not true", id)
	}
	for _, uid := range []*int64{psc.RunAsUser, sc.RunAsUser} {
		if uid != nil && *uid == 0 {
			c.addf("%s: runs as uid 0", id)
		}
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.addf("%s: allowPrivilegeEscalation is not false", id)
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.addf("%s: privileged", id)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.addf("%s: readOnlyRootFilesystem is not true", id)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.addf("%s: capabilities do not drop ALL", id)
	} else if len(sc.Capabilities.Add) > 0 {
		c.addf("%s: adds capabilities %v", id, sc.Capabilities.Add)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		c.addf("%s: seccompProfile is not RuntimeDefault", id)
	}
	c.probe(id+" liveness", ctr.LivenessProbe, "/healthz", ctr.Ports)
	c.probe(id+" readiness", ctr.ReadinessProbe, "/readyz", ctr.Ports)
	if ctr.StartupProbe != nil {
		c.probe(id+" startup", ctr.StartupProbe, "/healthz", ctr.Ports)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := ctr.Resources.Requests[r]; !ok || q.Sign() <= 0 {
			c.addf("%s: no %s request", id, r)
		}
	}
	if q, ok := ctr.Resources.Limits[corev1.ResourceMemory]; !ok || q.Sign() <= 0 {
		c.addf("%s: no memory limit", id)
	} else if req, ok := ctr.Resources.Requests[corev1.ResourceMemory]; ok && q.Cmp(req) < 0 {
		c.addf("%s: memory limit %s below its request %s", id, q.String(), req.String())
	}
	names := map[string]bool{}
	for _, e := range ctr.Env {
		if names[e.Name] {
			c.addf("%s: variable %s set twice", id, e.Name)
		}
		names[e.Name] = true
		if ref := secretRef(e); ref != nil {
			c.secretKey(id, e.Name, ref)
		}
	}
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

// secretKey checks that a variable's Secret is rendered with the key, or
// is the existing Secret named in the options.
func (c *checker) secretKey(id, env string, ref *corev1.SecretKeySelector) {
	optional := ref.Optional != nil && *ref.Optional
	s, ok := c.secrets[ref.Name]
	switch {
	case ok:
		_, inString := s.StringData[ref.Key]
		_, inData := s.Data[ref.Key]
		if !inString && !inData && !optional {
			c.addf("%s: %s: Secret/%s has no key %s", id, env, ref.Name, ref.Key)
		}
	case ref.Name != c.opt.ExistingSecret || ref.Name == "":
		c.addf("%s: %s: Secret/%s is neither rendered nor the existing Secret %q", id, env, ref.Name, c.opt.ExistingSecret)
	}
}

// probe checks an HTTP probe on the path and a named port of the container.
func (c *checker) probe(id string, p *corev1.Probe, path string, ports []corev1.ContainerPort) {
	if p == nil || p.HTTPGet == nil {
		c.addf("%s: no HTTP probe", id)
		return
	}
	if p.HTTPGet.Path != path {
		c.addf("%s: path %q, want %q", id, p.HTTPGet.Path, path)
	}
	if !portOf(ports, p.HTTPGet.Port.String()) {
		c.addf("%s: port %s is not a port of the container", id, p.HTTPGet.Port.String())
	}
}

func portOf(ports []corev1.ContainerPort, port string) bool {
	for _, p := range ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return true
		}
	}
	return false
}

// shutdownWindow checks that Kubernetes waits longer than the binary drains.
func (c *checker) shutdownWindow(id string, pod corev1.PodSpec) {
	grace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	for _, ctr := range pod.Containers {
		shutdown := 30 * time.Second // HERMOD_SHUTDOWN_TIMEOUT's default
		for _, e := range ctr.Env {
			if e.Name != "HERMOD_SHUTDOWN_TIMEOUT" {
				continue
			}
			d, err := time.ParseDuration(e.Value)
			if err != nil {
				c.addf("%s: HERMOD_SHUTDOWN_TIMEOUT %q: %v", id, e.Value, err)
				continue
			}
			shutdown = d
		}
		if grace <= shutdown {
			c.addf("%s: terminationGracePeriodSeconds %s is not longer than HERMOD_SHUTDOWN_TIMEOUT %s", id, grace, shutdown)
		}
	}
}

// service checks that a Service picks one Deployment's pods, on their ports.
func (c *checker) service(s *corev1.Service, deps []*appsv1.Deployment) {
	id := "Service/" + s.Name
	if errs := validation.IsDNS1035Label(s.Name); len(errs) > 0 {
		c.addf("%s: invalid Service name: %v", id, errs)
	}
	if len(s.Spec.Selector) == 0 {
		c.addf("%s: no selector", id)
		return
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var picked []*appsv1.Deployment
	for _, d := range deps {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			picked = append(picked, d)
		}
	}
	if len(picked) != 1 {
		c.addf("%s: selects the pods of %d Deployments, want 1", id, len(picked))
		return
	}
	for _, p := range s.Spec.Ports {
		found := false
		for _, ctr := range picked[0].Spec.Template.Spec.Containers {
			found = found || portOf(ctr.Ports, p.TargetPort.String())
		}
		if !found {
			c.addf("%s: targetPort %s is not a port of Deployment/%s", id, p.TargetPort.String(), picked[0].Name)
		}
	}
}

// autoscaler checks the HPA's target exists and leaves it the replica count.
func (c *checker) autoscaler(h *autoscalingv2.HorizontalPodAutoscaler, deps []*appsv1.Deployment) {
	id := "HorizontalPodAutoscaler/" + h.Name
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		c.addf("%s: scales %s %s, want an apps/v1 Deployment", id, ref.APIVersion, ref.Kind)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		c.addf("%s: replica range %v..%d", id, h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	for _, d := range deps {
		if d.Name == ref.Name {
			if d.Spec.Replicas != nil {
				c.addf("%s: Deployment/%s sets replicas, which each upgrade would reset", id, d.Name)
			}
			return
		}
	}
	c.addf("%s: Deployment/%s is not rendered", id, ref.Name)
}

// ingress checks every backend is a rendered Service and port.
func (c *checker) ingress(in *networkingv1.Ingress, svcs []*corev1.Service) {
	id := "Ingress/" + in.Name
	for _, r := range in.Spec.Rules {
		if r.HTTP == nil {
			c.addf("%s: rule for %q without http", id, r.Host)
			continue
		}
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b == nil {
				c.addf("%s: path %s has no Service backend", id, p.Path)
				continue
			}
			i := slices.IndexFunc(svcs, func(s *corev1.Service) bool { return s.Name == b.Name })
			if i < 0 {
				c.addf("%s: backend Service/%s is not rendered", id, b.Name)
				continue
			}
			if !slices.ContainsFunc(svcs[i].Spec.Ports, func(sp corev1.ServicePort) bool {
				return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
			}) {
				c.addf("%s: backend Service/%s has no port %v", id, b.Name, b.Port)
			}
		}
	}
}
