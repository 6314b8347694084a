"""Reference GANs: shapes, packing, the losses and the gradient penalty against hand-computed values, and the
GAN recipe end to end on a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gendiag.config import CaseError, load_case
from gendiag.recipes.schedules import linear_decay_factor
from gendiag.runner import run_case
from reference_models.gan import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                                  discriminator_loss, frozen, generator_loss, grad_norm, gradient_penalty,
                                  pack_samples, r1_penalty)

CASES = Path(__file__).resolve().parent.parent / "cases"


def test_pack_samples_joins_consecutive_samples() -> None:
    x = torch.arange(8.0).reshape(4, 2)
    assert torch.equal(pack_samples(x, 2), torch.tensor([[0.0, 1, 2, 3], [4, 5, 6, 7]]))
    images = torch.randn(6, 1, 5, 5)
    packed = pack_samples(images, 3)
    assert packed.shape == (2, 3, 5, 5) and torch.equal(packed[1, 2], images[5, 0])
    assert pack_samples(x, 1) is x
    with pytest.raises(ValueError, match="not a multiple of pack=3"):
        pack_samples(x, 3)


def test_mlp_gan_shapes_and_ranges() -> None:
    generator = MLPGenerator(z_dim=100, out_dim=784, hidden=16, depth=3)
    out = generator(torch.randn(5, 100))
    assert out.shape == (5, 784) and out.abs().max() <= 1
    widths = [m.out_features for m in generator.net if isinstance(m, nn.Linear)]
    assert widths == [16, 32, 64, 784]  # the MNIST recipe's doubling widths, scaled down
    discriminator = MLPDiscriminator(in_dim=784, hidden=64, depth=3, pack=4)
    assert discriminator(out.repeat(4, 1)[:20]).shape == (5,)
    assert [m.out_features for m in discriminator.net if isinstance(m, nn.Linear)] == [64, 32, 16, 1]


def test_mlp_generator_activation() -> None:
    leaky = MLPGenerator(z_dim=2, out_dim=2, hidden=8, depth=2, widen=False, output="linear")
    relu = MLPGenerator(z_dim=2, out_dim=2, hidden=8, depth=2, widen=False, output="linear", activation="relu")
    kinds = [[type(m) for m in net.net if isinstance(m, (nn.ReLU, nn.LeakyReLU))] for net in (leaky, relu)]
    assert kinds == [[nn.LeakyReLU] * 2, [nn.ReLU] * 2]
    relu.load_state_dict(leaky.state_dict())  # same parameters, only the nonlinearity differs
    hidden = torch.tensor([[-2.0, 3.0]])
    assert relu.net[1](hidden).tolist() == [[0.0, 3.0]]
    assert torch.allclose(leaky.net[1](hidden), torch.tensor([[-0.4, 3.0]]))
    z = torch.randn(5, 2)
    assert not torch.allclose(relu(z), leaky(z))
    with pytest.raises(ValueError, match="activation must be 'leaky_relu' or 'relu'"):
        MLPGenerator(z_dim=2, out_dim=2, activation="tanh")


def test_conditional_networks_use_the_labels() -> None:
    torch.manual_seed(0)
    generator = MLPGenerator(z_dim=8, out_dim=4, hidden=16, depth=2, n_classes=10)
    z = torch.randn(3, 8)
    assert not torch.allclose(generator(z, torch.tensor([0, 0, 0])), generator(z, torch.tensor([1, 1, 1])))
    with pytest.raises(ValueError, match="needs labels"):
        generator(z)
    with pytest.raises(ValueError, match="packing with label conditioning"):
        MLPDiscriminator(in_dim=4, n_classes=10, pack=2)


def test_dcgan_shapes_and_initialization() -> None:
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(z_dim=100, width=16), DCGANDiscriminator(width=16, pack=2)
    images = generator(torch.randn(4, 100))
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
    assert discriminator(images).shape == (2,)
    conv = next(m for m in discriminator.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.15) and conv.bias.abs().max() == 0


def test_pack_after_judges_each_sample_alone_before_the_join() -> None:
    torch.manual_seed(0)
    discriminator = MLPDiscriminator(in_dim=2, hidden=8, depth=3, narrow=False, dropout=0.0, pack=4, pack_after=2)
    assert [m.in_features for m in discriminator.per_sample if isinstance(m, nn.Linear)] == [2, 8]
    assert [m.in_features for m in discriminator.net if isinstance(m, nn.Linear)] == [32, 8]  # 4 samples × 8
    x = torch.randn(8, 2)
    assert discriminator(x).shape == (2,)
    features = discriminator.per_sample(x)
    moved = x.clone()
    moved[5] += 1.0  # one sample of the second pack: the others' per-sample features stay as they were
    changed = (discriminator.per_sample(moved) != features).any(dim=1)
    assert changed.tolist() == [False] * 5 + [True] + [False] * 2
    plain = MLPDiscriminator(in_dim=2, hidden=8, depth=3, pack=4)
    assert len(plain.per_sample) == 0 and next(iter(plain.net)).in_features == 8  # 0: PacGAN packs raw inputs
    with pytest.raises(ValueError, match="pack_after must be in 0..depth=3"):
        MLPDiscriminator(in_dim=2, depth=3, pack_after=4)


def test_gan_recipe_checks_r1() -> None:
    with pytest.raises(CaseError, match="training.r1_gamma: input should be greater than or equal to 0"):
        load_case(CASES / "gan_grid_fixed.yaml", overrides=["training.r1_gamma=-1"])


def test_spectral_norm_bounds_the_layers() -> None:
    torch.manual_seed(0)
    discriminator = MLPDiscriminator(in_dim=2, hidden=32, depth=2, dropout=0.0, spectral_norm=True)
    for _ in range(20):  # power iterations run in training-mode forward passes
        discriminator(torch.randn(64, 2))
    for layer in (m for m in discriminator.modules() if isinstance(m, nn.Linear)):
        assert torch.linalg.matrix_norm(layer.weight, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_bce_losses_by_hand() -> None:
    real, fake = torch.tensor([10.0]), torch.tensor([0.0])
    # softplus(x) - y·x for the real logit 10 with target 0.9, log 2 for the fake logit 0 with target 0
    expected = math.log1p(math.exp(10.0)) - 9.0 + math.log(2.0)
    assert discriminator_loss("bce", real, fake, real_label=0.9).item() == pytest.approx(expected, rel=1e-6)
    assert generator_loss("bce", torch.tensor([0.0])).item() == pytest.approx(math.log(2.0))


def test_wgan_losses_and_penalty_of_a_linear_critic() -> None:
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert generator_loss("wgan-gp", fake).item() == pytest.approx(0.5)
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    gen = torch.Generator().manual_seed(0)
    penalty = gradient_penalty(lambda x, labels=None: critic(x).squeeze(1), torch.randn(8, 4), torch.randn(8, 4), gen)
    assert penalty.item() == pytest.approx((3.0 - 1.0) ** 2)  # ‖∇D‖ = ‖w‖ = 3 everywhere
    packed = MLPDiscriminator(in_dim=2, hidden=4, depth=1, dropout=0.0, pack=2)
    packed.net = nn.Sequential(critic)  # a linear critic on packed pairs: the gradient of a pair is w
    penalty = gradient_penalty(packed, torch.randn(8, 2), torch.randn(8, 2), gen)
    assert penalty.item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        discriminator_loss("hinge", real, fake)


def test_frozen_discriminator_passes_the_same_generator_gradient_and_keeps_its_own() -> None:
    torch.manual_seed(0)
    generator, discriminator = MLPGenerator(z_dim=2, out_dim=2, hidden=8, output="linear"), MLPDiscriminator(
        in_dim=2, hidden=8, dropout=0.0)
    z = torch.randn(16, 2)
    generator_loss("bce", discriminator(generator(z))).backward()
    expected = [p.grad.clone() for p in generator.parameters()]
    generator.zero_grad(set_to_none=True)
    own = [torch.full_like(p, 7.0) for p in discriminator.parameters()]  # what D's own step left in .grad
    for param, grad in zip(discriminator.parameters(), own):
        param.grad = grad.clone()
    discriminator.net[0].weight.requires_grad_(False)  # already frozen before: stays frozen after
    with frozen(discriminator):
        generator_loss("bce", discriminator(generator(z))).backward()
    for param, grad in zip(generator.parameters(), expected):
        assert torch.equal(param.grad, grad)
    assert all(torch.equal(p.grad, g) for p, g in zip(discriminator.parameters(), own))
    assert [p.requires_grad for p in discriminator.parameters()] == [p is not discriminator.net[0].weight
                                                                    for p in discriminator.parameters()]


def test_r1_penalty_by_hand() -> None:
    real = torch.tensor([[1.0, 2.0], [0.0, -3.0]], requires_grad=True)
    # D(x) = ‖x‖²: ∇D = 2x, so E‖∇D‖² = 4 · (5 + 9) / 2
    assert r1_penalty(real.pow(2).sum(dim=1), real).item() == pytest.approx(28.0)
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 0.0, 4.0]]))
    packed = MLPDiscriminator(in_dim=2, hidden=4, depth=1, dropout=0.0, pack=2)
    packed.net = nn.Sequential(critic)  # a linear D on packed pairs: the gradient of a pair is w, ‖w‖² = 25
    real = torch.randn(6, 2, requires_grad=True)
    assert r1_penalty(packed(real), real, pack=2).item() == pytest.approx(25.0)


def test_grad_norm_by_hand() -> None:
    layer = nn.Linear(2, 1)
    assert grad_norm(layer) == 0.0
    layer(torch.tensor([[3.0, 4.0]])).sum().backward()
    assert grad_norm(layer) == pytest.approx(math.sqrt(9 + 16 + 1))


def test_gan_recipe_runs_a_few_steps(tmp_path: Path) -> None:
    case = load_case(CASES / "gan_ring.yaml", overrides=[
        "training.steps=20", "training.sample_every=10", "sampling.n_samples=200", "model.pack=2",
        "training.loss=wgan-gp", "training.d_steps=2", "training.r1_gamma=1.0", "probes.set=[gan-balance]",
        "probes.strict=true"])
    result = run_case(case, out_root=tmp_path)
    assert result.results["n_modes"] == 8 and 0 <= result.results["modes_captured"] <= 8
    assert 0 <= result.results["high_quality_share"] <= 1
    assert (result.run_dir / "figures" / "samples_vs_modes.png").is_file()
    assert (result.run_dir / "figures" / "gan_balance.png").is_file()


@pytest.mark.slow
def test_learning_rates_decay_linearly_to_the_stated_fraction(tmp_path: Path) -> None:
    case = load_case(CASES / "gan_grid.yaml", overrides=[
        "training.steps=10", "training.lr_decay_from=0.6", "training.lr_decay_to=0.1"])
    training = case.training
    factors = [linear_decay_factor(step, training.steps, training.lr_decay_from, training.lr_decay_to)
               for step in range(1, 11)]
    assert factors[:6] == [1.0] * 6 and factors[-1] == pytest.approx(0.1)
    assert factors[6:] == pytest.approx([1 - 0.9 * k / 4 for k in range(1, 5)])
    default = load_case(CASES / "gan_grid.yaml").training
    assert linear_decay_factor(4000, default.steps, default.lr_decay_from, default.lr_decay_to) == 1.0  # constant
    case = load_case(CASES / "gan_grid_fixed.yaml", overrides=[
        "training.steps=8", "training.sample_every=4", "sampling.n_samples=200", "training.lr_decay_from=0.5",
        "training.lr_decay_to=0.25", "model.pack_after=1", "run.checkpoint_every=8"])
    result = run_case(case, out_root=tmp_path)
    groups = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=False)["optimizers"]
    assert groups["g"]["param_groups"][0]["lr"] == pytest.approx(0.25 * case.training.lr_g)  # the last step's lr
    assert groups["d"]["param_groups"][0]["lr"] == pytest.approx(0.25 * case.training.lr_d)


@pytest.mark.slow
def test_generator_average_is_checkpointed_and_trails_the_generator(tmp_path: Path) -> None:
    overrides = ["training.steps=6", "training.sample_every=3", "sampling.n_samples=200", "run.checkpoint_every=6"]
    averaged = run_case(load_case(CASES / "gan_grid_fixed.yaml", overrides=[*overrides, "training.g_ema=0.9"]),
                        out_root=tmp_path / "ema")
    modules = torch.load(averaged.run_dir / "checkpoints" / "last.pt", weights_only=False)["modules"]
    trained = modules["generator"]
    average = {name.removeprefix("module."): value for name, value in modules["generator_ema"].items()}
    assert average.keys() - {"n_averaged"} == trained.keys()
    first_weight = next(name for name in trained if name.endswith("weight"))
    assert not torch.equal(average[first_weight], trained[first_weight])  # an average of 6 iterates, not the last
    plain = run_case(load_case(CASES / "gan_grid_fixed.yaml", overrides=[*overrides, "training.g_ema=0"]),
                     out_root=tmp_path / "plain")
    assert "generator_ema" not in torch.load(plain.run_dir / "checkpoints" / "last.pt", weights_only=False)["modules"]


def test_gan_recipe_rejects_a_batch_that_packing_cannot_split() -> None:
    with pytest.raises(CaseError, match="batch_size: must be a multiple of model.pack=4"):
        load_case(CASES / "gan_grid_fixed.yaml", overrides=["training.batch_size=30"])


@pytest.mark.slow
def test_conditional_gan_recipe_on_digits(tmp_path: Path) -> None:
    case = load_case(CASES / "cgan_mnist.yaml", overrides=[
        "data.dataset=digits", "data.heldout=300", "training.steps=10", "training.sample_every=5",
        "sampling.n_samples=100", "model.d_hidden=64", "model.g_hidden=32"])
    result = run_case(case, out_root=tmp_path)
    assert 1 <= result.results["classes_found"] <= 10
    assert result.results["frechet"] >= 0 and result.results["frechet_floor"] >= 0
