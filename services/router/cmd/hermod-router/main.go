// Command hermod-router fans events out to deliveries and records outcomes.
package main

import (
	"github.com/hermodhq/hermod/services/router"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	lifecycle.Main(lifecycle.Program[router.Config]{
		Name: "hermod-router", Summary: "routes events to webhooks and records delivery outcomes",
		Load: router.LoadConfig, Run: router.Main,
		Level: func(c router.Config) string { return c.LogLevel },
		Addr:  func(c router.Config) string { return c.OpsAddr },
	})
}
