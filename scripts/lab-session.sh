# Sourced by scripts/demo.sh and bench/run.sh: what both need before they run,
# on a fresh machine, as root: node modules, a build, the lab's Debian
# packages, the lab itself, and the lab taken down again on exit (unless the
# variable named by $KEEP_VAR is 1).
#   NAME=demo KEEP_VAR=DEMO_KEEP_LAB . scripts/lab-session.sh
# Kept in globals: the trap runs after this file's temporary NAME/KEEP_VAR are gone.
LAB_SESSION_NAME=$NAME
LAB_SESSION_KEEP=$KEEP_VAR
[ "$(id -u)" = 0 ] || { echo "$LAB_SESSION_NAME: must run as root (network namespaces, iptables)" >&2; exit 1; }

if [ ! -d node_modules ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
echo "== build"
npx tsc -p tsconfig.json

echo "== lab: install packages, namespaces, servers"
bash test/lab/lab.sh install
bash test/lab/lab.sh up

lab_session_cleanup() {
  if [ "${!LAB_SESSION_KEEP:-0}" != 1 ]; then
    echo "== lab down"
    bash test/lab/lab.sh down >/dev/null 2>&1 || true
  fi
}
trap lab_session_cleanup EXIT
