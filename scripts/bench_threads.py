#!/usr/bin/env python
"""The --fast epoch under each OpenMP wait policy: python scripts/bench_threads.py [--data-dir DIR]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_threads", "main"))
