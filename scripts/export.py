#!/usr/bin/env python
"""A run's trained networks as files: python scripts/export.py RUN_DIR --format onnx|torchscript --out DIR"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli.export", "export_main"))
