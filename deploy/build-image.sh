#!/usr/bin/env bash
# Build the agent image and its GPU variant from the Dockerfile with buildah: no Docker daemon,
# and, with --base debian, no container registry either (the base is made here from Debian
# packages with debootstrap). docs/deployment.md has the whole story; `make image` runs this.
#
#   deploy/build-image.sh                      # FROM python:3.12-slim, as `docker build` would
#   deploy/build-image.sh --base debian        # FROM a base made here: Debian minbase + python3
#   deploy/build-image.sh --variant gpu -- --build-arg EXTRAS=postgres   # arguments after -- go to buildah
#
# Images: <tag> (default mlwarden:<version>) and <tag>-gpu. Buildah's settings are its own:
# CONTAINERS_STORAGE_CONF (where images live), STORAGE_DRIVER; BUILDAH_ISOLATION defaults to
# chroot here, which needs no OCI runtime (as root, or in a user namespace: `buildah unshare`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/agent/__init__.py")
tag="mlwarden:$version"
base=""
variant=both
suite=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)
suite=${suite:-bookworm}
mirror=http://deb.debian.org/debian
ca_bundle=""
cache_tag=""
rebuild_base=0
extra=()

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  cat <<EOF

options:
  --base IMAGE|debian  the base of every stage (default: the Dockerfile's python:*-slim);
                       debian: localhost/mlwarden-base:<suite>, made with debootstrap if missing
  --suite NAME         Debian release for --base debian (default: this host's, else bookworm): $suite
  --mirror URL         Debian mirror for --base debian (default: $mirror)
  --rebuild-base       make the Debian base again even if it exists
  --tag NAME           the agent image's name (default: $tag); the GPU variant is NAME-gpu
  --variant V          agent, gpu or both (default: both)
  --ca-bundle FILE     a CA bundle for the build's downloads (a proxy that re-signs TLS): mounted
                       for RUN steps only, never stored in the image; pip in a Debian-made base
                       reads it (python:*-slim's pip keeps its own certificates)
  --cache-tag NAME     also tag the build stages NAME, so that \`buildah rmi --prune\` keeps
                       the dependency layers (they are in no image that runs)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --rebuild-base) rebuild_base=1; shift ;;
    --tag) tag=$2; shift 2 ;;
    --variant) variant=$2; shift 2 ;;
    --ca-bundle) ca_bundle=$2; shift 2 ;;
    --cache-tag) cache_tag=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$variant" in agent|gpu|both) ;; *) echo "build-image.sh: --variant is agent, gpu or both, not $variant" >&2; exit 2 ;; esac
command -v buildah >/dev/null || { echo "build-image.sh: buildah is not installed (Debian/Ubuntu: apt-get install buildah; tests/peers/install-buildah.sh)" >&2; exit 1; }
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

# A base image from Debian packages: minbase (apt, dpkg, coreutils, passwd for useradd) plus
# python3 and its venv module (about 130 MB).
make_debian_base() {
  local name=$1 ctr mnt
  command -v debootstrap >/dev/null || { echo "build-image.sh: --base debian needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  echo "== making $name from Debian $suite ($mirror)"
  ctr=$(buildah from scratch)
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  mnt=$(buildah mount "$ctr")
  debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$mnt" "$mirror" >/dev/null \
    || { echo "build-image.sh: debootstrap failed (see $mnt/debootstrap/debootstrap.log)" >&2; exit 1; }
  # what a container runtime provides (/dev, the host's name and DNS) and what no image needs
  rm -rf "$mnt"/dev/* "$mnt"/etc/hostname "$mnt"/etc/resolv.conf "$mnt"/var/cache/apt/archives/*.deb \
    "$mnt"/var/lib/apt/lists/* "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/* "$mnt"/usr/share/locale/* \
    "$mnt"/var/log/*.log "$mnt"/var/cache/debconf/*-old
  buildah umount "$ctr" >/dev/null
  buildah config --env LANG=C.UTF-8 --cmd '["python3"]' --os linux --arch "$(dpkg --print-architecture 2>/dev/null || echo amd64)" \
    --created-by "debootstrap --variant=minbase --include=python3,python3-venv $suite" \
    --label org.opencontainers.image.description="Debian $suite minbase + python3, made by deploy/build-image.sh" "$ctr"
  buildah commit --quiet --rm "$ctr" "$name" >/dev/null
  trap - EXIT
}

args=(--format docker --layers)   # docker format: OCI image configs have no HEALTHCHECK
if [ "$base" = debian ]; then
  base=localhost/mlwarden-base:$suite
  if [ $rebuild_base = 1 ] || ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    make_debian_base "$base"
  fi
fi
[ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
[ -n "$ca_bundle" ] && args+=(--volume "$(realpath "$ca_bundle"):/etc/ssl/certs/ca-certificates.crt:ro")

build() {  # target name
  echo "== building $2 (target $1)"
  buildah bud "${args[@]}" --target "$1" --tag "$2" "${extra[@]}" "$repo"
}
[ "$variant" = gpu ] || build agent "$tag"
[ "$variant" = agent ] || build gpu "$tag-gpu"
if [ -n "$cache_tag" ]; then  # build-gpu is FROM build: naming it keeps both stages
  build "$([ "$variant" = agent ] && echo build || echo build-gpu)" "$cache_tag" >/dev/null
fi
for name in "$tag" "$tag-gpu"; do
  [ "$variant" != both ] && [ "$variant" != "$([ "$name" = "$tag" ] && echo agent || echo gpu)" ] && continue
  buildah images --noheading --format "built {{.Name}}:{{.Tag}} {{.ID}} {{.Size}}" "$name"
done
