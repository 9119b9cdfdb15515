"""Every subcommand with a reader that went away (``| head -1``) and with Ctrl-C.

A closed pipe exits quietly (141, as a C tool killed by SIGPIPE, nothing on
stderr); Ctrl-C prints ``meshcore: interrupted`` and exits 130; neither ever
shows a traceback. The list of subcommands comes from the parser, so a new
subcommand fails here until it has a row in :data:`ARGV`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _content_util import SMALL_CHUNKS, payload

from meshcore.cli import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, build_parser, main

REPO = Path(__file__).resolve().parents[1]
KEY = 'community_key = "hex:00112233445566778899aabbccddeeff"'
NETJSON = {"type": "NetworkGraph", "protocol": "olsr", "version": "0.6.6", "metric": "etx",
           "router_id": "a", "nodes": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
           "links": [{"source": "a", "target": "b", "cost": 1.0},
                     {"source": "b", "target": "c", "cost": 2.0}]}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*prefix, name))
            return
    yield prefix


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A config, a published item, a topology pair, a status file and rollups."""
    tmp = tmp_path_factory.mktemp("signals")
    status = tmp / "status.json"
    status.write_text(json.dumps({"node_id": "me", "peers": [
        {"node_id": f"{i:016x}", "state": "alive", "hops": 1, "addr": ["10.0.0.1", 47474]}
        for i in range(50)]}))
    config = tmp / "node.toml"
    config.write_text(
        f"[node]\nid = 'me'\nbind = '127.0.0.1'\nstatus_file = '{status}'\n"
        f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n"
        f"[content]\nstate_dir = '{tmp / 'state'}'\nbudget = '64 MiB'\nfsync = false\n"
        f"{SMALL_CHUNKS}"
        "[fairness]\ndefault_class = 'member'\n[fairness.classes.member]\nweight = 1\n"
        "[analytics]\nsalt = 'a long random per-community secret'\n")
    src = tmp / "item.bin"
    src.write_bytes(payload(200_000, seed=3))
    assert main(["content", "publish", str(src), "--config", str(config)]) == 0
    old, new = tmp / "old.json", tmp / "new.json"
    old.write_text(json.dumps(NETJSON))
    NETJSON["links"][1]["cost"] = 3.0
    NETJSON["links"].append({"source": "a", "target": "c", "cost": 9.0})
    new.write_text(json.dumps(NETJSON))
    from meshcore.analytics.rollups import Rollup, RollupStore
    db = tmp / "state" / "analytics" / "rollups.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    store = RollupStore(db)
    store.write([Rollup("me", "hour", 1_790_000_000 - 1_790_000_000 % 3600,
                        {"req_local": 5, "bytes_local": 5000})])
    store.close()
    return {"tmp": tmp, "config": str(config), "src": str(src), "old": str(old),
            "new": str(new)}


def _content_id(world) -> str:
    out = subprocess.run([sys.executable, "-m", "meshcore", "content", "list", "--config",
                          world["config"], "--json"], env=_env(), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.splitlines()[0])["content_id"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


#: argv per subcommand; ``{name}`` fills from the world. Each prints to stdout on success.
ARGV = {
    ("topology", "import"): ["{old}"],
    ("topology", "diff"): ["{old}", "{new}"],
    ("node", "run"): ["--config", "{config}", "--once", "--log-level", "error"],
    ("node", "peers"): ["--config", "{config}"],
    ("content", "publish"): ["{src}", "--config", "{config}"],
    ("content", "list"): ["--config", "{config}", "--json"],
    ("content", "get"): ["{cid}", "-o", "/dev/stdout", "--config", "{config}"],
    ("content", "scrub"): ["--config", "{config}"],
    ("content", "verify"): ["--config", "{config}"],
    ("content", "rebuild-catalog"): ["--config", "{config}"],
    ("fairness", "check"): ["{config}"],
    ("analytics", "report"): ["--config", "{config}", "--from", "2026-09-01", "--to",
                              "2026-10-01", "--out", "{tmp}/report-{n}"],
}
COMMANDS = sorted(ARGV)
_runs = iter(range(10_000))


def test_every_subcommand_has_a_row():
    assert sorted(_leaves(build_parser())) == COMMANDS


def _argv(world, command) -> list[str]:
    values = {**world, "cid": _content_id(world) if command == ("content", "get") else "",
              "n": str(next(_runs))}
    return ["-m", "meshcore", *command, *(a.format(**values) for a in ARGV[command])]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_closed_pipe_exits_quietly(world, command):
    proc = subprocess.Popen([sys.executable, *_argv(world, command)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes a byte
    _out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err == "" or all(not line.startswith("meshcore: ") or "Broken pipe" not in line
                            for line in err.splitlines())


#: Runs a command with SIGINT delivered as its handler starts (what Ctrl-C does
#: at any moment: KeyboardInterrupt in the main thread).
_INTERRUPT = """
import os, signal, sys
from meshcore import cli
build = cli.build_parser
def parser():
    p = build()
    parse = p.parse_args
    def parse_args(argv=None):
        args = parse(argv)
        handler = args.handler
        def interrupted(a):
            os.kill(os.getpid(), signal.SIGINT)
            return handler(a)
        args.handler = interrupted
        return args
    p.parse_args = parse_args
    return p
cli.build_parser = parser
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_ctrl_c_says_interrupted_and_exits_130(world, command):
    argv = _argv(world, command)[2:]
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT, *argv], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert proc.stderr.strip().splitlines() == ["meshcore: interrupted"]


def test_ctrl_c_in_the_middle_of_a_publish_loses_nothing(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(f"[content]\nstate_dir = '{tmp_path / 'state'}'\nbudget = '256 MiB'\n"
                      f"fsync = false\n{SMALL_CHUNKS}")
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for i in range(48):
            f.write(payload(1 << 20, seed=i))
    proc = subprocess.Popen([sys.executable, "-m", "meshcore", "content", "publish", str(src),
                             "--config", str(config)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    chunks = tmp_path / "state" / "content" / "store" / "chunks"
    end = time.monotonic() + 60
    while not (chunks.exists() and any(p.is_file() for p in chunks.rglob("*"))):
        assert proc.poll() is None and time.monotonic() < end, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.strip().splitlines() == ["meshcore: interrupted"] and out == ""
    # Nothing half-published is listed, the store checks out, and the lock is free.
    listed = subprocess.run([sys.executable, "-m", "meshcore", "content", "list", "--config",
                             str(config)], env=_env(), capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and listed.stdout == "", listed.stderr
    verify = subprocess.run([sys.executable, "-m", "meshcore", "content", "verify", "--config",
                             str(config)], env=_env(), capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
