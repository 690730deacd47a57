"""The chart's RBAC is enough and no more: the operator runs as the chart's ServiceAccount
against the real API server through a flow that exercises every permission; removing any
single verb of any rule makes that flow fail."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.chart import render
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary
from tests.support.trainjobs import TRAINER, finish_trainjob, install_trainer_crds

SYSTEM = "langmerge-system"


def chart_rbac(plane: ControlPlane, *values: str) -> list[dict[str, Any]]:
    return [
        d
        for d in render(plane, *values)
        if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]


def grant(plane: ControlPlane, objects: list[dict[str, Any]], workdir: Path) -> Path:
    """Applies the RBAC objects and returns a kubeconfig holding the ServiceAccount's token."""
    plane.kubectl("create", "namespace", SYSTEM, check=False)
    plane.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    token = plane.kubectl("create", "token", account, "-n", SYSTEM, "--duration=2h").stdout.strip()
    return plane.write_kubeconfig(
        workdir / f"sa-{uuid.uuid4().hex[:6]}.kubeconfig", account, {"token": token}
    )


def flow(cluster: Cluster, timeout_s: float) -> None:
    """Create, supersede, train, record (Events), merge: every verb the operator holds."""

    def current_job(owner: str, count: int) -> str:
        return eventually(
            lambda: cluster.job(owner, count), timeout_s=timeout_s, what=f"{owner} Job"
        )

    cluster.apply(adapter_manifest("de"))
    first = current_job("sentiment-de", 1)
    cluster.apply(adapter_manifest("de", revision="v2"))  # supersedes the running Job
    eventually(
        lambda: (
            [j.metadata.name for j in cluster.jobs("sentiment-de")] != [first]
            and first not in [j.metadata.name for j in cluster.jobs("sentiment-de")]
        ),
        timeout_s=timeout_s,
        what="the superseded Job to be deleted",
    )
    second = current_job("sentiment-de", 1)
    finish_job(
        cluster.api,
        cluster.ns,
        second,
        summary=success_summary(f"/artifacts/{cluster.ns}/sentiment-de/{second}"),
    )
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready", timeout_s=timeout_s)
    eventually(
        lambda: (
            "TrainingSucceeded"
            in {e.reason for e in cluster.core.list_namespaced_event(cluster.ns).items}
        ),
        timeout_s=timeout_s,
        what="the operator's Events",
    )
    cluster.apply(merged_manifest(adapters={"names": ["sentiment-de"]}))
    merge = current_job("sentiment", 1)
    finish_job(cluster.api, cluster.ns, merge, summary=success_summary("/artifacts/merged"))
    cluster.wait_condition("MergedModel", "sentiment", "Ready", timeout_s=timeout_s)


def trainjob_flow(cluster: Cluster, timeout_s: float) -> None:
    """An adapter across two pods: create its TrainJob, supersede it (delete), finish the
    next one (watch: no resync runs) and list them at startup: every TrainJob verb."""
    resources = {"nodes": 2, "gpus": 1}
    cluster.apply(adapter_manifest("de", resources=resources))
    first = eventually(
        lambda: trainjob_names(cluster), timeout_s=timeout_s, what="the first TrainJob"
    )
    cluster.apply(adapter_manifest("de", revision="v2", resources=resources))
    second = eventually(
        lambda: [n for n in trainjob_names(cluster) if n not in first],
        timeout_s=timeout_s,
        what="the second TrainJob",
    )
    eventually(
        lambda: set(first).isdisjoint(trainjob_names(cluster)),
        timeout_s=timeout_s,
        what="the superseded TrainJob to be deleted",
    )
    finish_trainjob(cluster.api, cluster.ns, second[0], summary=success_summary("/artifacts/x"))
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready", timeout_s=timeout_s)


def trainjob_names(cluster: Cluster) -> list[str]:
    items = cluster.custom.list_namespaced_custom_object(*TRAINER, cluster.ns, "trainjobs")
    return [t["metadata"]["name"] for t in items["items"]]


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> ControlPlane:
    control_plane.install_crds()
    return control_plane


def _namespace(api: client.ApiClient) -> str:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def admin(plane: ControlPlane) -> Iterator[client.ApiClient]:
    yield api_client(plane.kubeconfig)


