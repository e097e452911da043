#!/usr/bin/env python
"""The trained guide over a data set: python scripts/encode.py RUN_DIR DATA --out latents.npz [--score] [--num-samples K]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli", "encode_main"))
