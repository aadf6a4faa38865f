package webhooks

import (
	"slices"
	"strings"
	"testing"
)

// FuzzCanonicalLabels: any label list is refused with a field error or
// comes out sorted, without duplicates, each label key:value within the
// rules, and canonical again unchanged.
func FuzzCanonicalLabels(f *testing.F) {
	for _, s := range []string{"env:prod", "env:prod\nenv:prod", "b:1\na:2", "env:", ":prod", "env", "env:a:b",
		"env:a\x00b", "env:a\r\nb", strings.Repeat("k", 64) + ":v", "k/x.y_z-1:v.1_2-3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		labels := strings.Split(s, "\n")
		out, err := CanonicalLabels("labels", labels)
		if err != nil {
			if fe, ok := err.(*FieldError); !ok || fe.Field != "labels" {
				t.Fatalf("refusal %v is not a field error of labels", err)
			}
			return
		}
		if len(out) > MaxLabels || !slices.IsSorted(out) || len(slices.Compact(slices.Clone(out))) != len(out) {
			t.Fatalf("%q: not canonical: %q", labels, out)
		}
		for _, l := range out {
			k, v, ok := strings.Cut(l, ":")
			if !ok || !labelKeyRe.MatchString(k) || !labelValueRe.MatchString(v) || strings.ContainsAny(l, "\x00\r\n") {
				t.Fatalf("%q: label %q breaks the rules", labels, l)
			}
		}
		again, err := CanonicalLabels("labels", out)
		if err != nil || !slices.Equal(again, out) {
			t.Fatalf("%q: canonical form %q is not stable: %q %v", labels, out, again, err)
		}
	})
}
