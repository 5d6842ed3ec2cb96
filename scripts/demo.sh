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
NAME=demo KEEP_VAR=DEMO_KEEP_LAB . scripts/lab-session.sh
bash test/lab/lab.sh bigdata
node dist/test/lab/demo.js
