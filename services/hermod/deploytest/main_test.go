//go:build compose

// Package deploytest starts Hermod as users deploy it and drives it from
// the host as a user would (make test-compose): `docker compose up` with
// deploy/compose/compose.yaml and the CI override that swaps in the images
// `make images` built from local files. Before the stacks start, quick
// tests check the Compose files: what `docker compose config` makes of
// them, against the project's own rules (checks_test.go, policy_test.go).
package deploytest

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
