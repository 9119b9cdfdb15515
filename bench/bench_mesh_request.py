"""The first request across the mesh, at 200 simulated routers: where requests are served from.

Workload (seeded, ``SEED``): ``random_geometric(200, degree=7)`` routers, a
Router on each (cache, fair scheduler, congestion, analytics) driven through
the one host loop; 60 items of 50 KB .. 2 MB (sizes only, 256 KiB chunks),
each published on 3 random routers; then 600 client requests (1,200 in the
full run) at random routers for random items, Poisson at 10 per second. The
plain shared directory names holders; routes rank them (tier, then expected
transfer time).

Reported as metrics of one row (simulated figures, not times):

* ``served``, ``refused``, and ``by_tier_*``: requests served from each tier;
* ``bytes_x_hops``: every message byte times the hops it crossed (link
  retransmissions included), judged against its bound: each fetch from its
  nearest holder (fewest hops) at the time it was asked, headers not
  counted; ``fraction_of_bound`` = the ratio (1.0 is the bound; above it are
  headers, retransmissions on lossy links and routes that prefer fewer
  expected transmissions over fewer hops);
* ``median_s`` and ``max_s``: time to serve.

The timing is the wall-clock time of the whole simulated run (``items`` =
simulated events, so the throughput column is the simulator's events per
second); there is no peer: nothing else runs this workload.
"""

from __future__ import annotations

import random

from _harness import describe, scale

from meshcore.router import RouterSettings
from meshcore.sim.generators import random_geometric
from meshcore.sim.mesh import RouterMesh

SEED = 20261203
N_ROUTERS = 200
N_ITEMS = 60
N_REQUESTS = scale(1200, 600)


def _run() -> dict:
    topo = random_geometric(N_ROUTERS, seed=SEED)
    settings = RouterSettings(analytics_salt="bench-salt-20261203", cache_bytes=256 << 20)
    mesh = RouterMesh(topo, settings=settings, seed=SEED)
    rng = random.Random(SEED)
    ids = sorted(mesh.routers)
    items = [f"item-{i}" for i in range(N_ITEMS)]
    for key in items:
        for holder in rng.sample(ids, 3):
            mesh.publish(holder, key, size=rng.randint(50_000, 2_000_000))
    t = 1.0
    for _ in range(N_REQUESTS):
        mesh.request(rng.choice(ids), rng.choice(items), at=t)
        t += rng.expovariate(10.0)
    mesh.run(t + 600.0)
    return mesh.summary()


def test_mesh_first_request_200(benchmark):
    # The group is set before the run (pytest-benchmark records it then); the
    # figures are known only after it.
    describe(benchmark, group="mesh-request-200", impl="meshcore-router", role="ours",
             items=0, unit="events")
    summary = benchmark.pedantic(_run, rounds=1, iterations=1)
    bound = summary["bytes_x_hops_bound"]
    describe(
        benchmark,
        group="mesh-request-200",
        impl="meshcore-router",
        role="ours",
        items=summary["events"],
        unit="events",
        served=summary["served"],
        refused=summary["refused"],
        **{f"by_tier_{k}": v for k, v in summary["by_tier"].items()},
        bytes_x_hops=summary["bytes_x_hops"],
        bound_bytes_x_hops=bound,
        fraction_of_bound=summary["bytes_x_hops"] / bound if bound else float("nan"),
        median_s=summary["median_seconds"],
        max_s=summary["max_seconds"],
    )
    assert summary["served"] == N_REQUESTS  # a broken run must not print figures
