"""``abllm keys create|list|revoke``: managed API keys, kept hashed in the state backend.

A created key is printed once and never again (only its SHA-256 is stored); ``abllm serve``
processes on the same state backend accept it within a few seconds, and stop accepting a
revoked one as quickly (:mod:`abllm.state.keys`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from abllm.cli.common import console, fail, print_json
from abllm.cli.statecmd import STATE_HELP, _open
from abllm.errors import AbllmError

if TYPE_CHECKING:
    from abllm.state.keys import ManagedKeys

STORE_HELP = "event store URL; keys live in its state database (default: $ABLLM_STORE)"


@contextmanager
def _keys(store: str | None, state: str | None) -> Iterator[ManagedKeys]:
    """The managed keys of the state backend; abllm errors end as one line (exit 2)."""
    from abllm.state.keys import keys_for

    with _open(store, state) as backend:
        try:
            yield keys_for(backend)
        except AbllmError as exc:
            fail(exc)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group."""
    keys_app = typer.Typer(
        name="keys",
        help="Create, list and revoke API keys kept (hashed) in the state store.",
        no_args_is_help=True,
    )
    app.add_typer(keys_app)

    @keys_app.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="who or what uses the key (unique)"),
        scope: str = typer.Option("sdk", "--scope", help="sdk (inference, events) or admin"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        as_json: bool = typer.Option(False, "--json", help="print the key and its row as JSON"),
    ) -> None:
        """Make a key and print it once: it cannot be shown again."""
        from abllm.state.keys import create_key

        with _keys(store, state) as keys:
            record, key = create_key(keys, scope, name)
        if as_json:
            print_json({**record.to_json(), "key": key})
            return
        print(key)
        console.print(
            f"created {record.scope} key {record.label}; store it now, it is not shown again",
            highlight=False,
            markup=False,
        )

    @keys_app.command("list")
    def list_keys(
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        revoked: bool = typer.Option(False, "--all", help="include revoked keys"),
        as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
    ) -> None:
        """List managed keys (name, scope, prefix, dates), never the keys themselves."""
        with _keys(store, state) as keys:
            rows = [r for r in keys.all() if revoked or r.revoked_at is None]
        if as_json:
            print_json([r.to_json() for r in rows])
            return
        if not rows:
            console.print("no managed keys", highlight=False)
        for r in rows:
            line = f"{r.prefix}  {r.scope:<5}  {r.name}  created {_when(r.created_at)}"
            if r.revoked_at is not None:
                line += f"  revoked {_when(r.revoked_at)}"
            console.print(line, highlight=False, markup=False)

    @keys_app.command("revoke")
    def revoke(
        key: str = typer.Argument(..., help="the key's id, prefix (abllm_sk_…) or name"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
    ) -> None:
        """Revoke a key: servers refuse it (and its browser sessions) within seconds."""
        from abllm.state.keys import revoke_key

        with _keys(store, state) as keys:
            record = revoke_key(keys, key)
        console.print(f"revoked {record.label}", highlight=False, markup=False)
