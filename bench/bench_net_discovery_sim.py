"""Mesh-wide discovery in the 200-node simulation: newcomer time and steady traffic.

Workload: ``random_geometric(200, degree=7, seed=SEED)`` routers (each its
own LAN segment, so beyond one hop discovery is unicast to the routing
daemon's neighbours plus peer exchange), the real Discovery core on every
node (default settings: beacon_interval 5 s), 199 nodes started at
uniformly jittered times in [0, 1] s; the run continues until every peer
table is complete (``converged``), then 20 s more to settle.

Also ``sim-engine-events``: the engine alone (100 self-rescheduling timers)
against a bare ``heapq`` loop doing the same, events per second.

Measured (simulated quantities, reported as metrics; the timings are the
wall-clock time the simulator takes, so the throughput column of the
``ours`` rows is the engine's speed in events per second):

* ``net-discovery-sim-200-newcomer``: router ``r0100`` starts; simulated
  seconds until every other node has it as alive in its peer table
  (``newcomer_known_s``), judged against the issue's bound
  ``3 x beacon_interval x diameter`` (``bound_s``; diameter in hops of the
  routed mesh).
* ``net-discovery-sim-200-traffic``: over 60 simulated seconds of steady
  state, discovery payload bytes sent and received per node per second
  (means; ``max_sent_Bps`` for the busiest node), also with IPv4+UDP
  headers (28 B per datagram), judged against the bound 200 B/s per node.

Both are simulated figures with no peer doing the same work: each row
carries its bound (``against_bound``) and the report prints met or missed
under it, with no time ratio.

``sim-engine-events`` compares the same work against SimPy (the library
made for process-based discrete-event simulation, in the ``bench`` extra):
100 timers that each reschedule themselves with a random delay, as event
callbacks on ``simpy.Environment`` (``env.timeout(d).callbacks``), stepped
ENGINE_EVENTS times.
"""

from __future__ import annotations

import random
import time

import pytest
from _harness import against_bound, describe, scale

from meshcore.sim import (
    Scenario,
    all_know,
    converged,
    discovery_factory,
    random_geometric,
    start_discovery,
)

discovery = pytest.importorskip("meshcore.net.discovery")
simpy = pytest.importorskip("simpy", reason="simpy (bench peer) is not installed")

SEED = 20261125
N = 200
NEWCOMER = "r0100"
TRAFFIC_S = scale(60, 30)
TRAFFIC_BOUND = 200.0  # bytes/s per node (issue 4)
_cache: dict = {}


def settings():
    return discovery.DiscoverySettings(
        community_key=b"meshcore-bench-community-key-32b", interfaces=("lan",)
    )


def converge():
    """A converged 199-node scenario (built once per session)."""
    if "sc" not in _cache:
        topo = random_geometric(N, degree=7, seed=SEED)
        sc = Scenario(topo, seed=SEED)
        st = settings()
        start_discovery(sc, st, nodes=[n for n in sorted(topo.nodes) if n != NEWCOMER])
        t0 = time.perf_counter()
        t = sc.run_until(lambda: converged(sc), timeout=600, poll=1.0)
        assert t is not None, "the 199-node mesh did not converge"
        sc.run(sc.sim.now + 20)
        ids = sc.network.ids
        diameter = max(sc.network.route_hops(a, b) for a in ids for b in ids)
        _cache.update(sc=sc, st=st, converged_s=t, diameter=diameter,
                      wall=time.perf_counter() - t0, events=sc.sim.events_run)
    return _cache


