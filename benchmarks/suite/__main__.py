"""`python -m benchmarks.suite`: run the suite (`run.py`)."""

from benchmarks.suite.run import main

main()
