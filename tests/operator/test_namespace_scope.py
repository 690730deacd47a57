"""An operator given namespaces (the chart's namespaced mode) never reads or writes outside
them, with the periodic resync on: before the fix the resync listed every namespace and
created Jobs in namespaces the operator was not given."""

from __future__ import annotations

import uuid
from pathlib import Path

from kubernetes import client

from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import GROUP, VERSION, adapter_manifest
from tests.support.operator import OperatorProcess

# Generous: a busy 2-core machine can be many times slower than a quiet one; the test waits
# for real events (resync passes in the log), never for a fixed time.
PATIENCE_S = 300


def test_an_operator_given_namespaces_never_touches_another(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    control_plane.install_crds()
    api = api_client(control_plane.kubeconfig)
    core, custom, batch = (
        client.CoreV1Api(api),
        client.CustomObjectsApi(api),
        client.BatchV1Api(api),
    )
    suffix = uuid.uuid4().hex[:6]
    mine, other = f"mine-{suffix}", f"other-{suffix}"
    for namespace in (mine, other):
        core.create_namespace({"metadata": {"name": namespace}})
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "languageadapters", adapter_manifest("de")
        )
    operator = OperatorProcess(
        control_plane, tmp_path, env={"LANGMERGE_RESYNC_SECONDS": "1"}, namespaces=[mine]
    ).start()
    try:
        eventually(
            lambda: batch.list_namespaced_job(mine).items,
            timeout_s=PATIENCE_S,
            what="a training Job in the operator's own namespace",
        )
        eventually(
            lambda: operator.resync_passes() >= 3,
            timeout_s=PATIENCE_S,
            what=f"three resync passes\n{operator.tail()}",
        )
        assert batch.list_namespaced_job(other).items == []
        untouched = custom.get_namespaced_custom_object(
            GROUP, VERSION, other, "languageadapters", "sentiment-de"
        )
        assert "status" not in untouched
        assert f"in {mine}" in operator.tail(200)  # the passes covered the given namespace only
    finally:
        operator.stop()
