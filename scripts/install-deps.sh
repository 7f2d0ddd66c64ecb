#!/usr/bin/env bash
# Install the Debian packages the tests, the demo and the lab need. Idempotent: apt runs only when something is missing.
set -euo pipefail
PACKAGES=(
  debootstrap systemd-container zstd apt-cacher-ng openssh-client iproute2 nftables
  postgresql-15 postgresql-client-15 rsync cron redis-server
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages (${missing[*]}); run as root or install them with apt-get" >&2
  exit 1
fi
echo ">> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
