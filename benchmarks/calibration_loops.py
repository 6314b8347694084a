"""The calibration benchmark's training loops, written as users write them (their own data helper, network
conventions, loop order and sampler), against the public Monitor API only: not the recipes.

Each loop is `loop(run_dir, seed, steps, bug=None) -> Monitor` and returns the Monitor after training and sampling,
before `finish`; `bug` names one realistic fault (see each loop's `BUGS`), None for the healthy loop. Every loop
draws from its own seeded generator, so a seed is one run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import gendiag

Loop = Callable[..., gendiag.Monitor]
BATCH = 128
GUIDANCE = 1.0  # at 1.5, train-sample-input-mismatch warned on the healthy conditional loop at 120 steps (seed 0)
GUIDED_SCALE = 2.0  # the guided DDPM's scale: ε = (1 + s) ε(x, y) - s ε(x, null)
SAMPLES = 256
# The healthy GAN at a latent of 8 and lr 1e-3 for 300 steps left 45-69% of its samples off the blobs and, at seed 4,
# one blob with 1% of them (samples-unlike-data warned: mean 0.51 data spreads off). A latent of 2 at lr 2e-3 for
# 600 steps (the calibration's `LOOP_STEPS`) puts at least 9% on every blob and 13-21% off them, over seeds 0-9,
# none warned: mean offset <= 0.29 spreads, W2 <= 1.56 floors, coverage >= 0.77 of the rows (the floor's 0.98).
GAN_LATENT, GAN_LR = 2, 2e-3


def blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    """The users' toy data: four blobs on a square of side 4, rows in blob order."""
    centers = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
    labels = torch.arange(n) % 4
    return centers[labels.sort().values] + 0.3 * torch.randn(n, 2, generator=generator)


def mlp(inputs: int, outputs: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, outputs))


