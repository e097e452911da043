#!/usr/bin/env python
"""An epoch with the data on the device vs streamed from host memory:
python scripts/bench_data.py [--cuda] [--data-dir DIR] [--out results/bench]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_data", "main"))
