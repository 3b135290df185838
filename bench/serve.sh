#!/bin/sh
# bench/serve.sh: `checker serve` under load (bench/cmd/serveload): GET /
# requests per second with an empty state and with 10,000 jobs, then floods
# (GET / and /status, idle keep-alive connections beyond the cap, slowloris,
# 2,000 pipelined GET / per connection never read, push bodies that never
# come, /ui/ and /metrics read and unread) while a peer-style prober on
# 127.0.0.2 asks GET / with a 1 s timeout; with serve's RSS after each and
# 3 s later. The 10,000 jobs are tcp jobs to closed ports, run once by
# `cron minute`. All on loopback; the load generator shares the
# machine's CPUs with serve, so requests/s is a floor.
#
# Usage: bench/serve.sh [serveload flags: -for 5s -conns 32 -idle 10000 -slow 5000
#        -rate 1500 -pipelined 15000 -slowpush 15000 -only TEXT]
# Environment: GO (go), CHECKER_BIN (a built binary; default: build one).
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
bin=${CHECKER_BIN:-}
if [ -z "$bin" ]; then
	bin=$tmp/checker
	$GO build -trimpath -o "$bin" .
fi
$GO build -o "$tmp/serveload" ./bench/cmd/serveload
# The floods hold more than 10,000 sockets at once.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== checker serve under load: $($GO version | cut -d' ' -f3), $(nproc) CPUs"
"$tmp/serveload" -bin "$bin" "$@"
