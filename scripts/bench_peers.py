#!/usr/bin/env python
"""pyrovae against PyTorch by hand, stock Pyro and NumPyro on the CPU: python scripts/bench_peers.py [--data-dir DIR]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench_peers", "main"))
