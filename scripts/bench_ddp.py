#!/usr/bin/env python
"""Data-parallel throughput, 1 vs N processes: python scripts/bench_ddp.py [--cuda] [--data-dir DIR]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_ddp", "main"))
