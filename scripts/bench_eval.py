#!/usr/bin/env python
"""Importance-sampled log p(x) against the floor of its matrix products: python scripts/bench_eval.py [--num-samples 5000]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_eval", "main"))
