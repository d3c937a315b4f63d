"""`python -m benchmarks.fullscale`: run the full-size rehearsal (`rehearsal.py`)."""

from benchmarks.fullscale.rehearsal import main

main()
