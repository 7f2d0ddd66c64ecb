#!/usr/bin/env bash
# make demo: boot the lab host demo1 (reused if it runs), converge playbooks/site.yml on it, show the recap.
# The host stays up for a look around: `python -m lab ssh demo1`; remove it with `python -m lab down demo1`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
HOST=${DEMO_HOST:-demo1}

echo ">> lab host $HOST"
python -m lab up --reuse "$HOST"

echo ">> playbooks/site.yml on $HOST"
ansible-playbook -i inventories/lab playbooks/site.yml --limit "$HOST"

echo ">> $HOST is up: python -m lab ssh $HOST | python -m lab down $HOST"