def test_the_whole_flow_passes_with_only_the_charts_rbac(
    plane: ControlPlane, admin: client.ApiClient, tmp_path: Path
) -> None:
    kubeconfig = grant(plane, chart_rbac(plane), tmp_path)
    operator = OperatorProcess(plane, tmp_path, kubeconfig=kubeconfig).start()
    try:
        flow(Cluster(admin, _namespace(admin)), timeout_s=30)
        # RBAC denials read "... is forbidden: User \"system:serviceaccount:...\" cannot ...".
        forbidden = [
            line
            for line in operator.tail(2000).splitlines()
            if "system:serviceaccount" in line and "cannot" in line
        ]
        assert forbidden == [], forbidden
    finally:
        operator.stop()


def _without(objects: list[dict[str, Any]], rule: int, verb: str) -> list[dict[str, Any]]:
    reduced = copy.deepcopy(objects)
    role = next(o for o in reduced if o["kind"] == "ClusterRole")
    role["rules"][rule]["verbs"].remove(verb)
    if not role["rules"][rule]["verbs"]:
        del role["rules"][rule]
    return reduced


# Only a real node serves pod logs (the kubelet): the operator reads the trainer's progress
# there, and tests/e2e/test_in_cluster.py proves the chart's role lets it (status.progress).
NEEDS_A_NODE = {"pods/log:get"}


def _cases(plane: ControlPlane) -> list[tuple[int, str, str]]:
    role = next(o for o in chart_rbac(plane) if o["kind"] == "ClusterRole")
    cases = [
        (i, verb, f"{','.join(rule['resources'])}:{verb}")
        for i, rule in enumerate(role["rules"])
        for verb in rule["verbs"]
    ]
    assert {label for _, _, label in cases} >= NEEDS_A_NODE
    return [case for case in cases if case[2] not in NEEDS_A_NODE]


def test_removing_any_single_verb_breaks_a_flow(
    plane: ControlPlane, admin: client.ApiClient, tmp_path: Path
) -> None:
    objects = chart_rbac(plane)
    cases = _cases(plane)
    assert len(cases) >= 9
    spare = []
    for rule, verb, label in cases:
        kubeconfig = grant(plane, _without(objects, rule, verb), tmp_path)
        # No periodic resync: a step must happen because of the permission, not the clock.
        operator = OperatorProcess(
            plane, tmp_path, kubeconfig=kubeconfig, env={"LANGMERGE_RESYNC_SECONDS": "3600"}
        ).start()
        try:
            flow(Cluster(admin, _namespace(admin)), timeout_s=12)
            spare.append(label)
        except AssertionError:
            pass  # the flow needs this permission
        finally:
            operator.kill()
    grant(plane, objects, tmp_path)  # restore the full role for later tests
    assert spare == [], f"rules no flow needs: {spare}"


TRAINJOBS_ENABLED = ("--set", "trainJobs.enabled=true")


def test_the_trainjob_rule_is_enough_and_none_of_its_verbs_is_spare(
    plane: ControlPlane, admin: client.ApiClient, tmp_path: Path
) -> None:
    install_trainer_crds(plane.kubectl)
    objects = chart_rbac(plane, *TRAINJOBS_ENABLED)
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    (index,) = [i for i, r in enumerate(role["rules"]) if r["resources"] == ["trainjobs"]]
    env = {"LANGMERGE_TRAIN_JOBS": "true", "LANGMERGE_RESYNC_SECONDS": "3600"}
    spare = []
    for verb in [None, *role["rules"][index]["verbs"]]:
        granted = objects if verb is None else _without(objects, index, verb)
        kubeconfig = grant(plane, granted, tmp_path)
        operator = OperatorProcess(plane, tmp_path, kubeconfig=kubeconfig, env=env).start()
        try:
            trainjob_flow(Cluster(admin, _namespace(admin)), timeout_s=30 if verb is None else 12)
            if verb is not None:
                spare.append(verb)
        except AssertionError:
            if verb is None:
                raise  # the whole rule must be enough
        finally:
            operator.kill()
    grant(plane, chart_rbac(plane), tmp_path)  # the default role for later tests
    assert spare == [], f"TrainJob verbs no flow needs: {spare}"
