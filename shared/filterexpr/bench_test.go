package filterexpr_test

import (
	"testing"

	"github.com/hermodhq/hermod/shared/filterexpr"
)

// BenchmarkEval is one evaluation of a typical expression on an event
// whose data is already decoded.
func BenchmarkEval(b *testing.B) {
	p, err := filterexpr.Compile(`data.severity in ["critical","high"] && labels.env == "prod"`)
	if err != nil {
		b.Fatal(err)
	}
	v := vars()
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := p.Eval(v); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
