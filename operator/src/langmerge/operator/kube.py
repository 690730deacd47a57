"""The few Kubernetes API calls the operator makes, returning plain JSON dicts (the wire
shapes, camelCase), so the rest of the operator never sees client model classes."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from langmerge.operator.api.common import GROUP, VERSION
from langmerge.operator.cache import Body, ObjectCache
from langmerge.operator.clock import now, rfc3339
from langmerge.operator.jobs import TRAINER_GROUP, TRAINER_VERSION
from langmerge.operator.outcome import is_trainjob

JOBS = "jobs"
TRAINJOBS = "trainjobs"  # Kubeflow Trainer's, for trainings across pods
MANAGED_JOBS = "app.kubernetes.io/managed-by=langmerge"  # the label every langmerge Job has
LIST_PAGE = 500


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
    """Thin, typed access to the objects langmerge reads and writes. Custom resources and
    Jobs are read from the in-memory view (cache.py), which `relist` fills from the API
    server and every write's reply updates; `on_request(verb, resource)` counts each request
    sent to the API server."""

    def __init__(
        self,
        api: client.ApiClient,
        cache: ObjectCache,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.cache = cache
        self._on_request = on_request or (lambda verb, resource: None)
        # Whether the API server serves TrainJobs (Kubeflow Trainer's CRDs are installed), as
        # the last list of them found; None before any
        self.trainjobs_served: bool | None = None

    # custom resources (reads from the view)
    def get(self, plural: str, namespace: str, name: str) -> Body | None:
        return self.cache.get(plural, namespace, name)

    def list_objects(self, plural: str, namespace: str | None = None) -> list[Body]:
        return self.cache.objects(plural, namespace)

    def select_objects(
        self, plural: str, namespace: str, match_labels: dict[str, str]
    ) -> list[Body]:
        """The namespace's objects carrying all of match_labels."""
        return self.cache.select(plural, namespace, match_labels)

    def relist(self, plural: str, namespace: str | None = None) -> list[tuple[str, str]]:
        """Lists from the API server (never the cache), page by page, into the cache; returns
        the (namespace, name) of every object listed."""
        if namespace is None:
            return self._relist(
                plural,
                None,
                partial(self.custom.list_cluster_custom_object, GROUP, VERSION, plural),
            )
        return self._relist(
            plural,
            namespace,
            partial(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural),
        )

    def _relist(
        self, kind: str, namespace: str | None, list_page: Callable[..., Any], **query: Any
    ) -> list[tuple[str, str]]:
        """Pages of LIST_PAGE objects, so a resync of thousands never holds them all twice;
        the pages of one LIST are one snapshot (the continue token keeps its version)."""
        listed: list[tuple[str, str]] = []
        token, version = None, ""
        while True:
            self._on_request("list", kind)
            page = _json(
                list_page(limit=LIST_PAGE, _continue=token, _preload_content=False, **query)
            )
            version = version or page["metadata"].get("resourceVersion", "")
            for item in page["items"]:
                listed.append((item["metadata"]["namespace"], item["metadata"]["name"]))
                self.cache.observe(kind, item)
            token = page["metadata"].get("continue")
            if not token:
                break
        self.cache.sweep(kind, namespace, set(listed), version)
        return listed

    def patch_status(self, plural: str, namespace: str, name: str, status: Body) -> None:
        """Applies a JSON merge patch to status (null removes a field, lists are replaced)."""
        self._on_request("patch", f"{plural}/status")
        try:
            reply = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, {"status": status}, _preload_content=False
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to record
                raise
            return
        self.cache.observe(plural, _json(reply))

    # Jobs and TrainJobs (a "job" below is either), and their pods
    def get_job(self, namespace: str, name: str) -> Body | None:
        return self.cache.get(JOBS, namespace, name) or self.cache.get(TRAINJOBS, namespace, name)

    def create_job(self, body: Body) -> bool:
        """Creates the Job (TrainJob); False when it already exists (adopted, never twinned).
        Raises JobRefusedError when the API server refuses it as invalid."""
        namespace, trainjob = body["metadata"]["namespace"], is_trainjob(body)
        kind = TRAINJOBS if trainjob else JOBS
        self._on_request("create", kind)
        try:
            if trainjob:
                reply = self.custom.create_namespaced_custom_object(
                    TRAINER_GROUP, TRAINER_VERSION, namespace, TRAINJOBS, body,
                    _preload_content=False,
                )  # fmt: skip
            else:
                reply = self.batch.create_namespaced_job(
                    namespace, cast(Any, body), _preload_content=False
                )
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status == 403 and "NamespaceTerminating" in str(error.body):
                return False  # the namespace is going away with everything in it
            if error.status in (400, 422):  # retrying the same Job can never succeed
                raise JobRefusedError(_api_message(error)) from error
            if error.status == 404 and trainjob:
                self.trainjobs_served = False  # Trainer's CRDs went away: the plan says so next
            raise
        self.cache.observe(kind, _json(reply))
        return True

    def relist_jobs(self, namespace: str | None = None) -> list[tuple[str, str]]:
        """langmerge's Jobs, listed from the API server into the cache."""
        if namespace is None:
            return self._relist(
                JOBS, None, self.batch.list_job_for_all_namespaces, label_selector=MANAGED_JOBS
            )
        return self._relist(
            JOBS,
            namespace,
            partial(self.batch.list_namespaced_job, namespace),
            label_selector=MANAGED_JOBS,
        )

    def relist_trainjobs(self, namespace: str | None = None) -> list[tuple[str, str]]:
        """langmerge's TrainJobs, listed into the cache; none when the API server serves no
        TrainJobs (Kubeflow Trainer is not installed), which trainjobs_served records."""
        custom, query = self.custom, {"label_selector": MANAGED_JOBS}
        if namespace is None:
            page = partial(
                custom.list_cluster_custom_object, TRAINER_GROUP, TRAINER_VERSION, TRAINJOBS
            )
        else:
            page = partial(
                custom.list_namespaced_custom_object,
                TRAINER_GROUP, TRAINER_VERSION, namespace, TRAINJOBS,
            )  # fmt: skip
        try:
            listed = self._relist(TRAINJOBS, namespace, page, **query)
        except ApiException as error:
            if error.status != 404:
                raise
            self.trainjobs_served = False
            self.cache.sweep(TRAINJOBS, namespace, set(), "")
            return []
        self.trainjobs_served = True
        return listed

    def delete_job(self, job: Body) -> None:
        meta = job["metadata"]
        try:
            if is_trainjob(job):
                self._on_request("delete", TRAINJOBS)
                self.custom.delete_namespaced_custom_object(
                    TRAINER_GROUP, TRAINER_VERSION, meta["namespace"], TRAINJOBS, meta["name"],
                    propagation_policy="Background",
                )  # fmt: skip
            else:
                self._on_request("delete", JOBS)
                self.batch.delete_namespaced_job(
                    meta["name"], meta["namespace"], propagation_policy="Background"
                )
        except ApiException as error:
            if error.status != 404:
                raise

    def job_pods(self, job: Body) -> list[Body]:
        """Every pod the Job (every pod of every Job of the TrainJob's JobSet) ran."""
        meta = job["metadata"]
        owner = "jobset.sigs.k8s.io/jobset-name" if is_trainjob(job) else "job-name"
        self._on_request("list", "pods")
        reply = self.core.list_namespaced_pod(
            meta["namespace"], label_selector=f"{owner}={meta['name']}", _preload_content=False
        )
        return cast(list[Body], _json(reply)["items"])

    def pod_log_tail(self, namespace: str, pod: str, lines: int) -> str | None:
        """The last lines of the pod's main container log; None when the API server cannot
        serve it (no kubelet yet, the pod gone, or no pods/log permission)."""
        self._on_request("get", "pods/log")
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
        self._on_request("create", "events")
        try:
            self.core.create_namespaced_event(meta["namespace"], cast(Any, body))
        except ApiException as error:
            if error.status not in (403, 404):  # events are best effort
                raise
