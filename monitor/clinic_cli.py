"""Clinic commands: ``users add``, ``reanalyse``, ``demo`` (wired into ``python -m monitor``).

Also runnable on its own: ``python -m monitor.clinic_cli users add NAME --role clinician``.
The data folder is ``--data`` or ``$MONITOR_DATA`` (default ./data); the database
``$MONITOR_DATABASE_URL`` when set.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_clinic_commands", "main", "run_clinic_command"]


def _bar(done: int, total: int, name: str) -> None:
    from monitor.cli import _progress

    _progress(done, total, name, "")


def add_clinic_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``users``, ``reanalyse`` and ``demo`` to an argparse sub-command set."""
    users = commands.add_parser("users", help="manage accounts of the clinic app")
    users_cmd = users.add_subparsers(dest="users_command", required=True)
    add = users_cmd.add_parser("add", help="create an account (the password is asked for)")
    add.add_argument("username")
    add.add_argument("--role", choices=("patient", "clinician"), required=True)
    add.add_argument("--name", help="name shown in the app (default: the user name)")
    add.add_argument("--clinician", metavar="USERNAME",
                     help="for a patient: their dermatologist's user name (creates the record)")
    add.add_argument("--treatment-date", metavar="YYYY-MM-DD",
                     help="for a patient: the treatment day (day 0)")
    add.add_argument("--procedure", default="microneedling")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of asking")
    add.add_argument("--data", help="data folder (default $MONITOR_DATA or ./data)")

    re = commands.add_parser("reanalyse", help="re-run the engine on every stored photo")
    re.add_argument("--outdated", action="store_true",
                    help="only patients with photos analysed by another engine version")
    re.add_argument("--data", help="data folder (default $MONITOR_DATA or ./data)")

    demo = commands.add_parser("demo", help="build the demo clinic and start the app on it")
    demo.add_argument("--data", default="data/demo", help="demo data folder (data/demo)")
    demo.add_argument("--port", type=int, default=8501)
    demo.add_argument("--build-only", action="store_true", help="build, do not start the app")


def run_clinic_command(args: argparse.Namespace) -> int:
    """Run a command added by :func:`add_clinic_commands`; returns the exit status."""
    from datetime import date

    from monitor.errors import MonitorError
    from monitor.store import Store

    if args.command == "users":
        store = Store(args.data)
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat the password: ") != password:
                print("The passwords differ; nothing was created.", file=sys.stderr)
                return 2
        try:
            treated = date.fromisoformat(args.treatment_date) if args.treatment_date \
                else None
        except ValueError:
            print(f"The treatment date must read YYYY-MM-DD, got {args.treatment_date!r}; "
                  "nothing was created.", file=sys.stderr)
            return 2
        try:
            # One transaction: a refused clinician, name or password creates nothing.
            user = store.create_user(args.username, password, role=args.role,
                                     display_name=args.name,
                                     clinician=args.clinician if args.role == "patient"
                                     else None,
                                     treatment_date=treated, procedure=args.procedure)
        except MonitorError as error:
            print(str(error), file=sys.stderr)
            return 2
        if args.clinician and args.role != "patient":
            print("Note: --clinician is only for patient accounts; it was ignored.",
                  file=sys.stderr)
        print(f"Created the {user.role} account {user.username!r}.")
        return 0
    if args.command == "reanalyse":
        from monitor.clinic import reanalyse_all

        store = Store(args.data)
        count = reanalyse_all(store, only_outdated=args.outdated, progress=_bar)
        print(f"Re-analysed {count} photos.")
        return 0
    if args.command == "demo":
        from monitor.demo import build_demo

        print("Building the demo clinic (first time only: about a minute)...", file=sys.stderr)
        build_demo(args.data, progress=_bar).close()
        if args.build_only:
            return 0
        repo = Path(__file__).resolve().parent.parent
        env = dict(os.environ, MONITOR_DATA=str(Path(args.data).resolve()))
        # Become the server (no child left running when this process is stopped).
        os.chdir(repo)
        os.execve(sys.executable, [sys.executable, "-m", "streamlit", "run",
                                   str(repo / "app.py"), f"--server.port={args.port}"], env)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.clinic_cli")
    add_clinic_commands(parser.add_subparsers(dest="command", required=True))
    return run_clinic_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
