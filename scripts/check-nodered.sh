#!/usr/bin/env bash
# Imports examples/node-red/*.json into a real Node-RED (headless, loopback
# only) the way the editor's Import + Deploy does (POST /flows), then plays
# `print2mqtt simulate` against a real bridge and Mosquitto and checks that
# the flows reacted: the notification flow produced its "print complete"
# notification with the snapshot URL (and a "print failed" one for a failed
# webhook, and nothing for the other events), and the dashboard flow fed
# the gauge every progress step.
#
# Needs node and npm (Debian: apt install nodejs npm); installs node-red and
# node-red-dashboard from npm into target/node-red on first use. Uses the
# debug binary (cargo build) unless PRINT2MQTT_BIN names another.
#
# Usage: scripts/check-nodered.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
bin="${PRINT2MQTT_BIN:-$root/target/debug/print2mqtt}"
[ -x "$bin" ] || cargo build --bin print2mqtt
red="$root/target/node-red"
if [ ! -x "$red/node_modules/.bin/node-red" ]; then
    mkdir -p "$red"
    (cd "$red" && npm install --no-audit --no-fund --loglevel=error node-red@4 node-red-dashboard@3)
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_for() { # what, command...
    local what="$1"; shift
    for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what"; return 1
}

mqtt_port="$(port)"; http_port="$(port)"; red_port="$(port)"
mkdir -p "$work/mosquitto" && chmod 777 "$work/mosquitto"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mqtt_port" >"$work/mosquitto/m.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto/m.conf" >/dev/null 2>&1 &
pids+=($!)

(cd "$work" && exec env PRINT2MQTT_MQTT__URL="mqtt://127.0.0.1:$mqtt_port" \
    PRINT2MQTT_HTTP__LISTEN="127.0.0.1:$http_port" PRINT2MQTT_STORAGE__DATA_DIR="$work/data" \
    "$bin") >"$work/bridge.log" 2>&1 &
pids+=($!)
wait_for "the bridge" curl -sf "http://127.0.0.1:$http_port/healthz"

# Node-RED on loopback, no flows yet, no credentials to set up.
mkdir -p "$work/red"
cat >"$work/red/settings.js" <<EOF
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: $red_port,
    flowFile: "flows.json",
    credentialSecret: false,
    logging: { console: { level: "info" } },
};
EOF
"$red/node_modules/.bin/node-red" --userDir "$work/red" --settings "$work/red/settings.js" \
    >"$work/node-red.log" 2>&1 &
pids+=($!)
wait_for "Node-RED" curl -sf "http://127.0.0.1:$red_port/settings"

# Import both flows as shipped, with the broker node pointed at this test's
# Mosquitto, plus one probe: a debug node on the gauge's input.
node - "$mqtt_port" examples/node-red/notify-on-complete.json examples/node-red/progress-dashboard.json \
    >"$work/import.json" <<'EOF'
const fs = require("fs");
const [port, ...files] = process.argv.slice(2);
const nodes = files.flatMap((f) => JSON.parse(fs.readFileSync(f, "utf8")));
for (const n of nodes) {
    if (n.type === "mqtt-broker") { n.broker = "127.0.0.1"; n.port = port; }
}
nodes.push({ id: "probe_gauge_input", type: "debug", z: "p2m_dash_tab", name: "gauge input",
    active: true, tosidebar: false, console: true, complete: "true", targetType: "full", wires: [] });
nodes.find((n) => n.id === "p2m_label").wires[0].push("probe_gauge_input");
process.stdout.write(JSON.stringify(nodes));
EOF
status="$(curl -s -o "$work/deploy.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'Node-RED-Deployment-Type: full' \
    --data-binary "@$work/import.json" "http://127.0.0.1:$red_port/flows")"
[ "$status" = 204 ] || [ "$status" = 200 ] || { echo "deploy answered $status"; cat "$work/deploy.out"; exit 1; }
wait_for "both flows to connect to the broker" \
    bash -c "[ \$(grep -c 'Connected to broker' '$work/node-red.log') -ge 2 ]"
if grep -q 'Waiting for missing types' "$work/node-red.log"; then
    echo "Node-RED lacks node types:"; grep 'missing types' "$work/node-red.log"; exit 1
fi
echo "imported: $(grep -o '"type":"[^"]*"' "$work/import.json" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"

"$bin" simulate --url "http://127.0.0.1:$http_port/webhook" --printer "Sim Printer" --speed 2000 \
    --snapshot-url https://example.org/snapshot.jpg >/dev/null
wait_for "the complete notification" grep -q 'Sim Printer: print complete' "$work/node-red.log"
grep -q "snapshot_url: 'https://example.org/snapshot.jpg'" "$work/node-red.log"
# And a failed print (the switch's second output).
curl -sf -H 'Content-Type: application/json' \
    -d '{"PrinterId":"Sim Printer","PrinterName":"Sim Printer","EventType":3,"FileName":"part.gcode","Error":"Thermal runaway"}' \
    "http://127.0.0.1:$http_port/webhook" >/dev/null
wait_for "the failed notification" grep -q "part.gcode failed: Thermal runaway." "$work/node-red.log"
wait_for "progress 100 at the gauge" grep -q 'payload: 100' "$work/node-red.log"
gauge="$(grep -c "topic: 'sim_printer'" "$work/node-red.log" || true)"
notifications="$(grep -c 'print complete\|print failed' "$work/node-red.log" || true)"
curl -sf "http://127.0.0.1:$red_port/ui/" >/dev/null
echo "the notification flow's output:"
grep -A9 '\[debug:notification\]' "$work/node-red.log" | head -10
echo "notifications: $notifications (expected 2: the simulated print's complete, then the failed one)"
echo "gauge inputs for sim_printer: $gauge"
[ "$notifications" = 2 ]
[ "$gauge" -ge 10 ]
echo "check-nodered: both flows imported into Node-RED and reacted to a simulated print"
