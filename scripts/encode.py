#!/usr/bin/env python
"""The trained guide over a data set: python scripts/encode.py RUN_DIR DATA --out latents.npz [--score] [--num-samples K]"""
import sys

try:
    from pyrovae.cli import encode_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(encode_main())
