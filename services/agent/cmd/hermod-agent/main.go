// Command hermod-agent delivers label-targeted webhooks inside a cluster.
package main

import (
	"github.com/hermodhq/hermod/services/agent"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main(lifecycle.Program[agent.Config]{
		Name: "hermod-agent", Summary: "delivers label-targeted webhooks inside a cluster",
		Load: agent.LoadConfig, Run: agent.Main,
		Level: func(c agent.Config) string { return c.LogLevel },
		Addr:  func(c agent.Config) string { return c.OpsAddr },
	})
}
