"""The failed flattened-image flow-matching project, reproduced: every sample is a 64×64 picture rendered from
50,000 points of a 2D distribution and flattened to 4,096 numbers.

The loop is the original's: a new batch of B data images z (each from fresh points) and B source images x0
(rendered standard-Gaussian clouds, or pixel noise N(0, I) in the fix rungs) at every iteration; the ConcatMLP
velocity network on [x, t]; either the original buggy loss, ‖u_θ(x0, t) − (z − x0)/(1 − t)‖² (the source x0 fed
where x_t belongs, the velocity evaluated at x0 too), or the correct one, ‖u_θ(x_t, t) − (z − x_t)/(1 − t)‖² with
x_t = t·z + (1 − t)·x0, which equals ‖u_θ(x_t, t) − (z − x0)‖² and is computed in that stable form; Adam; Euler
over `time_points` equal time points from one rendered Gaussian picture. Along training the recipe generates
images at checkpoint iterations and measures how like the target and how like their own start image they are,
then writes a "Why it collapses" section from the probes' findings.

One job per module (the case's sections and its registration are in `gendiag.recipes.schemas.flattened`):
`data` (the rendered streams), `loss`, `sampling` (the Euler sampler), `checkpoints` (pictures judged against target and start), `facts` (the numbers only the recipe can
measure), `story` (the prose), `figures`, `loop` (the run)."""
