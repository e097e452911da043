#!/usr/bin/env python
"""The test-NLL table: python scripts/nll_table.py RUN_DIR [RUN_DIR ...] [--out runs/nll_table]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.nll_table", "main"))
