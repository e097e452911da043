#!/usr/bin/env python
"""Trace_ELBO vs TraceMeanField_ELBO: ``python scripts/compare_elbo.py [--cuda] [--data-dir DIR]``.

Writes <out>/{table.md,metrics.json,curves.png,grad_variance.png} (default --out runs/elbo_comparison)."""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("benchmarks.compare_elbo", "main"))
