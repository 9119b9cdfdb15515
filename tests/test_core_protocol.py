"""The discipline that makes the system testable: policy cores do no I/O and follow one protocol.

* No policy core imports ``time``, ``socket``, ``asyncio``, ``threading``,
  ``subprocess`` or ``concurrent``, nor calls the global ``random`` (only
  ``random.Random`` instances passed in). Drivers, the modules allowed to,
  are listed here explicitly: a new module is a core unless it is added.
* Every core offers ``handle``, ``handle_timer`` and ``get_timer``, and its
  effects are commands or facts.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import meshcore
from meshcore.analytics.events import Collector
from meshcore.cache import ContentCache, FreeChunk, Lookup, LookupResult, Offer, StoreChunk
from meshcore.core import Command, Core, Event, Fact, UnknownEventError
from meshcore.fairness.congestion import CongestionController, RttSample
from meshcore.fairness.policy import Policy
from meshcore.fairness.scheduler import Cancel, FairScheduler, Pull, Submit, Transfer, Transmit
from meshcore.fairness.settings import ClassSpec, FairnessSettings
from meshcore.identity import Principal
from meshcore.net.discovery import Discovery, DiscoverySettings, SendMulticast, Start
from meshcore.net.routing import Routes, RoutesChanged, TopologyChanged
from meshcore.net.topology import Topology
from meshcore.router import Router, RouterSettings

PACKAGE = Path(meshcore.__file__).parent
FORBIDDEN = {"time", "socket", "asyncio", "threading", "subprocess", "concurrent"}

#: Modules that talk to the world (files, sockets, processes, clocks) on purpose.
DRIVERS = {
    "cli.py",  # the command: arguments, files, exit codes
    "config.py",  # reads the TOML file
    "_files.py",  # atomic writes
    "_lock.py",  # the state-folder lock
    "node/_cli.py",
    "node/babeld.py",
    "node/daemon.py",
    "node/udp.py",
    "node/transport.py",  # HTTP between routers (asyncio streams)
    "content/_cli.py",
    "content/_pipeline.py",  # hashing and writing threads
    "content/node.py",  # the content storage driver
    "content/store.py",
    "content/catalog.py",
    "content/publish.py",
    "content/keys.py",
    "content/integrity.py",
    "fairness/ndsdriver.py",  # runs ndsctl
    "fairness/_cli.py",
    "net/_cli.py",
    "analytics/_cli.py",
    "analytics/rollups.py",
    "analytics/report.py",
    "analytics/charts.py",
    "analytics/exporters.py",
}
# The simulator is a host: it owns the simulated clock and its seeded Random.
HOST_PACKAGES = ("sim/",)


def _policy_modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in DRIVERS or rel.startswith(HOST_PACKAGES) or rel.startswith("kernels/"):
            continue
        out.append(path)
    return out


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if root == "random" and any(a.name != "Random" for a in node.names):
                found.append(f"line {node.lineno}: from random import (global generator)")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "random" and node.attr != "Random"):
            found.append(f"line {node.lineno}: random.{node.attr} (the global generator)")
    return found


def test_the_list_of_policy_modules_is_not_empty():
    names = {p.relative_to(PACKAGE).as_posix() for p in _policy_modules()}
    for core in ("net/discovery.py", "cache/_cache.py", "fairness/scheduler.py",
                 "fairness/congestion.py", "analytics/events.py", "router/router.py",
                 "net/routing.py", "core.py", "clock.py", "host.py"):
        assert core in names


@pytest.mark.parametrize("path", _policy_modules(),
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_policy_core_does_no_io(path):
    assert _violations(path) == []


def test_the_checker_catches_each_kind(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport socket as s\nfrom asyncio import sleep\n"
                   "import random\nx = random.random()\nfrom random import choice\n"
                   "from threading import Thread\nr = random.Random(1)\n")
    found = _violations(bad)
    assert len(found) == 6, found
    assert not any("Random(" in f for f in found)


def test_every_driver_listed_exists():
    for rel in DRIVERS:
        if rel == "_lock.py" and not (PACKAGE / rel).exists():
            continue  # added with the state-folder lock
        assert (PACKAGE / rel).exists(), rel


KEY = b"k" * 32


def _topology() -> Topology:
    t = Topology()
    for n in ("a", "b"):
        t.add_node(n)
    t.add_link("a", "b", 1.0, origin="sim", symmetric=True)
    return t


def _fairness() -> FairnessSettings:
    return FairnessSettings({"default": ClassSpec("default")}, "default", chunk=16384)


def _cores():
    rng = random.Random(1)
    return {
        "discovery": Discovery(DiscoverySettings(KEY), node_id="a", service_port=1, rng=rng,
                               now=0.0),
        "routes": Routes(_topology(), self_id="a"),
        "cache": ContentCache(1 << 20),
        "scheduler": FairScheduler(Policy(_fairness()), now=0.0),
        "congestion": CongestionController(1e6, now=0.0),
        "collector": Collector("a", now=0.0, salt="a-long-salt"),
        "router": Router(RouterSettings(), node_id="a", rng=rng, now=0.0,
                         topology=_topology()),
    }


@pytest.mark.parametrize("name", list(_cores()))
def test_every_core_follows_the_protocol(name):
    core = _cores()[name]
    assert isinstance(core, Core)
    t = core.get_timer()
    assert t is None or isinstance(t, float | int)
    effects = core.handle_timer(now=100.0)
    assert isinstance(effects, list)
    assert all(isinstance(e, Command | Fact) for e in effects)


def test_handle_dispatches_each_core_event():
    cores = _cores()
    assert any(isinstance(e, SendMulticast) for e in cores["discovery"].handle(Start(), now=0.0))
    cache = cores["cache"]
    effects = cache.handle(Offer("x", ((b"d" * 32, 10),)), now=0.0)
    assert StoreChunk(b"d" * 32, 10) in effects
    assert cache.handle(Lookup("x"), now=1.0) == [LookupResult("x", True)]
    sched = cores["scheduler"]
    (decision,) = sched.handle(Submit(Transfer(1, 100, Principal(household="h"))), now=0.0)
    assert decision.accepted
    (tx,) = sched.handle(Pull(), now=0.0)
    assert isinstance(tx, Transmit) and tx.nbytes == 100
    assert sched.handle(Pull(), now=0.0) == []  # nothing left to send
    sched.handle(Submit(Transfer(2, 10**6, Principal(household="h"))), now=0.0)
    assert sched.handle(Cancel(2), now=0.0) == [] and len(sched) == 0
    assert cores["congestion"].handle(RttSample(0.05), now=0.0) == []
    t2 = _topology()
    t2.add_node("c")
    t2.add_link("b", "c", 1.0, origin="sim", symmetric=True)
    (changed,) = cores["routes"].handle(TopologyChanged(t2), now=0.0)
    assert isinstance(changed, RoutesChanged)
    assert cores["routes"].hops("c") == 2


def test_unknown_event_is_a_clear_error():
    class Nope(Event):
        pass

    with pytest.raises(UnknownEventError, match="ContentCache does not handle Nope"):
        _cores()["cache"].handle(Nope(), now=0.0)


def test_cache_commands_and_facts_are_split():
    cache = ContentCache(100)
    effects = cache.handle(Offer("x", ((b"d" * 32, 60),)), now=0.0)
    effects += cache.handle(Offer("y", ((b"e" * 32, 60),)), now=1.0)
    commands = [e for e in effects if isinstance(e, Command)]
    assert all(isinstance(e, StoreChunk | FreeChunk) for e in commands)
    assert all(isinstance(e, Fact) for e in effects if e not in commands)
