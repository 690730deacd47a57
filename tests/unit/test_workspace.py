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


def test_the_operator_needs_no_storage_libraries() -> None:
    """langmerge.common is the operator's too (the summary contract); its storage stack is
    the storage extra, which only the trainer and merger ask for."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    operator = _closure(lock, "langmerge-operator")
    assert "langmerge-common" in operator
    assert not operator & {"fsspec", "s3fs", "aiobotocore"}


def test_the_lock_serves_python_3_11_to_3_13() -> None:
    """Hosts with Python 3.12 or 3.13 (and python-downloads = never) get wheels from the lock."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    assert lock["requires-python"] == ">=3.11, <3.14"
    torch = next(p for p in lock["package"] if p["name"] == "torch")
    tags = {w["url"].rsplit("/", 1)[1].split("-")[2] for w in torch["wheels"]}
    assert {"cp311", "cp312", "cp313"} <= tags
