#!/usr/bin/env bash
# Prometheus, Alertmanager, Pushgateway and blackbox_exporter from Debian's packages,
# unpacked (not installed: their service scripts do nothing useful here) under
# $MLWARDEN_PEERS/promstack. Idempotent; safe to run concurrently (flock).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
dest=$peers/promstack
mkdir -p "$peers"
exec 9>"$peers/.promstack.lock"
flock 9
bins=(prometheus alertmanager pushgateway blackbox_exporter)
have=1
for b in "${bins[@]}"; do [ -x "$dest/bin/$b" ] || have=0; done
if [ $have = 0 ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus prometheus-alertmanager prometheus-pushgateway \
      prometheus-blackbox-exporter >/dev/null 2>&1 || { apt-get update -qq >/dev/null && \
      apt-get download prometheus prometheus-alertmanager prometheus-pushgateway \
      prometheus-blackbox-exporter >/dev/null; }; })
  mkdir -p "$dest/root" "$dest/bin"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dest/root"; done
  ln -sf "$dest/root/usr/bin/prometheus" "$dest/bin/prometheus"
  ln -sf "$dest/root/usr/bin/prometheus-alertmanager" "$dest/bin/alertmanager"
  ln -sf "$dest/root/usr/bin/prometheus-pushgateway" "$dest/bin/pushgateway"
  ln -sf "$dest/root/usr/bin/prometheus-blackbox-exporter" "$dest/bin/blackbox_exporter"
  rm -rf "$tmp"
fi
# Debian's alertmanager reads its default templates (default.tmpl, and email.tmpl once a
# receiver is configured) from a fixed path.
for tmpl in /usr/share/prometheus/alertmanager/default.tmpl /usr/share/prometheus/alertmanager/email.tmpl; do
  if [ ! -f "$tmpl" ] && [ -f "$dest/root$tmpl" ]; then
    mkdir -p "$(dirname "$tmpl")" && cp "$dest/root$tmpl" "$tmpl"
  fi
done
for b in "${bins[@]}"; do "$dest/bin/$b" --version >/dev/null 2>&1 || { echo "promstack: $b does not run" >&2; exit 1; }; done
echo "promstack ready in $dest/bin"
