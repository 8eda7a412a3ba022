"""Deterministic simulation of whole BFT clusters, in the manner of TigerBeetle's VOPR.

Theory of operation
-------------------
N validators run the production consensus code — :class:`~sharechain.consensus.bft.Engine`
behind its :class:`~sharechain.consensus.bft.Replica` gate, with a WAL in the production
format — inside one process, on a simulated clock. The :class:`~sharechain.sim.cluster.Cluster`
is their driver: one queue of timestamped events (message deliveries, timers, crashes,
restarts, partitions, the moment the network heals) processed in order. Everything random —
delays, drops, duplicates, reordering, partitions, crash times, clock skews, Byzantine
choices — is drawn from generators seeded by the scenario's seed, so a run replays exactly.

* :mod:`.network` — seeded delays, drops, duplicates, reordering, partitions; heals at GST.
  A full mesh by default; ``Scenario.missing_links`` leaves node pairs unlinked for good
  (a sparse mesh), and then nodes relay what they admit, as real nodes do.
* :mod:`.fakechain` — an in-memory ChainConnector with strict block checks.
* :mod:`.byzantine` — equivocating proposer, double voter, silent, garbage sender, and
  colluders, as explicit seams on a node's outbound messages.
* :mod:`.invariants` — agreement, validity, certificates, no honest equivocation (across
  restarts), persist-before-send, no false evidence, BFT time, liveness after GST.
* :mod:`.trace` — a readable trace, identical for identical seeds.
* :mod:`.cluster` — scenarios and the event loop; :mod:`.sweep` — seed sweeps;
  :mod:`.bench` — figures; :mod:`.cli` — ``sharechain sim`` (``python -m sharechain.sim``).
* :mod:`.harness` — drive a single engine by hand (unit tests, golden transcripts).

A failing seed prints its one-line replay command, e.g.
``python -m sharechain.sim run --seed 17 --nodes 4 --byzantine 1 --heights 15 --faults drops,crash``.
"""

from sharechain.sim.cluster import Cluster, RunResult, Scenario, run_scenario

__all__ = ["Cluster", "RunResult", "Scenario", "run_scenario"]
