"""batch/v1 Jobs for training and merging, and Kubeflow Trainer TrainJobs for a training
across pods (spec.resources.nodes > 1), built from the spec and the operator's config.

Pure functions (no API calls): the reconciler creates what they return. Jobs carry owner
references (garbage-collected with their custom resource), `langmerge.io/*` labels for
selection and PromQL joins, the Kueue queue label when asked, a restricted security context,
a podFailurePolicy that does not retry our own refusals, and a termination message the
operator reads the run summary from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterSpec
from langmerge.operator.api.common import CustomResource, Resources
from langmerge.operator.api.merged import GateBaseline, MergedModel, MergedModelSpec, MergeMethod
from langmerge.operator.config import JobImage, OperatorConfig
from langmerge.operator.planner import MergePlan, TrainingPlan

MANAGED_BY = {"app.kubernetes.io/managed-by": "langmerge"}
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
GPU_TYPE = "langmerge.io/gpu-type"
INPUTS_ANNOTATION = "langmerge.io/inputs"  # adapter name -> fingerprint the merge was built from
CHECKPOINT_MOUNT = "/checkpoints"
TRAINER_GROUP, TRAINER_VERSION = "trainer.kubeflow.org", "v1alpha1"  # Kubeflow Trainer v2
# Kubeflow Trainer's names for the replicated Job and the container that train
TRAINJOB_NODE = TRAINJOB_CONTAINER = "node"
# What an S3 credentials Secret may hold (the AWS SDKs' and fsspec's variables)
S3_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
EXIT_BAD_INPUT = 1  # the trainer and merger exit 1 on input they refuse: retrying cannot help


def artifact_uri(config: OperatorConfig, resource: CustomResource, fingerprint: str) -> str:
    meta = resource.metadata
    return f"{config.artifact_root()}/{meta.namespace}/{meta.name}/{fingerprint}"


def labels(
    resource: CustomResource, role: str, fingerprint: str, task: str, language: str | None
) -> dict[str, str]:
    result = {
        **MANAGED_BY,
        "langmerge.io/kind": resource.KIND.lower(),
        "langmerge.io/name": resource.metadata.name,
        "langmerge.io/role": role,
        "langmerge.io/task": task,
        "langmerge.io/fingerprint": fingerprint,
    }
    if language:
        result["langmerge.io/language"] = language
    return result


def _owner(resource: CustomResource) -> dict[str, Any]:
    return {
        "apiVersion": resource.api_version,
        "kind": resource.KIND,
        "name": resource.metadata.name,
        "uid": resource.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _container_resources(resources: Resources) -> dict[str, Any]:
    """requests/limits as quantity strings (the API's wire form)."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu is not None:
        requests["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = str(resources.memory)
    if resources.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(resources.gpus)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class PodParts:
    """What every training and merge pod gets from the operator's configuration: volumes,
    their mounts and environment."""

    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    env: list[dict[str, Any]]
    env_from: list[dict[str, Any]]


def _pod_parts(config: OperatorConfig, gpus: int) -> PodParts:
    cache = (
        {"persistentVolumeClaim": {"claimName": config.model_cache_pvc}}
        if config.model_cache_pvc
        else {"emptyDir": {}}
    )
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}, {"name": "cache", **cache}]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/cache"},
    ]
    env: list[dict[str, Any]] = [
        {"name": "XDG_CACHE_HOME", "value": "/cache"},
        {"name": "HF_HOME", "value": "/cache/huggingface"},
    ]
    if config.hf_token_secret:
        secret = {"name": config.hf_token_secret, "key": config.hf_token_key}
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": secret}})
    env_from: list[dict[str, Any]] = []
    if config.storage == "pvc":
        volumes.append(
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": config.artifact_pvc}}
        )
        mounts.append({"name": "artifacts", "mountPath": config.artifact_mount})
    elif config.s3_secret:
        env_from.append({"secretRef": {"name": config.s3_secret}})  # credentials stay in the Secret
    if config.storage == "s3" and config.checkpoint_pvc:
        volumes.append(
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": config.checkpoint_pvc}}
        )
        mounts.append({"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT})
    if gpus > 1:
        volumes.append(
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": config.shm_size}}
        )
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    return PodParts(volumes, mounts, env, env_from)


def _placement(config: OperatorConfig, resources: Resources) -> dict[str, Any]:
    """Where the pods may run and as which ServiceAccount (the parts of a pod spec that a
    TrainJob can set too)."""
    placement: dict[str, Any] = {}
    if resources.node_selector:
        placement["nodeSelector"] = resources.node_selector
    if resources.tolerations:
        placement["tolerations"] = [t.to_wire() for t in resources.tolerations]
    if config.job_service_account:
        placement["serviceAccountName"] = config.job_service_account
    return placement


def _workload_labels(job_labels: dict[str, str], resources: Resources) -> dict[str, str]:
    """A Job's or TrainJob's own labels: its pods' and what Kueue and pricing read."""
    result = dict(job_labels)
    if resources.queue_name:
        result[KUEUE_QUEUE] = resources.queue_name  # Kueue admits; we never flip suspend
    if resources.gpu_type:
        result[GPU_TYPE] = resources.gpu_type  # the price of the run is looked up by it
    return result


def _job(
    config: OperatorConfig,
    resource: CustomResource,
    name: str,
    job_labels: dict[str, str],
    image: JobImage,
    command: list[str],
    resources: Resources,
) -> dict[str, Any]:
    parts = _pod_parts(config, resources.gpus)
    volumes, mounts, env, env_from = parts.volumes, parts.mounts, parts.env, parts.env_from
    pod_labels = dict(job_labels)
    job_meta_labels = _workload_labels(job_labels, resources)
    container: dict[str, Any] = {
        "name": "main",
        "image": image.reference,
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": RESTRICTED_CONTAINER,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if image.pull_policy:
        container["imagePullPolicy"] = image.pull_policy
    if env_from:
        container["envFrom"] = env_from
    container_resources = _container_resources(resources)
    if container_resources:
        container["resources"] = container_resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The trainer and merger never call the Kubernetes API: no token in their pods.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
        **_placement(config, resources),
    }
    if resources.priority_class_name:
        pod_spec["priorityClassName"] = resources.priority_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": resource.metadata.namespace,
            "labels": job_meta_labels,
            "ownerReferences": [_owner(resource)],
        },
        "spec": {
            "backoffLimit": config.job_backoff_limit,
            "activeDeadlineSeconds": config.job_deadline_seconds,
            "ttlSecondsAfterFinished": config.job_ttl_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "main",
                            "operator": "In",
                            "values": [EXIT_BAD_INPUT],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def training_args(
    spec: LanguageAdapterSpec,
    output: str,
    checkpoint_dir: str,
    fingerprint: str,
    artifact_root: str | None,
) -> list[str]:
    """The langmerge-train command line for a spec (the cluster's Job and the local loop)."""
    args = [
        "--base-model",
        spec.base_model.uri or spec.base_model.name,
        "--base-model-revision",
        spec.base_model.revision,
        "--dataset",
        spec.dataset.uri,
        "--dataset-format",
        spec.dataset.format,
        "--language",
        spec.language,
        "--task",
        spec.task,
        "--lora-rank",
        str(spec.lora.rank),
        "--lora-alpha",
        str(spec.lora.alpha),
        "--lora-dropout",
        str(spec.lora.dropout),
        "--target-modules",
        ",".join(spec.lora.target_modules),
        "--epochs",
        str(spec.training.epochs),
        "--learning-rate",
        str(spec.training.learning_rate),
        "--batch-size",
        str(spec.training.batch_size),
        "--gradient-accumulation",
        str(spec.training.gradient_accumulation),
        "--max-seq-length",
        str(spec.training.max_seq_length),
        "--precision",
        spec.training.precision,
        "--seed",
        str(spec.training.seed),
        "--output",
        output,
        "--checkpoint-dir",
        checkpoint_dir,
        "--fingerprint",
        fingerprint,
    ]
    if artifact_root is not None:
        args += ["--artifact-root", artifact_root]
    fields = spec.dataset.fields
    for flag, value in (
        ("--prompt-field", fields.prompt),
        ("--response-field", fields.response),
        ("--messages-field", fields.messages),
        ("--text-field", fields.text),
    ):
        if value is not None:
            args += [flag, value]
    if spec.dataset.eval_uri:
        args += ["--eval-dataset", spec.dataset.eval_uri]
    if spec.training.max_steps:
        args += ["--max-steps", str(spec.training.max_steps)]
    if spec.lora.use_rslora:
        args.append("--rslora")
    return args


def training_job(
    config: OperatorConfig, adapter: LanguageAdapter, plan: TrainingPlan
) -> dict[str, Any]:
    spec = adapter.spec
    out = spec.output.uri or artifact_uri(config, adapter, plan.fingerprint)
    if config.storage == "pvc":
        checkpoints, root = (
            f"{config.artifact_mount}/.checkpoints/{plan.job}",
            config.artifact_mount,
        )
    elif config.checkpoint_pvc:  # artifacts in S3, checkpoints on a PVC of their own
        checkpoints, root = f"{CHECKPOINT_MOUNT}/{plan.job}", None
    else:  # artifacts in S3 and no checkpoint PVC: the pod's disk (a new pod starts over)
        checkpoints, root = f"/cache/checkpoints/{plan.job}", None
    args = training_args(spec, out, checkpoints, plan.fingerprint, root)
    if spec.resources.nodes > 1:
        return _trainjob(config, adapter, plan, args)
    gpus = spec.resources.gpus
    if gpus > 1:  # data parallel in one pod
        command = [
            "accelerate",
            "launch",
            "--num_processes",
            str(gpus),
            "-m",
            "langmerge.trainer.cli",
            *args,
        ]
    else:
        command = ["langmerge-train", *args]
    job_labels = labels(adapter, "train", plan.fingerprint, spec.task, spec.language)
    return _job(config, adapter, plan.job, job_labels, config.trainer, command, spec.resources)


def _trainjob(
    config: OperatorConfig, adapter: LanguageAdapter, plan: TrainingPlan, args: list[str]
) -> dict[str, Any]:
    """A Kubeflow Trainer TrainJob of spec.resources.nodes pods on the chart's
    ClusterTrainingRuntime, which holds what the operator cannot set per TrainJob (the
    security context, the pull policy, retries and deadline); torchrun in each pod joins the
    rendezvous the runtime's torch policy provides and the trainer splits every batch across
    the processes. Rank 0 publishes the adapter and writes the summary."""
    spec, resources = adapter.spec, adapter.spec.resources
    parts = _pod_parts(config, resources.gpus)
    env = list(parts.env)
    if parts.env_from:  # a TrainJob's containers take env, not envFrom: the S3 keys one by one
        env += [
            {
                "name": key,
                "valueFrom": {
                    "secretKeyRef": {"name": config.s3_secret, "key": key, "optional": True}
                },
            }
            for key in S3_KEYS
        ]
    job_labels = labels(adapter, "train", plan.fingerprint, spec.task, spec.language)
    pod_spec: dict[str, Any] = {
        "volumes": parts.volumes,
        "containers": [{"name": TRAINJOB_CONTAINER, "volumeMounts": parts.mounts}],
        **_placement(config, resources),
    }
    trainer: dict[str, Any] = {
        "image": config.trainer_image,
        "numNodes": resources.nodes,
        "numProcPerNode": max(resources.gpus, 1),
        "command": ["torchrun", "-m", "langmerge.trainer.cli"],
        "args": args,
        "env": env,
    }
    container_resources = _container_resources(resources)
    if container_resources:
        trainer["resourcesPerNode"] = container_resources
    return {
        "apiVersion": f"{TRAINER_GROUP}/{TRAINER_VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": plan.job,
            "namespace": adapter.metadata.namespace,
            "labels": _workload_labels(job_labels, resources),
            "ownerReferences": [_owner(adapter)],
        },
        "spec": {
            "runtimeRef": {
                "name": config.training_runtime,
                "kind": "ClusterTrainingRuntime",
                "apiGroup": TRAINER_GROUP,
            },
            "trainer": trainer,
            "podTemplateOverrides": [
                {
                    "targetJobs": [{"name": TRAINJOB_NODE}],
                    "metadata": {"labels": job_labels},
                    "spec": pod_spec,
                }
            ],
        },
    }


def merge_args(
    spec: MergedModelSpec,
    plan: MergePlan,
    output: str,
    artifact_root: str | None,
    device: str,
    current: str | None = None,
    combined: str | None = None,
) -> list[str]:
    """The langmerge-merge command line for a plan (the cluster's Job and the local loop).
    current: the merged model served now; combined: a COMB adapter where the caller has one
    (the local loop) and the spec names none."""
    params = spec.parameters
    args = [
        "--majority-sign",
        params.majority_sign,
        "--output-format",
        spec.output.format,
        "--output",
        output,
        "--weight-normalization",
        params.weight_normalization,
        "--device",
        device,
    ]
    search = spec.search
    if search is not None:  # the grid gives each candidate's method and parameters
        args += ["--search", json.dumps(search.to_merger(), separators=(",", ":"))]
        args += [f"--validate={lang}={uri}" for lang, uri in sorted(search.validation.items())]
        methods = {entry.method for entry in search.grid}
    else:
        args += ["--method", spec.method, "--density", str(params.density)]
        args += ["--lambda", str(params.lambda_), "--seed", str(params.seed)]
        args += ["--weights", ",".join(str(i.weight) for i in plan.inputs)]
        methods = {spec.method}
    if MergeMethod.KNOTS_TIES in methods:  # the only method with a model-wide top-k
        args += ["--topk-scope", params.topk_scope]
    for item in plan.inputs:
        args += ["--adapter", item.uri, "--adapter-sha256", item.sha256]
    if spec.output.rank:
        args += ["--rank", str(spec.output.rank)]
    evaluation = spec.evaluation
    if spec.output.format == "full" or (evaluation and evaluation.datasets) or search:
        args += ["--base-model", spec.base_model.uri or spec.base_model.name]
    if evaluation and evaluation.precision and (evaluation.datasets or search):
        args += ["--eval-precision", evaluation.precision]
    if evaluation and evaluation.datasets:  # the merger evaluates; a failed gate publishes nothing
        for language, uri in sorted(evaluation.datasets.items()):
            args += ["--evaluate", f"{language}={uri}"]
        args += ["--gate-metric", (evaluation.metrics or ["f1"])[0]]
        gate = evaluation.gate
        if gate is not None:
            args += ["--gate-max-drop", str(gate.max_drop), "--gate-against", gate.against]
            baseline = {
                GateBaseline.COMBINED: gate.combined_model_uri or combined,
                GateBaseline.CURRENT: current,
                GateBaseline.INDIVIDUAL: None,
            }[gate.against]
            if baseline:
                args += ["--gate-baseline", baseline]
    if artifact_root is not None:
        args += ["--artifact-root", artifact_root]
    return args


def merge_job(config: OperatorConfig, merged: MergedModel, plan: MergePlan) -> dict[str, Any]:
    spec = merged.spec
    out = spec.output.uri or artifact_uri(config, merged, plan.fingerprint)
    root = config.artifact_mount if config.storage == "pvc" else None
    current = merged.status.artifact.uri if merged.status and merged.status.artifact else None
    args = merge_args(spec, plan, out, root, "cuda" if spec.resources.gpus else "cpu", current)
    job_labels = labels(merged, "merge", plan.fingerprint, spec.task, None)
    job = _job(
        config,
        merged,
        plan.job,
        job_labels,
        config.merger,
        ["langmerge-merge", *args],
        spec.resources,
    )
    inputs = {i.name: i.fingerprint for i in plan.inputs}
    job["metadata"]["annotations"] = {INPUTS_ANNOTATION: json.dumps(inputs, sort_keys=True)}
    return job
