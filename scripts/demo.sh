#!/usr/bin/env bash
# npm run demo: the main job on a fresh machine, as root. Installs what the lab
# needs (Debian packages), builds, brings up the lab (namespaces, nfs-ganesha,
# samba), runs test/lab/demo.ts (sharegwd in the gateway namespace; real copies
# over NFS and SMB; the other domain refused; 1 GiB reads per path) and tears
# the lab down again, whatever happens.
#   DEMO_REPS=N    rounds of the 1 GiB reads (default 3)
#   DEMO_KEEP_LAB=1  leave the lab up afterwards (test/lab/lab.sh down removes it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: must run as root (network namespaces, iptables)" >&2; exit 1; }

if [ ! -d node_modules ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
echo "== build"
npx tsc -p tsconfig.json

echo "== lab: install packages, namespaces, servers"
bash test/lab/lab.sh install
bash test/lab/lab.sh up
bash test/lab/lab.sh bigdata

cleanup() {
  if [ "${DEMO_KEEP_LAB:-0}" != 1 ]; then
    echo "== lab down"
    bash test/lab/lab.sh down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
node dist/test/lab/demo.js
