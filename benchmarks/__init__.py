"""Benchmarks and paper tables of pyrovae: programs run from scripts/, not installed with the package."""
