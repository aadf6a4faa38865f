// Package agent will run inside a target cluster and deliver label-targeted
// webhooks over label-scoped NATS subjects (issue 3). This release has only
// its configuration: the binary refuses to start rather than pretend to work.
package agent

import (
	"errors"

	"github.com/hermodhq/hermod/shared/envconfig"
)

// Config is hermod-agent's configuration.
type Config struct {
	ID      string
	NATSURL string
	OpsAddr string
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{ID: r.Required("HERMOD_AGENT_ID"), NATSURL: r.Required("HERMOD_NATS_URL"),
		OpsAddr: r.String("HERMOD_OPS_ADDR", ":8083")}
	return c, r.Err()
}

// ErrNotAvailable is returned by Run in this release.
var ErrNotAvailable = errors.New("agent delivery is not available in this release (see docs/architecture.md, 'Agents'); " +
	"webhooks with target_labels wait on their agent subjects until it is")
