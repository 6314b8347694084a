"""Reference VAEs: shapes, the loss terms against hand-computed values and torch.distributions, KL annealing, and
the VAE recipe end to end on a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendiag.config import load_case
from gendiag.runner import run_case
from reference_models.vae import ConvVAE, MLPVAE, VAEOutput, annealed_kl_weight, kl_per_dim, reparameterize, vae_loss

CASES = Path(__file__).resolve().parent.parent / "cases"


def test_conv_vae_shapes() -> None:
    model = ConvVAE(latent=20, width=8, hidden=32)
    out = model(torch.rand(3, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert out.decoded.shape == (3, 1, 28, 28) and out.mu.shape == out.logvar.shape == (3, 20)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 28, 28\), got \(3, 1, 8, 8\)"):
        model.encode(torch.rand(3, 1, 8, 8))


def test_bernoulli_loss_by_hand() -> None:
    model = ConvVAE(latent=2, width=4, hidden=8)
    x = torch.rand(2, 1, 28, 28)
    out = VAEOutput(decoded=torch.zeros(2, 1, 28, 28), mu=torch.zeros(2, 2), logvar=torch.zeros(2, 2))
    terms = vae_loss(model, x, out, kl_weight=3.0)
    assert terms.recon.item() == pytest.approx(784 * math.log(2.0), rel=1e-6)  # logit 0: log 2 per pixel
    assert terms.kl.item() == 0.0 and terms.loss.item() == pytest.approx(terms.recon.item())


def test_gaussian_loss_and_kl_weight() -> None:
    model = MLPVAE(dim=2, latent=1, decoder_std=0.5)
    x = torch.tensor([[1.0, 0.0]])
    out = VAEOutput(decoded=torch.zeros(1, 2), mu=torch.tensor([[2.0]]), logvar=torch.tensor([[0.0]]))
    terms = vae_loss(model, x, out, kl_weight=0.5)
    assert terms.recon.item() == pytest.approx(0.5 * (1.0 / 0.5) ** 2)
    assert terms.kl.item() == pytest.approx(2.0)  # 0.5 · μ²
    assert terms.loss.item() == pytest.approx(2.0 + 0.5 * 2.0)


@settings(max_examples=25, deadline=None)
@given(st.floats(-3, 3), st.floats(-4, 2))
def test_kl_matches_torch_distributions(mu: float, logvar: float) -> None:
    posterior = torch.distributions.Normal(torch.tensor(mu), torch.tensor(math.exp(0.5 * logvar)))
    prior = torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0))
    expected = torch.distributions.kl_divergence(posterior, prior).item()
    assert kl_per_dim(torch.tensor([[mu]]), torch.tensor([[logvar]])).item() == pytest.approx(expected, abs=1e-5)


def test_annealed_kl_weight() -> None:
    assert annealed_kl_weight(0.0, 2.0) == 0.0
    assert annealed_kl_weight(1.0, 2.0, final_weight=4.0) == 2.0
    assert annealed_kl_weight(5.0, 2.0) == 1.0
    assert annealed_kl_weight(0.0, 0.0, final_weight=3.0) == 3.0


def test_reparameterize_is_reproducible_and_has_the_right_moments() -> None:
    mu, logvar = torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, reparameterize(mu, logvar, torch.Generator().manual_seed(0)))
    assert z.mean().item() == pytest.approx(2.0, abs=0.02) and z.std().item() == pytest.approx(0.5, abs=0.02)


def test_vae_recipe_on_points(tmp_path: Path) -> None:
    case = load_case(CASES / "vae_mnist.yaml", overrides=[
        "data.dataset=moons", "data.train_size=512", "data.heldout=200", "model.arch=mlp", "model.latent=2",
        "model.hidden=16", "training.epochs=2", "training.batch_size=128", "training.observe_every=2",
        "training.latent_batch=64", "sampling.n_samples=200", "probes.set=[vae-health]", "probes.strict=true"])
    result = run_case(case, out_root=tmp_path)
    assert result.results["latent"] == 2 and 0 <= result.results["active_units"] <= 2
    assert result.results["w2"] > 0 and (result.run_dir / "figures" / "vae_latents.png").is_file()


@pytest.mark.slow
def test_conv_vae_recipe_on_mnist(tmp_path: Path) -> None:
    case = load_case(CASES / "vae_mnist.yaml", overrides=[
        "data.train_size=256", "data.heldout=200", "model.width=8", "model.hidden=32", "training.epochs=1",
        "training.observe_every=1", "training.latent_batch=64", "sampling.n_samples=100"])
    result = run_case(case, out_root=tmp_path)
    assert 1 <= result.results["classes_found"] <= 10 and result.results["frechet_floor"] >= 0
