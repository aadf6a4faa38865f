// Command hermod-api serves the REST API. `hermod-api callout-key` prints a
// new auth callout issuer key (docs/agents.md).
package main

import (
	"github.com/hermodhq/hermod/services/api"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main(lifecycle.Program[api.Config]{
		Name: "hermod-api", Summary: "serves the REST API, the Webhooks page and the agents' control plane",
		Load: api.LoadConfig, Run: api.Main,
		Level: func(c api.Config) string { return c.LogLevel },
		Addr:  func(c api.Config) string { return c.Addr },
		Commands: map[string]lifecycle.Command{
			"callout-key": {Summary: "print a new auth callout issuer key (docs/agents.md)", Run: api.CalloutKey},
		},
	})
}
