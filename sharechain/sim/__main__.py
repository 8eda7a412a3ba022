"""``python -m sharechain.sim ...`` — the ``sharechain sim`` commands before they are mounted."""

from sharechain.sim.cli import app

app(prog_name="python -m sharechain.sim")
