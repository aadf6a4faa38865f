package dispatch

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/formats"
)

func TestMain(m *testing.M) {
	formats.RunnerMain() // templates render in a runner started from this binary
	goleak.VerifyTestMain(m)
}
