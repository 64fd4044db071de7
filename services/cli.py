"""The `charity-ledger` command: one subcommand per part of the system.

Each command imports its service when it runs, so `--help` loads none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from services.platform import kafka_cli
from services.platform.settings import describe_error

app = typer.Typer(
    name="charity-ledger",
    help="慈善捐赠账本 · charity donation ledger",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kafka_cli.app, name="kafka")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="The ledger database (default: CHARITY_DATABASE_URL, else var/ledger.db)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


def _exit(status: int) -> None:
    if status:
        raise typer.Exit(status)


@app.callback(invoke_without_command=True)
def _top(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command()
def run(
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Start empty: no demo data.")] = False,
) -> None:
    """Everything on one machine with embedded defaults: Kafka, ledger, API, display."""
    from services.platform.supervisor import run as run_all

    _exit(run_all(demo_data=not no_demo))


@app.command()
def ledger() -> None:
    """The ledger service: consumes the input topics, writes the journal."""
    from services.ledger.main import run as run_ledger

    run_ledger()


@app.command()
def api() -> None:
    """The HTTP API."""
    from services.api.main import run as run_api

    run_api()


@app.command()
def display() -> None:
    """The venue display gateway."""
    from services.display.main import run as run_display

    run_display()


@app.command()
def sandbox() -> None:
    """The payment sandbox: a simulated WeChat Pay API v3 with a hosted pay page (make run, tests)."""
    from services.payments.sandbox.main import run as run_sandbox
    from services.platform.settings import Settings

    run_sandbox(Settings())


@app.command()
def migrate() -> None:
    """Create or upgrade the ledger database."""
    from services.ledger.adapters.store import LedgerStore
    from services.platform.db import make_engine
    from services.platform.settings import Settings

    LedgerStore(make_engine(Settings().database_url)).migrate()


@app.command()
def verify(
    database_url: DatabaseUrl = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM file of the published tree-head keys, one or several "
            "(default: the keys registered in the database)."
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Re-check the hash chain, tree heads, balances and projections."""
    from services.ledger.ops.commands import verify_command

    _exit(verify_command(database_url, public_key, quiet))


@app.command()
def rebuild(
    database_url: DatabaseUrl = None,
    check: Annotated[bool, typer.Option("--check", help="Only compare with the live projections.")] = False,
    quiet: Quiet = False,
) -> None:
    """Recompute every projection from the journal."""
    from services.ledger.ops.commands import rebuild_command

    _exit(rebuild_command(database_url, check, quiet))


@app.command()
def restore(
    from_topic: Annotated[
        bool, typer.Option("--from-topic", help="Read the entries from charity.ledger.journal (required).")
    ] = False,
    database_url: DatabaseUrl = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="The brokers (default: CHARITY_KAFKA_BOOTSTRAP).")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM file of the published tree-head keys to trust "
            "(default: the keys on charity.ledger.checkpoints)."
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Rebuild a wiped (empty, migrated) ledger database from the journal topic."""
    from services.ledger.ops.commands import restore_command

    if not from_topic:
        typer.echo("restore: say where from: --from-topic (the journal topic is the only source)", err=True)
        raise typer.Exit(2)
    _exit(restore_command(database_url, bootstrap, public_key, quiet))


keys_app = typer.Typer(
    name="keys",
    help="The keys that sign tree heads.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(database_url: DatabaseUrl = None) -> None:
    """Sign new tree heads with a new key (the first one, if there is none); old heads keep theirs."""
    from services.ledger.ops.commands import rotate_command

    _exit(rotate_command(database_url))


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """Every registered public key: its id, algorithm and since when it signs."""
    from services.ledger.ops.commands import list_keys_command

    _exit(list_keys_command(database_url))


donors_app = typer.Typer(
    name="donors",
    help="The donor store: personal data that can be erased.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(donors_app, name="donors")


@donors_app.command("erase")
def donors_erase(
    receipt_no: Annotated[str, typer.Argument(help="The receipt number, e.g. SIP-2026-0001234.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Erase one donor's name, message and data key; the receipt, amounts and proofs still verify."""
    from services.donors.commands import erase_command
    from services.platform.settings import Settings

    _exit(erase_command(database_url or Settings().database_url, receipt_no))


staff_app = typer.Typer(
    name="staff",
    help="Staff accounts: people log in to the console with these.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(staff_app, name="staff")


def _password_reader(from_stdin: bool) -> Callable[[], str]:
    """The password from stdin (one line), or asked twice without echo: never an argument,
    which would sit in the shell's history and the process list."""

    def read() -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\r\n")
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password

    return read


@staff_app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="2-32 of a-z 0-9 _ . -, starting with a letter.")],
    role: Annotated[
        str,
        typer.Option(
            help="administrator (admin), project_manager (manager), finance_officer (finance), "
            "auditor, venue_operator (operator)."
        ),
    ],
    project: Annotated[
        list[str] | None, typer.Option(help="A project a project manager runs (repeatable).")
    ] = None,
    venue: Annotated[
        list[str] | None, typer.Option(help="A venue a venue operator serves (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin instead of asking.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a staff account; weak passwords are refused. There is no default account or password."""
    from services.platform.settings import Settings
    from services.staff.commands import add_command

    _exit(
        add_command(
            database_url or Settings().database_url,
            username,
            role,
            _password_reader(password_stdin),
            projects=project,
            venues=venue,
        )
    )


@staff_app.command("list")
def staff_list(database_url: DatabaseUrl = None) -> None:
    """Every account: username, role, active or disabled, projects and venues."""
    from services.platform.settings import Settings
    from services.staff.commands import list_command

    _exit(list_command(database_url or Settings().database_url))


@staff_app.command("disable")
def staff_disable(
    username: Annotated[str, typer.Argument(help="The account to disable.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Disable an account (it is kept, never reused) and end its sessions at once."""
    from services.platform.settings import Settings
    from services.staff.commands import disable_command

    _exit(disable_command(database_url or Settings().database_url, username))


token_app = typer.Typer(
    name="token",
    help="Machine clients' named tokens: each acts as machine:NAME with exactly its permissions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
staff_app.add_typer(token_app, name="token")


@token_app.command("add")
def staff_token_add(
    name: Annotated[str, typer.Argument(help="2-32 of a-z 0-9 _ . -, starting with a letter.")],
    permission: Annotated[
        list[str], typer.Option(help="A permission the token carries, e.g. project.register (repeatable).")
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Make a token for a machine client and print it once; only its SHA-256 is kept."""
    from services.platform.settings import Settings
    from services.staff.commands import token_add_command

    _exit(token_add_command(database_url or Settings().database_url, name, permission))


@token_app.command("list")
def staff_token_list(database_url: DatabaseUrl = None) -> None:
    """Every machine token: name, active or revoked, permissions (never the token)."""
    from services.platform.settings import Settings
    from services.staff.commands import token_list_command

    _exit(token_list_command(database_url or Settings().database_url))


@token_app.command("revoke")
def staff_token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Refuse a token from now on (its name is kept, never reused)."""
    from services.platform.settings import Settings
    from services.staff.commands import token_revoke_command

    _exit(token_revoke_command(database_url or Settings().database_url, name))


def main(argv: list[str] | None = None) -> None:
    """The entry point; exits with the command's status, 2 for bad usage or bad settings."""
    try:
        app(args=argv, prog_name="charity-ledger")
    except ValidationError as error:
        typer.echo(f"charity-ledger: {describe_error(error)}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
