#!/usr/bin/env python
"""Step timing, pyrovae vs hand-written PyTorch: python scripts/bench.py [--cuda] [--data-dir DIR]"""
import sys

try:
    from pyrovae.cli import bench_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(bench_main())
