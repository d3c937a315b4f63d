"""`python -m benchmarks.public_space`: run the load scenarios (`load.py`)."""

from benchmarks.public_space.load import main

main()