def flow(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """Flow matching from N(0, I) to the blobs, the network fed cat([x, t]); Euler sampler of 20 steps. Bugs:
    "sampler-still" (each step's result dropped), "sampler-restart" (each step from the start), "x0-input" (the
    source batch fed at every t instead of the interpolant), "no-zero-grad" (gradients never reset),
    "sampler-wide" (the sampler draws its noise 3 times wider than training's), "sampler-sign" (the sampler steps
    against the field: x - v dt), "data-unscaled" (the blobs left in raw units, 20 times larger), "lr-growing" (a
    scheduler that multiplies the learning rate by 1.04 each step instead of decaying it), "lr-to-zero" (a decay
    of 0.95 meant per epoch, stepped every batch), "weight-decay" (Adam's L2 weight_decay=1.0, AdamW's scale)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = mlp(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1.0 if bug == "weight-decay" else 0.0)
    gamma = {"lr-growing": 1.04, "lr-to-zero": 0.95}.get(bug or "", 1.0)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    mon = gendiag.Monitor(run_dir, task="flow", overwrite=True)
    mon.watch(net, "v", inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]),
              call=lambda module, x, t: module(torch.cat([x, t[:, None]], 1)), optimizer=opt)
    for it in range(steps):
        x1, x0 = blobs(BATCH, gen) * (20 if bug == "data-unscaled" else 1), torch.randn(BATCH, 2, generator=gen)
        mon.observe_data(x1)
        mon.observe_data(x0, role="source")
        t = torch.rand(BATCH, 1, generator=gen)
        xt = x0 if bug == "x0-input" else (1 - t) * x0 + t * x1
        loss = (net(torch.cat([xt, t], 1)) - (x1 - x0)).pow(2).mean()
        if bug != "no-zero-grad":
            opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        mon.step(it, loss=loss)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(SAMPLES, 2, generator=gen) * (3 if bug == "sampler-wide" else 1)
        start, n = x.clone(), 20
        for i in range(n):
            v = net(torch.cat([x, torch.full((SAMPLES, 1), i / n)], 1))
            if bug == "sampler-still":
                x_next = x + v / n  # noqa: F841 (the bug: never assigned back)
            elif bug == "sampler-restart":
                x = start + v / n
            elif bug == "sampler-sign":
                x = x - v / n
            else:
                x = x + v / n
    mon.observe_samples(x)
    return mon


def conditional(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """Class-conditional flow matching (label of the blob as a one-hot, all zeros when dropped), network called
    net(x, t, y), a Heun sampler of 10 steps with classifier-free-style pairs of calls at one time (guidance scale
    GUIDANCE); the Monitor is told each row's and each sample's label. Bug: "labels-shuffled" (the data helper pairs
    the rows with labels in another order: no label says which blob its row came from)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = mlp(3 + 4, 2)

        def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.body(torch.cat([x, t.reshape(-1, 1), y], 1))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", overwrite=True)
    mon.watch(net, "v", x_arg=0, t_arg=1, cond_arg=2,
              call=lambda module, x, t: module(x, t, torch.zeros(len(x), 4)), optimizer=opt)
    for it in range(steps):
        x1 = blobs(BATCH, gen)
        labels = (torch.arange(BATCH) % 4).sort().values  # the blobs' rows come in label order
        if bug == "labels-shuffled":
            labels = labels[torch.randperm(BATCH, generator=gen)]
        y = nn.functional.one_hot(labels, 4).float()
        y = y * (torch.rand(BATCH, 1, generator=gen) > 0.1)  # label dropout for guidance
        x0 = torch.randn(BATCH, 2, generator=gen)
        mon.observe_data(x1, cond=labels)
        mon.observe_data(x0, role="source")
        t = torch.rand(BATCH, generator=gen)
        loss = (net((1 - t[:, None]) * x0 + t[:, None] * x1, t, y) - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss)

    def guided(x: torch.Tensor, t: float, y: torch.Tensor) -> torch.Tensor:
        times = torch.full((len(x),), t)
        cond, uncond = net(x, times, y), net(x, times, torch.zeros_like(y))
        return uncond + GUIDANCE * (cond - uncond)

    wanted = torch.arange(SAMPLES) % 4
    with torch.no_grad(), mon.sampling():
        y = nn.functional.one_hot(wanted, 4).float()
        x, n = torch.randn(SAMPLES, 2, generator=gen), 10
        for i in range(n):
            t, dt = i / n, 1 / n
            d1 = guided(x, t, y)
            d2 = guided(x + dt * d1, t + dt, y)
            x = x + dt * (d1 + d2) / 2
    mon.observe_samples(x, cond=wanted)
    return mon


def ddpm(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """DDPM with T = 100 (the linear schedule scaled to 100 steps), the network called net(t, x) with integer t, an
    ancestral sampler from T - 1 down to 0.
    Bugs: "t-quarter" (training draws t from the lowest quarter of the steps), "sampler-still" (each step's result
    dropped), "schedule-short" (betas so small that ᾱ_T stays near 1), "score-target" (the network regresses the
    score -eps / sqrt(1 - ᾱ_t) instead of eps, while the sampler still reads it as eps), "no-sqrt" (x_t mixed with
    ᾱ_t and 1 - ᾱ_t, their square roots left out), "other-noise" (the target is a fresh draw, not the noise in x_t),
    "sampler-reads-x0" (the sampler's posterior mean takes the predicted noise for x0), "ddim-reads-x0" (a DDIM
    sampler that does the same), "ddim-wraps" (a DDIM sampler whose ᾱ_{t-1} at t = 0 reads ᾱ[-1], the schedule's
    end, so its last step returns noise)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    T = 100
    betas = torch.linspace(1e-5, 1e-3, T) if bug == "schedule-short" else torch.linspace(1e-3, 0.2, T)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)

    class Eps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = mlp(3, 2)

        def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.body(torch.cat([x, (t.float() / T)[:, None]], 1))

    net = Eps()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="diffusion", overwrite=True, schedule=abar)
    mon.watch(net, "eps", x_arg=1, t_arg=0, optimizer=opt)
    high = T // 4 if bug == "t-quarter" else T
    for it in range(steps):
        x0 = blobs(BATCH, gen)
        mon.observe_data(x0)
        t = torch.randint(0, high, (BATCH,), generator=gen)
        noise = torch.randn(BATCH, 2, generator=gen)
        a = abar[t][:, None]
        target = {"score-target": -noise / (1 - a).sqrt(),
                  "other-noise": torch.randn(BATCH, 2, generator=gen)}.get(bug or "", noise)
        xt = a * x0 + (1 - a) * noise if bug == "no-sqrt" else a.sqrt() * x0 + (1 - a).sqrt() * noise
        per_sample = (net(t, xt) - target).pow(2).mean(1)
        loss = per_sample.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss, t=t, per_sample_loss=per_sample)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(SAMPLES, 2, generator=gen)
        mon.observe_data(x, role="source")
        for step in reversed(range(T)):
            eps = net(torch.full((SAMPLES,), step, dtype=torch.long), x)
            abar_prev = abar[step - 1] if step > 0 or bug == "ddim-wraps" else torch.tensor(1.0)
            if bug in ("ddim-wraps", "ddim-reads-x0"):
                if bug == "ddim-reads-x0":
                    x0_hat, eps = eps, (x - abar[step].sqrt() * eps) / (1 - abar[step]).sqrt()
                else:
                    x0_hat = (x - (1 - abar[step]).sqrt() * eps) / abar[step].sqrt()
                x = abar_prev.sqrt() * x0_hat + (1 - abar_prev).sqrt() * eps
                continue
            if bug == "sampler-reads-x0":
                x_prev = (abar_prev.sqrt() * betas[step] * eps + alphas[step].sqrt() * (1 - abar_prev) * x) / (
                    1 - abar[step])
            else:
                x_prev = (x - betas[step] / (1 - abar[step]).sqrt() * eps) / alphas[step].sqrt()
            if step > 0:
                x_prev = x_prev + betas[step].sqrt() * torch.randn(SAMPLES, 2, generator=gen)
            if bug != "sampler-still":
                x = x_prev
    mon.observe_samples(x)
    return mon


def gan(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """A GAN on the blobs, D then G each step, BCE with logits, a latent of GAN_LATENT dimensions. Bugs: "g-detached"
    (G's loss computed on the detached fake batch, so no gradient reaches G), "d-sigmoid" (D ends in a Sigmoid while
    the loss takes logits), "d-never-stepped" (D's optimizer step left out), "g-inverted" (G's loss takes the fake
    batch's label, zeros, as D's does: G learns to look fake)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = mlp(GAN_LATENT, 2), mlp(2, 1)
    if bug == "d-sigmoid":
        D = nn.Sequential(D, nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=GAN_LR, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=GAN_LR, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    mon = gendiag.Monitor(run_dir, task="gan", overwrite=True)
    mon.watch(G, "G", t_arg=None, optimizer=opt_g)
    mon.watch(D, "D", t_arg=None, optimizer=opt_d)
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    for it in range(steps):
        real = blobs(BATCH, gen)
        mon.observe_data(real)
        fake = G(torch.randn(BATCH, GAN_LATENT, generator=gen))
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = bce(d_real, ones) + bce(d_fake, zeros)
        opt_d.zero_grad()
        loss_d.backward()
        if bug != "d-never-stepped":
            opt_d.step()
        loss_g = bce(D(fake.detach() if bug == "g-detached" else fake), zeros if bug == "g-inverted" else ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        mon.step(it, loss=loss_g, loss_d=loss_d, loss_g=loss_g, d_real=d_real.detach(), d_fake=d_fake.detach(),
                 d_output="logit")
    with torch.no_grad():
        mon.observe_samples(G(torch.randn(SAMPLES, GAN_LATENT, generator=gen)))
    return mon


def vae(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """A VAE on the blobs lifted to 8-D by a fixed random map, Gaussian decoder. Bugs: "kl-heavy" (the KL term
    weighted by 50, so the posterior collapses to the prior), "kl-sign" (the KL term subtracted)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    lift = torch.randn(2, 8, generator=torch.Generator().manual_seed(1000))
    enc, dec = mlp(8, 8), mlp(4, 8)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="vae", overwrite=True)
    mon.watch(dec, "decoder", t_arg=None, optimizer=opt)
    weight = {"kl-heavy": 50.0, "kl-sign": -1.0}.get(bug or "", 1.0)
    for it in range(steps):
        x = blobs(BATCH, gen) @ lift
        mon.observe_data(x)
        mu, logvar = enc(x).chunk(2, 1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=gen)
        recon = (dec(z) - x).pow(2).sum(1).mean()
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        loss = recon + weight * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss, recon=recon, kl=kl)
        if it % 10 == 0:
            mon.observe_latents(mu.detach(), logvar.detach())
    with torch.no_grad():
        mon.observe_samples(dec(torch.randn(SAMPLES, 4, generator=gen)))
    return mon


def autoregressive(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """A next-token model on sequences of 8 tokens over 4 symbols (a noisy counter mod 4), an embedding and an MLP over
    the previous two tokens, task "generic". Bug: "lr-huge" (SGD at a learning rate of 1e4, the loss overflows)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    emb, head = nn.Embedding(4, 8), mlp(16, 4)
    params = [*emb.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=1e4) if bug == "lr-huge" else torch.optim.Adam(params, lr=3e-3)
    mon = gendiag.Monitor(run_dir, task="generic", overwrite=True)
    mon.watch(head, "head", t_arg=None, optimizer=opt)
    for it in range(steps):
        start = torch.randint(0, 4, (BATCH, 1), generator=gen)
        seq = (start + torch.arange(8)) % 4
        flip = torch.rand(seq.shape, generator=gen) < 0.1
        seq = torch.where(flip, torch.randint(0, 4, seq.shape, generator=gen), seq)
        context = torch.cat([emb(seq[:, :-2]), emb(seq[:, 1:-1])], 2).reshape(-1, 16)
        loss = nn.functional.cross_entropy(head(context), seq[:, 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss)
    return mon


def guided(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """Class-conditional DDPM (T = 100) with classifier-free guidance: ε(x, t, y) with one embedding row per blob
    and one for "no label" (4), labels dropped to 4 for a tenth of the rows, guided ancestral sampling at scale
    GUIDED_SCALE as two calls per step; the Monitor is told each row's and each sample's label, nothing of the
    guidance. Bug: "no-label-dropout" (the null label never trained, yet sampling leans on it)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    T = 100
    betas = torch.linspace(1e-3, 0.2, T)
    abar = torch.cumprod(1 - betas, 0)

    class Eps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 8)
            self.body = mlp(2 + 1 + 8, 2)

        def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.body(torch.cat([x, t.float()[:, None] / T, self.embed(y)], 1))

    net = Eps()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="diffusion", overwrite=True, schedule=abar)
    mon.watch(net, "eps", x_arg=0, t_arg=1, cond_arg=2, optimizer=opt)
    dropout = 0.0 if bug == "no-label-dropout" else 0.1
    for it in range(steps):
        x0 = blobs(BATCH, gen)
        labels = (torch.arange(BATCH) % 4).sort().values
        mon.observe_data(x0, cond=labels)
        shown = torch.where(torch.rand(BATCH, generator=gen) < dropout, torch.full_like(labels, 4), labels)
        t = torch.randint(0, T, (BATCH,), generator=gen)
        noise = torch.randn(BATCH, 2, generator=gen)
        a = abar[t][:, None]
        loss = (net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, shown) - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss)
    wanted = torch.arange(SAMPLES) % 4
    with torch.no_grad(), mon.sampling():
        x = torch.randn(SAMPLES, 2, generator=gen)
        for step in reversed(range(T)):
            times = torch.full((SAMPLES,), step)
            conditional, unconditional = net(x, times, wanted), net(x, times, torch.full_like(wanted, 4))
            eps = (1 + GUIDED_SCALE) * conditional - GUIDED_SCALE * unconditional
            x = (x - betas[step] / (1 - abar[step]).sqrt() * eps) / (1 - betas[step]).sqrt()
            if step > 0:
                x = x + betas[step].sqrt() * torch.randn(SAMPLES, 2, generator=gen)
    mon.observe_samples(x, cond=wanted)
    return mon


def ema(run_dir: Path, seed: int, steps: int, bug: str | None = None) -> gendiag.Monitor:
    """Flow matching on the blobs, network called net(x, t), an EMA copy kept by hand (decay 0.99) and watched as
    the copy of the network (`ema_of=`); the Euler sampler (20 steps) draws from the copy. Bug: "decay-high" (decay
    0.9999: over a few hundred steps the copy hardly leaves the initial weights)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    class Velocity(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = mlp(3, 2)

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.body(torch.cat([x, t[:, None]], 1))

    net = Velocity()
    average = copy.deepcopy(net).requires_grad_(False)
    decay = 0.9999 if bug == "decay-high" else 0.99
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", overwrite=True)
    mon.watch(net, "v", optimizer=opt)
    mon.watch(average, "v_ema", ema_of=net)
    for it in range(steps):
        x1, x0 = blobs(BATCH, gen), torch.randn(BATCH, 2, generator=gen)
        mon.observe_data(x1)
        mon.observe_data(x0, role="source")
        t = torch.rand(BATCH, generator=gen)
        loss = (net((1 - t[:, None]) * x0 + t[:, None] * x1, t) - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for kept, trained in zip(average.parameters(), net.parameters()):
                kept.lerp_(trained, 1 - decay)
        mon.step(it, loss=loss)
    with torch.no_grad(), mon.sampling():
        x, n = torch.randn(SAMPLES, 2, generator=gen), 20
        for i in range(n):
            x = x + average(x, torch.full((SAMPLES,), i / n)) / n
    mon.observe_samples(x)
    return mon


LOOPS: dict[str, Loop] = {"flow": flow, "ddpm": ddpm, "gan": gan, "vae": vae, "autoregressive": autoregressive,
                          "conditional": conditional, "guided": guided, "ema": ema}
