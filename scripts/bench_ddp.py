#!/usr/bin/env python
"""Data-parallel throughput, 1 vs N processes: python scripts/bench_ddp.py [--cuda] [--data-dir DIR]"""
import sys

from pyrovae.cli import bench_ddp_main

if __name__ == "__main__":
    sys.exit(bench_ddp_main())
