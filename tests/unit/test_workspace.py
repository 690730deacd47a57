"""The workspace keeps its promises: the operator image never pulls torch."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def _closure(lock: dict, root: str) -> set[str]:  # type: ignore[type-arg]
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [dep["name"] for dep in packages[name].get("dependencies", [])]
    return seen


def test_operator_member_does_not_depend_on_torch() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    operator = _closure(lock, "langmerge-operator")
    assert "kopf" in operator  # the walk really follows the lock
    assert not operator & {"torch", "transformers", "peft", "accelerate"}


def test_trainer_and_merger_do_pull_torch() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    assert "torch" in _closure(lock, "langmerge-trainer")
    assert "torch" in _closure(lock, "langmerge-merger")
