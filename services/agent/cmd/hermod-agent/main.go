// Command hermod-agent is the in-cluster delivery agent (not yet available).
package main

import (
	"fmt"
	"os"

	"github.com/hermodhq/hermod/services/agent"
	"github.com/hermodhq/hermod/shared/envconfig"
)

func main() {
	if _, err := agent.LoadConfig(envconfig.New()); err != nil {
		fmt.Fprintf(os.Stderr, "hermod-agent: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "hermod-agent:", agent.ErrNotAvailable)
	os.Exit(1)
}
