"""Testinfra-like fakes: a guest that answers commands with canned output, and a
platform with a canned instance view, job list and NSG rules.

They let every check be tested without a lab, the way httpx's ``MockTransport`` lets a
client be tested without a server. A :class:`FakeHost` answers a command with the
response registered under the *longest* substring of that command (the most specific
match wins); anything unregistered fails like a missing file (exit 1, no output).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.mgmt.compute.models import VirtualMachineInstanceView

from checks.context import CheckContext
from checks.nsg import NsgRule
from lab.platform.roster import GuestEntry, Roster


@dataclass(frozen=True)
class FakeOutput:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeHost:
    responses: dict[str, FakeOutput] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)

    def on(self, fragment: str, stdout: str = "", rc: int = 0, stderr: str = "") -> FakeHost:
        self.responses[fragment] = FakeOutput(rc, stdout, stderr)
        return self

    def file(self, path: str, text: str) -> FakeHost:
        """``cat <path>`` (as checks quote it) prints ``text``."""
        return self.on(f"cat {shlex.quote(path)}", text)

    def run(self, command: str) -> FakeOutput:
        self.commands.append(command)
        matches = [fragment for fragment in self.responses if fragment in command]
        if not matches:
            return FakeOutput(1, "", "")
        return self.responses[max(matches, key=len)]

    def ran(self, fragment: str) -> bool:
        return any(fragment in command for command in self.commands)


@dataclass
class FakeClock:
    """Stands in for :mod:`checks.in_motion`'s clock and pause: a check that waits for a
    state in motion "waits" instantly, and ``on_pause`` moves the fake guest along."""

    now: float = 0.0
    pauses: list[float] = field(default_factory=list)
    on_pause: Callable[[int], None] = lambda count: None

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds
        self.on_pause(len(self.pauses))

    @property
    def waited(self) -> float:
        return sum(self.pauses)


@dataclass
class FakePlatform:
    view: dict[str, Any] = field(default_factory=dict)
    job_list: list[dict[str, Any]] = field(default_factory=list)
    rules: list[NsgRule] = field(default_factory=list)

    def instance_view(self, vm: str) -> VirtualMachineInstanceView:
        return VirtualMachineInstanceView(self.view)

    def jobs(self) -> Sequence[dict[str, Any]]:
        return self.job_list

    def nsg_rules(self, vm: str) -> Sequence[NsgRule]:
        return self.rules


FAKE_ROSTER = Roster(
    lab="fake",
    subnet="10.213.9.0/24",
    fabric_ip="10.213.9.2",
    storage_ip="10.213.9.3",
    guests=(GuestEntry("vm1", "10.213.9.10", "02:42:0a:d5:09:0a", "2.7.3.0", "snaplab-fake-vm1"),),
)


def fake_context(
    host: FakeHost | None = None,
    platform: FakePlatform | None = None,
    subtask_timeout_seconds: float = 23.75,
) -> CheckContext:
    return CheckContext(
        roster=FAKE_ROSTER,
        vm="vm1",
        host=host if host is not None else FakeHost(),
        platform=platform if platform is not None else FakePlatform(),
        subtask_timeout_seconds=subtask_timeout_seconds,
    )


HANDLER_DIR = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.92.0"
EXTENSIONS_CONFIG = "/var/lib/waagent/ExtensionsConfig.2.xml"
LEASE = "/var/lib/dhcp/dhclient.eth0.leases"

HEALTHY_PS = """\
      1      60 /sbin/init
     49      59 dhclient -4 -v -i -pf /run/dhclient.eth0.pid -lf /var/lib/dhcp/eth0.leases eth0
     72      58 /usr/bin/python3 /usr/sbin/waagent -daemon
    101      57 /usr/bin/python3 -u /usr/sbin/waagent -run-exthandlers
