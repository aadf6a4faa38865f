package catalog

import (
	"strings"
	"testing"
)

func TestCatalog(t *testing.T) {
	c := New(Default)
	for p, want := range map[string]bool{"*": true, "deployment.*": true, "deployment.applied": true, "alert.resolved": true,
		"deployment.exploded": false, "nope.*": false, "deployment": false, "": false, "webhook.test": true} {
		if c.ValidPattern(p) != want {
			t.Errorf("ValidPattern(%q) != %v", p, want)
		}
	}
	subjects := strings.Join(c.StreamSubjects(), " ")
	if strings.Contains(subjects, "webhook") || !strings.Contains(subjects, "deployment.>") || !strings.Contains(subjects, "agent.>") {
		t.Errorf("stream subjects %s", subjects)
	}
	if len(c.Types()) != 20 {
		t.Errorf("%d types", len(c.Types()))
	}
}
