"""`python -m benchmarks.tracing_overhead`: the old name of `benchmarks.costs.tracing_overhead`."""

from benchmarks.costs.tracing_overhead import main

if __name__ == "__main__":
    main()
