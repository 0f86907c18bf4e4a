"""Hosts of their own on this machine, for scale-out tests: Linux network namespaces
joined by veth pairs to two bridges, with addresses of their own.

    front  10.231.X.0/24    clients (this process, .1) <-> collectors (.11, .12, ...)
    back   10.231.X+1.0/24  collectors <-> the database (.10); this process (.1) too,
                            to set the database up and read what was stored

Each host is a namespace (`<prefix>-pg`, `<prefix>-c1`, ...) whose interfaces are
named `front` and `back`; the bridges live in a namespace of their own
(`<prefix>-sw`), so nothing is bridged, filtered or routed in this machine's own
namespace, which gets only two interfaces (`<prefix>f`, `<prefix>b`) with the .1
addresses. X is an even number no address of this machine uses, and the prefix is
random, so two runs side by side do not meet. `close()` deletes the namespaces (and so
every interface) and kills what still runs in them; it runs at exit too.

Needs root and iproute2's `ip`; `unavailable()` says why not, for a skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
from types import TracebackType


def unavailable() -> str | None:
    """Why namespaces cannot be made here (a reason to skip), or None."""
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` command to make network namespaces"
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns add)"
    return None


def ip(*args: str) -> None:
    """Run `ip ARGS`; raise with its output on failure."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")


def _free_subnet() -> int:
    """An even X such that neither 10.231.X.0/24 nor 10.231.X+1.0/24 is in use here."""
    used = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    taken = {
        int(part.split(".")[2])
        for part in used.split()
        if part.startswith("10.231.") and part.count(".") == 3
    }
    free = [x for x in range(0, 254, 2) if x not in taken and x + 1 not in taken]
    if not free:
        raise RuntimeError("no free 10.231.X.0/24 pair")
    return random.choice(free)


class Network:
    """The namespaces and links; hosts are added with `add_host`."""

    def __init__(self) -> None:
        self.prefix = f"tt{secrets.token_hex(2)}"
        x = _free_subnet()
        self.front_net = f"10.231.{x}"
        self.back_net = f"10.231.{x + 1}"
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, dict[str, str | None]] = {}
        self._namespaces: list[str] = []
        self._closed = False

    def __enter__(self) -> Network:
        atexit.register(self.close)
        try:
            self._namespace(self.switch)
            for bridge in ("brf", "brb"):
                ip("-n", self.switch, "link", "add", bridge, "type", "bridge")
                ip("-n", self.switch, "link", "set", bridge, "up")
            # This process's legs on both networks.
            for side, net in (("f", self.front_net), ("b", self.back_net)):
                name = f"{self.prefix}{side}"
                self._link(name, None, f"{self.switch}-{side}", side)
                ip("addr", "add", f"{net}.1/24", "dev", name)
                ip("link", "set", name, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def add_host(self, host: str, number: int, *, front: bool = True) -> tuple[str | None, str]:
        """A namespace for `host` with address .`number` on the back network, and on the
        front one if `front`; (front address or None, back address)."""
        ns = self.namespace(host)
        self._namespace(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        addresses: dict[str, str | None] = {"front": None, "back": None}
        for side, net in (("f", self.front_net), ("b", self.back_net)):
            if side == "f" and not front:
                continue
            inner = "front" if side == "f" else "back"
            self._link(f"{self.prefix}{host}{side}", ns, inner, side)
            address = f"{net}.{number}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            addresses[inner] = address
        self.hosts[host] = addresses
        back = addresses["back"]
        assert back is not None
        return addresses["front"], back

    def exec_prefix(self, host: str) -> tuple[str, ...]:
        """The command prefix that runs a program on `host`."""
        return ("ip", "netns", "exec", self.namespace(host))

    def set_link(self, host: str, side: str, up: bool) -> None:
        """Plug or unplug `host`'s cable to the front ("f") or back ("b") network, at the
        switch: the host sees its link lose its carrier, as when a cable is pulled."""
        ip("-n", self.switch, "link", "set", f"{self.prefix}{host}{side}", "up" if up else "down")

    def close(self) -> None:
        """Kill what still runs in the namespaces, then delete them (their interfaces go
        with them, and the veth ends in this namespace with their peers)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        for ns in reversed(self._namespaces):
            for pid in _pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for side in ("f", "b"):  # in case the switch never got its end
            subprocess.run(
                ["ip", "link", "del", f"{self.prefix}{side}"], capture_output=True, check=False
            )

    def _namespace(self, ns: str) -> None:
        ip("netns", "add", ns)
        self._namespaces.append(ns)

    def _link(self, switch_end: str, ns: str | None, inner: str, side: str) -> None:
        """A veth pair: `switch_end` on the bridge of `side`, `inner` in `ns` (None: this
        namespace, under the name `switch_end` too)."""
        bridge = "brf" if side == "f" else "brb"
        if ns is None:
            # Made in the switch, one end moved out here: names differ inside the switch.
            ip("-n", self.switch, "link", "add", inner, "type", "veth", "peer", "name", switch_end)
            ip("-n", self.switch, "link", "set", switch_end, "netns", str(os.getpid()))
            ip("-n", self.switch, "link", "set", inner, "master", bridge, "up")
            return
        ip("-n", self.switch, "link", "add", switch_end, "type", "veth", "peer", "name", inner)
        ip("-n", self.switch, "link", "set", inner, "netns", ns)
        ip("-n", self.switch, "link", "set", switch_end, "master", bridge, "up")


def _pids(ns: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()]
