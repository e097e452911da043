#!/usr/bin/env python
"""M2 against the same classifier on the labels alone:
python scripts/ssl_table.py --dataset fashion-mnist --labels 10 100 --seeds 0 1 2 --out results/ssl/fashion-mnist"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.ssl_table", "main"))
