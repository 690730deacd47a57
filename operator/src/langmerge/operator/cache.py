"""The operator's in-memory view of the objects it reconciles (LanguageAdapters, MergedModels
and its own Jobs), so a reconcile reads memory instead of the API server: what an informer's
store is to a Go controller.

Filled by a LIST per kind at startup, before kopf starts watching (`observe` each object,
then `sweep`), kept current by kopf's watch events (`observe`, `forget`) and by the objects
the operator's own writes return (`observe`), and listed again by the periodic resync, whose
`sweep` drops an object whose deletion no event reported. Within an object, a newer
resourceVersion always wins, so a late watch event never hides the operator's own last
write: a reconcile never sees its own status older than it wrote it (that would count a
finished run twice). Objects are indexed by label, so a MergedModel's selector finds its
adapters without a scan of the namespace, and held without metadata.managedFields (nothing
here reads it)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

Body = dict[str, Any]


def _version(resource_version: str | None) -> int | None:
    try:
        return int(resource_version or "")
    except ValueError:
        return None  # opaque, as the API allows: then the latest seen wins


def _version_of(body: Body) -> int | None:
    return _version(body["metadata"].get("resourceVersion"))


def without_managed_fields(body: Body) -> Body:
    meta = body["metadata"]
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _labels(body: Body) -> dict[str, str]:
    return body["metadata"].get("labels") or {}


def _newer(candidate: Body, held: Body | None) -> bool:
    if held is None:
        return True
    new, old = _version_of(candidate), _version_of(held)
    return new is None or old is None or new >= old


class ObjectCache:
    def __init__(self, trim: Mapping[str, Callable[[Body], Body]] | None = None) -> None:
        """trim: per kind, what of an object to hold (the parts the operator reads)."""
        self._trim = dict(trim or {})
        self._lock = threading.Lock()
        # kind (plural) -> namespace -> name -> body as last seen
        self._objects: defaultdict[str, defaultdict[str, dict[str, Body]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        # kind -> (namespace, label, value) -> names
        self._by_label: defaultdict[str, defaultdict[tuple[str, str, str], set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )

    def observe(self, kind: str, body: Body) -> None:
        """A body from a watch event or from the API server's reply to our own write."""
        meta = body["metadata"]
        with self._lock:
            names = self._objects[kind][meta["namespace"]]
            held = names.get(meta["name"])
            if _newer(body, held):
                if held is not None:
                    self._unindex(kind, held)
                names[meta["name"]] = self._trim.get(kind, without_managed_fields)(body)
                self._index(kind, body)

    def forget(self, kind: str, body: Body) -> None:
        """The object was deleted (a DELETED watch event)."""
        meta = body["metadata"]
        with self._lock:
            names = self._objects[kind].get(meta["namespace"], {})
            held = names.get(meta["name"])
            if held is not None and _newer(body, held):
                self._unindex(kind, names.pop(meta["name"]))

    def sweep(
        self, kind: str, namespace: str | None, listed: set[tuple[str, str]], listed_at: str
    ) -> None:
        """A complete LIST of the kind in namespace (None: all namespaces) at resourceVersion
        listed_at found the objects `listed` (namespace, name), each already observed: a held
        object it lacks is dropped unless it is newer than the list (created since)."""
        version_listed = _version(listed_at)
        with self._lock:
            for ns, names in self._objects[kind].items():
                if namespace is not None and ns != namespace:
                    continue
                for name in [n for n in names if (ns, n) not in listed]:
                    version = _version_of(names[name])
                    if version_listed is None or version is None or version <= version_listed:
                        self._unindex(kind, names.pop(name))

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        with self._lock:
            return self._objects[kind].get(namespace, {}).get(name)

    def objects(self, kind: str, namespace: str | None) -> list[Body]:
        with self._lock:
            if namespace is not None:
                return list(self._objects[kind].get(namespace, {}).values())
            return [body for names in self._objects[kind].values() for body in names.values()]

    def select(self, kind: str, namespace: str, match_labels: dict[str, str]) -> list[Body]:
        """The namespace's objects that carry every one of the labels (all of them when
        there are none), from the label index."""
        if not match_labels:
            return self.objects(kind, namespace)
        with self._lock:
            index = self._by_label[kind]
            found = sorted(
                (index.get((namespace, key, value), set()) for key, value in match_labels.items()),
                key=len,
            )
            names = set.intersection(*found)
            held = self._objects[kind].get(namespace, {})
            return [held[name] for name in names if name in held]

    def _index(self, kind: str, body: Body) -> None:
        meta, index = body["metadata"], self._by_label[kind]
        for key, value in _labels(body).items():
            index[(meta["namespace"], key, value)].add(meta["name"])

    def _unindex(self, kind: str, body: Body) -> None:
        meta, index = body["metadata"], self._by_label[kind]
        for key, value in _labels(body).items():
            entry = (meta["namespace"], key, value)
            index[entry].discard(meta["name"])
            if not index[entry]:
                del index[entry]

    def size(self, kind: str) -> int:
        with self._lock:
            return sum(len(names) for names in self._objects[kind].values())
