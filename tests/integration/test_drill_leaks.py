"""Item 5 of the drills issue on real labs: nothing a trainee reads names the cause, and
from root in their guest they reach nothing of the trainer's, the host's or another
trainee's.

Two trainees of one drill, set up as ``drill start`` sets them up (D1's
:func:`lab.drill.start.bring_up`: the lab broken as its scenario says, the first backup
run for real as the symptom, then :func:`lab.drill.access.grant_access`):

* ``t01`` gets ``schedule-storm``, the scenario the issue names for its leaks (its fabric
  job detail says the job is "still queued for one of the host's 4 snapshot slots");
* ``t02`` gets ``agent-stopped``: another trainee's lab, SSH port and twin.

Every attempt goes the trainee's way: over their SSH port with their key, ``sudo`` to
root, or with their env file's credentials. What ``tests/integration/test_guest_attacks.py``
already tries from root in a guest is not repeated here and still holds for drill guests
(same ``create_guest``): the fabric's control API with and without a guessed token,
directly, at IMDS's address and through the lab's proxy; listeners on every host address;
another lab's guest, fabric and storage; the Docker socket and TCP ports 2375/2376;
mounting cgroup/proc, ``unshare -m``; kernel modules; the host's file systems and disks;
forged ARP. This module adds what a drill brings: the trainee's SSH forwarder ports, the
ARM twins on the host's loopback, the other trainee's SSH port, the scenario's traces in
the guest and on the platform, user namespaces, and the guest's capabilities.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from lab.azure_sdk import backup_client
from lab.drill.plan import Seat
from lab.drill.start import bring_up
from lab.drill.state import Trainee, drill_dir
from lab.faults import fault_by_id
from lab.platform.roster import Roster
from lab.provision import lab as labs
from lab.provision.labels import ARM_PORT_LABEL, LAB_LABEL, ROLE_LABEL
from lab.runner.drivers import DockerDrivers
from lab.scenario import load_scenario, scenario_ids
from tests.integration.conftest import RUN_ID

pytestmark = pytest.mark.integration

DRILL = f"drb{RUN_ID}"
CONNECT_SECONDS = 3.0
# The fabric's own words for a queued job (its journal's `detail`), never for trainees.
FABRIC_DETAIL = re.compile(r"queued|snapshot slots|host's 4", re.IGNORECASE)

# Capabilities a guest's PID 1 holds (CapEff), each with what needs it: Docker's default
# set less MKNOD and SETFCAP, plus NET_ADMIN and SYS_BOOT (create_guest). CAP_MKNOD went:
# nothing in a guest makes device nodes (systemd's PrivateDevices= falls back to bind
# mounts); guest-shutdown, dhcp-disabled, stale-agent and guest-shutdown@guest=netplan
# passed without it. CAP_SETFCAP went: nothing sets file capabilities (a postinst falls
# back to setuid); stale-agent, extension-update-failed and broken-extension passed
# without it (and without MKNOD).
GUEST_CAPABILITIES = {
    "CAP_CHOWN": "systemd, dpkg and the agent set owners",
    "CAP_DAC_OVERRIDE": "root's usual file access (systemd, the agent)",
    "CAP_FOWNER": "chmod/utime of other users' files (dpkg, systemd-tmpfiles)",
    "CAP_FSETID": "keeping setuid bits on files root writes (dpkg)",
    "CAP_KILL": "systemd stops services, sshd ends sessions",
    "CAP_SETGID": "sshd, sudo and systemd's User= switch groups",
    "CAP_SETUID": "sshd, sudo and systemd's User= switch users",
    "CAP_SETPCAP": "systemd drops capabilities of its services (CapabilityBoundingSet)",
    "CAP_NET_BIND_SERVICE": "sshd on 22, dhclient on 68",
    "CAP_NET_RAW": "dhclient's raw DHCP socket, ping",
    "CAP_SYS_CHROOT": "sshd's privilege separation, systemd's RootDirectory=",
    "CAP_AUDIT_WRITE": "sshd, sudo and PAM write login audit records",
    "CAP_NET_ADMIN": "dhclient, the guest's own iptables (scenarios' and runbooks')",
    "CAP_SYS_BOOT": "poweroff/reboot inside the guest (guest-shutdown)",
}
NEVER = ("CAP_MKNOD", "CAP_SETFCAP", "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE",
         "CAP_SYS_RAWIO", "CAP_DAC_READ_SEARCH", "CAP_SYS_NICE", "CAP_SYS_TIME", "CAP_BPF",
         "CAP_PERFMON", "CAP_SYSLOG", "CAP_MAC_ADMIN", "CAP_AUDIT_CONTROL")  # fmt: skip
# capability numbers (linux/capability.h), for decoding CapEff
CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23, "CAP_SYS_TIME": 25, "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34, "CAP_PERFMON": 38, "CAP_BPF": 39,
}  # fmt: skip


@dataclass
class Seated:
    trainee: Trainee
    roster: Roster

    @property
    def port(self) -> int:
        return int((self.trainee.access.model_extra or {})["port"])

    def root(self, script: str, timeout: float = 90) -> tuple[int, str]:
        """``script`` as root in the guest, the trainee's way: SSH, then sudo."""
        argv = shlex.split(self.trainee.access.ssh)
        argv[1:1] = ["-o", "BatchMode=yes"]
        remote = shlex.join(["sudo", "-n", "bash", "-c", script])
        done = subprocess.run(
            [*argv, remote], capture_output=True, text=True, timeout=timeout, check=False
        )
        return done.returncode, done.stdout + done.stderr

    def env(self) -> dict[str, str]:
        found = {}
        for line in Path(self.trainee.access.env_file).read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                found[name] = shlex.split(value)[0]
        return found


