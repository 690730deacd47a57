"""A namespace of the real API server as the operator's flow tests drive it: apply, read and
delete LanguageAdapters and MergedModels, find their Jobs, wait for conditions, and finish a
training Job the way the Job controller and kubelet report it."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually, until
from tests.support.objects import GROUP, VERSION
from tests.support.operator import finish_job, success_summary

PLURAL = {"LanguageAdapter": "languageadapters", "MergedModel": "mergedmodels"}
# A replace that keeps losing to the operator's writes is a bug, not a race: give up then.
APPLY_ATTEMPTS = 10


def _ended(job: Any) -> bool:
    """Whether the Job controller (or a test playing it) has finished the Job."""
    conditions = (job.status and job.status.conditions) or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)


class Cluster:
    """A namespace of its own and the calls the flows need."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    def in_new_namespace(cls, plane: ControlPlane, prefix: str) -> Cluster:
        """The CRDs installed on the plane and a namespace of its own, named prefix-<random>."""
        plane.install_crds()
        api = api_client(plane.kubeconfig)
        namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        return cls(api, namespace)

    def apply(self, body: dict[str, Any]) -> None:
        plural = PLURAL[body["kind"]]
        name = body["metadata"]["name"]
        for attempt in range(APPLY_ATTEMPTS):  # the operator may write between read and replace
            try:
                current = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.ns, plural, name
                )
            except client.exceptions.NotFoundException:
                self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)
                return
            version = current["metadata"]["resourceVersion"]
            replacement = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
            try:
                self.custom.replace_namespaced_custom_object(
                    GROUP, VERSION, self.ns, plural, name, replacement
                )
                return
            except client.exceptions.ConflictException:
                if attempt == APPLY_ATTEMPTS - 1:
                    raise
                # read the newer version and replace that, as kubectl apply does

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL[kind], name)  # type: ignore[no-any-return]

    def delete(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL[kind], name)

    def jobs(self, owner: str) -> list[Any]:
        return list(
            self.batch.list_namespaced_job(
                self.ns, label_selector=f"langmerge.io/name={owner}"
            ).items
        )

    def job(self, owner: str, count: int = 1) -> str:
        """Waits until the owner has count Jobs; returns the unfinished one for its current
        fingerprint. (A MergedModel's status can still name the previous merge's fingerprint
        for a moment after the operator created the next Job, e.g. when it was killed in
        between: that finished Job is never the answer.)"""
        jobs = until(
            lambda: self.jobs(owner), lambda js: len(js) >= count, what=f"{count} Job(s) of {owner}"
        )
        kind = jobs[0].metadata.labels["langmerge.io/kind"]
        kind = "LanguageAdapter" if kind == "languageadapter" else "MergedModel"

        def current() -> str | None:
            body = self.get(kind, owner)
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"]["generation"]:
                return None  # the operator has not seen this spec yet
            fingerprint = status.get("fingerprint")
            names = [
                j.metadata.name
                for j in self.jobs(owner)
                if j.metadata.labels["langmerge.io/fingerprint"] == fingerprint and not _ended(j)
            ]
            return names[0] if names else None

        return eventually(current, what=f"the current Job of {owner}")

    def condition(self, kind: str, name: str, kind_of_condition: str) -> dict[str, Any] | None:
        for item in (self.get(kind, name).get("status") or {}).get("conditions") or []:
            if item["type"] == kind_of_condition:
                return dict(item)
        return None

    def wait_condition(
        self, kind: str, name: str, condition: str, status: str = "True", timeout_s: float = 30
    ) -> dict[str, Any]:
        found = until(
            lambda: self.condition(kind, name, condition),
            lambda c: c is not None and c["status"] == status,
            timeout_s=timeout_s,
            what=f"{kind} {name}: {condition}={status}",
        )
        assert found is not None
        return found

    def train(self, owner: str, count: int = 1, **kwargs: Any) -> str:
        job = self.job(owner, count)
        uri = f"/artifacts/{self.ns}/{owner}/{job}"
        finish_job(self.api, self.ns, job, summary=success_summary(uri), **kwargs)
        return job
