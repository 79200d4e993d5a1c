#!/usr/bin/env bash
# bench/run.sh — runs every benchmark of the project (memstore, SQLite,
# PostgreSQL, MariaDB) with -count=$COUNT (default 6), writes the raw
# results and a benchstat table under bench/raw/<timestamp>/, and prints the
# table. PostgreSQL and MariaDB must be reachable (see README); large
# fixtures (1 M grants on SQL, 1 M events) are opt-in:
#
#   COUNT=6 bash bench/run.sh                        # everything, default sizes
#   SUPPORTACCESS_BENCH_LARGE=1 bash bench/run.sh    # + 1 M-grant Check on SQL
#   SUPPORTACCESS_BENCH_VERIFY_EVENTS=1000000 bash bench/run.sh
#   BENCH='Check' bash bench/run.sh                  # a subset (go test -bench regexp)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
count="${COUNT:-6}"
pattern="${BENCH:-.}"
out="bench/raw/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
export SUPPORTACCESS_REQUIRE_BACKENDS=1
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
{
	echo "# $(date -u) $(go version) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# go test -run '^\$' -bench '$pattern' -benchmem -count=$count -timeout 0 ./..."
} > "$out/raw.txt"
go test -run '^$' -bench "$pattern" -benchmem -count="$count" -timeout 0 ./... | tee -a "$out/raw.txt"
benchstat "$out/raw.txt" > "$out/benchstat.txt"
cat "$out/benchstat.txt"
echo "raw: $out/raw.txt  table: $out/benchstat.txt"
