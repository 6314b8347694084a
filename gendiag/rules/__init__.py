"""Rules: findings from quantities.

A rule is a function of a quantity's summary (and the task and facts it needs) that returns findings; it keeps no
state and draws nothing, so the Monitor may run it at any time during training as well as at the end. Every
threshold a rule compares against lives in `gendiag.rules.thresholds` with a one-line basis (derived, calibrated
on which runs, or cited); `gendiag.rules.codes` maps every finding code to its quantity, its rule and its figure."""
