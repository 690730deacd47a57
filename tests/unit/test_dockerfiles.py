"""The trainer's and the merger's images share their largest layer (torch and its CUDA
libraries, installed from uv.lock): a layer is reused only when every instruction up to it is
the same, so a node pulls or imports those gigabytes once for both images."""

from __future__ import annotations

from tests.support.control_plane import REPO


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = (REPO / dockerfile).read_text().replace("\\\n", " ")
    lines = (line.strip() for line in joined.splitlines())
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def test_the_trainer_and_merger_images_share_their_dependency_layer() -> None:
    trainer, merger = instructions("trainer/Dockerfile"), instructions("merger/Dockerfile")
    first_own = trainer.index("COPY common/ common/")
    assert merger.index("COPY common/ common/") == first_own
    assert trainer[:first_own] == merger[:first_own]
    shared = trainer[first_own - 1]
    assert "--package langmerge-trainer --package langmerge-merger" in shared
    assert "--no-install-workspace" in shared
    # each image's own sync keeps the shared packages (an exact sync would remove the other
    # member's, adding a layer instead of saving one)
    assert all("--inexact" in image[-3] for image in (trainer, merger)), (trainer[-3], merger[-3])
