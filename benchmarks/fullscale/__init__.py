"""The full-size rehearsal, the memory fits, and the smallest cgroup each step completes in.

See docs/fullscale.md.
"""
