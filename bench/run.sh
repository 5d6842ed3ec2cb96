#!/usr/bin/env bash
# npm run bench (as root): installs what the lab and the peers need (Debian
# packages: nfs-ganesha, samba, libnfs-utils, smbclient, iperf3, haproxy,
# socat), builds, brings the lab up, runs bench/src/main.ts and takes the
# lab down again, whatever happens. Settings: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=bench KEEP_VAR=BENCH_KEEP_LAB . scripts/lab-session.sh
# 10,000 idle connections through a proxy hold 20,000 descriptors in it, and
# as many in the guest's client and the backend's sink.
ulimit -Hn 262144 2>/dev/null || echo "bench: cannot raise the open-files limit (now $(ulimit -Hn)); fewer idle connections"
ulimit -n "$(ulimit -Hn)"
node dist/bench/src/main.js