def _seat(client: docker.DockerClient, trainee_id: str, scenario_id: str) -> Seated:
    scenario = load_scenario(scenario_id)
    lab = f"{DRILL}-{trainee_id}"
    drivers = DockerDrivers(client, lambda _: None)
    drivers.prepare(scenario.spec.vms)
    seat = Seat(trainee=trainee_id, lab=lab, scenario=scenario_id)
    trainee = bring_up(client, drivers, DRILL, seat, scenario, lambda _: None, threading.Event())
    assert trainee.access.ssh, "no access was granted"
    return Seated(trainee, labs.roster_of(client, lab))


@pytest.fixture(scope="module")
def trainees(docker_client: docker.DockerClient) -> Iterator[tuple[Seated, Seated]]:
    try:
        t01 = _seat(docker_client, "t01", "schedule-storm")
        t02 = _seat(docker_client, "t02", "agent-stopped")
        yield t01, t02
    finally:
        for lab in labs.lab_names(docker_client):
            if lab.startswith(f"{DRILL}-"):
                labs.down(docker_client, lab)
        shutil.rmtree(drill_dir(DRILL), ignore_errors=True)


def forbidden_words() -> list[str]:
    """Every catalog scenario's id and fault's id, as written and with underscores."""
    words: set[str] = set()
    for scenario_id in scenario_ids():
        scenario = load_scenario(scenario_id)
        words.add(scenario_id)
        for fault in scenario.spec.faults:
            words.add(fault_by_id(fault.fault).id)
    return sorted(words | {w.replace("-", "_") for w in words})


def _named(text: str, words: list[str]) -> list[str]:
    return [w for w in words if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text, re.I)]


# ------------------------------------------------------------------ nothing names the cause


def test_the_trainee_was_given_the_symptom_only(trainees: tuple[Seated, Seated]) -> None:
    t01, _ = trainees
    symptom = t01.trainee.symptom
    assert symptom is not None and symptom.error_code == "GuestAgentSnapshotTaskStatusError"
    code, motd = t01.root("cat /etc/motd")
    assert code == 0 and symptom.error_code in motd and symptom.message in motd
    assert not _named(motd, forbidden_words()) and not FABRIC_DETAIL.search(motd), motd


