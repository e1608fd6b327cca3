"""Where a process tree talks to, seen twice: a Python audit hook inside each Python
process, and strace around the whole tree. For tests that prove nothing leaves the house.

    folder = tmp_path / "trace"
    argv, env = traced(["doorbell", "demo"], folder, "demo", os.environ)
    ...run argv with env until it exits...
    audit = audit_records(folder / "demo.audit")      # [AuditRecord]
    calls = strace_records(folder / "demo.strace")    # [Syscall]
    assert not [r for r in audit if not r.allowed] and not [c for c in calls if not c.allowed]

The hook is a ``sitecustomize`` on ``PYTHONPATH``: Python imports it at start-up, before
the program's own modules, in every Python process of the tree. It records each
``socket.connect``, ``socket.getaddrinfo``, ``socket.sendto`` and ``socket.bind`` event
(one tab-separated line: pid, event, address family, the address's repr). strace records
connect, bind, sendto, sendmsg and sendmmsg (every way a socket can start talking to an
address) with each descriptor's endpoints (``-yy``), execve, and the opens and renames
that write a file (:func:`written_paths`).

Allowed: loopback (127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6) and AF_UNIX
(asyncio's self-pipe, systemd's notify socket, journald). Everything else is a leak,
names included: a lookup of any name, even ``localhost``, may ask a DNS server.
"""

import ast
import ipaddress
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

AUDIT_LOG_VARIABLE = "DOORBELL_TEST_AUDIT_LOG"

SITECUSTOMIZE = '''\
"""Installed by tests/net_trace.py: records the process's socket addresses."""
import os
import sys

_path = os.environ.get("DOORBELL_TEST_AUDIT_LOG")
if _path:
    _fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _watched = frozenset(
        ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.bind")
    )

    def _record(event, args):
        if event not in _watched:
            return
        try:
            if event == "socket.getaddrinfo":  # (host, port, family, type, proto)
                family, address = int(args[2]), args[0]
            else:  # (socket, address)
                family, address = int(args[0].family), args[1]
            line = f"{os.getpid()}\\t{event}\\t{family}\\t{address!r}\\n"
        except Exception as err:  # recorded, never raised into the program
            line = f"{os.getpid()}\\t{event}\\t-1\\tunreadable: {err!r}\\n"
        os.write(_fd, line.encode("utf-8", "backslashreplace"))

    sys.addaudithook(_record)
    _loaded = "doorbell" in sys.modules
    os.write(_fd, f"{os.getpid()}\\tinstalled\\t0\\t{_loaded!r}\\n".encode())
'''

NETWORK_CALLS = ("connect", "bind", "sendto", "sendmsg", "sendmmsg")
FILE_CALLS = ("open", "openat", "openat2", "creat", "rename", "renameat", "renameat2")
TRACED = "/^(" + "|".join((*NETWORK_CALLS, "execve", *FILE_CALLS)) + ")$"


def is_loopback(host: object) -> bool:
    """Whether ``host`` is a numeric loopback address: 127.0.0.0/8, ::1, ::ffff:127.x.
    Names (``localhost`` too), None (any address) and anything else are not."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        address = ipaddress.ip_address(host.split("%")[0].strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def strace_problem() -> str | None:
    """Why strace cannot trace a process tree here (not installed, or ptrace refused), or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace)"
    done = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", "true"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"strace cannot trace here: {done.stderr.strip()}"
    return None


