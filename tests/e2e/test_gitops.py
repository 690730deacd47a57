"""GitOps as users run it: Argo CD (its application controller and repo server, built from the
Go module proxy) syncs examples/gitops from a git repository into the e2e cluster, where the
chart's operator trains and merges on real pods; Argo CD reads the chart's health checks from
argocd-cm, as the README tells a user to install them. The flows, one commit each: the first
sync (Progressing, then Healthy when the objects are Ready, and Synced for good); new data for
one language (only that adapter retrains, the model re-merges, the update's savings in the
metrics); an invalid object (the sync fails with the API server's message, nothing running
changes, the next good commit syncs); a gate that refuses the merge (Degraded, our message).
Prints `RESULT name=value` lines."""

from __future__ import annotations

import copy
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    PATIENCE_S,
    SYSTEM,
    e2e_adapter,
    langmerge_release,
    operator_pods,
    provision_namespace,
)
from tests.support.control_plane import REPO
from tests.support.gitops import ArgoCD, GitRepository, wait_for
from tests.support.kube import api_client
from tests.support.objects import GROUP, VERSION
from tests.support.target import Target
from tests.support.volume import ArtifactVolume

NAMESPACE = "e2e-gitops"
EXAMPLE = REPO / "examples" / "gitops"
LANGUAGES = ("de", "fr")  # the two languages the e2e volume holds data for
MERGED = "sentiment"


def example_adapter(language: str, revision: str | None = None) -> dict[str, Any]:
    """The example's LanguageAdapter with what a CPU node cannot run (an 8B model on a GPU,
    two epochs) replaced by the e2e's: builtin:tiny, the volume's data, one CPU, one epoch."""
    body = yaml.safe_load((EXAMPLE / "languages" / f"sentiment-{language}.yaml").read_text())
    runnable = e2e_adapter(language)["spec"]
    spec = body["spec"]
    spec["baseModel"], spec["resources"], spec["training"] = (
        runnable["baseModel"],
        runnable["resources"],
        runnable["training"],
    )
    spec["dataset"]["uri"] = spec["dataset"]["evalUri"] = runnable["dataset"]["uri"]
    if revision is not None:
        spec["dataset"]["revision"] = revision
    return dict(body)


def example_merged(**changes: Any) -> dict[str, Any]:
    """The example's MergedModel on builtin:tiny, evaluated on the two languages the volume
    holds, with `changes` merged into its spec."""
    body = yaml.safe_load((EXAMPLE / "languages" / "merged.yaml").read_text())
    spec = body["spec"]
    spec["baseModel"] = e2e_adapter("de")["spec"]["baseModel"]
    spec["resources"] = {"gpus": 0, "cpu": 1, "memory": "3Gi"}
    spec["evaluation"]["datasets"] = {
        language: f"/artifacts/datasets/{language}.jsonl" for language in LANGUAGES
    }
    for key, value in changes.items():
        spec[key] = value
    return dict(body)


def folder(
    adapters: dict[str, dict[str, Any]] | None = None, merged: dict[str, Any] | None = None
) -> dict[str, str]:
    """The repository's languages/ folder: one file per object, as in examples/gitops."""
    adapters = adapters or {language: example_adapter(language) for language in LANGUAGES}
    files = {
        f"languages/sentiment-{language}.yaml": yaml.safe_dump(body, sort_keys=False)
        for language, body in adapters.items()
    }
    files["languages/merged.yaml"] = yaml.safe_dump(merged or example_merged(), sort_keys=False)
    return files


def example_application(repo: GitRepository) -> dict[str, Any]:
    """The example's Application over the languages (application.yaml's second document),
    pointed at the local repository and the e2e namespace; its sync policy as the example has
    it (automated, prune, self-heal)."""
    documents = list(yaml.safe_load_all((EXAMPLE / "application.yaml").read_text()))
    body = copy.deepcopy(
        next(d for d in documents if d["metadata"]["name"] == "sentiment-languages")
    )
    body["spec"]["source"]["repoURL"] = repo.url
    body["spec"]["source"]["path"] = "languages"
    body["spec"]["destination"]["namespace"] = NAMESPACE
    return dict(body)


@pytest.fixture(scope="module")
def volume(target: Target) -> ArtifactVolume:
    return provision_namespace(target, NAMESPACE)


@pytest.fixture(scope="module")
def installed(target: Target, volume: ArtifactVolume) -> Iterator[Target]:
    with langmerge_release(
        target, NAMESPACE, "--set=metrics.service.enabled=true", "--set=operator.resyncSeconds=5"
    ) as installed:
        yield installed


