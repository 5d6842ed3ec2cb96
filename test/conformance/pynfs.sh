#!/usr/bin/env bash
# pynfs (NFSv4.0 and NFSv4.1 server tests) from guest 1 against the lab's
# nfs-ganesha: direct (routed, no gateway), through sharegwd's kernel plane and
# through its proxy plane; then the per-test table and every difference from
# direct (docs/conformance.md, "NFS (pynfs)"). pynfs is not packaged in Debian
# and the project does not vendor it: point PYNFS_DIR at a built copy
# (`./setup.py build` in it; needs python3-ply, python3-gssapi). Not in CI.
#
#   PYNFS_DIR=/path/to/pynfs bash test/conformance/pynfs.sh      (npm run conformance:nfs)
#
# Settings (environment):
#   SGW_PYNFS_PLANES   planes to run (default "direct kernel proxy")
#   SGW_PYNFS_SUITES   "4.0 4.1" (default both)
#   SGW_PYNFS_TESTS    pynfs codes/flags (default "all")
#   SGW_PYNFS_TIMEOUT_S  time box per suite and plane (default 1500)
#   SGW_PYNFS_OUT      results dir (default /tmp/sgw-pynfs-<UTC time>): raw
#                      output per plane and suite, <plane>.json, report.md
#   PYNFS_PYTHON       python with ply + gssapi (default /usr/bin/python3)
# The lab lock is held for each plane's run (about 9 min), not across all
# three, so other users of the lab wait at most one plane. A plane left out
# keeps its earlier <plane>.json in SGW_PYNFS_OUT, so re-running only the
# proxy against an earlier direct run is SGW_PYNFS_OUT=<dir> SGW_PYNFS_PLANES=proxy.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${PYNFS_DIR:-}" ]; then
    echo "conformance:nfs: skipped: PYNFS_DIR is not set (a built public copy of pynfs; see docs/conformance.md)"
    exit 0
fi
for d in nfs4.0 nfs4.1; do
    if [ ! -f "$PYNFS_DIR/$d/testserver.py" ] || [ ! -f "$PYNFS_DIR/$d/xdrdef/nfs4_type.py" ]; then
        echo "conformance:nfs: $PYNFS_DIR/$d is not a built pynfs (run ./setup.py build there)" >&2
        exit 1
    fi
done
[ "$(id -u)" = 0 ] || { echo "conformance:nfs: must run as root (the lab's namespaces)" >&2; exit 1; }

out=${SGW_PYNFS_OUT:-/tmp/sgw-pynfs-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
SGW_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
export SGW_COMMIT
npx tsc -p tsconfig.json

for plane in ${SGW_PYNFS_PLANES:-direct kernel proxy}; do
    flock /tmp/sgwlab.lock bash -c 'bash test/lab/lab.sh up && node dist/test/conformance/pynfs.js run "$0" "$1"' "$plane" "$out"
done
node dist/test/conformance/pynfs.js report "$out"
echo "conformance:nfs: results in $out"