def _seccomp_works() -> bool:
    """Whether strace can filter in the kernel (--seccomp-bpf, strace 5.3+): the traced
    process then stops only at the traced calls, not at every system call."""
    done = subprocess.run(
        ["strace", "-f", "--seccomp-bpf", "-e", "trace=connect", "-o", "/dev/null", "true"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def traced(
    argv: list[str], folder: Path, name: str, env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """``argv`` under strace (writing ``folder/NAME.strace``) and the environment that
    installs the audit hook (writing ``folder/NAME.audit``) in each Python process."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site").mkdir(exist_ok=True)
    (folder / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    fast = ["--seccomp-bpf"] if _seccomp_works() else []
    command = ["strace", "-f", "-yy", *fast, "-e", f"trace={TRACED}"]
    command += ["-o", str(folder / f"{name}.strace"), "--", *argv]
    paths = [str(folder / "site"), *filter(None, [env.get("PYTHONPATH")])]
    environment = dict(env, PYTHONPATH=":".join(paths))
    environment[AUDIT_LOG_VARIABLE] = str(folder / f"{name}.audit")
    return command, environment


@dataclass(frozen=True)
class AuditRecord:
    """One audit event: ``event`` (``socket.connect`` ...; ``installed`` is the hook's own
    first line, whose ``address`` says whether doorbell was loaded before it), the
    address family's number and the address as Python shows it."""

    pid: int
    event: str
    family: int
    address: str

    @property
    def allowed(self) -> bool:
        if self.event == "installed":
            return True
        if self.family == socket.AF_UNIX:
            return True
        try:
            value = ast.literal_eval(self.address)
        except (ValueError, SyntaxError):
            return False
        host = value[0] if isinstance(value, tuple) and value else value
        return is_loopback(host)

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.event} family {self.family} {self.address}"


def audit_records(path: Path) -> list[AuditRecord]:
    """The records of an audit log written by :data:`SITECUSTOMIZE`."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pid, event, family, address = line.split("\t", 3)
        records.append(AuditRecord(int(pid), event, int(family), address))
    return records


# with -yy a socket descriptor shows as 12<TCP:[127.0.0.1:8080->127.0.0.1:5432]>
DESCRIPTOR = re.compile(r"<([A-Za-z0-9-]+):\[(.*?)\]>")
FAMILY = re.compile(r"sa_family=(AF_\w+)")
IPV4 = re.compile(r'inet_addr\("([^"]*)"\)')
IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]*)"')
UNIX_PATH = re.compile(r'sun_path=(@?"[^"]*")')
LINE = re.compile(r"^(\d+) +(\w+)\((.*)$")


def _endpoint_hosts(endpoints: str) -> list[str]:
    """Hosts of ``127.0.0.1:80->127.0.0.1:5555`` or ``[::1]:80`` (a bare inode: none)."""
    hosts = []
    for end in endpoints.split("->"):
        host, sep, _port = end.rpartition(":")
        if sep and host:
            hosts.append(host.strip("[]"))
    return hosts


@dataclass(frozen=True)
class Syscall:
    """One traced system call: its pid, name and strace's line for it."""

    pid: int
    name: str
    line: str

    @property
    def is_network(self) -> bool:
        return self.name in NETWORK_CALLS

    def kinds(self) -> set[str]:
        """The socket kinds the call names: descriptor kinds (TCP, UDPv6, UNIX-STREAM,
        NETLINK ...) and sockaddr families (AF_INET ...)."""
        found = {kind for kind, _ in DESCRIPTOR.findall(self.line) if kind != "char"}
        return found | set(FAMILY.findall(self.line))

    def hosts(self) -> list[str]:
        """Every IP address the call names, in a sockaddr or a descriptor's endpoints."""
        hosts = IPV4.findall(self.line) + IPV6.findall(self.line)
        for kind, endpoints in DESCRIPTOR.findall(self.line):
            if kind.startswith(("TCP", "UDP")):
                hosts += _endpoint_hosts(endpoints)
        return hosts

    @property
    def is_unix(self) -> bool:
        kinds = self.kinds()
        return bool(kinds) and all(k.startswith("UNIX") or k == "AF_UNIX" for k in kinds)

    @property
    def allowed(self) -> bool:
        """A network call is allowed if it is AF_UNIX only, or IPv4/IPv6 naming at least
        one address and only loopback ones; any other family (netlink, packet) is not."""
        if not self.is_network or self.is_unix:
            return True
        inet = {"TCP", "TCPv6", "UDP", "UDPv6", "UNIX", "AF_INET", "AF_INET6"}
        kinds = {k.split("-")[0] for k in self.kinds()}
        hosts = self.hosts()
        return kinds <= inet and bool(hosts) and all(is_loopback(h) for h in hosts)

    def unix_names(self) -> list[str]:
        """The AF_UNIX socket paths the call names (quoted; @ marks the abstract space)."""
        return UNIX_PATH.findall(self.line) + [
            e.split(",", 1)[1] for k, e in DESCRIPTOR.findall(self.line) if "," in e
        ]


def syscalls(text: str) -> list[Syscall]:
    """The traced calls in strace ``-f -yy`` output. A call cut in two by another thread
    is taken from its first half (which holds the arguments)."""
    calls = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            calls.append(Syscall(int(match.group(1)), match.group(2), line))
    return calls


def strace_records(path: Path) -> list[Syscall]:
    """The traced calls in an strace output file (:func:`syscalls`)."""
    return syscalls(path.read_text(encoding="utf-8", errors="replace"))


WRITE_FLAGS = re.compile(r"\bO_(WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")
OPENED = re.compile(r"= \d+<(.*)>$")  # the path strace resolved for the new descriptor
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
AT_DIRECTORY = re.compile(r'(?:AT_FDCWD|\d+)<([^<>]*)>, "((?:[^"\\]|\\.)*)"')


def written_paths(calls: list[Syscall], cwd: Path) -> set[str]:
    """Every file the traced tree opened for writing (or created, or renamed a file to),
    as an absolute path; character devices keep strace's ``<char M:N>`` suffix off."""
    paths = set()
    for call in calls:
        if call.name in ("open", "openat", "openat2", "creat"):
            if " = -1 " in call.line or not (call.name == "creat" or WRITE_FLAGS.search(call.line)):
                continue
            opened = OPENED.search(call.line)
            if opened:
                paths.add(re.sub(r"<char [0-9:]+>$", "", opened.group(1)))
        elif call.name.startswith("rename") and " = 0" in call.line:
            at = AT_DIRECTORY.findall(call.line)  # renameat: (folder, name) pairs
            folder, target = at[-1] if at else (str(cwd), QUOTED.findall(call.line)[-1])
            paths.add(target if target.startswith("/") else str(Path(folder) / target))
    return paths


def programs_run(calls: list[Syscall]) -> list[str]:
    """The argv of every execve in the tree, as strace shows it."""
    return [
        call.line.split(", ", 1)[1].split("], ")[0] + "]" for call in calls if call.name == "execve"
    ]
