"""The autoregressive task on token models written as a user would: their own GRU language model and a small causal
transformer over a toy Markov source of their own, their loop and their sampling loop, through the public API only.

Healthy (targets shifted by one, tokens drawn) → no warning or critical finding over three seeds, with the source's
entropy given as a fact; targets not shifted → `causal-leak` (the network check and the loss against the entropy);
attention without a causal mask → `causal-leak` seeing later positions; greedy decoding → `ar-samples-identical`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gendiag

VOCAB = 6
LENGTH = 17


class GRULanguageModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(tokens))
        return self.out(hidden)


class TinyTransformer(nn.Module):
    def __init__(self, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(VOCAB, 32)
        self.position = nn.Embedding(LENGTH, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 1)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.position(torch.arange(tokens.shape[1]))
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1]) if self.causal else None
        return self.out(self.blocks(h, mask=mask, is_causal=self.causal))


def markov_source(seed: int) -> tuple[Iterator[torch.Tensor], float]:
    """Batches of token sequences from one fixed Markov chain, and its entropy rate in nats per token."""
    chain = torch.Generator().manual_seed(1234)
    transition = torch.softmax(2.0 * torch.randn(VOCAB, VOCAB, generator=chain), dim=1)
    stationary = torch.full((VOCAB,), 1 / VOCAB)
    for _ in range(200):
        stationary = stationary @ transition
    rate = float(-(stationary[:, None] * transition * transition.log()).sum())
    gen = torch.Generator().manual_seed(seed)

    def batches(n: int = 32) -> Iterator[torch.Tensor]:
        while True:
            x = torch.empty(n, LENGTH, dtype=torch.long)
            x[:, 0] = torch.multinomial(stationary.expand(n, VOCAB), 1, generator=gen)[:, 0]
            for i in range(1, LENGTH):
                x[:, i] = torch.multinomial(transition[x[:, i - 1]], 1, generator=gen)[:, 0]
            yield x

    return batches(), rate


def train(run_dir: Path, seed: int, model: nn.Module, shifted: bool = True, greedy: bool = False,
          steps: int = 300) -> list[dict]:
    torch.manual_seed(seed)
    data, rate = markov_source(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with gendiag.Monitor(run_dir, task="autoregressive", entropy=rate) as mon:
        mon.watch(model, name="lm", t_arg=None)
        for step in range(steps):
            x = next(data)
            mon.observe_data(x)
            inputs, targets = (x[:, :-1], x[:, 1:]) if shifted else (x, x)
            nll = F.cross_entropy(model(inputs).transpose(1, 2), targets, reduction="none")
            opt.zero_grad()
            nll.mean().backward()
            opt.step()
            mon.step(step, nll.mean(), per_position_loss=nll.detach())
        with mon.sampling(), torch.no_grad():
            sequence = next(data)[:, :1].repeat(2, 1)
            for _ in range(LENGTH - 1):
                logits = model(sequence)[:, -1]
                token = logits.argmax(-1, keepdim=True) if greedy else torch.multinomial(logits.softmax(-1), 1)
                sequence = torch.cat([sequence, token], dim=1)
        mon.observe_samples(sequence)
    return json.loads((run_dir / "findings.json").read_text())["findings"]


def serious(findings: list[dict]) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in findings if f["severity"] in ("critical", "warning")}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_gru_language_model_is_silent(tmp_path: Path, seed: int) -> None:
    assert serious(train(tmp_path, seed, GRULanguageModel())) == {}


@pytest.mark.slow
def test_targets_not_shifted_is_a_causal_leak(tmp_path: Path) -> None:
    findings = train(tmp_path, 0, GRULanguageModel(), shifted=False, steps=150)
    leak = next(f for f in findings if f["code"] == "causal-leak")
    network, loss = leak["evidence"]["lm"], leak["evidence"]["loss"]
    assert (network["target_offset"], network["offset_basis"]) == (0, "measured")
    assert network["own"] > 0.1 and network["later"] == 0
    assert loss["ratio"] < 0.1
    assert "x[:, 1:]" in leak["suggestion"]


@pytest.mark.slow
def test_healthy_causal_transformer_is_silent(tmp_path: Path) -> None:
    assert serious(train(tmp_path, 0, TinyTransformer(), steps=150)) == {}


@pytest.mark.slow
def test_attention_without_a_causal_mask_sees_later_positions(tmp_path: Path) -> None:
    findings = train(tmp_path, 0, TinyTransformer(causal=False), steps=150)
    leak = next(f for f in findings if f["code"] == "causal-leak")
    assert leak["evidence"]["lm"]["later"] > 0.01
    assert "causal mask" in leak["suggestion"]


@pytest.mark.slow
def test_greedy_decoding_makes_identical_samples(tmp_path: Path) -> None:
    found = serious(train(tmp_path, 0, GRULanguageModel(), greedy=True, steps=150))
    assert found == {"ar-samples-identical": "warning"}


def test_a_network_watched_with_a_time_argument_it_never_gets_is_named(tmp_path: Path) -> None:
    model = GRULanguageModel()
    data, _ = markov_source(0)
    with gendiag.Monitor(tmp_path, task="autoregressive") as mon:
        mon.watch(model, name="lm")  # t_arg left at its default, 1: a language model has no time
        for step in range(3):
            x = next(data)
            nll = F.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
            mon.step(step, nll.mean(), per_position_loss=nll.detach())
    findings = json.loads((tmp_path / "findings.json").read_text())["findings"]
    note = next(f for f in findings if f["code"] == "probe-not-run")
    assert note["severity"] == "info" and "t_arg=None" in note["message"] + note["suggestion"]
    assert "probe-failed" not in {f["code"] for f in findings}
