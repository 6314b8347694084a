"""Which task a script trains, from what the hooks saw during its first optimizer steps.

- GAN: two optimizers or more, each training its own network, and one network's output fed to another (the
  generator's output, detached or not, is the discriminator's input).
- VAE: a trained network returns a tuple holding two tensors of one shape (B, k): its posterior's mean and
  log-variance, in that order.
- flow or diffusion: a trained network is fed (x, t) and its output is regressed on a target (a squared error the
  loss's graph shows). Integer times, or times above 1, are diffusion timesteps; float times in [0, 1] are read as
  flow matching (a continuous-time diffusion model looks the same: `--task diffusion`).
- generic: anything else.
`--task` overrides the inference; the networks' roles are then still read where the evidence shows them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gendiag.attach.convention import Convention


@dataclass
class NetworkSeen:
    """One network the hooks found: a module with parameters called from outside any module."""

    module: torch.nn.Module
    name: str
    convention: Convention | None = None
    train_calls: int = 0
    sampling_calls: int = 0
    skipped_calls: int = 0
    integer_time: bool = False
    time_max: float = 0.0
    latent_pair: tuple[int, int] | None = None
    feeds: set[str] = field(default_factory=set)
    regressions: int = 0
    input_shape: tuple[int, ...] | None = None
    out_range: tuple[float, float] | None = None

    @property
    def has_time(self) -> bool:
        return self.convention is not None and self.convention.t_arg is not None

    def parameter_ids(self) -> set[int]:
        return {id(p) for p in self.module.parameters()}


@dataclass
class Inference:
    """The task, why, and the roles of the networks (names): `main` (flow/diffusion, VAE), `generator`,
    `discriminator` (GAN)."""

    task: str
    reasons: list[str]
    roles: dict[str, str] = field(default_factory=dict)


def trained_by(networks: list[NetworkSeen], optimizers: list[torch.optim.Optimizer]) -> dict[str, int]:
    """Network name -> index of the first optimizer holding any of its parameters."""
    owners = {}
    for index, optimizer in enumerate(optimizers):
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for network in networks:
            if network.name not in owners and held & network.parameter_ids():
                owners[network.name] = index
    return owners


def infer_task(networks: list[NetworkSeen], optimizers: list[torch.optim.Optimizer],
               forced: str | None) -> Inference:
    """The task and the networks' roles; `forced` (from --task) wins over the evidence."""
    owners = trained_by(networks, optimizers)
    trained = [n for n in networks if n.name in owners and n.train_calls]
    by_name = {n.name: n for n in networks}
    gan = next(((g, by_name[d]) for g in trained for d in sorted(g.feeds)
                if d in owners and owners[d] != owners[g.name]), None)
    vae = next((n for n in trained if n.latent_pair is not None), None)
    timed = sorted((n for n in trained if n.has_time), key=lambda n: -n.regressions)
    found: Inference
    if gan is not None:
        generator, discriminator = gan
        found = Inference("gan", [f"`{generator.name}` and `{discriminator.name}` are trained by two optimizers and "
                                  f"`{generator.name}`'s output is fed to `{discriminator.name}`"],
                          {"generator": generator.name, "discriminator": discriminator.name})
    elif vae is not None:
        found = Inference("vae", [f"`{vae.name}` returns two tensors of one shape (outputs {vae.latent_pair[0]} and "
                                  f"{vae.latent_pair[1]}), read as the posterior's mean and log-variance"],
                          {"main": vae.name})
    elif timed and (timed[0].regressions or forced in ("flow", "diffusion")):
        main = timed[0]
        task = "diffusion" if main.integer_time or main.time_max > 1.0 else "flow"
        times = ("integer timesteps" if main.integer_time else f"times up to {main.time_max:.3g}") \
            if task == "diffusion" else "float times in [0, 1]"
        found = Inference(task, [f"`{main.name}` is fed (x, t) ({main.convention.describe()}; {times}) and its output "
                                 f"is regressed on a target (a squared error in {main.regressions} of the first "
                                 "losses)"],
                          {"main": main.name})
    else:
        found = Inference("generic", ["no network fed (x, t) with a regression loss, no generator feeding a "
                                      "discriminator, no output of mean and log-variance was seen"],
                          {"main": trained[0].name} if trained else {})
    if forced is not None and forced != found.task:
        roles = found.roles
        if forced in ("flow", "diffusion", "vae", "generic") and "main" not in roles and trained:
            roles = {"main": (timed or trained)[0].name}
        return Inference(forced, [f"given with --task (the evidence alone read {found.task}: "
                                  f"{'; '.join(found.reasons)})"], roles)
    if forced is not None:
        found.reasons.insert(0, "given with --task, and the evidence agrees")
    return found
