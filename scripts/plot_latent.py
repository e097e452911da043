#!/usr/bin/env python
"""Latent-space figures of a run: python scripts/plot_latent.py RUN_DIR"""
import sys

try:
    from pyrovae.cli import plot_latent_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(plot_latent_main())
