"""How a task is scored, shared by the operator (which builds the command lines) and the
evaluator (which runs them): a task measured by a generation metric is scored by greedy
decoding, every other one by the likelihood of its labels or alternatives."""

from __future__ import annotations

GENERATION_METRICS = ("rouge1", "rougeL")
