"""Hosts for tests: Linux network namespaces, each with a veth into one bridge in the root
namespace, so processes on different "hosts" reach each other and the root namespace's servers
only over a network whose links a test can cut.

Names and the /24 subnet are derived from the test process's pid, so parallel runs never clash.
Needs root and `ip` (iproute2); `network()` skips the test, with the exact error, only where a
namespace cannot be made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class IpError(RuntimeError):
    """An `ip` command failed; the message is its command line and what it printed."""


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise IpError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Host:
    """One network namespace with one link (`veth`, inside it) and one address."""

    name: str
    netns: str
    veth: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, argv: Sequence[str], env: dict[str, str], log_path) -> subprocess.Popen:
        """Run argv inside this host's namespace; its output goes to log_path."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],  # `ip netns exec` execs argv
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: what it starts dies with it
            )
        self.processes.append(proc)
        return proc

    def run(self, argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def cut(self) -> None:
        """Take the host's only link down: its connections hang, as when a cable is pulled."""
        ip("-n", self.netns, "link", "set", self.veth, "down")

    def reconnect(self) -> None:
        ip("-n", self.netns, "link", "set", self.veth, "up")

    def kill(self) -> None:
        """SIGKILL every process started on this host, as when the machine dies."""
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass
class Network:
    bridge: str
    address: str  # the root namespace's address on the bridge: where its servers listen
    prefix: int
    hosts: dict[str, Host]


def _subnet(pid: int) -> ipaddress.IPv4Network:
    # 10.128.0.0/9 holds 32,768 /24s: one per pid (Linux's default pid_max is 32,768).
    index = pid % 32768
    return ipaddress.IPv4Network(f"10.{128 + (index >> 8)}.{index & 255}.0/24")


# Linux 6.15+ lets a namespace cap TCP's retransmission backoff (120 s by default). After a test
# reconnects a cut link, a hung connection resumes at its next retransmission: capped, within
# seconds rather than the minutes a long cut backs off to. Older kernels just wait longer.
_RTO_MAX = Path("/proc/sys/net/ipv4/tcp_rto_max_ms")


def _cap_retransmission_backoff(netns: str) -> None:
    if _RTO_MAX.exists():
        subprocess.run(
            ["ip", "netns", "exec", netns, "sh", "-c", f"echo 2000 > {_RTO_MAX}"], check=True
        )


def _remove(netns: list[str], bridge: str) -> None:
    for name in netns:  # deleting a namespace deletes its veth, and with it the bridge's end
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@contextlib.contextmanager
def network(names: Sequence[str]) -> Iterator[Network]:
    """A bridge in the root namespace and one namespace per name (one letter each), all on one
    /24; everything is stopped and removed on exit, even after a failure."""
    pid = os.getpid()
    subnet = _subnet(pid)
    addresses = list(subnet.hosts())
    bridge = f"bcbr{pid}"
    hosts = {
        name: Host(name, f"bc-{pid}-{name}", f"bc{pid}{name}i", str(addresses[i + 1]))
        for i, name in enumerate(names)
    }
    netns = [h.netns for h in hosts.values()]
    _remove(netns, bridge)  # what a killed earlier run with this pid may have left
    try:
        ip("netns", "add", netns[0])
    except (OSError, IpError) as exc:  # no `ip`, or no permission: the only reasons to skip
        pytest.skip(f"cannot make a network namespace: {exc}")
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{addresses[0]}/{subnet.prefixlen}", "dev", bridge)
        ip("link", "set", bridge, "up")
        for host in hosts.values():
            if host.netns != netns[0]:
                ip("netns", "add", host.netns)
            outside = host.veth[:-1] + "o"
            ip("link", "add", outside, "type", "veth", "peer", "name", host.veth)
            ip("link", "set", host.veth, "netns", host.netns)
            ip("link", "set", outside, "master", bridge, "up")
            ip(
                "-n",
                host.netns,
                "addr",
                "add",
                f"{host.address}/{subnet.prefixlen}",
                "dev",
                host.veth,
            )
            ip("-n", host.netns, "link", "set", host.veth, "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
            _cap_retransmission_backoff(host.netns)
        yield Network(bridge, str(addresses[0]), subnet.prefixlen, hosts)
    finally:
        for host in hosts.values():
            host.stop()
        _remove(netns, bridge)
