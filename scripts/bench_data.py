#!/usr/bin/env python
"""An epoch with the data on the device vs streamed from host memory:
python scripts/bench_data.py [--cuda] [--data-dir DIR] [--out results/bench]"""
import sys

try:
    from pyrovae.experiments.bench_data import main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(main())
