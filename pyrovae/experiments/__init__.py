"""Programs that use the library, one per script in ``scripts/``: benchmark, ELBO comparison,
evaluation and latent figures of a run, NLL table, data-parallel throughput. The library never
imports this package."""
