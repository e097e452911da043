"""A VAE whose log p(x) is exact: the linear-Gaussian VAE.

z ~ N(0, I_K), x | z ~ N(W z + b, s^2 I_D), so p(x) = N(x; b, W W^T + s^2 I_D) exactly. It
is pyrovae.VAE itself with no hidden layer (the decoder is one Linear layer) and a
Gaussian likelihood of fixed scale s."""
import torch

import pyrovae

D, K, S = 6, 2, 0.5


def linear_gaussian_vae(seed=0, good_guide=True):
    torch.manual_seed(seed)
    vae = pyrovae.VAE(x_dim=D, z_dim=K, hidden=(), likelihood="gaussian", likelihood_options={"scale": S})
    W, b = torch.randn(D, K), torch.randn(D)
    dec = vae.decoder.net[0]
    with torch.no_grad():
        dec.weight.copy_(W)
        dec.bias.copy_(b)
        if good_guide:
            # exact posterior: N(Sigma W^T (x - b) / s^2, Sigma), Sigma = (I + W^T W / s^2)^-1;
            # the guide takes its mean and the diagonal of its covariance
            sigma = torch.linalg.inv(torch.eye(K) + W.T @ W / S**2)
            A = sigma @ W.T / S**2  # (K, D)
            enc = vae.encoder.net[0]  # x -> (loc, raw scale), (2K,)
            enc.weight.zero_()
            enc.weight[:K] = A
            enc.bias[:K] = -A @ b
            target = sigma.diagonal().sqrt() - vae.encoder.min_scale
            enc.bias[K:] = target + torch.log(-torch.expm1(-target))  # softplus^-1
    return vae, W, b


def exact_log_p(x, W, b):
    cov = W @ W.T + S**2 * torch.eye(D)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def data(W, b, n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, K, generator=g)
    return z @ W.T + b + S * torch.randn(n, D, generator=g)
