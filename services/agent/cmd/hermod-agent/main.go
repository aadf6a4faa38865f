// Command hermod-agent delivers label-targeted webhooks inside a cluster.
package main

import (
	"github.com/hermodhq/hermod/services/agent"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main("hermod-agent", agent.LoadConfig, func(c agent.Config) string { return c.LogLevel }, agent.Main)
}
