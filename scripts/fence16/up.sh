#!/usr/bin/env bash
# Starts the hold proxy (broker -> controller) and this helper's Kafka whose broker reaches its
# controller through the proxy (controller.quorum.voters names the proxy port).
set -euo pipefail
source /work/wt-fence/scripts/fence16/env.sh
echo "controller.quorum.voters=1@127.0.0.1:$PROXY_PORT" > "$RUNS/extra.properties"
if [ ! -f "$RUNS/proxy.pid" ] || ! kill -0 "$(cat "$RUNS/proxy.pid")" 2>/dev/null; then
  PIDFILE="$RUNS/proxy.pid" nohup node "$F16/hold-proxy.js" "$PROXY_PORT" "$KAFKA_CONTROLLER_PORT" 6000 60000 >>"$RUNS/proxy.log" 2>&1 < /dev/null &
  sleep 1
fi
KAFKA_EXTRA_PROPS="$RUNS/extra.properties" scripts/stack up kafka
