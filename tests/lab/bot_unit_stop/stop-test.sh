#!/bin/sh
# Inside a lab host (postgres image), as root: run the sandbox and the bot as systemd units, the bot with
# the unit's TimeoutStopSec ($1); load it (a 30 s GPT answer in flight, a 1,500-message burst), then
# `systemctl stop` it. Prints "stop_seconds=N", the journal lines of the stop and the check's JSON.
set -e
export PYTHONPATH=/opt/pc/src:/opt/pc/sp
cd /
systemctl stop pc-bot pc-sandbox 2>/dev/null || true
systemctl reset-failed pc-bot pc-sandbox 2>/dev/null || true
runuser -u postgres -- psql -q -c "DROP DATABASE IF EXISTS bot" -c "DROP ROLE IF EXISTS bot" \
  -c "CREATE ROLE bot LOGIN PASSWORD 'botpw'" -c "CREATE DATABASE bot OWNER bot" 2>/dev/null
rm -rf /var/lib/pc /run/pc-sandbox.json /run/pc-pushed.json
mkdir -p /var/lib/pc/logs
systemd-run -q --unit=pc-sandbox -E PYTHONPATH=$PYTHONPATH /usr/bin/python3 -m bot.sandbox --host 127.0.0.1 \
  --port 8081 --state-file /run/pc-sandbox.json
i=0; until [ -s /run/pc-sandbox.json ]; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done
since=$(date +%s)
# shellcheck disable=SC2046 # one -E per variable
systemd-run -q --unit=pc-bot -p TimeoutStopSec="$1" -E PYTHONPATH=$PYTHONPATH $(python3 /opt/pc/drive.py env) \
  -E DATABASE_URL=postgresql://bot:botpw@127.0.0.1/bot -E BOT_APP_DIR=/var/lib/pc -E BOT_LOG_DIR=/var/lib/pc/logs \
  -E BOT_POLL_TIMEOUT=1 -E BOT_ADMIN_IDS=4242 /usr/bin/python3 -m bot run
python3 /opt/pc/drive.py load
start=$(date +%s.%N)
systemctl stop pc-bot
end=$(date +%s.%N)
echo "stop_seconds=$(python3 -c "print(round($end - $start, 1))")"
journalctl -q -u pc-bot --since="@$since" -o cat | grep -E "timed out|SIGKILL|Failed with|Deactivated" || true
python3 /opt/pc/drive.py check
systemctl stop pc-sandbox
