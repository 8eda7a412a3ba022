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


@app.command("trust")
@handle_errors
def trust(node: str | None = typer.Option(
        None, "--node", help="Node API URL (env SHARECHAIN_NODE).")) -> None:
    """Credit and arbitration: a late rider's deposit rises, a provider keeps her reputation
    across platforms, a damage claim goes to a panel, a bureau reports with consent."""
    from sharechain.client import Client
    from sharechain.demo.trust import run_trust

    with Client(node or node_url()) as c:
        run_trust(c)


@app.command("market")
@handle_errors
def market(node: str | None = typer.Option(
        None, "--node", help="Node API URL (env SHARECHAIN_NODE).")) -> None:
    """Business collaboration: a rider on carshare books a bike listed by bikeco and the
    platform fee is split; a matcher fills requests optimally; a stale fill is refused."""
    from sharechain.client import Client
    from sharechain.demo.market import run_market

    with Client(node or node_url()) as c:
        run_market(c)
