#!/usr/bin/env bash
# Makes `docker compose` (Compose v2, as users run it) available: when the
# docker CLI has no compose plugin (Debian's Docker ships only the old
# docker-compose 1.29), Compose v2 is built from its Go module, fetched
# through the Go module proxy, into the user's CLI plugin directory. The
# first build takes several minutes; later runs find the plugin.
set -euo pipefail
version=${COMPOSE_VERSION:-v2.40.3}
plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
if docker compose version >/dev/null 2>&1; then
  docker compose version
  exit 0
fi
echo "building Docker Compose $version from its Go module (github.com/docker/compose/v2)"
dir=$(go mod download -json "github.com/docker/compose/v2@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "could not download github.com/docker/compose/v2@$version" >&2; exit 1; }
# Built as the main module (its go.mod has exclude directives, which
# `go install pkg@version` refuses), from a writable copy.
src=$(mktemp -d)
trap 'chmod -R u+w "$src"; rm -rf "$src"' EXIT
cp -r "$dir/." "$src"
chmod -R u+w "$src"
mkdir -p "$plugins"
(cd "$src" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
  -o "$plugins/docker-compose" ./cmd)
docker compose version
