"""``hamnet train [CONFIG.yaml]``: train (or resume) a model; no CONFIG runs the default job.

The default job builds a 60-structure md17-water replica (PBE/def2-SVP) in ``data/``,
trains a small TraceGrad model for ~2.5 minutes in ``runs/md17-water-default``,
evaluates the best checkpoint on the test split and prints the QH9 metrics table.
Rerunning a command on the same run directory resumes it. Under
``torchrun --nproc_per_node=N -m hamnet train CONFIG`` it trains with
DistributedDataParallel. Exit status: 0 finished, 130 interrupted (checkpoint saved),
2 bad config, data or checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="run config (YAML); omitted: the built-in default job (md17-water replica)")
    parser.add_argument("--run-dir", default=None, help="run directory (default: the config's run_dir)")
    parser.add_argument("--data", default=None, metavar="STORE",
                        help="train on this dataset store instead of the config's data section")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="set limits.max_minutes (training stops at whichever limit comes first)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="set limits.max_steps (--set limits.max_minutes=null removes the other limit)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config value, e.g. --set model.tracegrad=false (repeatable; "
                        "VALUE is read as YAML)")
    from hamnet.commands import add_quiet

    add_quiet(parser)  # also silences the generation of a recipe's store


def build_config(args: argparse.Namespace):
    """The config a command line asks for (the file or the default job, plus overrides)."""
    from hamnet.train.config import default_config, load_config

    cfg = load_config(args.config) if args.config is not None else default_config()
    d = cfg.to_dict()
    if args.data is not None:
        d["data"] = {**d["data"], "path": args.data, "recipe": None, "n": None}
    if args.max_minutes is not None:
        d["limits"]["max_minutes"] = args.max_minutes
    if args.max_steps is not None:
        d["limits"]["max_steps"] = args.max_steps
    for item in getattr(args, "overrides", []):
        apply_override(d, item)
    return load_config(d)


def apply_override(d: dict, item: str) -> None:
    """Set ``section.key=value`` (value parsed as YAML) in a config dict, in place."""
    import yaml

    from hamnet.errors import ConfigError

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. model.tracegrad=false), got {item!r}")
    *path, last = key.strip().split(".")
    node = d
    for part in path:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {key}: {part!r} is not a config section")
        node = node[part]
    node[last] = yaml.safe_load(value)


def run(args: argparse.Namespace) -> int:
    from hamnet.train.loop import run as train

    result = train(build_config(args), args.run_dir, progress=not args.quiet)
    if result.status == "interrupted":
        print(f"hamnet train: interrupted at step {result.step}; checkpoint saved in {result.run_dir}; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