def test_newcomer_ours(benchmark):
    c = converge()
    sc, st = c["sc"], c["st"]
    bound = 3 * st.beacon_interval * c["diameter"]
    out = {}

    def run():
        host = sc.add_host(NEWCOMER, discovery_factory(st)(NEWCOMER, random.Random(SEED),
                                                           sc.sim.now),
                           port=st.port, start_at=sc.sim.now)
        start, events = sc.sim.now, sc.sim.events_run
        t = sc.run_until(lambda: all_know(sc, NEWCOMER), timeout=bound * 2, poll=0.05)
        out.update(t=None if t is None else t - start, events=sc.sim.events_run - events,
                   host=host)

    describe(benchmark, group="net-discovery-sim-200-newcomer",
             impl="meshcore Discovery in SimNetwork (wall time of the run)", role="ours", items=1)
    benchmark.pedantic(run, rounds=1, iterations=1)
    assert out["t"] is not None, "the newcomer was not known everywhere within 2x the bound"
    describe(benchmark, group="net-discovery-sim-200-newcomer",
             impl="meshcore Discovery in SimNetwork (wall time of the run)", role="ours",
             items=out["events"], unit="events",
             newcomer_known_s=round(out["t"], 3), bound_s=bound, diameter_hops=c["diameter"],
             initial_convergence_s=c["converged_s"],
             initial_events_per_s=round(c["events"] / c["wall"]))
    against_bound(benchmark, "newcomer_known_s", bound, better="lower", unit="s")


def test_traffic_ours(benchmark):
    c = converge()
    sc = c["sc"]
    out = {}

    def run():
        before, t0, e0 = sc.snapshot(), sc.sim.now, sc.sim.events_run
        sc.run(t0 + TRAFFIC_S)
        after = sc.snapshot()
        out.update(rates=Scenario.rates(before, after, TRAFFIC_S), events=sc.sim.events_run - e0)

    describe(benchmark, group="net-discovery-sim-200-traffic",
             impl="meshcore Discovery in SimNetwork (wall time of the run)", role="ours", items=1)
    benchmark.pedantic(run, rounds=1, iterations=1)
    r = out["rates"]
    hdr = sc.network.header_bytes
    sent_wire = r["sent_bytes"] + hdr * r["sent_datagrams"]
    describe(benchmark, group="net-discovery-sim-200-traffic",
             impl="meshcore Discovery in SimNetwork (wall time of the run)", role="ours",
             items=out["events"], unit="events",
             sent_Bps=round(r["sent_bytes"], 2), received_Bps=round(r["received_bytes"], 2),
             max_sent_Bps=round(r["max_sent_bytes"], 2),
             sent_with_headers_Bps=round(sent_wire, 2),
             sent_datagrams_per_s=round(r["sent_datagrams"], 3),
             simulated_s=TRAFFIC_S)
    against_bound(benchmark, "sent_Bps", TRAFFIC_BOUND, better="lower", unit="B/s")
    assert r["sent_bytes"] > 0


# -- the engine alone ---------------------------------------------------------------------

ENGINE_EVENTS = scale(200_000, 50_000)


def _engine_ours():
    from meshcore.sim import Simulator

    sim = Simulator(seed=1)
    rng = sim.rng

    def tick():
        sim.schedule(rng.random(), tick)

    for _ in range(100):
        sim.schedule(rng.random(), tick)
    sim.run(max_events=ENGINE_EVENTS)


def _engine_peer():
    env = simpy.Environment()
    rng = random.Random(1)
    timeout = env.timeout

    def tick(_event):
        timeout(rng.random()).callbacks.append(tick)

    for _ in range(100):
        timeout(rng.random()).callbacks.append(tick)
    step = env.step
    for _ in range(ENGINE_EVENTS):
        step()


@pytest.mark.parametrize("who", ["ours", "peer"])
def test_engine_events(benchmark, who):
    """Raw engine speed: 100 self-rescheduling timers, ENGINE_EVENTS events."""
    if who == "ours":
        describe(benchmark, group="sim-engine-events", impl="meshcore Simulator.run",
                 role="ours", items=ENGINE_EVENTS, unit="events")
        benchmark.pedantic(_engine_ours, rounds=scale(5, 2), iterations=1)
    else:
        describe(benchmark, group="sim-engine-events",
                 impl=f"simpy {simpy.__version__} Environment.step (timeout callbacks)",
                 role="peer", items=ENGINE_EVENTS, unit="events")
        benchmark.pedantic(_engine_peer, rounds=scale(5, 2), iterations=1)
