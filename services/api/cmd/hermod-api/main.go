// Command hermod-api serves the REST API. `hermod-api callout-key` prints a
// new auth callout issuer key (docs/agents.md).
package main

import (
	"fmt"
	"os"

	"github.com/hermodhq/hermod/services/api"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "callout-key" {
		if err := api.CalloutKey(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "hermod-api callout-key:", err)
			os.Exit(1)
		}
		return
	}
	lifecycle.Main("hermod-api", api.LoadConfig, func(c api.Config) string { return c.LogLevel }, api.Main)
}