@pytest.fixture(scope="module")
def argocd(installed: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    argocd = ArgoCD(installed, tmp_path_factory.mktemp("e2e-argocd"))
    started = time.monotonic()
    argocd.install()
    argocd.start()
    print(f"RESULT argocd_install_and_start_seconds={time.monotonic() - started:.1f}")
    try:
        yield argocd
    finally:
        argocd.stop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepository:
    return GitRepository(tmp_path_factory.mktemp("e2e-git") / "models")


class Watch:
    """Reads the Application and the langmerge objects; records every health the
    Application shows, in order, while a test waits."""

    def __init__(self, target: Target, argocd: ArgoCD) -> None:
        api = api_client(target.kubeconfig)
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.target, self.argocd = target, argocd
        self.healths: list[str] = []

    def application(self) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", "argocd", "applications", "sentiment-languages"
        )
        health = ((body.get("status") or {}).get("health") or {}).get("status")
        if health and (not self.healths or self.healths[-1] != health):
            self.healths.append(health)
        return dict(body)

    def ours(self, plural: str, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        )

    def until(self, accept: Any, what: str) -> dict[str, Any]:
        """The Application once accept(application) holds."""

        def accepted() -> dict[str, Any] | None:
            app = self.application()
            return app if accept(app) else None

        return dict(
            wait_for(
                accepted,
                f"{what} (healths seen: {self.healths})\n{self.target.tails()}",
                self.argocd,
                timeout_s=PATIENCE_S,
            )
        )

    def refresh(self) -> None:
        """What a git webhook does: Argo CD looks at the repository now."""
        self.target.kubectl(
            "annotate", "--overwrite", "--namespace=argocd", "application/sentiment-languages",
            "argocd.argoproj.io/refresh=normal",
        )  # fmt: skip

    def jobs(self) -> list[str]:
        return sorted(j.metadata.name for j in self.batch.list_namespaced_job(NAMESPACE).items)


def synced_at(revision: str) -> Any:
    def accept(app: dict[str, Any]) -> bool:
        sync = (app.get("status") or {}).get("sync") or {}
        return bool(sync.get("status") == "Synced" and sync.get("revision") == revision)

    return accept


def health_is(status: str, revision: str) -> Any:
    def accept(app: dict[str, Any]) -> bool:
        state = app.get("status") or {}
        return bool(
            synced_at(revision)(app) and (state.get("health") or {}).get("status") == status
        )

    return accept


def refused_in_sync(app: dict[str, Any], revision: str, name: str) -> bool:
    """The sync of that revision has run and the object failed to apply."""
    result = ((app.get("status") or {}).get("operationState") or {}).get("syncResult") or {}
    return result.get("revision") == revision and any(
        r["name"] == name and r["status"] == "SyncFailed" for r in result.get("resources") or []
    )


