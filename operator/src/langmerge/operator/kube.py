"""The few Kubernetes API calls the operator makes, returning plain JSON dicts (the wire
shapes, camelCase), so the rest of the operator never sees client model classes."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from langmerge.operator.api.common import GROUP, VERSION
from langmerge.operator.clock import now, rfc3339

Body = dict[str, Any]


def merge_patch(before: Body, after: Body) -> Body:
    """The JSON merge patch (RFC 7386) turning before into after: removed keys become null,
    nested objects are diffed recursively, lists and scalars are replaced."""
    patch: Body = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif value != old:
            patch[key] = value
    return patch


def _json(response: Any) -> Body:
    return cast(Body, json.loads(response.data))


class JobRefusedError(Exception):
    """The API server refused a Job as invalid; the message is the API's own."""


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


class Kube:
    """Thin, typed access to the objects langmerge reads and writes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._event_lock = threading.Lock()

    # custom resources
    def get(self, plural: str, namespace: str, name: str) -> Body | None:
        try:
            return _json(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, _preload_content=False
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list_objects(self, plural: str, namespace: str | None = None) -> list[Body]:
        if namespace is None:
            reply = self.custom.list_cluster_custom_object(
                GROUP, VERSION, plural, _preload_content=False
            )
        else:
            reply = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, _preload_content=False
            )
        return cast(list[Body], _json(reply)["items"])

    def patch_status(self, plural: str, namespace: str, name: str, status: Body) -> None:
        """Applies a JSON merge patch to status (null removes a field, lists are replaced)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, {"status": status}
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to record
                raise

    # jobs and pods
    def get_job(self, namespace: str, name: str) -> Body | None:
        try:
            return _json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_job(self, body: Body) -> bool:
        """Creates the Job; False when it already exists (adopted, never twinned). Raises
        JobRefusedError when the API server refuses the Job itself (invalid)."""
        try:
            self.batch.create_namespaced_job(body["metadata"]["namespace"], cast(Any, body))
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status == 403 and "NamespaceTerminating" in str(error.body):
                return False  # the namespace is going away with everything in it
            if error.status in (400, 422):  # retrying the same Job can never succeed
                raise JobRefusedError(_api_message(error)) from error
            raise
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    def job_pods(self, namespace: str, job: str) -> list[Body]:
        reply = self.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={job}", _preload_content=False
        )
        return cast(list[Body], _json(reply)["items"])

    def pod_log_tail(self, namespace: str, pod: str, lines: int) -> str | None:
        """The last lines of the pod's main container log; None when the API server cannot
        serve it (no kubelet yet, the pod gone, or no pods/log permission)."""
        try:
            reply = self.core.read_namespaced_pod_log(
                pod, namespace, container="main", tail_lines=lines, _preload_content=False
            )
        except ApiException:
            return None
        return cast(bytes, cast(Any, reply).data).decode(errors="replace")

    # events
    def event(self, involved: Body, kind: str, event_type: str, reason: str, message: str) -> None:
        meta = involved["metadata"]
        stamp = rfc3339(now())
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": "langmerge-operator"},
            "reportingComponent": "langmerge-operator",
            "reportingInstance": "langmerge-operator",
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], cast(Any, body))
        except ApiException as error:
            if error.status not in (403, 404):  # events are best effort
                raise
