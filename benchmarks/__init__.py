"""keel's benchmarks: `make bench` (benchmarks.suite: issue 14's targets against `create_agent`, recorded in
RESULTS.md), `make bench-quick` (the same, reduced, in CI) and `make bench-keel` (`python -m benchmarks`:
keel's own overhead, guard and memory benchmarks)."""
