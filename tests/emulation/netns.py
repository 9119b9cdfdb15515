"""Build and always tear down a small emulated network of Linux network namespaces.

A :class:`Lab` owns every namespace, bridge, veth pair and process it creates;
:meth:`Lab.close` (also the context manager's exit and an ``atexit`` hook)
kills the processes and deletes the namespaces, which deletes the veths and
bridges inside them. Names carry a per-lab prefix (``mc`` + 6 random hex
digits) so parallel runs never clash; every interface is created directly in
its namespace (``ip -n NS link add ... peer ... netns OTHER``), so nothing
ever appears in the root namespace.

Layout primitives:

* :meth:`Lab.namespace` - a host or router namespace (``lo`` up, IPv6 DAD off
  so link-local addresses are usable at once, forwarding on for routers);
* :meth:`Lab.bridge` - an L2 segment: a Linux bridge in its own switch
  namespace, multicast snooping off (a segment must flood multicast like a
  Wi-Fi cell);
* :meth:`Lab.attach` - a host interface plugged into a bridge;
* :meth:`Lab.wire` - a point-to-point veth between two namespaces (a router
  link);
* :meth:`Lab.popen` / :meth:`Lab.run` - processes inside a namespace.

Requires root and iproute2; :func:`unavailable` says why a lab cannot be built
here (tests skip with that reason).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Lab", "LabError", "unavailable"]

IP = shutil.which("ip") or "/usr/sbin/ip"


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def unavailable(*, need: Sequence[str] = ()) -> str | None:
    """Why a lab cannot run here (``None`` when it can).

    Checks root, ``ip netns`` (by creating and deleting a probe namespace)
    and each program in ``need`` (e.g. ``"babeld"``).
    """
    if os.geteuid() != 0:
        return "network-namespace emulation needs root (os.geteuid() != 0)"
    if not shutil.which("ip"):
        return "iproute2 'ip' command not found"
    for program in need:
        if not shutil.which(program):
            return f"{program} not found (install it: ci/emulation_deps.sh)"
    probe = f"mcprobe{secrets.token_hex(3)}"
    try:
        result = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'ip netns add' failed: {exc}"
    if result.returncode != 0:
        return f"'ip netns add' failed: {result.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True, timeout=10)
    return None


class Lab:
    """A set of namespaces, bridges and processes with one name prefix.

    ``workdir`` holds configs and logs (a fresh temp dir by default, removed by
    :meth:`close` unless ``keep`` is true).
    """

    def __init__(self, *, workdir: str | os.PathLike | None = None, keep: bool = False) -> None:
        self.prefix = f"mc{secrets.token_hex(3)}"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.keep = keep
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self._bridges: dict[str, str] = {}  # bridge name -> switch namespace
        self._port = 0
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands -------------------------------------------------------

    def _ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run([IP, *args], check=check)

    def ns(self, name: str) -> str:
        """The full namespace name of ``name`` (with this lab's prefix)."""
        return f"{self.prefix}-{name}"

    def run(self, name: str, cmd: Sequence[str], *, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside namespace ``name`` and wait; raises LabError on failure."""
        return _run([IP, "netns", "exec", self.ns(name), *cmd], check=check, timeout=timeout)

    def popen(self, name: str, cmd: Sequence[str], *, log: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``cmd`` in namespace ``name``; stdout+stderr go to ``workdir/log``.

        The process is killed by :meth:`close`.
        """
        out = open(self.workdir / (log or f"{name}.log"), "ab")  # noqa: SIM115 - kept by Popen
        try:
            proc = subprocess.Popen(
                [IP, "netns", "exec", self.ns(name), *cmd],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        finally:
            out.close()
        self.processes.append(proc)
        return proc

    # -- topology -------------------------------------------------------

    def namespace(self, name: str, *, router: bool = False) -> str:
        """Create namespace ``name`` (``lo`` up); ``router`` turns forwarding on."""
        full = self.ns(name)
        self._ip("netns", "add", full)
        self.namespaces.append(full)
        self._ip("-n", full, "link", "set", "lo", "up")
        sysctls = [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]
        if router:
            sysctls += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
        self.run(name, ["sysctl", "-q", "-w", *sysctls])
        return full

    def bridge(self, name: str) -> str:
        """Create an L2 segment ``name``: a bridge in its own switch namespace."""
        switch = f"sw{len(self._bridges)}"
        self.namespace(switch)
        full = self.ns(switch)
        self._ip("-n", full, "link", "add", name, "type", "bridge")
        # Snooping would drop multicast to ports that have not sent an IGMP
        # report yet (no querier here); a Wi-Fi cell floods, so must we.
        self._ip("-n", full, "link", "set", name, "type", "bridge", "mcast_snooping", "0")
        self._ip("-n", full, "link", "set", name, "up")
        self._bridges[name] = full
        return name

    def _next_port(self) -> str:
        self._port += 1
        return f"p{self._port}"

    def attach(self, name: str, bridge: str, ifname: str, address: str | None = None) -> str:
        """Plug a new interface ``ifname`` of namespace ``name`` into ``bridge``.

        ``address`` is a CIDR (``"10.1.0.2/24"``) or None. Returns the
        bridge-side port name.
        """
        switch = self._bridges[bridge]
        port = self._next_port()
        self._ip("-n", self.ns(name), "link", "add", ifname, "type", "veth", "peer", "name",
                 port, "netns", switch)
        self._ip("-n", switch, "link", "set", port, "master", bridge, "up")
        self._configure(name, ifname, address)
        return port

    def wire(self, a: str, a_if: str, b: str, b_if: str, *, a_addr: str | None = None,
             b_addr: str | None = None) -> None:
        """A point-to-point veth ``a:a_if <-> b:b_if`` with optional CIDR addresses."""
        self._ip("-n", self.ns(a), "link", "add", a_if, "type", "veth", "peer", "name", b_if,
                 "netns", self.ns(b))
        self._configure(a, a_if, a_addr)
        self._configure(b, b_if, b_addr)

    def _configure(self, name: str, ifname: str, address: str | None) -> None:
        full = self.ns(name)
        if address:
            self._ip("-n", full, "addr", "add", address, "dev", ifname)
        self._ip("-n", full, "link", "set", ifname, "up")

    def set_link(self, name: str, ifname: str, up: bool) -> None:
        """Bring ``ifname`` in namespace ``name`` up or down (a link cut or repair)."""
        self._ip("-n", self.ns(name), "link", "set", ifname, "up" if up else "down")

    def route(self, name: str, *args: str) -> None:
        """``ip route add ARGS`` inside namespace ``name``."""
        self._ip("-n", self.ns(name), "route", "add", *args)

    # -- teardown -------------------------------------------------------

    def close(self) -> None:
        """Kill every process, delete every namespace; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for full in reversed(self.namespaces):
            _run([IP, "netns", "del", full], check=False)
        self.namespaces.clear()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.close)


def _run(cmd: Sequence[str], *, check: bool = True,
         timeout: float = 30.0) -> subprocess.CompletedProcess:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {result.returncode}: {result.stderr.strip()}")
    return result
