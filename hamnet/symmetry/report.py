"""A plain-text table of an equivariance-error report (:func:`hamnet.symmetry.error.equivariance_error`)."""

from __future__ import annotations

__all__ = ["format_report"]


def format_report(report: dict, title: str = "equivariance error") -> str:
    """A plain-text table of an :func:`equivariance_error` report."""
    rows = [("all entries", report)]
    rows += [("on-site blocks", report["on_site"]), ("off-site blocks", report["off_site"])]
    rows += [(f"  {name} blocks", r) for name, r in report["by_block"].items()]
    if "eps_occ" in report:
        rows.append(("occupied eps", report["eps_occ"]))
    lines = [f"{title} ({report['n_molecules']} molecules x {report['n_rotations']} rotations, micro-Hartree)",
             f"{'':<20}{'mean':>14}{'max':>14}{'rms':>14}"]
    for name, r in rows:
        lines.append(f"{name:<20}{r['mean_uHa']:>14.4g}{r['max_uHa']:>14.4g}{r['rms_uHa']:>14.4g}")
    return "\n".join(lines)
