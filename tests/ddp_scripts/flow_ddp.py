"""A flow-matching loop written as a user writes one for torchrun: DistributedDataParallel, a DistributedSampler
over a fixed data set, t and noise from torch's global generator, and gendiag's public API only.

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_scripts/flow_ddp.py OUT healthy same-noise ...

runs each named variant in turn, into OUT/<variant>: "healthy" seeds each rank apart and calls set_epoch;
"same-noise" seeds every rank alike; "epoch-unset" never calls set_epoch; "rank1-stops" trains one epoch, after
which rank 1 finishes as a stopped run and rank 0 as a whole one; "rank0-only" makes a Monitor on rank 0 alone, as
loops that log from rank 0 do (it comes last: Monitors are matched across ranks by the order each rank made them
in, and rank 1 makes none here); "stop-on" seeds every rank alike, as "same-noise", and every rank leaves its loop
on `mon.should_stop` (stop_on="warning") with no collective of its own. Live checks come every 12 steps. After
training every rank of the first four samples a few hundred points with an Euler sampler through `model.module`,
inside `mon.sampling()`, and observes them. Each rank also writes OUT/<variant>-times-rank<r>.json (the t it drew
at each step, for the test to count) and OUT/<variant>-findings-rank<r>.json (the codes its `finish` returned, and
for "stop-on" the step it stopped at)."""

import json
import math
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import gendiag

EPOCHS = 8
BATCH = 32
SAMPLES = 256
SAMPLER_STEPS = 10


class Velocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


def two_moons(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)  # one data set, the same on every rank
    angle = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=g)


def train(out: Path, variant: str) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DDP(Velocity())
    torch.manual_seed(1234 if variant in ("same-noise", "stop-on") else 1234 + rank)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = TensorDataset(two_moons(6 * BATCH * world))
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=BATCH, sampler=sampler, drop_last=True)
    mon = gendiag.Monitor(out / variant, task="flow", probes=["loss", "loss_by_t", "inputs", "samples_vs_data"],
                          check_every=12, check_seconds=0, flush_every=12,
                          stop_on="warning" if variant == "stop-on" else None)
    mon.watch(model)
    times = {}
    step = 0
    for epoch in range(1 if variant == "rank1-stops" else EPOCHS):
        if mon.should_stop:
            break
        if variant != "epoch-unset":
            sampler.set_epoch(epoch)
        for (x1,) in loader:
            step += 1
            x0 = torch.randn_like(x1)
            t = torch.rand(x1.shape[0])
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            per_sample = (model(xt, t) - (x1 - x0)).square().mean(dim=1)
            loss = per_sample.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.observe_data(x1)
            mon.observe_data(x0, role="source")
            mon.step(step, loss, t=t, per_sample_loss=per_sample)
            times[step] = t.tolist()
            if mon.should_stop:
                break
    with torch.no_grad(), mon.sampling():
        x = torch.randn(SAMPLES, 2)
        for k in range(SAMPLER_STEPS):
            x = x + model.module(x, torch.full((SAMPLES,), k / SAMPLER_STEPS)) / SAMPLER_STEPS
    mon.observe_samples(x)
    partial = "stopped on rank 1" if variant == "rank1-stops" and rank == 1 else None
    if mon.should_stop:
        partial = f"stopped on {mon.stopped_on[0].code} at step {step}"
    report = mon.finish(partial=partial)
    (out / f"{variant}-times-rank{rank}.json").write_text(json.dumps(times))
    codes = [f.code for f in report.findings]
    (out / f"{variant}-findings-rank{rank}.json").write_text(json.dumps(codes if variant != "stop-on" else
                                                                       {"codes": codes, "stopped": step}))


def train_rank0_only(out: Path) -> None:
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DDP(Velocity())
    torch.manual_seed(1234 + rank)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = None
    if rank == 0:
        mon = gendiag.Monitor(out / "rank0-only", task="flow", probes=["loss_by_t"], check_every=8, check_seconds=0)
    for step in range(1, 33):
        x1 = two_moons(4096)[torch.randint(0, 4096, (BATCH,))]
        x0 = torch.randn_like(x1)
        t = torch.rand(BATCH)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        per_sample = (model(xt, t) - (x1 - x0)).square().mean(dim=1)
        opt.zero_grad()
        per_sample.mean().backward()
        opt.step()
        if mon is not None:
            mon.step(step, per_sample.mean(), t=t, per_sample_loss=per_sample)
    if mon is not None:
        mon.finish()


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    try:
        for variant in sys.argv[2:]:
            if variant == "rank0-only":
                train_rank0_only(out)
            else:
                train(out, variant)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
