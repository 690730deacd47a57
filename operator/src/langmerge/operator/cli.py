"""The `langmerge` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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

    from langmerge.operator import handlers  # noqa: F401 (registers the handlers)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=True,
        liveness_endpoint=args.liveness,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="langmerge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
