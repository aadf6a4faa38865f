// Command hermod-deliverer delivers webhooks from the shared JetStream consumer.
package main

import (
	"github.com/hermodhq/hermod/services/deliverer"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main(lifecycle.Program[deliverer.Config]{
		Name: "hermod-deliverer", Summary: "delivers webhooks from the shared JetStream consumer",
		Load: deliverer.LoadConfig, Run: deliverer.Main,
		Level: func(c deliverer.Config) string { return c.LogLevel },
		Addr:  func(c deliverer.Config) string { return c.OpsAddr },
	})
}
