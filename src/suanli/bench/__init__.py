"""Generated networks and workloads for benchmarks and what-if studies."""
