"""A short training on real digits improves the test ELBO by a stated margin."""
import math

import torch

import pyrovae
from pyrovae.data.prepare import TEST_SET_SEED


def factorized_baseline(train_x, test_x):
    """Test log-likelihood per datapoint of the best independent-pixel Bernoulli model,
    p_d = mean training pixel (smoothed), scored on the binarized test set: what a model
    that ignores z can reach at best."""
    p = ((train_x.sum(0) + 1) / (len(train_x) + 2)).clamp(1e-6, 1 - 1e-6)
    return torch.distributions.Bernoulli(probs=p).log_prob(test_x).sum(-1).mean().item()


def test_short_training_beats_untrained_and_factorized_models(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=6, z_dim=20, out=str(tmp_path / "run"), progress=False, test_frequency=1)
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    history = metrics["history"]
    test_x = torch.bernoulli(mnist_sample.test_x, generator=torch.Generator().manual_seed(TEST_SET_SEED))
    untrained = -784 * math.log(2)  # about -543: logits near 0 give p = 1/2 per pixel
    baseline = factorized_baseline(mnist_sample.train_x[:3600], test_x)  # about -206 nats; the run's training digits
    assert -230 < baseline < -180
    # After the first epoch the test ELBO has already left the untrained level far behind
    # and keeps rising; after 6 epochs (3,600 digits, 400 held out) it beats the best model that
    # ignores the latent code by more than 10 nats.
    assert history[0]["test_elbo"] > untrained + 200
    assert metrics["test_elbo"] > history[0]["test_elbo"] + 20
    assert metrics["test_elbo"] > baseline + 10, (metrics["test_elbo"], baseline)
    assert metrics["dataset"]["num_train"] == 3600 and metrics["dataset"]["num_test"] == 1000
    assert metrics["dataset"]["num_valid"] == 400
