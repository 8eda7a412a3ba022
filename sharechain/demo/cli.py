"""``sharechain demo``: stories told against a running node (start one with
``sharechain devnet``)."""

from __future__ import annotations

import typer

from sharechain.cli.common import handle_errors, node_url

app = typer.Typer(help="Demo stories against a running node (see `sharechain devnet`).",
                  no_args_is_help=True)


@app.command("bike-sharing")
@handle_errors
def bike_sharing(node: str | None = typer.Option(
        None, "--node", help="Node API URL (env SHARECHAIN_NODE).")) -> None:
    """Register, confirm, pledge and list a bike; three rides settled by the bike's own
    device (one late); a damage claim; an expired reservation; rewards and the pledge back."""
    from sharechain.demo.bike_sharing import run

    run(node or node_url())
