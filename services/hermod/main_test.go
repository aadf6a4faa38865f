package allinone_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/formats"
)

func TestMain(m *testing.M) {
	formats.RunnerMain() // the in-process all-in-one's template runner is this binary
	goleak.VerifyTestMain(m,
		// redis-server processes' Wait goroutines and go-redis pool reapers end with their tests;
		// these are the long-lived runtime helpers of the embedded NATS server's file store.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"),
	)
}