def test_nothing_in_the_guest_names_the_scenario(trainees: tuple[Seated, Seated]) -> None:
    t01, _ = trainees
    words = forbidden_words()
    pattern = "|".join(re.escape(w) for w in words)
    # Names, the login's and PID 1's environment, what DHCP and DNS say, then every
    # file a root trainee would grep outside the OS's own package files.
    code, seen = t01.root(
        "hostname; hostname -f; cat /etc/hostname /etc/hosts /etc/resolv.conf; env; "
        "tr '\\0' '\\n' < /proc/1/environ; cat /var/lib/dhcp/*.leases; "
        "getent hosts $(hostname) fabric storage 2>/dev/null; "
        "systemctl list-units --all --no-legend --plain | awk '{print $1}'; "
        "ls -la /etc/systemd/system /opt /srv /root /home/*; crontab -l 2>&1; "
        "cat /etc/motd /etc/profile.d/*"
    )
    assert code == 0, seen
    assert not _named(seen, words), (_named(seen, words), seen[:4000])
    # A probe file holding one of the words shows the search finds what is there.
    probe = "/run/leak-probe"
    code, hits = t01.root(
        f"echo 'x {words[0]} y' > {probe}; "
        f"grep -rIilE -- '(^|[^a-z_-])({pattern})([^a-z_-]|$)' /etc /opt /srv /root /home "
        "/var/lib /var/log /var/spool /run /tmp /usr/local 2>/dev/null | head -20; "
        f"rm -f {probe}"
    )
    assert code == 0 and hits.split() == [probe], hits


def test_the_platforms_answers_to_the_guest_name_no_scenario(
    trainees: tuple[Seated, Seated],
) -> None:
    """IMDS and the WireServer, as the guest's root reads them (the fabric's answers)."""
    t01, _ = trainees
    fabric = t01.roster.fabric_ip
    code, seen = t01.root(
        "curl -s -m 5 -H 'Metadata: true' "
        "'http://169.254.169.254/metadata/instance?api-version=2021-02-01'; echo; "
        f"curl -s -m 5 -H 'x-ms-version: 2012-11-30' 'http://{fabric}/machine/?comp=goalstate'; "
        f"for u in $(curl -s -m 5 -H 'x-ms-version: 2012-11-30' "
        f"'http://{fabric}/machine/?comp=goalstate' | grep -oE 'http://[^<]+'); do "
        "curl -s -m 5 -H 'x-ms-version: 2012-11-30' \"$u\" | head -c 20000; echo; done"
    )
    assert code == 0 and "compute" in seen, seen[:2000]
    assert not _named(seen, forbidden_words()), _named(seen, forbidden_words())
    assert not FABRIC_DETAIL.search(seen)


def test_jobs_and_policies_through_the_trainees_credentials_name_no_cause(
    trainees: tuple[Seated, Seated],
) -> None:
    t01, _ = trainees
    env = t01.env()
    client = backup_client(
        env["ARM_ENDPOINT"], env["IDENTITY_HEADER"], env["AZURE_SUBSCRIPTION_ID"],
        env["REQUESTS_CA_BUNDLE"],
    )  # fmt: skip
    group = env["AZURE_RESOURCE_GROUP"]
    vaults = _vaults(env)
    assert vaults, "the trainee sees no vault"
    seen: list[object] = []
    for vault in vaults:
        seen += [j.as_dict() for j in client.backup_jobs.list(vault, group)]
        seen += [p.as_dict() for p in client.backup_policies.list(vault, group)]
        seen += [i.as_dict() for i in client.backup_protected_items.list(vault, group)]
    text = json.dumps(seen, default=str)
    failed = [j for j in seen if isinstance(j, dict) and "GuestAgentSnapshotTaskStatusError" in
              json.dumps(j, default=str)]  # fmt: skip
    assert failed, "the failed job is not in the trainee's view"
    assert not FABRIC_DETAIL.search(text), FABRIC_DETAIL.search(text)
    assert not _named(text, forbidden_words()), _named(text, forbidden_words())


