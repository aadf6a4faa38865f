// Command hermod-api serves the REST API.
package main

import (
	"github.com/hermodhq/hermod/services/api"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	lifecycle.Main("hermod-api", api.LoadConfig, func(c api.Config) string { return c.LogLevel }, api.Main)
}
