#!/usr/bin/env bash
# Builds Hermod's container images from local files only: no registry is
# needed (or reached). Every Hermod binary is built static (CGO off) and put
# on `scratch` (deploy/images/Dockerfile); nats-server is built static at the
# version Hermod embeds; Redis is Debian's redis-server in a Debian base made
# with debootstrap from Debian's package mirror and `docker import`ed.
#
#   scripts/images.sh            # tag "local"
#   HERMOD_IMAGE_TAG=x scripts/images.sh
#
# Needs: docker, go, and (for the Redis image, once per machine) debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tag=${HERMOD_IMAGE_TAG:-local}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
ldflags="-s -w -X github.com/hermodhq/hermod/shared/version.Version=$version"
ctx=$root/build/images
suite=${HERMOD_DEBIAN_SUITE:-bookworm}
mirror=${HERMOD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/etc/ssl/certs" "$ctx/data"

echo "== static binaries ($version)"
build() { (cd "$1" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$ctx/bin/$3" "$2"); }
build services/api ./cmd/hermod-api hermod-api
build services/router ./cmd/hermod-router hermod-router
build services/deliverer ./cmd/hermod-deliverer hermod-deliverer
build services/agent ./cmd/hermod-agent hermod-agent
build services/hermod ./cmd/hermod hermod
build services/hermod ./bench/cmd/bench-receiver bench-receiver
nats_version=$(cd shared && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
echo "== nats-server $nats_version (static)"
(cd "$ctx" && CGO_ENABLED=0 GOBIN="$ctx/bin" GOFLAGS=-trimpath go install "github.com/nats-io/nats-server/v2@$nats_version")

# CA certificates (webhooks go over HTTPS) and a static busybox (the NATS
# image's wget, for its healthcheck) from this machine's Debian packages.
cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/"
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "a static busybox is needed (apt-get install busybox-static)" >&2
  exit 1
fi
cp "$busybox" "$ctx/bin/busybox"

# The classic builder: it uses local images as they are and never pulls
# (BuildKit needs the buildx plugin, which Debian's Docker lacks). Its
# deprecation notice is dropped; any other output is shown on failure.
classic_build() {
  if ! DOCKER_BUILDKIT=0 docker build -q -f deploy/images/Dockerfile "$@" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    exit 1
  fi
}

echo "== images :$tag"
for target in api router deliverer agent hermod nats receiver; do
  name=hermod-$target
  [ "$target" = hermod ] && name=hermod
  classic_build --target "$target" -t "$name:$tag"
  echo "$name:$tag $(docker image inspect -f '{{.Size}}' "$name:$tag" | awk '{printf "%.1f MB", $1/1e6}')"
done

# Redis: a Debian base with redis-server, made once per machine (a few
# minutes) and kept; the image adds the entrypoint.
base=hermod-debian-redis:$suite
if ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "== $base: Debian $suite with redis-server (debootstrap from $mirror)"
  debootstrap --variant=minbase --include=redis-server "$suite" "$rootfs" "$mirror" >"$ctx/debootstrap.log" 2>&1 ||
    { tail -20 "$ctx/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  mkdir -p "$rootfs/data"
  chroot "$rootfs" chown redis:redis /data
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
fi
cp deploy/images/redis-entrypoint "$ctx/"
classic_build --target redis --build-arg "REDIS_BASE=$base" -t "hermod-redis:$tag"
echo "hermod-redis:$tag $(docker image inspect -f '{{.Size}}' "hermod-redis:$tag" | awk '{printf "%.1f MB", $1/1e6}')"
