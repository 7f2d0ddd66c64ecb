#!/usr/bin/env bash
# `molecule test` for every role that has molecule/default (or only the roles named as arguments), one after
# the other on lab hosts. Exits non-zero if any scenario fails; removes the scenarios' lab hosts on any exit.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export PATH="$REPO/.venv/bin:$PATH" ANSIBLE_CONFIG="$REPO/ansible.cfg"

if [ $# -gt 0 ]; then
  roles=("$@")
else
  roles=()
  for d in roles/*/molecule/default; do
    [ -f "$d/molecule.yml" ] && roles+=("$(basename "$(dirname "$(dirname "$d")")")")
  done
fi
[ ${#roles[@]} -gt 0 ] || { echo "no role has molecule/default/molecule.yml"; exit 0; }

# Lab host names of the scenarios' platforms: only these are removed on exit, never other users' hosts.
mapfile -t hosts < <(python - "${roles[@]}" <<'PY'
import sys, yaml
for role in sys.argv[1:]:
    with open(f"roles/{role}/molecule/default/molecule.yml") as fh:
        for platform in (yaml.safe_load(fh) or {}).get("platforms") or []:
            print(platform["name"])
PY
)
cleanup() {
  [ ${#hosts[@]} -gt 0 ] && python -m lab down --missing-ok "${hosts[@]}" >/dev/null 2>&1
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
declare -A took
for role in "${roles[@]}"; do
  echo "=== molecule test: roles/$role"
  start=$SECONDS
  if ! (cd "roles/$role" && molecule test); then
    failed+=("$role")
  fi
  took[$role]=$((SECONDS - start))
done

echo "=== molecule summary"
for role in "${roles[@]}"; do
  state=ok
  for f in "${failed[@]}"; do [ "$f" = "$role" ] && state=FAILED; done
  printf '  %-14s %-7s %4ss\n' "$role" "$state" "${took[$role]}"
done
[ ${#failed[@]} -eq 0 ]
