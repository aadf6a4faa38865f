// Command hermod-deliverer delivers webhooks from the shared JetStream consumer.
package main

import (
	"github.com/hermodhq/hermod/services/deliverer"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main("hermod-deliverer", deliverer.LoadConfig, func(c deliverer.Config) string { return c.LogLevel }, deliverer.Main)
}
