"""The conditional VAE and M2 as Pyro programs: M2's enumerated loss is the explicit sum over the
classes written by hand (value and gradient), labelled and hidden-label rows in one minibatch are
weighted as the step says, its evaluation matches its training loss and bounds log p(x), and a
CVAE's samples and scores depend on the label."""
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.errors import ConfigError, DataError
from pyrovae.infer.elbos import make_elbo
from pyrovae.infer.enum_elbo import make_enum_elbo
from pyrovae.infer.evaluation import elbo, log_likelihood
from pyrovae.infer.labelled_step import LabelledSVIStep
from pyrovae.infer.svi import make_optimizer
from pyrovae.model.labelled import CVAE
from pyrovae.model.m2 import M2


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = M2(x_dim=6, num_classes=3, z_dim=2, hidden=(5,), alpha=0.0, image_shape=None)
    x = torch.bernoulli(torch.rand(4, 6, generator=torch.Generator().manual_seed(1)))
    return model, x


def _loss(model, *args, **kwargs):
    with model.local_params():
        return make_enum_elbo(1).differentiable_loss(model.model, model.guide, *args, **kwargs)


def _by_hand(model, x):
    r"""-sum_n U(x_n), U = sum_y q(y|x) [log p(x|y,z_y) + log p(y) + log p(z_y) - log q(z_y|x,y) - log q(y|x)],
    with the z draws of the guide's enumerated pass: shape (K, N, z_dim), in the same order."""
    k, n = model.num_classes, len(x)
    log_q_y = torch.log_softmax(model.classifier(x), dim=-1)  # (N, K)
    classes = torch.arange(k).view(k, 1).expand(k, n)  # (K, N)
    loc, scale = model.encoder(torch.cat([x.expand(k, n, -1), torch.eye(k)[classes]], dim=-1))  # (K, N, z_dim)
    q_z = dist.Normal(loc, scale).to_event(1)
    z = q_z.rsample()  # (K, N, z_dim): the draws TraceEnum_ELBO's guide makes from the same random state
    logits = model.decoder(torch.cat([z, torch.eye(k)[classes]], dim=-1))
    log_px = dist.Bernoulli(logits=logits).to_event(1).log_prob(x)  # (K, N)
    log_pz = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1).log_prob(z)
    inner = log_px - torch.log(torch.tensor(float(k))) + log_pz - q_z.log_prob(z) - log_q_y.T  # (K, N)
    return -(log_q_y.T.exp() * inner).sum()


