#!/usr/bin/env python
"""Importance-sampled log p(x) against the floor of its matrix products: python scripts/bench_eval.py [--num-samples 5000]"""
import os
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

# the repository root, for the benchmarks package beside pyrovae (until _startup.run puts it on sys.path itself)
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_eval", "main"))
