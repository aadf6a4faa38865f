// Command hermod runs the whole pipeline in one process (development).
package main

import (
	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/lifecycle"
)

func main() {
	formats.RunnerMain() // started as the template runner: serve it and exit
	lifecycle.Main(lifecycle.Program[allinone.Config]{
		Name: "hermod", Summary: "runs the whole pipeline in one process",
		Load: allinone.LoadConfig, Run: allinone.Main,
		Level: func(c allinone.Config) string { return c.LogLevel },
		Addr:  func(c allinone.Config) string { return c.APIAddr },
	})
}