def test_the_enumerated_loss_is_the_explicit_sum_over_classes(tiny):
    model, x = tiny
    params = list(model.parameters())
    pyro.set_rng_seed(3)
    loss = _loss(model, x)  # every label hidden
    grads = torch.autograd.grad(loss, params)
    pyro.set_rng_seed(3)
    hand = _by_hand(model, x)
    hand_grads = torch.autograd.grad(hand, params)
    assert loss.item() == pytest.approx(hand.item(), rel=1e-6)
    for a, b in zip(grads, hand_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_labelled_rows_are_weighted_by_the_labelled_scale(tiny):
    """One minibatch of 2 hidden-label rows and 2 labelled rows weighted by s is the hidden rows'
    loss plus s times the labelled rows' loss (the same draws), the classification term included."""
    model, x = tiny
    model.alpha = 0.7
    y = torch.tensor([-1, -1, 2, 0])
    pyro.set_rng_seed(5)
    mixed = _loss(model, x, y, split=2, labelled_scale=3.0)
    pyro.set_rng_seed(5)  # the guide draws the hidden rows' z first, then the labelled rows'
    hidden = _loss(model, x[:2])
    labelled = _loss(model, x[2:], y[2:], split=0)
    assert mixed.item() == pytest.approx(hidden.item() + 3.0 * labelled.item(), rel=1e-6)
    with model.local_params():  # the classification term is alpha * -log q(y|x) of the labelled rows
        classified = -dist.Categorical(logits=model.classifier(x[2:])).log_prob(y[2:]).sum()
    model.alpha = 0.0
    pyro.set_rng_seed(5)
    _loss(model, x[:2])
    without = _loss(model, x[2:], y[2:], split=0)
    assert labelled.item() - without.item() == pytest.approx(0.7 * classified.item(), rel=1e-5)


def test_the_step_adds_labelled_rows_with_the_weight_that_keeps_the_epoch_unbiased():
    model = M2(x_dim=6, num_classes=3, z_dim=2, hidden=(5,), image_shape=None)
    hidden_labels = torch.full((90,), -1)  # N_u = 90 rows with hidden labels
    labelled = (torch.rand(12, 6), torch.tensor([0, 1, 2] * 4))  # N_l = 12 labelled rows
    step = LabelledSVIStep(model, make_enum_elbo(1), make_optimizer(model.parameters(), 1e-3), hidden_labels,
                           labelled, extra=4)
    x, program = step.program(torch.rand(10, 6), torch.arange(10))  # B_u = 10
    assert x.shape == (14, 6) and program["split"] == 10
    assert program["labelled_scale"] == pytest.approx(10 * 12 / (90 * 4))  # (B_u / N_u) (N_l / b_l)
    assert (program["y"][:10] == -1).all() and (program["y"][10:] >= 0).all()
    assert any(torch.equal(x[10], row) for row in labelled[0])  # the added rows are labelled rows


def test_evaluation_scores_u_and_bounds_log_p_x(tiny):
    model, x = tiny
    split = elbo(model, x, num_particles=4000, analytic_kl=False)
    pyro.set_rng_seed(0)
    loss = torch.stack([_loss(model, x).detach() for _ in range(2000)]).mean()  # the training loss, averaged
    log_p = log_likelihood(model, x, num_samples=4000)
    assert split.elbo.sum().item() == pytest.approx(-loss.item(), abs=0.05)  # the same U(x), two ways
    analytic = elbo(model, x, num_particles=4000, analytic_kl=True)
    assert torch.allclose(analytic.elbo, split.elbo, atol=0.05)
    assert (log_p >= split.elbo - 0.02).all()  # log p(x) with y summed inside is above the bound


def test_m2_classifies_and_refuses_bad_settings(tiny):
    model, x = tiny
    probs = model.classify(x)
    assert probs.shape == (4, 3) and torch.allclose(probs.sum(-1), torch.ones(4))
    with pytest.raises(ConfigError, match="alpha must be a non-negative number"):
        M2(x_dim=6, num_classes=3, alpha=-1.0)
    with pytest.raises(ConfigError, match="takes --arch mlp or gated"):
        M2(x_dim=784, num_classes=3, arch="conv")
    with pytest.raises(DataError, match="labels must be integers from -1 to 2"):
        elbo(model, x, y=torch.tensor([0, 1, 2, 3]))


def test_a_cvae_depends_on_its_label():
    torch.manual_seed(0)
    model = CVAE(x_dim=6, num_classes=3, z_dim=2, hidden=(5,), image_shape=None)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    zero, two = model.sample(5, y=0, generator=g()), model.sample(5, y=2, generator=g())
    assert zero.shape == (5, 6) and not torch.allclose(zero, two)
    assert torch.allclose(model.sample(5, y=0, generator=g()), zero)  # the same z, the same class
    x = torch.bernoulli(torch.rand(4, 6, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        a = elbo(model, x, y=torch.tensor([0, 0, 0, 0]), num_particles=100).elbo
        b = elbo(model, x, y=torch.tensor([1, 1, 1, 1]), num_particles=100).elbo
    assert not torch.allclose(a, b)
    with model.local_params():
        loss = make_elbo("meanfield", 1).differentiable_loss(model.model, model.guide, x, y=torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(loss)
    with pytest.raises(DataError, match="needs the rows' class labels"):
        elbo(model, x)
