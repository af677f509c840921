#!/usr/bin/env bash
# buildah (builds and runs OCI images without a daemon) and debootstrap (makes the stand-in
# base image from Debian packages, since no container registry is reachable here), both from
# Debian's packages, for tests/image/. Installed system-wide (buildah needs its config under
# /etc/containers); the image storage the tests use is $MLWARDEN_PEERS/buildah/storage.conf.
# Idempotent; safe to run concurrently (flock). Needs root and apt, as on the CI machine.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
mkdir -p "$peers"
exec 9>"$peers/.buildah.lock"
flock 9
ready() { buildah --version >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; }
if ! ready; then
  [ "$(id -u)" = 0 ] || { echo "buildah: not installed, and installing it needs root (apt-get install buildah debootstrap)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -q -y -o DPkg::Lock::Timeout=300 --no-install-recommends)
  "${apt[@]}" install buildah debootstrap >/dev/null 2>&1 || {
    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null && "${apt[@]}" install buildah debootstrap >/dev/null; }
fi
ready || { echo "buildah: installed but does not run" >&2; exit 1; }
# The tests' image storage: overlay where this kernel lets us mount one (a layer costs only
# what it changes), else vfs (every layer a full copy: about 5x the disk, twice the build time).
conf=$peers/buildah/storage.conf
if [ ! -f "$conf" ]; then
  mkdir -p "$peers/buildah"
  probe=$(mktemp -d "$peers/buildah/.probe.XXXXXX")
  mkdir "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  driver=vfs
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"; driver=overlay
  fi
  rm -rf "$probe"
  printf '[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$driver" "$peers/buildah/storage-$driver" "$peers/buildah/run-$driver" > "$conf.tmp"
  mv "$conf.tmp" "$conf"
fi
CONTAINERS_STORAGE_CONF=$conf buildah images >/dev/null || { echo "buildah: cannot use the storage in $conf" >&2; exit 1; }
echo "buildah ready: $(buildah --version), storage $conf ($(sed -n 's/^driver = "\(.*\)"/\1/p' "$conf")); debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
