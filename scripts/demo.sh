#!/usr/bin/env bash
# make demo: boot the lab host demo1 (reused if it runs), converge playbooks/site.yml on it (PostgreSQL, the bot
# release, its sandbox: fake Telegram/OpenAI/weather on the host), chat with the bot through the sandbox, and
# print the operator health report. The host stays up for a look around:
#   python -m lab ssh demo1        python -m lab down demo1
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
HOST=${DEMO_HOST:-demo1}

echo ">> lab host $HOST"
python -m lab up --reuse "$HOST"

echo ">> playbooks/site.yml on $HOST"
ansible-playbook -i inventories/lab playbooks/site.yml --limit "$HOST"

echo ">> chatting with the bot through the sandbox on $HOST"
python -m lab ssh "$HOST" /opt/psychochauffeur-bot/current/venv/bin/python - < scripts/demo_chat.py

echo
echo ">> psychochauffeur health --comprehensive on $HOST"
# exit 1/2 = warning/critical: shown, not fatal for the demo
python -m lab ssh "$HOST" psychochauffeur health --comprehensive || true

echo
echo ">> $HOST is up: python -m lab ssh $HOST | python -m lab down $HOST"
