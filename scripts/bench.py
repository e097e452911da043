#!/usr/bin/env python
"""Step timing, pyrovae vs hand-written PyTorch: python scripts/bench.py [--cuda] [--data-dir DIR]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.bench", "main"))
