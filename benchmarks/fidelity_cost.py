"""`python -m benchmarks.fidelity_cost`: the old name of `benchmarks.costs.fidelity_cost`."""

from benchmarks.costs.fidelity_cost import main

if __name__ == "__main__":
    main()
