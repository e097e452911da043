#!/usr/bin/env python
"""Importance-sampled test NLL of a run: python scripts/evaluate.py RUN_DIR [--num-samples 5000] [--cuda]"""
import sys

try:
    from pyrovae.cli import evaluate_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(evaluate_main())
