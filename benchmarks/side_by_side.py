"""`python -m benchmarks.side_by_side`: the old name of `benchmarks.suite.side_by_side`."""

from benchmarks.suite.side_by_side import main

if __name__ == "__main__":
    main()
