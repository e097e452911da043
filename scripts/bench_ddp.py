#!/usr/bin/env python
"""Data-parallel throughput, 1 vs N processes: python scripts/bench_ddp.py [--cuda] [--data-dir DIR]"""
import sys

try:
    from pyrovae.cli import bench_ddp_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(bench_ddp_main())