"""

HEALTHY_CONF = """\
# Enable extension handling
Extensions.Enabled=y
Provisioning.Agent=auto
# HttpProxy.Host=None
# HttpProxy.Port=None
Logs.Verbose=n
"""


def plugin_xml(version: str = "1.0.92.0", state: str = "enabled") -> str:
    return (
        "<?xml version='1.0' encoding='utf-8'?><Extensions><Plugins>"
        f'<Plugin name="Microsoft.Azure.RecoveryServices.VMSnapshotLinux" version="{version}" '
        f'state="{state}" /></Plugins></Extensions>'
    )


def status_json(status: str = "success", code: int = 1, message: str = "Enable Succeeded") -> str:
    return (
        '[{"version": "1.0", "status": {"name": "Microsoft.Azure.RecoveryServices.VMSnapshotLinux",'
        f' "operation": "Enable", "status": "{status}", "code": {code},'
        f' "formattedMessage": {{"lang": "en-US", "message": "{message}"}}}}}}]'
    )


MANIFEST = (
    '[{"name": "Microsoft.Azure.RecoveryServices.VMSnapshotLinux", "version": "0.0.0.0",'
    ' "handlerManifest": {"installCommand": "main/handle.sh install",'
    ' "uninstallCommand": "main/handle.sh uninstall", "updateCommand": "main/handle.sh update",'
    ' "enableCommand": "main/handle.sh enable", "disableCommand": "main/handle.sh disable"}}]'
)

CPU_IDLE = (
    '{"cgroup": "/sys/fs/cgroup/cpuacct/docker/abc", "cpus": 2, "quota_cpus": 1.0,'
    ' "used_seconds": 0.01, "elapsed": 1.0, "top": [["waagent", 72, 0.01]]}'
)
MEMORY_IDLE = (
    '{"cgroup": "/sys/fs/cgroup/memory/docker/abc",'
    ' "first": {"limit": 1073741824, "usage": 52428800, "inactive_file": 0, "limit_hits": 0,'
    ' "oom_kills": 0, "pressure": null},'
    ' "second": {"limit": 1073741824, "usage": 52428800, "inactive_file": 0, "limit_hits": 0,'
    ' "oom_kills": 0, "pressure": null},'
    ' "mem_total": 25000000000, "mem_available": 24000000000, "system_pressure": [],'
    ' "top": [["waagent", 72, 29000000]]}'
)


def healthy_host() -> FakeHost:
    """A guest answering every check's commands as a healthy lab VM does (agent 2.7.3.0
    running, DHCP lease with option 245, the VMSnapshot handler installed after one
    successful backup, no scripts, idle)."""
    host = FakeHost()
    host.on("systemctl is-system-running", "running\n")
    host.on(
        "waagent --version",
        "WALinuxAgent-2.7.3.0 running on debian 12\nPython: 3.11.2\nGoal state agent: 2.7.3.0\n",
    )
    host.on(
        "systemctl show -p LoadState,ActiveState",
        "Result=success\nExecMainStatus=0\nLoadState=loaded\nActiveState=active\n"
        "SubState=running\nActiveEnterTimestamp=Sat 2026-11-28 00:31:24 UTC\n"
        "InactiveEnterTimestamp=\n",
    )
    host.on("ps -eo pid=,etimes=,args=", HEALTHY_PS)
    host.on("ps -eo args=", "\n".join(line.split(None, 2)[2] for line in HEALTHY_PS.splitlines()))
    host.on(
        "systemctl show -p Restart,",
        "Restart=always\nFragmentPath=/lib/systemd/system/walinuxagent.service\n"
        "DropInPaths=/etc/systemd/system/walinuxagent.service.d/snaplab.conf\nLoadState=loaded\n",
    )
    host.file("/etc/waagent.conf", HEALTHY_CONF)
    host.on("grep -Hi proxy", "", rc=1)
    host.on("iface[[:space:]]", "/etc/network/interfaces.d/eth0:iface eth0 inet dhcp\n")
    host.on("ls -1t /var/lib/dhcp/dhclient*.leases", LEASE + "\n")
    host.file(LEASE, 'lease {\n  interface "eth0";\n  option unknown-245 a:d5:9:2;\n}\n')
    host.file("/var/lib/waagent/WireServerEndpoint", "10.213.9.2")
    host.on(
        "curl -sS --max-time 5 -w",
        "<?xml version='1.0' encoding='utf-8'?>\n<Versions><Preferred><Version>2012-11-30"
        "</Version></Preferred></Versions>\n200",
    )
    host.on("timeout 3 bash -c", "")
    host.on(
        "ls -1d /var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/",
        HANDLER_DIR + "/\n",
    )
    host.on("ls -1t /var/lib/waagent/ExtensionsConfig.*.xml", EXTENSIONS_CONFIG + "\n")
    host.file(EXTENSIONS_CONFIG, plugin_xml())
    host.file(f"{HANDLER_DIR}/HandlerManifest.json", MANIFEST)
    host.on("stat -c '%A'", "-rwxr--r--\n#!/bin/sh\n")
    host.on("sh -n", "")
    host.on("&& sha256sum", "abc123\nabc123  " + HANDLER_DIR + "/main/handle.sh\n")
    host.file(f"{HANDLER_DIR}/HandlerEnvironment.json", '[{"handlerEnvironment": {}}]')
    host.file(f"{HANDLER_DIR}/config/HandlerState", "Enabled")
    host.on(f"test -f {HANDLER_DIR}/HandlerManifest.json", "")
    host.on(f"ls -1 {HANDLER_DIR}/config/*.settings", f"{HANDLER_DIR}/config/0.settings\n")
    host.on("echo $(( $(date +%s)", "40\n")
    host.file(f"{HANDLER_DIR}/status/0.status", status_json())
    host.file(
        f"{HANDLER_DIR}/config/HandlerStatus",
        '{"status": "Ready", "code": 0, "message": "Plugin enabled"}',
    )
    host.on(f"ls -1t {HANDLER_DIR}/status/*.status", f"{HANDLER_DIR}/status/0.status\n")
    host.on("cpu.cfs_quota_us", CPU_IDLE)
    host.on("memory.failcnt", MEMORY_IDLE)
    host.file(
        f"{HANDLER_DIR}/main/VMSnapshotPluginHost.conf",
        "[pre_post]\ntimeoutInSeconds: 1800\nnumberOfPlugins: 1\npluginName0: ScriptRunner\n"
        "pluginConfigPath0: /etc/azure/VMSnapshotScriptPluginConfig.json\n",
    )
    return host


def healthy_platform() -> FakePlatform:
    """The instance view, jobs and NSG of the healthy VM ``vm1`` of :data:`FAKE_ROSTER`."""
    view = {
        "vmAgent": {
            "vmAgentVersion": "2.7.3.0",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "Guest Agent is running",
                }
            ],
            "extensionHandlers": [
                {
                    "type": "Microsoft.Azure.RecoveryServices.VMSnapshotLinux",
                    "typeHandlerVersion": "1.0.92.0",
                    "status": {"code": "ProvisioningState/succeeded", "displayStatus": "Ready"},
                }
            ],
        },
        "extensions": [
            {
                "name": "VMSnapshotLinux",
                "typeHandlerVersion": "1.0.92.0",
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "message": "Enable Succeeded",
                    }
                ],
            }
        ],
        "statuses": [
            {"code": "ProvisioningState/succeeded"},
            {"code": "PowerState/running", "displayStatus": "VM running"},
        ],
    }
    job = {
        "job_id": "bac4635d-7fa6-415a-b053-c3110b3abf1a",
        "vm": "vm1",
        "status": "Completed",
        "error_code": None,
        "error_message": None,
        "started_at": "2026-11-28T00:21:45.438Z",
        "ended_at": "2026-11-28T00:21:53.290Z",
        "seconds": 7.853,
    }
    return FakePlatform(view=view, job_list=[job])


# Guests of other distributions' shapes: the same healthy VM, with eth0 managed by
# systemd-networkd from netplan (Ubuntu), by NetworkManager (RHEL), or the agent's unit
# named waagent.service (RHEL, SUSE).
NETPLAN_NETWORK = "/run/systemd/network/10-netplan-eth0.network"
NETWORKD_LEASE = "/run/systemd/netif/leases/2"
NETWORKD_PS = """\
      1      60 /sbin/init
     40      59 /lib/systemd/systemd-networkd
     72      58 /usr/bin/python3 /usr/sbin/waagent -daemon
    101      57 /usr/bin/python3 -u /usr/sbin/waagent -run-exthandlers
