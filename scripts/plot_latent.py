#!/usr/bin/env python
"""Latent-space figures of a run: python scripts/plot_latent.py RUN_DIR"""
import sys

from pyrovae.cli import plot_latent_main

if __name__ == "__main__":
    sys.exit(plot_latent_main())
