// Command hermod runs the whole pipeline in one process (development).
package main

import (
	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main("hermod", allinone.LoadConfig, func(c allinone.Config) string { return c.LogLevel }, allinone.Main)
}