def resource_health(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    for resource in (app.get("status") or {}).get("resources") or []:
        if resource["kind"] == kind and resource["name"] == name:
            return dict(resource.get("health") or {})
    raise AssertionError(f"{kind} {name} is not among the Application's resources: {app}")


@pytest.fixture(scope="module")
def watch(installed: Target, argocd: ArgoCD) -> Watch:
    return Watch(installed, argocd)


def test_the_first_sync_creates_the_objects_and_is_healthy_when_they_are_ready(
    watch: Watch, repo: GitRepository, installed: Target
) -> None:
    first = repo.commit(folder(), "two languages and their merged model")
    started = time.monotonic()
    installed.apply(yaml.safe_dump(example_application(repo)))
    watch.until(synced_at(first), "the first sync")
    print(f"RESULT gitops_commit_to_synced_seconds={time.monotonic() - started:.1f}")
    for language in LANGUAGES:  # created by Argo CD, as written in git
        body = watch.ours("languageadapters", f"sentiment-{language}")
        assert body["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].startswith(
            "sentiment-languages:"
        )
    app = watch.until(health_is("Healthy", first), "Healthy after training and merging")
    print(f"RESULT gitops_first_sync_to_healthy_seconds={time.monotonic() - started:.1f}")
    # Our health checks were read: Progressing while the operator trained and merged.
    assert "Progressing" in watch.healths, watch.healths
    assert watch.ours("mergedmodels", MERGED)["status"]["phase"] == "Ready"
    assert resource_health(app, "MergedModel", MERGED)["status"] == "Healthy"

    # No perpetual OutOfSync: the operator's status, finalizers and annotations and the API
    # server's defaults are not drift. Three more reconciliations must each find it Synced.
    seen: set[str] = set()
    for _ in range(3):
        app = watch.until(
            lambda a: (a.get("status") or {}).get("reconciledAt") not in seen | {None},
            "another reconciliation",
        )
        seen.add(app["status"]["reconciledAt"])
        assert app["status"]["sync"]["status"] == "Synced", app["status"]
        assert {r["status"] for r in app["status"]["resources"]} == {"Synced"}, app["status"]


def test_a_commit_with_new_data_for_one_language_retrains_only_that_one(
    watch: Watch, repo: GitRepository, installed: Target
) -> None:
    before = watch.jobs()
    merged_before = watch.ours("mergedmodels", MERGED)["status"]["artifact"]["uri"]
    adapters = {language: example_adapter(language) for language in LANGUAGES}
    adapters["de"] = example_adapter("de", revision="2026-12-01")  # new German data
    update = repo.commit(folder(adapters), "new German data")
    started = time.monotonic()
    watch.refresh()
    watch.until(synced_at(update), "the update's sync")
    watch.until(
        lambda app: "Progressing" in watch.healths[-2:] and health_is("Healthy", update)(app),
        "Healthy again after the update",
    )
    print(f"RESULT gitops_update_commit_to_healthy_seconds={time.monotonic() - started:.1f}")
    status = watch.ours("mergedmodels", MERGED)["status"]
    assert status["artifact"]["uri"] != merged_before
    assert status["lastUpdate"]["retrainedAdapters"] == ["sentiment-de"]
    new_jobs = sorted(set(watch.jobs()) - set(before))  # one training pod, one merge pod
    assert [j.rsplit("-", 1)[0] for j in new_jobs] == ["sentiment-de-train", f"{MERGED}-merge"]
    # The update's savings, as the operator's metrics show them: what status.lastUpdate
    # records. Its sign is a measured time's (builtin:tiny's runs are seconds, so the merge
    # and the noise weigh as much as the training saved), not something to assert.
    savings = operator_metric(installed, watch.core, "langmerge_update_savings_ratio")
    assert savings is not None
    assert savings == pytest.approx(status["lastUpdate"]["savingsRatio"]), status["lastUpdate"]
    print(f"RESULT gitops_update_savings_ratio={savings:.3f}")


def test_an_invalid_commit_fails_its_sync_and_changes_nothing_running(
    watch: Watch, repo: GitRepository
) -> None:
    running = {
        language: watch.ours("languageadapters", f"sentiment-{language}") for language in LANGUAGES
    }
    adapters = {language: example_adapter(language, "2026-12-01") for language in LANGUAGES}
    adapters["fr"]["spec"]["lora"]["rank"] = 0
    bad = repo.commit(folder(adapters), "a LoRA rank of 0")
    watch.refresh()
    app = watch.until(lambda a: refused_in_sync(a, bad, "sentiment-fr"), "the sync to fail")
    operation = app["status"]["operationState"]
    # Failed, or Running while the example's retry policy tries again.
    assert operation["phase"] in ("Failed", "Error", "Running"), operation
    (refused,) = (r for r in operation["syncResult"]["resources"] if r["name"] == "sentiment-fr")
    # The API server's own words, naming the object and the field; the operation says so too.
    for message in (refused["message"], operation["message"]):
        assert '"sentiment-fr" is invalid: spec.lora.rank' in message, message
    assert app["status"]["sync"]["status"] == "OutOfSync"
    for language, before in running.items():
        now = watch.ours("languageadapters", f"sentiment-{language}")
        assert now["metadata"]["generation"] == before["metadata"]["generation"]
        assert now["spec"] == before["spec"] and now["status"]["phase"] == "Ready"

    adapters["fr"]["spec"]["lora"]["rank"] = 16  # the fix, as the next commit
    good = repo.commit(folder(adapters), "a LoRA rank of 16 again")
    started = time.monotonic()
    watch.refresh()
    watch.until(health_is("Healthy", good), "the next good commit synced and Healthy")
    print(f"RESULT gitops_fix_commit_to_synced_seconds={time.monotonic() - started:.1f}")


def test_a_gate_that_refuses_the_merge_shows_degraded_with_our_message(
    watch: Watch, repo: GitRepository
) -> None:
    served = watch.ours("mergedmodels", MERGED)["status"]["artifact"]["uri"]
    adapters = {language: example_adapter(language, "2026-12-01") for language in LANGUAGES}
    # Merged at a density of 0.2, its loss on each language is above that language's own
    # adapter's: at a margin of 0 the gate refuses it.
    merged = example_merged(parameters={"density": 0.2})
    merged["spec"]["evaluation"]["metrics"] = ["loss"]
    merged["spec"]["evaluation"]["gate"] = {"against": "individual", "maxDrop": 0.0}
    refused = repo.commit(folder(adapters, merged), "a merge the gate refuses")
    watch.refresh()
    app = watch.until(health_is("Degraded", refused), "Degraded after the gate refused")
    health = resource_health(app, "MergedModel", MERGED)
    assert health["status"] == "Degraded" and "evaluation gate" in health["message"], health
    # The last good merged model is still the one served.
    assert watch.ours("mergedmodels", MERGED)["status"]["artifact"]["uri"] == served


def operator_metric(target: Target, core: client.CoreV1Api, name: str) -> float | None:
    """The metric's value for this namespace's MergedModel, from the operator pod."""
    (pod,) = operator_pods(core)
    port = next(
        p.container_port for c in pod.spec.containers for p in c.ports or [] if p.name == "metrics"
    )
    with (
        target.port_forward(SYSTEM, pod.metadata.name, port) as local_port,
        urllib.request.urlopen(f"http://127.0.0.1:{local_port}/metrics", timeout=10) as reply,
    ):
        text = reply.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name, labels.get("namespace"), labels.get("name")) == (
                name,
                NAMESPACE,
                MERGED,
            ):
                return float(sample.value)
    return None
