#!/bin/sh
# A real run of the daemon for docs/images: two reference grandmasters (local CLOCK_REALTIME,
# NTP on 127.0.0.2 and 127.0.0.4) and an agent following both (priority 1, then 2), recording
# with --record. After LOCKED the preferred grandmaster is stopped: HOLDOVER, then fail-over
# to the second one. No root, loopback only, no clock is touched.
#
#   sh deploy/examples/loopback-failover-run.sh OUT_DIR [LOCKED_S] [AFTER_S]
#   netclock plot OUT_DIR/agent.jsonl --out OUT_DIR/agent.png
#
# Every process shares CLOCK_REALTIME, so the truth is known: the script appends
# true_error_ns = t_net_ns - CLOCK_REALTIME(t_mono_ns) to each line (docs/run-record.md), from
# the REALTIME - MONOTONIC offset read before and after the run (it refuses if that moved).
set -eu
out=${1:?OUT_DIR}; locked_s=${2:-30}; after_s=${3:-20}
py=${PYTHON:-python3}
mkdir -p "$out"/gm1 "$out"/gm2 "$out"/agent
rm -f "$out"/agent.jsonl
gm() {  # name address port
    cat >"$out/$1.toml" <<EOT
[reference]
enabled = true
interval-s = 0.5
[ntp]
serve = true
listen-address = "$2"
listen-port = $3
[publish]
shm-path = "$out/$1/clock.shm"
[metrics]
enabled = false
EOT
}
gm gm1 127.0.0.2 41231
gm gm2 127.0.0.4 41232
cat >"$out/agent.toml" <<EOT
[[ntp.server]]
address = "127.0.0.2"
port = 41231
minpoll = -4
maxpoll = -4
xleave = true
priority = 1
[[ntp.server]]
address = "127.0.0.4"
port = 41232
minpoll = -4
maxpoll = -4
xleave = true
priority = 2
[holdover]
source-timeout-s = 1.0
failover-after-s = 8.0
[publish]
shm-path = "$out/agent/clock.shm"
[metrics]
enabled = false
EOT
offset() {  # REALTIME - MONOTONIC from the tightest of 1000 mono/real/mono brackets
    "$py" -c 'import time
m, r = time.monotonic_ns, time.time_ns
def one():
    a = m(); t = r(); b = m()
    return b - a, t - (a + b) // 2
print(min(one() for _ in range(1000))[1])'
}
before=$(offset)
"$py" -m netclock run --config "$out/gm1.toml" 2>"$out/gm1.log" & gm1=$!
"$py" -m netclock run --config "$out/gm2.toml" 2>"$out/gm2.log" & gm2=$!
sleep 1
"$py" -m netclock run --config "$out/agent.toml" --record "$out/agent.jsonl" 2>"$out/agent.log" & agent=$!
sleep "$locked_s"
kill -TERM "$gm1"; wait "$gm1" || true
sleep "$after_s"
kill -TERM "$agent"; wait "$agent" || true
kill -TERM "$gm2"; wait "$gm2" || true
after=$(offset)
"$py" - "$out/agent.jsonl" "$before" "$after" <<'EOT'
import json, sys
path, before, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if abs(after - before) > 2_000:
    sys.exit(f"CLOCK_REALTIME moved by {after - before} ns during the run: no true error")
off = (before + after) // 2
lines = []
for raw in open(path, encoding="utf-8"):
    obj = json.loads(raw)
    if "t_mono_ns" in obj and obj.get("t_net_ns") is not None:
        obj["true_error_ns"] = obj["t_net_ns"] - (obj["t_mono_ns"] + off)
    lines.append(json.dumps(obj, separators=(",", ":")))
open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n")
print(f"{path}: {len(lines)} lines, REALTIME-MONOTONIC moved {after - before} ns")
EOT
