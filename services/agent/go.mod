module github.com/hermodhq/hermod/services/agent

go 1.26.0

require github.com/hermodhq/hermod/shared v0.0.0

require (
	code.dny.dev/ssrf v0.3.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
)

replace github.com/hermodhq/hermod/shared => ../../shared
