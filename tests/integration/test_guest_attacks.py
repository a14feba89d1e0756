"""Root in a guest attacks the lab, on real labs; every attempt must fail.

Trainees get root in guests, so a guest is untrusted: it reaches what an Azure VM
reaches (WireServer, HostGAPlugin, IMDS, DHCP/DNS, storage, the lab's mirror and proxy)
and nothing else. Each attempt runs as root inside a guest (``docker exec``, the console
a trainee has): the fabric's control API with no credential and with a guessed one
(directly, at IMDS's address, and relayed by the lab's own proxy), a listener this test
opens on the host (at the bridge's gateway and at every other host address), another
lab's guest and fabric, the Docker engine (no socket; TCP 2375/2376), mounting a cgroup
or proc hierarchy, loading a kernel module, writing to the host's file systems, and
forging ARP answers to sit between the host and the fabric (and so read the token).

What Docker shows a guest of the host's file systems, and why none of it reaches the
host beyond Docker's own per-container files (checked below, mount by mount):

* ``/`` is an overlay whose writable layer is the container's own;
* ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` are bind mounts of single
  files from the host's disk — the container's own files under Docker's
  ``containers/<id>/`` — and the disk itself cannot be opened (a block device node made
  with ``mknod`` is refused by the devices cgroup);
* ``/run``, ``/tmp``, ``/dev``, ``/dev/shm``, ``mqueue`` and ``devpts`` are the
  container's own; ``/sys`` is read-only; ``/proc`` has its host-wide files read-only
  or masked (``/proc/sys``, ``/proc/sysrq-trigger``, ...);
* the cgroup hierarchies are the container's own (a private cgroup namespace, see
  :mod:`lab.platform.guest_cgroups`): writable for its systemd, with the VM's size
  files read-only. Before this, the guest saw the host's hierarchies, writable.

Positive controls in the same module show the attempts do not fail for a dull reason:
the same guest reaches the WireServer, the HostGAPlugin, IMDS, DNS, DHCP's option 245
and storage, and the host reaches the control API with the lab's token (and gets 401
without it). Two small labs, both always removed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest
import requests

from lab.platform.control_auth import bearer
from lab.platform.roster import CONTROL_PORT, HOSTPLUGIN_PORT, IMDS_ADDRESS, WIRESERVER_PORT
from lab.provision import lab as labs
from lab.provision.fabric_client import control_token
from lab.provision.labels import bridge_name
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"
BLOB_PORT = 10000
PROXY_PORT = 3128
MIRROR_PORT = 8081
GUESSED = "Bearer " + "A" * 43
CONNECT_SECONDS = 3.0

# Runs in the guest with its own python3: TCP connects, all at once, as JSON results.
_PROBE = r"""
import json, socket, sys, threading
timeout, targets = float(sys.argv[1]), json.loads(sys.argv[2])
results = {}
def probe(host, port):
    key = host + ':' + str(port)
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        results[key] = 'connected'
    except socket.timeout:
        results[key] = 'timeout'
    except OSError as exc:
        results[key] = 'error ' + str(exc.errno)
    finally:
        s.close()
