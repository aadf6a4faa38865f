// Package version holds Hermod's release version (set with -ldflags at build).
package version

// Version is the release; `make build` sets it from git.
var Version = "0.1.0-dev"

// UserAgent is sent with every webhook request.
func UserAgent() string { return "Hermod/" + Version }
