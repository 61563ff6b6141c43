"""Clinic commands: ``users add``, ``reanalyse``, ``demo`` (wired into ``python -m monitor``).

Also runnable on its own: ``python -m monitor.cli.clinic users add NAME --role clinician``.
The data folder is ``--data`` or ``$MONITOR_DATA`` (default ./data); the database
``$MONITOR_DATABASE_URL`` when set. ``reanalyse [--outdated] [--workers N | --scheduler ADDRESS]``
runs one task per patient (:mod:`monitor.reanalysis`): in this process, on a local Dask
cluster of N worker processes, or on an existing cluster; stopped, it carries on where it was.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.progress import print_progress

if TYPE_CHECKING:
    from monitor.store import Store

__all__ = ["add_clinic_commands", "app_file", "main", "run_clinic_command"]


def _bar(done: int, total: int, name: str) -> None:
    print_progress(done, total, name)


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

    re = commands.add_parser(
        "reanalyse", help="re-run the engine on every stored photo",
        description="Re-run the engine on every stored photo, one task per patient (each "
                    "patient's reference photo first), here or on a Dask cluster. Stopped "
                    "half-way, the same command carries on: nothing is done twice, nothing "
                    "missed. Exit status 0 when every patient was done, 1 when some failed "
                    "(run it again to retry them), 2 for a usage error or no cluster.")
    re.add_argument("--outdated", action="store_true",
                    help="only photos analysed by another engine version (or not at all)")
    where = re.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, metavar="N",
                       help="start a Dask cluster of N worker processes on this machine "
                            "(one thread each, loopback only) and run on it")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786; its "
                            "workers need this version of Breakout Monitor, the data folder "
                            "at the same path and access to the database and photos")
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
        return _reanalyse(Store(args.data), outdated=args.outdated, workers=args.workers,
                          scheduler=args.scheduler)
    if args.command == "demo":
        from monitor.testing import build_demo

        print("Building the demo clinic (first time only: about a minute)...", file=sys.stderr)
        build_demo(args.data, progress=_bar).close()
        if args.build_only:
            return 0
        app = app_file()
        env = dict(os.environ, MONITOR_DATA=str(Path(args.data).resolve()))
        # Become the server (no child left running when this process is stopped).
        os.chdir(app.parent)
        os.execve(sys.executable, [sys.executable, "-m", "streamlit", "run",
                                   str(app), f"--server.port={args.port}"], env)
    return 2


def app_file() -> Path:
    """The app's server script, ``app.py`` at the repository's root (the app runs from the
    repository, not from an installed package)."""
    return Path(__file__).resolve().parents[2] / "app.py"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _patients(n: int) -> str:
    return f"{n} patient{'' if n == 1 else 's'}"


def _photos(n: int) -> str:
    return f"{n} photo{'' if n == 1 else 's'}"


def _reanalyse(store: Store, *, outdated: bool, workers: int | None,
               scheduler: str | None) -> int:
    """``reanalyse``: progress on stderr as each patient ends, the summary on stdout."""
    from monitor.clinic import (
        PatientDone,
        PatientFailed,
        local_cluster,
        run_reanalysis,
        start_reanalysis,
    )

    run = start_reanalysis(store, only_outdated=outdated)
    if not run.patients:
        print("Nothing to re-analyse: every stored photo was analysed by this engine"
              + (" (outdated ones only were asked for)." if outdated
                 else " in this run." if run.resumed else "."))
        return 0
    where = (f"on {workers} local worker{'' if workers == 1 else 's'}" if workers
             else f"on the Dask cluster at {scheduler}" if scheduler else "in this process")
    what = f"{_photos(run.photos_left)} of {_patients(len(run.patients))}"
    if run.resumed:
        print(f"Carrying on with the re-analysis begun {run.started_at}: {what} left "
              f"({_photos(run.photos - run.photos_left)} done are kept), {where}.",
              file=sys.stderr, flush=True)
    else:
        print(f"Re-analysing {what} {where}.", file=sys.stderr, flush=True)

    def ended(outcome: PatientDone | PatientFailed, finished: int, total: int) -> None:
        if isinstance(outcome, PatientDone):
            text = f"{_photos(outcome.analysed)} re-analysed in {outcome.seconds:.1f} s"
        else:
            text = f"not re-analysed: {outcome.reason}"
        print(f"[{finished}/{total}] patient #{outcome.patient_id}: {text}",
              file=sys.stderr, flush=True)

    # Dask's own log lines (and their tracebacks) stay out of the way: failures are reported
    # per patient, in words. Worker processes inherit the setting.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    try:
        with contextlib.ExitStack() as stack:
            client = None
            if workers:
                client = stack.enter_context(local_cluster(workers))
            elif scheduler:
                from distributed import Client

                client = stack.enter_context(Client(scheduler, timeout="10s"))
            result = run_reanalysis(store, run, client=client, on_patient=ended)
    except (OSError, TimeoutError, RuntimeError) as error:
        target = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
        print(f"Could not start or reach {target} ({error or type(error).__name__}). Nothing "
              "done is lost: run the command again once the cluster is up.", file=sys.stderr)
        return 2
    if result.failed:
        print(f"Re-analysed {_photos(result.photos_analysed)}; "
              f"{_patients(len(result.failed))} could not be re-analysed (listed above). Run "
              "the same command again to retry: what is done is kept.")
        return 1
    print(f"Re-analysed {_photos(result.photos_analysed)} of {_patients(len(result.done))} "
          f"in {result.seconds:.0f} s.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.cli.clinic")
    add_clinic_commands(parser.add_subparsers(dest="command", required=True))
    return run_clinic_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
