"""The command line: ``python -m monitor analyze ...``.

Exit status: 0 when the run completed (whatever photos were rejected), 2 for a usage error.
Progress goes to stderr, the readable summary to stdout, the analysis to the ``--json`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from monitor.progress import print_progress

__all__ = ["main"]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _captured(text: str) -> tuple[str, datetime]:
    name, sep, when = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FILE=YYYY-MM-DD[THH:MM], got {text!r}")
    try:
        return Path(name).name, datetime.fromisoformat(when)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date/time as YYYY-MM-DD or YYYY-MM-DDTHH:MM, got {when!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitor",
                                     description="Follow a skin breakout from daily photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze", help="analyse a course of photos",
        description="Check, align and measure every photo; write the analysis as JSON.")
    analyze.add_argument("paths", nargs="+", metavar="PATH",
                         help="photo files, or folders whose files are all considered")
    analyze.add_argument("--treatment-date", type=_date, metavar="YYYY-MM-DD",
                         help="day 0 of the course (the treatment)")
    analyze.add_argument("--reference", metavar="FILE",
                         help="the photo every other photo is aligned to (default: the earliest)")
    analyze.add_argument("--captured-at", type=_captured, action="append", default=[],
                         metavar="FILE=DATE", help="override a photo's capture time (repeatable)")
    analyze.add_argument("--json", required=True, metavar="OUT", help="where to write the JSON")
    analyze.add_argument("--colour-card", action="store_true",
                         help="look for a colour card (ColorChecker Classic) in each photo and "
                              "set the colour correction from it (about 0.1-0.2 s a photo)")
    analyze.add_argument("--quiet", action="store_true", help="no progress on stderr")

    lesions = commands.add_parser(
        "lesions", help="count spots on close-up photos (no whole face needed)",
        description="Find papules and pustules on close-ups; skin is found by colour.")
    lesions.add_argument("paths", nargs="+", metavar="IMAGE",
                         help="close-up photo files, or folders whose files are all considered")
    lesions.add_argument("--json", required=True, metavar="OUT", help="where to write the JSON")
    lesions.add_argument("--quiet", action="store_true", help="no progress on stderr")

    from monitor.cli.clinic import add_clinic_commands

    add_clinic_commands(commands)  # users add, reanalyse, demo
    return parser


def _summary(analysis: dict) -> str:
    photos = analysis["photos"]
    ok = [p for p in photos if p["status"] == "ok"]
    lines = [f"{len(ok)} of {len(photos)} photos analysed; reference photo: "
             f"{analysis['reference'] or 'none'}."]
    for p in photos:
        day = "" if p["day"] is None else f"day {p['day']:>2}  "
        if p["status"] == "ok":
            extra = f"aligned (score {p['alignment_score']:.2f})"
            if p.get("lesion_count") is not None:
                extra += f", {p['lesion_count']} spots"
            if p.get("redness"):
                extra += f", redness {p['redness']['index']:+.1f}"
            lines.append(f"  {day}{p['file']}: {extra}")
            lines.extend(f"      note: {w}" for w in p["warnings"])
        else:
            lines.append(f"  {day}{p['file']}: not used. {p['reason']}")
    return "\n".join(lines)


def _analyze(args: argparse.Namespace) -> int:
    from monitor.pipeline import analyse_series

    missing = [p for p in args.paths if not os.path.exists(p)]
    for path in missing:
        print(f"note: {path} does not exist; it is listed as not used.", file=sys.stderr)
    analysis = analyse_series(
        args.paths,
        treatment_date=args.treatment_date,
        reference=args.reference,
        captured_at=dict(args.captured_at),
        progress=None if args.quiet else print_progress,
        colour_card=args.colour_card,
    )
    if args.reference and analysis["reference"] != Path(args.reference).name:
        print(f"note: {args.reference} was not among the usable photos; the reference is "
              f"{analysis['reference'] or 'none'} instead.", file=sys.stderr)
    out = Path(args.json)
    _write_json(analysis, out)
    print(_summary(analysis))
    print(f"Analysis written to {out}.")
    trend = analysis.get("trend")
    if trend:
        print()
        print(trend["summary"])
    return 0


def _write_json(data: dict, out: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)


def _lesions(args: argparse.Namespace) -> int:
    from monitor.pipeline import CLOSEUP_SCHEMA, analyse_closeup, expand_paths

    files = expand_paths(args.paths)
    photos = []
    for i, path in enumerate(files):
        photos.append(analyse_closeup(path))
        if not args.quiet:
            print_progress(i + 1, len(files), path.name, photos[-1]["status"])
    out = Path(args.json)
    _write_json({"schema": CLOSEUP_SCHEMA, "photos": photos}, out)
    for p in photos:
        if p["status"] == "ok":
            print(f"  {p['file']}: {p['lesion_count']} spots")
        else:
            print(f"  {p['file']}: not used. {p['reason']}")
    print(f"Results written to {out}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "analyze":
        return _analyze(args)
    if args.command == "lesions":
        return _lesions(args)
    if args.command in ("users", "reanalyse", "demo"):
        from monitor.cli.clinic import run_clinic_command

        return run_clinic_command(args)
    return 2
