#!/usr/bin/env python
"""Real data at hand written as a user's own sources (.npy, .csv, a PNG folder):
python scripts/example_data.py OUT_DIR [--mnist-test DIR]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.analysis.example_data", "main"))
