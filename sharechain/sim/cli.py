"""``sharechain sim``: replay one seeded run, sweep many, or print benchmark figures.

``sharechain sim --seed S --nodes 4 --byzantine 1 --heights 50 --faults drops,crash``
(same as ``sharechain sim run ...``) replays one run exactly and prints its trace;
``sweep`` runs many seeds with mixed faults and prints a replay command for every failure;
``bench`` prints figures and ends with one line of JSON. Until the lead mounts this app,
``python -m sharechain.sim ...`` runs it.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sharechain.sim.cluster import ALL_FAULTS, Cluster, RunResult, Scenario
from sharechain.sim.sweep import run_sweep, sweep_scenario
from sharechain.sim.trace import Trace

app = typer.Typer(help="Deterministic simulation of BFT consensus clusters.",
                  no_args_is_help=False, add_completion=False)
console = Console(highlight=False, soft_wrap=True)

SeedOpt = typer.Option(1, "--seed", help="Seed of the run; the same seed gives the same run.")
NodesOpt = typer.Option(4, "--nodes", min=1, help="Validators in the cluster.")
ByzOpt = typer.Option(1, "--byzantine", min=0, help="How many validators are Byzantine.")
HeightsOpt = typer.Option(50, "--heights", min=1, help="Run until every honest node has "
                          "committed this many heights.")
FaultsOpt = typer.Option("", "--faults", help="Comma-separated: " + ",".join(ALL_FAULTS))
ColludeOpt = typer.Option(False, "--collude", help="Byzantine nodes fork the chain together "
                          "(needs more than 1/3 of them to succeed).")
LinksOpt = typer.Option("", "--missing-links", help="Node pairs with no direct link, e.g. "
                        "0-2,1-3: a sparse mesh, where messages cross by relays.")
TraceOpt = typer.Option(False, "--trace", help="Print every message, drop and timer.")
QuietOpt = typer.Option(False, "--quiet", help="Print only the result line.")


def _parse_faults(text: str) -> tuple[str, ...]:
    faults = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in faults if f not in ALL_FAULTS]
    if unknown:
        raise typer.BadParameter(f"unknown fault(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(ALL_FAULTS)}", param_hint="--faults")
    return faults


def _parse_links(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple((int(a), int(b)) for a, b in
                     (pair.strip().split("-") for pair in text.split(",") if pair.strip()))
    except ValueError:
        raise typer.BadParameter("write node pairs as A-B, comma-separated (e.g. 0-2,1-3)",
                                 param_hint="--missing-links") from None


def _summary(res: RunResult) -> str:
    status = "OK" if res.ok else f"VIOLATION ({len(res.violations)})"
    return (f"{status}: seed {res.scenario.seed}, {res.heights} heights by every honest node, "
            f"{res.sim_ms} ms simulated (GST at {res.gst_ms} ms), {res.messages} messages, "
            f"{res.evidence} evidence")


def run_command(seed: int, nodes: int, byzantine: int, heights: int, faults: str,
                collude: bool, trace: bool, quiet: bool, missing_links: str = "") -> None:
    try:
        sc = Scenario(seed=seed, nodes=nodes, byzantine=byzantine, heights=heights,
                      faults=_parse_faults(faults), collude=collude,
                      missing_links=_parse_links(missing_links))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    level = "off" if quiet else ("full" if trace else "summary")
    tr = Trace(level, sink=lambda line: console.print(line, markup=False), keep=False)
    res = Cluster(sc, tr).run()
    console.print(_summary(res), markup=False)
    for v in res.violations:
        console.print(f"  {v}", markup=False)
    if not res.ok:
        console.print(f"replay: {sc.replay_command()}", markup=False)
        raise typer.Exit(1)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, seed: int = SeedOpt, nodes: int = NodesOpt,
         byzantine: int = ByzOpt, heights: int = HeightsOpt, faults: str = FaultsOpt,
         collude: bool = ColludeOpt, trace: bool = TraceOpt, quiet: bool = QuietOpt,
         missing_links: str = LinksOpt) -> None:
    """Without a command: run one simulation (same options as ``run``)."""
    if ctx.invoked_subcommand is None:
        run_command(seed, nodes, byzantine, heights, faults, collude, trace, quiet,
                    missing_links)


@app.command()
def run(seed: int = SeedOpt, nodes: int = NodesOpt, byzantine: int = ByzOpt,
        heights: int = HeightsOpt, faults: str = FaultsOpt, collude: bool = ColludeOpt,
        trace: bool = TraceOpt, quiet: bool = QuietOpt, missing_links: str = LinksOpt) -> None:
    """Replay one seeded run and print its trace; exit 1 if an invariant fails."""
    run_command(seed, nodes, byzantine, heights, faults, collude, trace, quiet, missing_links)


@app.command()
def sweep(seeds: int = typer.Option(200, "--seeds", min=1, help="How many seeds."),
          start: int = typer.Option(0, "--start", help="First seed."),
          heights: int | None = typer.Option(None, "--heights", help="Override the heights "
                                             "each run must reach."),
          jobs: int = typer.Option(1, "--jobs", min=1, help="Worker processes.")) -> None:
    """Run many seeds over mixed fault schedules (f Byzantine of 3f+1); exit 1 on a failure."""
    scenarios = [sweep_scenario(s, heights) for s in range(start, start + seeds)]
    failed: list[RunResult] = []
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[bad]} failed"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sweep", total=len(scenarios), bad=0)

        def on_result(res: RunResult) -> None:
            if not res.ok:
                failed.append(res)
                progress.console.print(f"seed {res.scenario.seed}: {res.violations[0]}",
                                       markup=False)
            progress.update(task, advance=1, bad=len(failed))

        run_sweep(scenarios, jobs, on_result)
    if failed:
        console.print(f"{len(failed)} of {len(scenarios)} seeds failed; replay with:",
                      markup=False)
        for res in failed:
            console.print(f"  {res.scenario.replay_command()}", markup=False)
        raise typer.Exit(1)
    console.print(f"all {len(scenarios)} seeds passed (seeds {start}..{start + seeds - 1})",
                  markup=False)


@app.command()
def bench(seconds: float = typer.Option(8.0, "--seconds", min=0.5,
                                        help="Wall-time budget for the CPU figures.")) -> None:
    """Print simulated latency, messages per height and heights per second; last line JSON."""
    from sharechain.sim.bench import figures

    f = figures(seconds)
    console.print(f"commit latency, good case: {f['latency_good_delays']} message delays "
                  f"({f['delay_ms']} ms each)", markup=False)
    console.print(f"commit latency after a proposer failure: "
                  f"{f['latency_proposer_failure_ms']} ms = round-0 timeouts "
                  f"{f['latency_proposer_failure_timeouts_ms']} ms + "
                  f"{f['latency_proposer_failure_delays_beyond_timeouts']} message delays",
                  markup=False)
    for n, m in f["msgs_per_height"].items():
        console.print(f"messages per height, {n:>2} validators: {m}", markup=False)
    console.print(f"simulated heights per wall second:  4 validators {f['heights_per_s']}, "
                  f"16 validators {f['heights_per_s_16']} (signatures checked once per "
                  "cluster)", markup=False)
    console.print(f"  with every node verifying every signature: 4 validators "
                  f"{f['heights_per_s_verify_every_node']}, 16 validators "
                  f"{f['heights_per_s_16_verify_every_node']}", markup=False)
    sys.stdout.flush()
    print(json.dumps(f, sort_keys=True))
