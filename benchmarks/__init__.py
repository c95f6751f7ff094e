"""keel's benchmarks: `python -m benchmarks` (or `make bench`) appends their results to RESULTS.md."""
