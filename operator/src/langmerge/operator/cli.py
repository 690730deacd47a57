"""The `langmerge` command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from pathlib import Path

from langmerge.common.cli import add_version
from langmerge.operator.api.crd import stale_crds, write_crds


def _crds(args: argparse.Namespace) -> int:
    directory = Path(args.out)
    if args.check:
        stale = stale_crds(directory)
        if stale:
            print(f"stale CRDs (run `make crds`): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for path in write_crds(directory):
        print(f"wrote {path}")
    return 0


def _operator(args: argparse.Namespace) -> int:
    import kopf

    from langmerge.operator import handlers  # registers the handlers
    from langmerge.operator.config import ConfigError, OperatorConfig

    try:
        config = OperatorConfig.from_env()
    except ConfigError as error:  # before kopf starts: one line naming the variable
        print(f"langmerge operator: {error}", file=sys.stderr)
        return 2
    if config.train_jobs:
        handlers.watch_trainjobs()

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=True,
        liveness_endpoint=args.liveness,
        memo=handlers.operator_memo(args.namespace or [], config),
    )
    return 0


def _up(args: argparse.Namespace) -> int:
    from langmerge.operator.local import ManifestError, up
    from langmerge.operator.metrics import Metrics

    metrics = None
    if args.metrics_port:
        metrics = Metrics()
        metrics.serve(args.metrics_port)
    try:
        code = up(
            Path(args.file),
            Path(args.state_dir),
            args.compare_combined,
            metrics,
            warm=False if args.cold else None,
            eval_limit=args.eval_limit,
        )
    except ManifestError as error:
        print(f"langmerge up: {error}", file=sys.stderr)
        return 2
    if metrics and args.keep_serving:
        print(f"serving metrics on :{args.metrics_port}/metrics; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return code


def _status(args: argparse.Namespace) -> int:
    from langmerge.operator.api.adapter import LanguageAdapterStatus
    from langmerge.operator.api.merged import MergedModelStatus
    from langmerge.operator.api.reasons import ConditionType
    from langmerge.operator.conditions import condition_of
    from langmerge.operator.local import ManifestError, State

    try:
        state = State.load(Path(args.state_dir) / "state.json")
    except ManifestError as error:
        print(f"langmerge status: {error}", file=sys.stderr)
        return 2
    if not state.adapters and not state.merged:
        print(f"no state in {args.state_dir}; run `langmerge up -f DIR` first")
        return 1
    statuses: list[tuple[str, str, LanguageAdapterStatus | MergedModelStatus]] = [
        *(("LanguageAdapter", n, s) for n, s in sorted(state.adapters.items())),
        *(("MergedModel", n, s) for n, s in sorted(state.merged.items())),
    ]
    for kind, name, status in statuses:
        found = condition_of(status.conditions, ConditionType.READY)
        ready = found.reason if found else "-"
        artifact = status.artifact.uri if status.artifact else "-"
        cost = status.totals.cost_usd if status.totals else 0.0
        phase = status.phase or "-"
        print(f"{kind:16s} {name:24s} {phase:10s} {ready:18s} ${cost:.6f}  {artifact}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="langmerge", description=__doc__)
    add_version(parser, "langmerge-operator")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below"
    )

    crds = commands.add_parser("crds", help="generate the CRD YAML from the API models")
    crds.add_argument("--out", default="crds", help="folder to write to (default: crds)")
    crds.add_argument("--check", action="store_true", help="fail if the folder is stale")
    crds.set_defaults(handler=_crds)

    operator = commands.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only these namespaces (repeat); default: the whole cluster",
    )
    operator.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    operator.set_defaults(handler=_operator)

    run_up = commands.add_parser("up", help="run the loop on this machine (no cluster)")
    run_up.add_argument(
        "-f", "--file", required=True, help="folder with LanguageAdapter/MergedModel YAML"
    )
    run_up.add_argument(
        "--state-dir",
        default=".langmerge",
        help="where state and artifacts live (default: .langmerge)",
    )
    run_up.add_argument(
        "--compare-combined",
        action="store_true",
        help="also train and evaluate the combined (COMB) baseline, for the research table",
    )
    run_up.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate on the first N held-out examples of each language: a quick look, "
        "with wider intervals (default: all)",
    )
    run_up.add_argument(
        "--cold",
        action="store_true",
        help="run every trainer/merger command as a new process, as a Job's container does "
        "(default: fork each from one warm process that imported the libraries once; "
        "LANGMERGE_WARM=0 does the same)",
    )
    run_up.add_argument(
        "--metrics-port", type=int, default=None, help="serve the operator's metrics here"
    )
    run_up.add_argument(
        "--keep-serving", action="store_true", help="keep serving metrics after the run"
    )
    run_up.set_defaults(handler=_up)

    status = commands.add_parser(
        "status",
        help="show the local loop's state",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    status.add_argument(
        "--state-dir", default=".langmerge", help="the state folder of `langmerge up`"
    )
    status.set_defaults(handler=_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
