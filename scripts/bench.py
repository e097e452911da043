#!/usr/bin/env python
"""Step timing, pyrovae vs hand-written PyTorch: python scripts/bench.py [--cuda] [--data-dir DIR]"""
import sys

from pyrovae.cli import bench_main

if __name__ == "__main__":
    sys.exit(bench_main())
