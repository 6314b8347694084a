"""Rules on multi-process training, from the fingerprints every rank sent at the end
(`gendiag.quantities.distributed`): `ddp-same-noise-across-ranks` and `distributed-sampler-epoch-unset`."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.quantities.distributed import matching_share, repeat_period
from gendiag.rules.thresholds import (DISTRIBUTED_MIN_COMPARED, DISTRIBUTED_MIN_REPEATS, DISTRIBUTED_REPEAT_SHARE,
                                      DISTRIBUTED_SAME_SHARE)

DRAWN = {"times": "times", "call_times": "times the network was called with",
         "noise": "noise"}  # the streams every rank should draw for itself, as the message names them
MIN_PERIOD = 2  # a period of one batch is the same batch every step (full-batch training): its order is moot


def judge_ranks(everyone: list[dict[str, list[tuple]]]) -> dict[str, Any]:
    """Each rank's drawn streams against rank 0's (`matching_share`) and each rank's data order (`repeat_period`),
    from `everyone[rank][stream]`, the fingerprint tables."""
    reference = everyone[0]
    same: dict[str, list[dict[str, Any]]] = {}
    for stream in DRAWN:
        same[stream] = []
        for rank, tables in enumerate(everyone[1:], start=1):
            match = matching_share(reference.get(stream, []), tables.get(stream, []))
            same[stream].append({"rank": rank, "compared": match.compared, "equal": match.equal,
                                 "share": match.share, "varies": match.varies})
    repeats = []
    for rank, tables in enumerate(everyone):
        repetition = repeat_period(tables.get("data", []))
        repeats.append({"rank": rank, "batches": repetition.batches, "period": repetition.period,
                        "repeats": repetition.repeats, "share": repetition.share})
    return {"world_size": len(everyone), "same": same, "repeats": repeats}


def same_draw_ranks(judged: dict[str, Any]) -> list[int]:
    """The ranks whose every judged drawn stream (compared on at least DISTRIBUTED_MIN_COMPARED tensors, and not
    fixed from step to step) equals rank 0's on at least DISTRIBUTED_SAME_SHARE of them."""
    ranks = []
    for rank in range(1, judged["world_size"]):
        rows = [row for stream in DRAWN for row in judged["same"][stream]
                if row["rank"] == rank and row["compared"] >= DISTRIBUTED_MIN_COMPARED and row["varies"]]
        if rows and all(row["share"] >= DISTRIBUTED_SAME_SHARE for row in rows):
            ranks.append(rank)
    return ranks


def fixed_order_ranks(judged: dict[str, Any]) -> list[dict[str, Any]]:
    """The ranks whose data batches come back in the same order each epoch: a period of at least MIN_PERIOD
    batches, at least DISTRIBUTED_MIN_REPEATS repeats and a whole period of them, DISTRIBUTED_REPEAT_SHARE of the
    batches that could repeat."""
    return [row for row in judged["repeats"]
            if row["period"] is not None and row["period"] >= MIN_PERIOD
            and row["repeats"] >= max(DISTRIBUTED_MIN_REPEATS, row["period"])
            and row["share"] >= DISTRIBUTED_REPEAT_SHARE]


def distributed_findings(judged: dict[str, Any], noise_figure: str | None = None,
                         order_figure: str | None = None) -> list[Finding]:
    """`ddp-same-noise-across-ranks` and `distributed-sampler-epoch-unset`, where they hold, each naming its figure
    (`noise_figure`, `order_figure`: relative paths) where one is given."""
    findings = []
    same = same_draw_ranks(judged)
    if same:
        findings.append(same_noise_finding(judged, same, noise_figure))
    fixed = fixed_order_ranks(judged)
    if fixed:
        findings.append(sampler_epoch_finding(judged, fixed, order_figure))
    return findings


def same_noise_finding(judged: dict[str, Any], ranks: list[int], figure: str | None = None) -> Finding:
    rows = {stream: [row for row in judged["same"][stream] if row["rank"] in ranks] for stream in DRAWN}
    seen = [stream for stream in DRAWN if any(row["compared"] for row in rows[stream])]
    parts = [f"{DRAWN[stream]}: {min(row['share'] for row in rows[stream]):.0%} of {rows[stream][0]['compared']} "
             f"equal" for stream in seen]
    world = judged["world_size"]
    return Finding(
        code="ddp-same-noise-across-ranks", severity="warning",
        title="Every rank draws the same noise and times",
        message=(f"Rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} of {world} drew, step for step, "
                 f"the very same values as rank 0 ({'; '.join(parts)}): the ranks' random streams start from one "
                 f"seed, so the noise and times of the combined batch are one rank's draw repeated {world} times "
                 f"instead of {world} independent draws."),
        evidence={"world_size": world, "ranks_equal_to_rank_0": ranks, "streams": rows},
        suggestion=("Seed each rank apart for its draws (keep the model's initialisation common): for example "
                    "torch.manual_seed(seed + dist.get_rank()) after building the model, or a torch.Generator per "
                    "rank seeded with seed * world_size + rank."),
        figure=figure,
    )


def sampler_epoch_finding(judged: dict[str, Any], rows: list[dict[str, Any]], figure: str | None = None) -> Finding:
    row = rows[0]
    ranks = [r["rank"] for r in rows]
    return Finding(
        code="distributed-sampler-epoch-unset", severity="warning",
        title="Every epoch visits the data in the same order",
        message=(f"On rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}, {row['repeats']} of the "
                 f"{row['batches']} observed data batches equal, row for row, the batch {row['period']} batches "
                 f"earlier ({row['share']:.0%} of those that could): each epoch replays the last one's batches in "
                 f"the same order, which a DistributedSampler does when its set_epoch is never called (its shuffle "
                 f"is seeded by the epoch number), or when it was made with shuffle=False."),
        evidence={"world_size": judged["world_size"], "ranks": rows},
        suggestion=("Call sampler.set_epoch(epoch) at the start of every epoch, before iterating the DataLoader "
                    "(DistributedSampler(dataset, shuffle=True) reshuffles only then)."),
        figure=figure,
    )
