"""Inference: ELBO estimators, the SVI step and epoch loop, its compiled and data-parallel forms,
and evaluation (ELBO split, importance-sampled log-likelihood, active units)."""
