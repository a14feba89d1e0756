"""dhcp-disabled and agent-stopped on every guest shape: their guest scripts run here in
bash against stub commands (systemctl, nmcli, netplan, ip, ps, ...) that record what they
are asked, so the branch each network stack takes and the unit each guest stops are seen
without a lab."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab.faults import agent_stopped, dhcp_disabled

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $*" in
{cases}
esac
exit 0
"""


def stubs(tmp_path: Path, answers: dict[str, str]) -> dict[str, str]:
    """A PATH of stub commands; ``answers`` maps ``"cmd args*"`` glob patterns to the
    shell run for them (an ``echo`` and/or ``exit N``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cases = "\n".join(f"    {_glob(pattern)}) {shell} ;;" for pattern, shell in answers.items())
    names = {"systemctl", "nmcli", "netplan", "networkctl", "ip", "ps", "pgrep", "pidof"}
    names |= {"iptables", "kill"}
    names |= {pattern.split()[0] for pattern in answers}
    for name in names:
        path = bin_dir / name
        path.write_text(STUB.format(cases=cases))
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls")}


def _glob(pattern: str) -> str:
    """A case pattern: the text quoted literally, ``*`` left a wildcard."""
    return "*".join(f"'{part}'" if part else "" for part in pattern.split("*"))


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


ADDRESSED = {
    "ip -4 -o addr show dev eth0": "echo '2: eth0    inet 10.213.9.10/24 brd 10.213.9.255'",
    "ip -4 route show default": "exit 0",
}


@pytest.mark.parametrize("unit", ["walinuxagent.service", "waagent.service"])
def test_agent_stopped_stops_the_unit_the_daemon_runs_in(tmp_path: Path, unit: str) -> None:
    stopped = tmp_path / "stopped"
    env = stubs(
        tmp_path,
        {
            "pgrep -o -f waagent -daemon": "echo 72",
            "ps -o unit= -p 72": f"echo ' {unit}'",
            "pgrep -f *": f"test -e {stopped} && exit 1; echo 72",
            "systemctl stop *": f"touch {stopped}",
        },
    )
    done = run(agent_stopped.STOP_AGENT, env)
    assert done.returncode == 0, done.stderr
    assert f"systemctl stop {unit}" in calls(tmp_path)


def test_agent_stopped_refuses_a_guest_whose_agent_is_not_running(tmp_path: Path) -> None:
    env = stubs(tmp_path, {"pgrep -o -f waagent -daemon": "exit 1"})
    done = run(agent_stopped.STOP_AGENT, env)
    assert done.returncode == 1 and "the agent is not running" in done.stderr
    assert not any(c.startswith("systemctl") for c in calls(tmp_path))


def test_dhcp_disabled_on_networkmanager_goes_manual(tmp_path: Path) -> None:
    env = stubs(
        tmp_path,
        {
            **ADDRESSED,
            "systemctl is-active --quiet NetworkManager": "exit 0",
            "nmcli -g GENERAL.STATE device show eth0": "echo '100 (connected)'",
            "nmcli -g GENERAL.CONNECTION device show eth0": "echo 'System eth0'",
        },
    )
    done = run(dhcp_disabled._STATIC_WITHOUT_DHCP, env)
    assert done.returncode == 0, done.stderr
    made = calls(tmp_path)
    assert (
        "nmcli connection modify System eth0 ipv4.method manual ipv4.addresses 10.213.9.10/24"
        in made
    )
    assert "nmcli connection up System eth0" in made
    assert any("--dport 67" in c and "DROP" in c for c in made)
    assert not any(c.startswith(("netplan", "pidof")) for c in made)


def test_dhcp_disabled_on_netplan_writes_a_later_static_file_and_reloads_networkd(
    tmp_path: Path,
) -> None:
    static = tmp_path / "90-static-eth0.yaml"
    script = dhcp_disabled._STATIC_WITHOUT_DHCP.replace(dhcp_disabled.NETPLAN_STATIC, str(static))
    env = stubs(
        tmp_path,
        {
            **ADDRESSED,
            "ip -4 route show default": "echo 'default via 10.213.9.1 dev eth0'",
            "systemctl is-active --quiet NetworkManager": "exit 3",
            "systemctl is-active --quiet systemd-networkd": "exit 0",
        },
    )
    done = run(script, env)
    assert done.returncode == 0, done.stderr
    text = static.read_text()
    assert "dhcp4: false" in text and "addresses: [10.213.9.10/24]" in text
    assert "routes: [{to: default, via: 10.213.9.1}]" in text
    made = calls(tmp_path)
    assert made.index("netplan generate") < made.index("networkctl reconfigure eth0")
    assert oct(static.stat().st_mode & 0o777) == "0o600"


def test_dhcp_disabled_restarts_whichever_unit_runs_the_agent(tmp_path: Path) -> None:
    env = stubs(
        tmp_path,
        {"pgrep -o -f waagent -daemon": "echo 72", "ps -o unit= -p 72": "echo waagent.service"},
    )
    done = run(dhcp_disabled._RESTART_AGENT, env)
    assert done.returncode == 0, done.stderr
    assert "systemctl restart waagent.service" in calls(tmp_path)
