"""Pure checks on tensors: functions that return dataclasses, with no Monitor dependency, for probes and tests."""
