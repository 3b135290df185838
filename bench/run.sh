#!/bin/sh
# bench/run.sh: the evidence that checker is fast. It measures whole
# `checker cron` processes (wall time and peak RSS, from the kernel's
# rusage of each child) against loopback servers that bench/cmd/checkerbench
# starts itself, each scenario several times, and prints one table; then it
# runs the in-process Go benchmarks (state load + save, settings, cron),
# which are what to profile:
#
#   go test -run '^$' -bench CronNothingDue10000 -cpuprofile cpu.out ./jobs/
#   go tool pprof -top -cum jobs.test cpu.out
#
# Usage: bench/run.sh [-runs N] [-run REGEXP] [-keep]
# Environment: GO (go), CHECKER_BIN (a built binary; default: build one into
# a temporary directory), BENCHTIME for the Go benchmarks (1s).
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
$GO build -o "$tmp/checkerbench" ./bench/cmd/checkerbench

echo "== checker processes: $($GO version | cut -d' ' -f3), $(nproc) CPUs"
"$tmp/checkerbench" -bin "$bin" "$@"

echo
echo "== state bookkeeping of a 10,000-job run: claim + record transactions, synced (target ≤ 30 ms)"
echo "   go test -run '^\$' -bench Bookkeeping10000 -count 7 ./jobs/"
$GO test -run '^$' -bench 'Bookkeeping10000$' -benchtime 20x -count 7 ./jobs/ |
	awk '/^BenchmarkBookkeeping10000/ { ms[n++] = $3 / 1e6 }
	     END { if (n == 0) { print "   no result"; exit 1 }
	           for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (ms[j] < ms[i]) { t = ms[i]; ms[i] = ms[j]; ms[j] = t }
	           med = ms[int(n / 2)]
	           printf "   median %.1f ms (min %.1f, max %.1f, %d runs of 20): %s\n", med, ms[0], ms[n-1], n, (med <= 30 ? "met" : "NOT met") }'

echo
echo "== in-process Go benchmarks (for profiling)"
$GO test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" -count 1 ./state/ ./jobs/ ./cmd/ |
	grep -E '^(Benchmark|ok|FAIL|---)'
CHECKER_BIN="$bin" GO="$GO" sh bench/serve.sh
