"""``hamnet report RUN [--out FILE]``: write ``RUN/report.md``, one Markdown page about a run.

Config, data provenance, final metrics, pictures (relative links) and worst molecules;
see :mod:`hamnet.report`. Exit status 0, or 2 when RUN is not a readable run directory
(:class:`hamnet.report.ReportError`, reported by :func:`hamnet.cli.main`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a run directory of `hamnet train`")
    parser.add_argument("--out", default=None, help="Markdown file to write (default: RUN/report.md)")


def run(args: argparse.Namespace) -> int:
    from hamnet.report import write_run_report

    print(f"wrote {write_run_report(args.run_dir, args.out)}")
    return 0
