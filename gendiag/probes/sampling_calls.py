"""Sampling calls: what the watched networks' own calls inside `with mon.sampling():` show, with no fact needed.

Each block's calls are followed through the same first rows of x (`ForwardCall.head`): a sampler that never carries
its state forward shows as the same input at every call, or as an input that never gets further from its start than
one step (`sampler-state-frozen`). The times of those calls are set against the times training drew: a range the
sampler visits and training never drew is `t-range-untrained`. Where the `sampler=` fact is given the sampler probe
checks the sampler itself, so the frozen rule here stays quiet."""

from __future__ import annotations

from typing import Any

from gendiag.figures.sampling_calls import sampling_calls_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, Probe
from gendiag.quantities.sampling_calls import SamplingTrace, TimeCoverage, coverage_table, trace_motion
from gendiag.report.section import ProbeSection
from gendiag.rules.sampling_calls import frozen_from_calls, frozen_problem, t_range_untrained

FIGURE = "sampling_calls"
TITLE = "Sampling calls"
KEPT_TRACES = 8  # sampling blocks followed per network: the first ones (a sampler's bug shows in every block)


@register
class SamplingCallsProbe(Probe):
    """Follows the watched networks' sampling calls: the state they pass, the times they use."""

    name = "sampling_calls"
    tasks = ("flow", "diffusion")
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._traces: dict[tuple[str, int], SamplingTrace] = {}
        self._coverage: dict[str, TimeCoverage] = {}
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def on_forward(self, ctx: Any, call: ForwardCall) -> None:
        if call.t is not None and call.t.numel():
            self._coverage.setdefault(call.model, TimeCoverage()).add(call.mode, call.t)
        if call.mode != "sampling" or call.head is None or call.head.dim() < 1:
            return
        key = (call.model, call.session)
        if key not in self._traces:
            if sum(1 for model, _ in self._traces if model == call.model) >= KEPT_TRACES:
                return
            self._traces[key] = SamplingTrace(call.model, call.session, call.step)
        self._traces[key].add(call.t, call.head, call.output_head)

    def _measure(self, ctx: Any) -> dict[str, Any]:
        """Motions of the blocks, the coverage of the first network with sampling calls, the problems; cached on
        what was gathered."""
        key = (tuple((k, len(trace.times)) for k, trace in self._traces.items()),
               tuple((name, c.train.seen, c.sampling.seen) for name, c in self._coverage.items()),
               "sampler" in ctx.facts)
        if self._cache is None or self._cache[0] != key:
            motions = [trace_motion(trace) for trace in self._traces.values()]
            names = [name for name, c in self._coverage.items() if c.sampling.seen and c.train.seen]
            model = names[0] if names else None
            coverage = coverage_table(self._coverage[model]) if model is not None else None
            frozen = None if "sampler" in ctx.facts else frozen_problem(motions)
            self._cache = (key, {"motions": motions, "model": model, "coverage": coverage, "frozen": frozen})
        return self._cache[1]

    def finish(self, ctx: Any) -> ProbeSection | None:
        measured = self._measure(ctx)
        if not measured["motions"] and measured["coverage"] is None:
            return ProbeSection(title=TITLE, text=("Nothing to follow: it needs calls of a watched network inside "
                                                   "`with mon.sampling():`."))
        shown = measured["frozen"] or (measured["motions"][0] if measured["motions"] else None)
        figure = ctx.draw_figure(FIGURE, sampling_calls_figure, shown, measured["coverage"])
        text = [f"{len(measured['motions'])} sampling block(s) followed through the first rows of each call's x."]
        for motion in measured["motions"]:
            text.append(f"`{motion['model']}` at step {motion['step']}: {motion['calls']} calls at "
                        f"{motion['distinct_times']} times, furthest from the start {motion['largest_change']:.3g} "
                        "(relative RMS)"
                        + ("." if motion["restart_growth"] is None else
                           f"; each input less the first, as a multiple of the previous output: residual "
                           f"{motion['restart_residual']:.2g}, the multiple growing {motion['restart_growth']:.3g}×."))
        coverage = measured["coverage"]
        if coverage is not None:
            text.append(f"Times of `{measured['model']}`: training drew t in [{coverage['train_range'][0]:.4g}, "
                        f"{coverage['train_range'][1]:.4g}] ({coverage['train_times']} kept), the sampler used "
                        f"[{coverage['sampling_range'][0]:.4g}, {coverage['sampling_range'][1]:.4g}]; "
                        f"{coverage['untrained_share']:.0%} of the sampling calls fall where training drew none.")
        return ProbeSection(title=TITLE, text=" ".join(text), figures=[figure])

    def findings(self, ctx: Any) -> list[Finding]:
        measured = self._measure(ctx)
        figure = f"figures/{FIGURE}.png"
        found = frozen_from_calls(measured["frozen"], figure)
        if measured["model"] is not None:
            found += t_range_untrained(measured["coverage"], measured["model"], ctx.task, figure)
        return found

    def state(self) -> dict[str, Any]:
        measured = self._cache[1] if self._cache is not None else {}
        if not measured:
            return {}
        coverage = measured["coverage"]
        return {"motions": [{k: v for k, v in m.items() if k != "changes"} for m in measured["motions"]],
                "untrained_share": None if coverage is None else coverage["untrained_share"]}