def _vaults(env: dict[str, str]) -> list[str]:
    from azure.mgmt.recoveryservices import RecoveryServicesClient

    from lab.azure_sdk import _lab_client

    client = _lab_client(
        RecoveryServicesClient, env["ARM_ENDPOINT"], env["IDENTITY_HEADER"],
        env["AZURE_SUBSCRIPTION_ID"], env["REQUESTS_CA_BUNDLE"],
    )  # fmt: skip
    return [str(v.name) for v in client.vaults.list_by_resource_group(env["AZURE_RESOURCE_GROUP"])]


# ------------------------------------------------------------------ nothing of the trainer's


_PROBE = r"""
import json, socket, sys, threading
targets, results = json.loads(sys.argv[1]), {}
def probe(host, port):
    s = socket.socket(); s.settimeout(float(sys.argv[2]))
    try:
        s.connect((host, port)); results[f'{host}:{port}'] = 'connected'
    except OSError as exc:
        results[f'{host}:{port}'] = type(exc).__name__
    finally:
        s.close()
threads = [threading.Thread(target=probe, args=t) for t in targets]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(results))
"""


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


def test_root_in_the_guest_reaches_no_forwarder_twin_or_other_trainee(
    docker_client: docker.DockerClient, trainees: tuple[Seated, Seated]
) -> None:
    t01, t02 = trainees
    twin_ports = []
    for seated in trainees:
        twin = docker_client.containers.list(
            filters={"label": [f"{LAB_LABEL}={seated.roster.lab}", f"{ROLE_LABEL}=arm"]}
        )[0]
        twin_ports.append(int(twin.labels[ARM_PORT_LABEL]))
    ports = [t01.port, t02.port, *twin_ports]
    # From the host, every one of them answers (so a refusal below is the wall).
    done = subprocess.run(
        [shutil.which("python3") or "python3", "-c", _PROBE,
         json.dumps([["127.0.0.1", p] for p in ports]), str(CONNECT_SECONDS)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert set(json.loads(done.stdout).values()) == {"connected"}, done.stdout
    gateway = t01.roster.subnet.rsplit(".", 1)[0] + ".1"
    addresses = [gateway, *(a for a in host_addresses() if not a.startswith("127."))]
    targets = [[a, p] for a in addresses for p in ports]
    other_vm = t02.roster.guests[0].ip
    targets += [[other_vm, 22], ["127.0.0.1", t01.port], ["127.0.0.1", twin_ports[0]]]
    code, out = t01.root(
        f"python3 -c {shlex.quote(_PROBE)} {shlex.quote(json.dumps(targets))} {CONNECT_SECONDS}"
    )
    assert code == 0, out
    results = json.loads(out.strip().splitlines()[-1])
    assert not [k for k, v in results.items() if v == "connected"], results


def test_root_in_the_guest_opens_no_user_namespace_and_holds_only_listed_capabilities(
    trainees: tuple[Seated, Seated],
) -> None:
    t01, _ = trainees
    for script in (
        "unshare -U -r true",
        "unshare -U -r -m mount -t tmpfs none /mnt",
        "unshare -n true",
        "mount -t tmpfs none /mnt",
    ):
        code, out = t01.root(script)
        assert code != 0, f"{script!r} succeeded: {out}"
    code, status = t01.root("grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/1/status")
    assert code == 0, status
    fields = dict(line.split(":\t") for line in status.strip().splitlines() if ":\t" in line)
    effective = int(fields["CapEff"].strip(), 16)
    held = {name for name, bit in CAP_NUMBERS.items() if effective >> bit & 1}
    assert held == set(GUEST_CAPABILITIES), held ^ set(GUEST_CAPABILITIES)
    assert not held & set(NEVER)
    assert fields["Seccomp"].strip() == "2", status  # Docker's seccomp filter holds PID 1
