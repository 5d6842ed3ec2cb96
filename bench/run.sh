#!/usr/bin/env bash
# npm run bench (as root): installs what the lab and the peers need (Debian
# packages: nfs-ganesha, samba, libnfs-utils, smbclient, iperf3, haproxy,
# socat), builds, brings the lab up, runs bench/src/main.ts and takes the
# lab down again, whatever happens. Settings: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: must run as root (network namespaces, iptables)" >&2; exit 1; }

if [ ! -d node_modules ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
echo "== build"
npx tsc -p tsconfig.json

echo "== lab: install packages, namespaces, servers"
bash test/lab/lab.sh install
bash test/lab/lab.sh up

cleanup() {
  if [ "${BENCH_KEEP_LAB:-0}" != 1 ]; then
    echo "== lab down"
    bash test/lab/lab.sh down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
# 10,000 idle connections through a proxy hold 20,000 descriptors in it, and
# as many in the guest's client and the backend's sink.
ulimit -Hn 262144 2>/dev/null || echo "bench: cannot raise the open-files limit (now $(ulimit -Hn)); fewer idle connections"
ulimit -n "$(ulimit -Hn)"
node dist/bench/src/main.js
