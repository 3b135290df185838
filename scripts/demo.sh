#!/bin/sh
# A real cron run on the built-in defaults, with nothing to install: no mail
# server (--nomail prints the alerts), no Redis (the local heartbeat store).
# It starts `checker serve` as a local HTTP endpoint, runs `cron minute`
# against it and a closed port, and shows the result.
set -eu
bin=$(cd "$(dirname "${1:-bin/checker}")" && pwd)/$(basename "${1:-bin/checker}")
dir=$(mktemp -d "${TMPDIR:-/tmp}/checker-demo.XXXXXX")
port=$(( 20000 + $$ % 20000 ))
cat > "$dir/settings.cfg" <<CFG
# Everything not set here takes its default.
[serve]
listen = 127.0.0.1:$port

[http:local-serve]
url = http://127.0.0.1:$port/status

[tcp:nothing-listens-here]
target = 127.0.0.1:9

[heartbeat:demo-script]
CFG
"$bin" -f "$dir/settings.cfg" --nomail serve 2>"$dir/serve.log" &
serve=$!
trap 'kill $serve 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until "$bin" check tcp "127.0.0.1:$port" --timeout 1s >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 50 ] || { cat "$dir/serve.log"; exit 1; }; sleep 0.1
done
"$bin" -f "$dir/settings.cfg" --nomail heartbeat publish --service demo-script --once

echo "== checker --nomail cron minute   (alerts are printed instead of mailed)"
"$bin" -f "$dir/settings.cfg" --nomail cron minute
echo
echo "== checker status"
# status exits 1 when a job shown is failing, as the closed port is.
"$bin" -f "$dir/settings.cfg" --nomail status || true
echo
echo "== what a peer sees: GET http://127.0.0.1:$port/"
"$bin" check peer "http://127.0.0.1:$port/"
