// Package chartcheck decodes rendered Kubernetes manifests strictly into
// the Kubernetes API types and checks what Hermod's Helm chart promises of
// every workload: Pod Security "restricted", probes on /healthz and
// /readyz, resource requests, a PodDisruptionBudget, a shutdown window
// longer than HERMOD_SHUTDOWN_TIMEOUT, and references that resolve.
package chartcheck

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest: its typed value and where it came from
// (the "# Source:" line helm template writes, else its position).
type Object struct {
	Source string
	Kind   string
	Name   string
	Value  any
}

// kinds lists the types the chart may render, by apiVersion and kind.
var kinds = map[string]func() any{
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                      func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/Ingress":           func() any { return new(networkingv1.Ingress) },
}

// Decode splits a multi-document YAML stream and decodes every document
// into its Kubernetes type, refusing unknown or misplaced fields, duplicate
// keys, kinds the chart should not render and documents without a name.
func Decode(src []byte) ([]Object, error) {
	var objs []Object
	var errs []error
	for i, doc := range splitDocuments(src) {
		source := fmt.Sprintf("document %d", i+1)
		for _, line := range strings.Split(doc, "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
			}
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		if tm.APIVersion == "" && tm.Kind == "" && isEmpty(doc) {
			continue
		}
		gvk := tm.APIVersion + "/" + tm.Kind
		mk, ok := kinds[gvk]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unexpected kind %q", source, gvk))
			continue
		}
		v := mk()
		if err := decodeStrict([]byte(doc), v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", source, gvk, err))
			continue
		}
		name := v.(metav1.Object).GetName()
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: %s without metadata.name", source, gvk))
			continue
		}
		objs = append(objs, Object{Source: source, Kind: tm.Kind, Name: name, Value: v})
	}
	return objs, errors.Join(errs...)
}

// decodeStrict converts YAML to JSON (refusing duplicate keys) and decodes
// it as the API server would, refusing fields the type does not have,
// each named by its path.
func decodeStrict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// splitDocuments cuts a YAML stream at its "---" lines.
func splitDocuments(src []byte) []string {
	var docs []string
	var cur bytes.Buffer
	for _, line := range strings.SplitAfter(string(src), "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

// isEmpty reports whether a document holds only comments and blank lines.
func isEmpty(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// Of returns the objects of one type, in order.
func Of[T any](objs []Object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.Value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}