threads = [threading.Thread(target=probe, args=(h, p)) for h, p in targets]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
"""


@dataclass
class Guest:
    """Root at a guest's console."""

    container: docker.models.containers.Container

    def sh(self, script: str, timeout: float = 60) -> tuple[int, str]:
        done = subprocess.run(
            ["docker", "exec", "-u", "root", self.container.name, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def connects(self, targets: list[tuple[str, int]]) -> dict[str, str]:
        done = subprocess.run(
            [
                "docker",
                "exec",
                self.container.name,
                "python3",
                "-c",
                _PROBE,
                str(CONNECT_SECONDS),
                json.dumps(targets),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return dict(json.loads(done.stdout))

    def http_code(self, url: str, *curl_args: str) -> str:
        """curl's status code ("000": no HTTP answer at all)."""
        args = " ".join(f"'{a}'" for a in curl_args)
        _, out = self.sh(
            f"curl -s -o /dev/null -m {CONNECT_SECONDS + 2} -w '%{{http_code}}' {args} '{url}'"
        )
        return out.strip()[-3:]


@pytest.fixture(scope="module")
def lab_a(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"ga{RUN_ID}", (VmSpec(VM),))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


@pytest.fixture(scope="module")
def lab_b(docker_client: docker.DockerClient, lab_a: RunningLab) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"gb{RUN_ID}", (VmSpec(VM),))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


def guest(lab: RunningLab) -> Guest:
    return Guest(lab.client.containers.get(lab.roster.guest_by_name(VM).container))  # type: ignore[union-attr]


def gateway(lab: RunningLab) -> str:
    return lab.roster.subnet.rsplit(".", 1)[0] + ".1"


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


# --------------------------------------------------------------------------- positive controls


def test_guest_reaches_what_an_azure_vm_reaches(lab_a: RunningLab) -> None:
    vm, fabric = guest(lab_a), lab_a.roster.fabric_ip
    assert vm.http_code(f"http://{fabric}:{WIRESERVER_PORT}/?comp=versions") == "200"
    assert vm.http_code(f"http://{fabric}:{HOSTPLUGIN_PORT}/versions") == "200"
    imds = f"http://{IMDS_ADDRESS}/metadata/instance?api-version=2021-02-01"
    assert vm.http_code(imds, "-H", "Metadata: true") == "200"
    # Azurite answers (403: this request carries no account key): storage is reachable.
    storage = f"http://{lab_a.roster.storage_ip}:{BLOB_PORT}/devstoreaccount1?comp=list"
    assert vm.http_code(storage) not in ("000", "")
    assert vm.http_code(f"http://{fabric}:{MIRROR_PORT}/debian/") not in ("000", "")
    assert vm.http_code(storage, "-x", f"http://{fabric}:{PROXY_PORT}") not in ("000", "")
    # DNS from the lab's dnsmasq, and the DHCP lease that names the WireServer.
    code, out = vm.sh("getent hosts debian-mirror.snaplab.internal")
    assert code == 0 and fabric in out, out
    code, out = vm.sh("grep -h 'unknown-245' /var/lib/dhcp/dhclient*.leases")
    assert code == 0 and "unknown-245" in out, out


def test_host_reaches_control_api_with_the_token_only(lab_a: RunningLab) -> None:
    """The second wall, seen from the host (which the network lets through)."""
    url = f"http://{lab_a.roster.fabric_ip}:{CONTROL_PORT}/control/v1/vms/{VM}/power"
    body = {"power_state": "stopped"}
    for headers in ({}, {"Authorization": GUESSED}, {"Authorization": "Basic eDp5"}):
        refused = requests.put(url, json=body, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] in (
            "AuthenticationFailed",
            "InvalidAuthenticationToken",
        )
    token = control_token(lab_a.roster.fabric_ip, fresh=True)
    answer = requests.get(url, headers=bearer(token), timeout=10)
    assert answer.status_code == 200 and answer.json()["power_state"] == "running"


# --------------------------------------------------------------------------- attacks


def test_guest_cannot_reach_the_control_api(lab_a: RunningLab) -> None:
    vm, fabric = guest(lab_a), lab_a.roster.fabric_ip
    power = f"/control/v1/vms/{VM}/power"
    for base in (f"http://{fabric}:{CONTROL_PORT}", f"http://{IMDS_ADDRESS}:{CONTROL_PORT}"):
        for auth in ((), ("-H", f"Authorization: {GUESSED}")):
            assert vm.http_code(base + "/control/v1/health", *auth) == "000"
            put = ("-X", "PUT", "-H", "Content-Type: application/json")
            body = ("--data", '{"power_state": "stopped"}')
            assert vm.http_code(base + power, *auth, *put, *body) == "000"
    # Relayed by the lab's own proxy, which runs inside the fabric: refused there too.
    for target in (f"http://127.0.0.1:{CONTROL_PORT}", f"http://{fabric}:{CONTROL_PORT}"):
        code = vm.http_code(target + "/control/v1/health", "-x", f"http://{fabric}:{PROXY_PORT}")
        assert not code.startswith("2") and code != "401", code
    # Every other port of the fabric and of storage stays closed to the guest.
    results = vm.connects(
        [
            (fabric, CONTROL_PORT),
            (fabric, 22),
            (fabric, 8443),
            (lab_a.roster.storage_ip, 10001),
            (lab_a.roster.storage_ip, 10002),
        ]
    )
    assert not [k for k, v in results.items() if v == "connected"], results
    assert lab_a.fabric.power_state(VM) == "running"


@pytest.fixture
def host_listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP listener on the host (0.0.0.0, a free port) that records who connects."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(peer[0])
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def test_guest_cannot_reach_the_host(
    lab_a: RunningLab, host_listener: tuple[int, list[str]]
) -> None:
    port, accepted = host_listener
    # The listener works (the host reaches it), so a failure below is the wall.
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    deadline = time.monotonic() + 5
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert accepted == ["127.0.0.1"]
    accepted.clear()
    vm = guest(lab_a)
    # 127.0.0.0/8 from the guest is the guest's own loopback, not the host's.
    others = [a for a in host_addresses() if a != gateway(lab_a) and not a.startswith("127.")]
    addresses = [gateway(lab_a), *others]
    results = vm.connects([(address, port) for address in addresses])
    assert not [k for k, v in results.items() if v == "connected"], results
    # Nor through the lab's proxy, nor on the Docker engine's TCP ports.
    proxy = f"http://{lab_a.roster.fabric_ip}:{PROXY_PORT}"
    assert not vm.http_code(f"http://{gateway(lab_a)}:{port}/", "-x", proxy).startswith("2")
    engine = vm.connects([(gateway(lab_a), 2375), (gateway(lab_a), 2376)])
    assert not [k for k, v in engine.items() if v == "connected"], engine
    assert accepted == []


def test_guest_has_no_docker_socket(lab_a: RunningLab) -> None:
    code, out = guest(lab_a).sh(
        "find / -xdev \\( -name docker.sock -o -name containerd.sock -o -name dockershim.sock "
        "\\) -print 2>/dev/null; test -S /var/run/docker.sock || test -S /run/docker.sock"
    )
    assert code != 0 and "sock" not in out, out


def test_guest_cannot_reach_another_lab(lab_a: RunningLab, lab_b: RunningLab) -> None:
    other = guest(lab_b)
    other.sh("nohup python3 -m http.server 8000 >/dev/null 2>&1 &")
    # The listener in lab B's guest answers its own host (so it is there).
    b_ip = lab_b.roster.guest_by_name(VM).ip  # type: ignore[union-attr]
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection((b_ip, 8000), timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "lab B's guest listener never answered"
            time.sleep(0.3)
    targets = [
        (b_ip, 8000),
        (lab_b.roster.fabric_ip, WIRESERVER_PORT),
        (lab_b.roster.fabric_ip, HOSTPLUGIN_PORT),
        (lab_b.roster.fabric_ip, CONTROL_PORT),
        (lab_b.roster.storage_ip, BLOB_PORT),
        (gateway(lab_b), 22),
    ]
    results = guest(lab_a).connects(targets)
    assert not [k for k, v in results.items() if v == "connected"], results
    back = other.connects([(lab_a.roster.fabric_ip, WIRESERVER_PORT)])
    assert not [k for k, v in back.items() if v == "connected"], back


def test_guest_cannot_mount_cgroup_or_proc(lab_a: RunningLab) -> None:
    vm = guest(lab_a)
    for script in (
        "mkdir -p /mnt/x && mount -t cgroup -o memory cgroup /mnt/x",
        "mkdir -p /mnt/x && mount -t cgroup -o none,name=escape cgroup /mnt/x",
        "mkdir -p /mnt/x && mount -t cgroup2 none /mnt/x",
        "mkdir -p /mnt/x && mount -t proc proc /mnt/x",
        "mount -o remount,rw /sys",
        "mount -o remount,bind,rw /sys/fs/cgroup/memory/memory.limit_in_bytes",
        "umount /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "unshare -m true",
    ):
        code, out = vm.sh(script)
        assert code != 0, f"{script!r} succeeded: {out}"


def test_guest_cannot_load_a_kernel_module(lab_a: RunningLab) -> None:
    vm = guest(lab_a)
    code, out = vm.sh("modprobe dummy || insmod /lib/modules/$(uname -r)/kernel/x.ko")
    assert code != 0, out
    code, out = vm.sh(
        'python3 -c "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); '
        "image = ctypes.create_string_buffer(b'\\\\x7fELF' + bytes(60)); "
        "r1 = libc.syscall(175, image, 64, b''); e1 = ctypes.get_errno(); "
        "fd = os.open('/bin/true', os.O_RDONLY); "
        "r2 = libc.syscall(313, fd, b'', 0); e2 = ctypes.get_errno(); "
        'print(r1, e1, r2, e2)"'
    )
    init_rc, init_errno, finit_rc, finit_errno = (int(x) for x in out.split())
    # init_module(2) and finit_module(2): EPERM (no CAP_SYS_MODULE), never loaded.
    assert (init_rc, finit_rc) == (-1, -1), out
    assert init_errno == finit_errno == 1, out


def test_guest_cgroups_are_its_own(lab_a: RunningLab) -> None:
    vm = guest(lab_a)
    code, out = vm.sh("ls /sys/fs/cgroup/*/release_agent 2>&1; cat /proc/1/cgroup")
    assert "release_agent" not in out.replace("No such file", "").split(":")[0], out
    # The size of the VM cannot be changed from inside.
    for path, value in (
        ("memory/memory.limit_in_bytes", "-1"),
        ("cpu/cpu.cfs_quota_us", "-1"),
        ("pids/pids.max", "max"),
        ("devices/devices.allow", "a *:* rwm"),
    ):
        code, out = vm.sh(f"echo {value} > /sys/fs/cgroup/{path}")
        assert code != 0, f"{path} took {value}: {out}"
    # A cgroup made at the top of the guest's view lands inside its own container's, in
    # a v1 hierarchy and in the unified (cgroup2) one alike.
    for hierarchy in ("pids", "unified"):
        probe = f"/sys/fs/cgroup/{hierarchy}/attack-probe"
        code, out = vm.sh(f"mkdir {probe} && echo made")
        try:
            assert subprocess.run(["test", "-e", probe]).returncode != 0, probe
            if "made" in out:
                found = subprocess.run(
                    [
                        "find",
                        f"/sys/fs/cgroup/{hierarchy}",
                        "-maxdepth",
                        "4",
                        "-name",
                        "attack-probe",
                    ],
                    capture_output=True,
                    text=True,
                ).stdout.split()
                assert found and all(vm.container.id in path for path in found), found
        finally:
            vm.sh(f"rmdir {probe}")


def test_guest_cannot_write_the_hosts_file_systems(lab_a: RunningLab) -> None:
    vm = guest(lab_a)
    attrs = lab_a.client.api.inspect_container(vm.container.id)
    own_files = {
        "/etc/hosts": attrs["HostsPath"],
        "/etc/hostname": attrs["HostnamePath"],
        "/etc/resolv.conf": attrs["ResolvConfPath"],
    }
    for source in own_files.values():
        assert f"/containers/{vm.container.id}/" in source, source
    code, mountinfo = vm.sh("cat /proc/1/mountinfo")
    assert code == 0
    private = {"overlay", "tmpfs", "devpts", "mqueue", "proc", "cgroup", "cgroup2", "sysfs"}
    disk_devices = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        device, target, options, fstype = fields[2], fields[4], fields[5], fields[sep + 1]
        writable = "rw" in options.split(",")
        if fstype == "sysfs":
            assert not writable, line
        elif fstype not in private:
            # A file system from the host's disks: only Docker's per-container files.
            assert target in own_files, line
            disk_devices.add(device)
    assert disk_devices, "expected /etc/hosts and friends from the host's disk"
    # The disk behind them cannot be opened as a device, even with mknod.
    for device in disk_devices:
        major, minor = device.split(":")
        code, out = vm.sh(
            f"rm -f /dev/hostdisk; mknod /dev/hostdisk b {major} {minor} && "
            "dd if=/dev/hostdisk of=/dev/null bs=512 count=1"
        )
        vm.sh("rm -f /dev/hostdisk")
        assert code != 0, f"read the host's disk {device}: {out}"
    # Host-wide knobs under /proc and /sys stay read-only.
    for script in (
        "echo 1 > /proc/sys/kernel/sysrq",
        "echo h > /proc/sysrq-trigger",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
        "echo x > /sys/kernel/uevent_helper",
        "echo x > /sys/fs/cgroup/escape",
    ):
        code, out = vm.sh(script)
        assert code != 0 or script.endswith("/sys/fs/cgroup/escape"), f"{script}: {out}"
    # /sys/fs/cgroup itself is the container's own tmpfs: a file written there is not
    # on the host.
    assert subprocess.run(["test", "-e", "/sys/fs/cgroup/escape"]).returncode != 0


# Runs in the guest: forged ARP answers ("<ip> is at <my MAC>"), broadcast and unicast.
_ARP_SPOOF = r"""
import socket, struct, sys
claims = [c.split('=') for c in sys.argv[1:]]  # ip=victim_mac=victim_ip
me = open('/sys/class/net/eth0/address').read().strip()
mac = lambda text: bytes.fromhex(text.replace(':', ''))
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(('eth0', 0))
for claimed, victim_mac, victim_ip in claims:
    for dest in (victim_mac, 'ff:ff:ff:ff:ff:ff'):
        frame = mac(dest) + mac(me) + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2)
        frame += mac(me) + socket.inet_aton(claimed) + mac(victim_mac) + socket.inet_aton(victim_ip)
        for _ in range(5):
            raw.send(frame)
print('sent')
"""


def test_forged_arp_draws_nothing_between_host_and_fabric(lab_a: RunningLab) -> None:
    """A guest claims the fabric's address to the host and the host's to the fabric:
    both neighbour entries are pinned, and the host's control requests still go to
    the fabric (so the token never travels to the guest)."""
    roster = lab_a.roster
    fabric = lab_a.client.containers.get(f"snaplab-{roster.lab}-fabric")
    fabric_mac = fabric.attrs["NetworkSettings"]["Networks"][f"snaplab-{roster.lab}"]["MacAddress"]
    bridge = bridge_name(roster.lab)
    with open(f"/sys/class/net/{bridge}/address") as handle:
        bridge_mac = handle.read().strip()
    vm = guest(lab_a)
    vm_mac = vm.sh("cat /sys/class/net/eth0/address")[1].strip()
    done = subprocess.run(
        [
            "docker",
            "exec",
            vm.container.name,
            "python3",
            "-c",
            _ARP_SPOOF,
            f"{roster.fabric_ip}={bridge_mac}={gateway(lab_a)}",
            f"{gateway(lab_a)}={fabric_mac}={roster.fabric_ip}",
            f"{roster.storage_ip}={bridge_mac}={gateway(lab_a)}",
            f"{roster.storage_ip}={fabric_mac}={roster.fabric_ip}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "sent" in done.stdout, done.stderr  # the forgery left
    time.sleep(1.0)
    on_host = subprocess.run(
        ["ip", "neigh", "show", roster.fabric_ip, "dev", bridge], capture_output=True, text=True
    ).stdout
    assert fabric_mac in on_host and "PERMANENT" in on_host, on_host
    storage_entry = subprocess.run(
        ["ip", "neigh", "show", roster.storage_ip, "dev", bridge], capture_output=True, text=True
    ).stdout
    assert "PERMANENT" in storage_entry and vm_mac not in storage_entry, storage_entry
    pid = str(fabric.attrs["State"]["Pid"])
    in_fabric = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "neigh", "show", gateway(lab_a)],
        capture_output=True,
        text=True,
    ).stdout
    assert bridge_mac in in_fabric and "PERMANENT" in in_fabric, in_fabric
    fabric_storage = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "neigh", "show", roster.storage_ip],
        capture_output=True,
        text=True,
    ).stdout
    assert "PERMANENT" in fabric_storage and vm_mac not in fabric_storage, fabric_storage
    assert lab_a.fabric.power_state(VM) == "running"
