// Command hermod-api serves the REST API. `hermod-api callout-key` prints a
// new auth callout issuer key (docs/agents.md).
package main

import (
	"fmt"
	"os"

	"github.com/hermodhq/hermod/services/api"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	if len(os.Args) == 2 && os.Args[1] == "callout-key" {
		if err := api.CalloutKey(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "hermod-api callout-key:", err)
			os.Exit(1)
		}
		return
	}
	lifecycle.Main("hermod-api", api.LoadConfig, func(c api.Config) string { return c.LogLevel }, api.Main)
}
