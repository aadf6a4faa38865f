// Command hermod-router fans events out to deliveries and records outcomes.
package main

import (
	"github.com/hermodhq/hermod/services/router"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	lifecycle.Main("hermod-router", router.LoadConfig, func(c router.Config) string { return c.LogLevel }, router.Main)
}
