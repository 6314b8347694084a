"""Compact reference implementations of generative models: the known-good baselines."""
