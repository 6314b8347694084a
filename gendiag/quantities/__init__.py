"""Quantities: what gendiag measures, as pure computations and accumulators over what the Monitor sees.

A quantity decides nothing and draws nothing: it turns steps, forward calls, data batches and samples into numbers
(a summary dataclass or a few arrays). Each is tested against a brute-force or hand-computed twin. Rules
(`gendiag.rules`) turn quantities into findings; figures (`gendiag.figures`) draw them; a probe
(`gendiag.probes`) is the glue that feeds a quantity on its schedule and hands it to its rule and its figure.

Modules here import torch and numpy only at the top; scipy, scikit-learn, pandas or POT inside the function that
needs them, so that `import gendiag` stays fast."""