"""


def netplan_host() -> FakeHost:
    """A healthy VM whose eth0 is on DHCP through netplan and systemd-networkd."""
    host = healthy_host()
    host.on("iface[[:space:]]", "", rc=1)
    host.on("ls -1t /var/lib/dhcp/dhclient*.leases", "", rc=0)
    host.on("ps -eo pid=,etimes=,args=", NETWORKD_PS)
    host.on("ps -eo args=", "\n".join(line.split(None, 2)[2] for line in NETWORKD_PS.splitlines()))
    host.on(
        "for u in NetworkManager systemd-networkd",
        "NetworkManager=inactive\nsystemd-networkd=active\n",
    )
    host.on(
        "networkctl list",
        "  1 lo   loopback carrier  unmanaged\n  2 eth0 ether    routable configured\n",
    )
    host.on(
        "networkctl status eth0",
        "\u25cf 2: eth0\n                     Link File: n/a\n"
        f"                  Network File: {NETPLAN_NETWORK}\n"
        "                         State: routable (configured)\n",
    )
    host.file(
        NETPLAN_NETWORK, "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=ipv6\n"
    )
    host.on("dhcp4:", "/etc/netplan/50-cloud-init.yaml:      dhcp4: true\n")
    host.file("/sys/class/net/eth0/ifindex", "2\n")
    host.file(
        NETWORKD_LEASE,
        "# This is private data. Do not parse.\nADDRESS=10.213.9.10\nNETMASK=255.255.255.0\n"
        "SERVER_ADDRESS=10.213.9.2\nOPTION_245=0ad50902\n",
    )
    return host


def networkmanager_host() -> FakeHost:
    """A healthy VM whose eth0 is on DHCP through NetworkManager's internal client."""
    host = healthy_host()
    host.on("iface[[:space:]]", "", rc=1)
    host.on("ls -1t /var/lib/dhcp/dhclient*.leases", "", rc=0)
    host.on(
        "for u in NetworkManager systemd-networkd",
        "NetworkManager=active\nsystemd-networkd=inactive\n",
    )
    host.on(
        "nmcli -t -f GENERAL.STATE,GENERAL.CONNECTION device show eth0",
        "GENERAL.STATE:100 (connected)\nGENERAL.CONNECTION:System eth0\n",
    )
    host.on("nmcli -t -f ipv4.method connection show", "ipv4.method:auto\n")
    host.on(
        "nmcli -t -f DHCP4 device show eth0",
        "DHCP4.OPTION[1]:dhcp_lease_time = 86400\nDHCP4.OPTION[2]:ip_address = 10.213.9.10\n"
        "DHCP4.OPTION[3]:private_245 = 0a:d5:09:02\n",
    )
    return host


def waagent_unit_host() -> FakeHost:
    """A healthy VM whose agent unit is ``waagent.service`` (as RHEL and SUSE name it):
    systemd shows ``walinuxagent.service`` as not found."""
    host = healthy_host()
    missing = "Id=walinuxagent.service\nLoadState=not-found\nActiveState=inactive\n\n"
    host.on(
        "systemctl show -p LoadState,ActiveState",
        missing + "Id=waagent.service\nResult=success\nExecMainStatus=0\nLoadState=loaded\n"
        "ActiveState=active\nSubState=running\nUnitFileState=enabled\n"
        "ActiveEnterTimestamp=Sat 2026-11-28 00:31:24 UTC\nInactiveEnterTimestamp=\n",
    )
    host.on(
        "systemctl show -p Restart,",
        missing + "Id=waagent.service\nRestart=always\n"
        "FragmentPath=/usr/lib/systemd/system/waagent.service\nDropInPaths=\n"
        "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n",
    )
    return host
