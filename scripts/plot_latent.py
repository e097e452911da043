#!/usr/bin/env python
"""Latent-space figures of a run: python scripts/plot_latent.py RUN_DIR"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli", "plot_latent_main"))
