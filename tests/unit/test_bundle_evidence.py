"""The bundle checks and diagnose_bundle over small bundles made in tmp dirs: each check
reads only the files a bundle holds, fails on the agent's own evidence, and says "not
observed" (never passes) when the files are not there."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from lab.bundle.agentlog import benign, errors
from lab.bundle.diagnose import diagnose_bundle
from lab.bundle.evidence import BUNDLE_CHECKS, CANNOT_RUN, run_bundle_checks
from lab.bundle.reader import open_bundle
from lab.diagnosis.rules import RULES, checks_in

H = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
HDIR = f"var/lib/waagent/{H}-1.0.92.0"
COLLECTED = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
T = "2026-12-07T11:50:00.000000Z"

AGENT_LOG_27 = "\n".join(
    [
        f"{T} INFO Daemon Daemon Azure Linux Agent Version:2.7.3.0",
        f"{T} ERROR Daemon Daemon Command: [dmidecode --string system-uuid], return code: [1], "
        "result: [/dev/mem: No such file or directory",
        "]",
        f"{T} WARNING Daemon Daemon No route exists to 168.63.129.16",
        f"{T} INFO ExtHandler ExtHandler WALinuxAgent-2.7.3.0 running as process 112",
    ]
)
CONF = "Extensions.Enabled=y\nProvisioning.Agent=auto\n"
STATUS_OK = json.dumps(
    [{"status": {"status": "success", "code": 1, "formattedMessage": {"message": "Enable ok"}}}]
)


def stamp(when: datetime) -> tuple[int, int, int, int, int, int]:
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def bundle_zip(tmp_path: Path, files: dict[str, str], written: datetime | None = None) -> Path:
    """A bundle in the agent's layout, collected at COLLECTED; files written ``written``
    (default: a minute before)."""
    path = tmp_path / "logs.zip"
    when = written or datetime(2026, 12, 7, 11, 59, 0, tzinfo=UTC)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, stamp(when)), text)
        archive.writestr(
            zipfile.ZipInfo("results.txt", stamp(COLLECTED)),
            "2026-12-07T12:00:00Z INFO Starting log collection at 2026-12-07T12:00:00Z\n",
        )
    return path


def healthy(**extra: str) -> dict[str, str]:
    files = {
        "etc/waagent.conf": CONF,
        "var/log/waagent.log": AGENT_LOG_27,
        "var/lib/waagent/waagent_status.1.json": "{}",
        f"{HDIR}/config/0.settings": "{}",
        f"{HDIR}/config/HandlerState": "Enabled",
        f"{HDIR}/config/HandlerStatus": json.dumps({"status": "Ready", "code": 0}),
        f"{HDIR}/status/0.status": STATUS_OK,
    }
    files.update(extra)
    return files


def causes(tmp_path: Path, files: dict[str, str]) -> tuple[str, ...]:
    return diagnose_bundle(open_bundle(bundle_zip(tmp_path, files))).cause_ids


def test_a_healthy_bundle_names_no_cause(tmp_path: Path) -> None:
    found = diagnose_bundle(open_bundle(bundle_zip(tmp_path, healthy())))
    assert found.causes == ()
    assert found.log_errors == ()  # the dmidecode and route lines are benign


def test_every_registry_check_either_runs_from_files_or_says_why_not() -> None:
    from checks.registry import ALL_CHECKS

    ids = {check.id for check in ALL_CHECKS}
    assert set(BUNDLE_CHECKS) | set(CANNOT_RUN) == ids
    assert not set(BUNDLE_CHECKS) & set(CANNOT_RUN)


def test_stale_agent_from_the_daemons_version_line(tmp_path: Path) -> None:
    log = AGENT_LOG_27.replace("2.7.3.0", "2.2.47")
    assert causes(tmp_path, healthy(**{"var/log/waagent.log": log})) == ("stale-agent",)


def test_agent_stopped_from_the_daemons_signal_line(tmp_path: Path) -> None:
    log = AGENT_LOG_27 + (
        f"\n{T} INFO Daemon Daemon Agent WALinuxAgent-2.7.3.0 forwarding signal 15 to "
        "WALinuxAgent-2.7.3.0"
    )
    found = diagnose_bundle(
        open_bundle(bundle_zip(tmp_path, healthy(**{"var/log/waagent.log": log})))
    )
    assert found.cause_ids == ("agent-stopped",)
    evidence = found.causes[0].evidence
    assert any(line.startswith("var/log/waagent.log:6: ") for line in evidence)
    assert "guest.memory" in evidence[-1]  # the exclusion it could not check is named


def test_a_restart_after_the_stop_is_a_running_agent(tmp_path: Path) -> None:
    log = AGENT_LOG_27 + (
        f"\n{T} INFO Daemon Daemon Agent WALinuxAgent-2.7.3.0 forwarding signal 15 to "
        f"WALinuxAgent-2.7.3.0\n{T} INFO Daemon Daemon Azure Linux Agent Version:2.7.3.0"
    )
    assert causes(tmp_path, healthy(**{"var/log/waagent.log": log})) == ()


def test_agent_stopped_from_a_stale_status_file(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    files = healthy()
    old = datetime(2026, 12, 7, 11, 0, 0, tzinfo=UTC)  # an hour before collection
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, stamp(old)), text)
        archive.writestr(
            zipfile.ZipInfo("results.txt", stamp(COLLECTED)),
            "2026-12-07T12:00:00Z INFO Finishing log collection at 2026-12-07T12:00:00Z\n",
        )
    found = run_bundle_checks(open_bundle(path))["guest.agent_running"]
    assert found.result.failed
    assert "3600 s before the bundle was collected" in found.result.detail


def test_agent_stopped_from_systemd_in_syslog(tmp_path: Path) -> None:
    syslog = (
        "Dec  7 11:00:00 vm1 systemd[1]: Started Azure Linux Agent.\n"
        "Dec  7 11:58:00 vm1 systemd[1]: Stopped Azure Linux Agent.\n"
    )
    found = diagnose_bundle(
        open_bundle(bundle_zip(tmp_path, healthy(**{"var/log/syslog": syslog})))
    )
    assert found.cause_ids == ("agent-stopped",)
    assert "var/log/syslog:2: Dec  7 11:58:00 vm1 systemd[1]: Stopped Azure Linux Agent." in (
        found.causes[0].evidence
    )


def test_extensions_disabled_from_waagent_conf(tmp_path: Path) -> None:
    found = diagnose_bundle(
        open_bundle(bundle_zip(tmp_path, healthy(**{"etc/waagent.conf": "Extensions.Enabled=n\n"})))
    )
    assert found.cause_ids == ("extensions-disabled",)
    assert "etc/waagent.conf:1: Extensions.Enabled=n" in found.causes[0].evidence


def test_broken_extension_from_the_agents_handler_status(tmp_path: Path) -> None:
    status = json.dumps({"status": "NotReady", "code": 1009, "message": "Non-zero exit code: 126"})
    files = healthy(**{f"{HDIR}/config/HandlerStatus": status})
    assert causes(tmp_path, files) == ("broken-extension",)


def test_extension_update_failed_from_failed_upgrade(tmp_path: Path) -> None:
    files = healthy(**{f"{HDIR}/config/HandlerState": "FailedUpgrade"})
    assert causes(tmp_path, files) == ("extension-update-failed",)


def test_extension_update_failed_from_the_agents_download_failure(tmp_path: Path) -> None:
    config = (
        '<Extensions><Plugins><Plugin name="' + H + '" version="1.0.93.0" state="enabled"/>'
        "</Plugins></Extensions>"
    )
    log = AGENT_LOG_27 + (
        f"\n{T} WARNING ExtHandler ExtHandler [{H}-1.0.93.0] Failed to download the extension "
        "package from all uris, will retry later"
    )
    files = healthy(
        **{"var/lib/waagent/ExtensionsConfig.3.xml": config, "var/log/waagent.log": log}
    )
    found = diagnose_bundle(open_bundle(bundle_zip(tmp_path, files)))
    assert found.cause_ids == ("extension-update-failed",)
    assert any(line.startswith("var/log/waagent.log:6: ") for line in found.causes[0].evidence)


def test_prescript_hang_from_the_status_code(tmp_path: Path) -> None:
    status = json.dumps(
        [
            {
                "status": {
                    "status": "error",
                    "code": 308,
                    "formattedMessage": {"message": "Pre-script timed out"},
                }
            }
        ]
    )
    assert causes(tmp_path, healthy(**{f"{HDIR}/status/0.status": status})) == ("prescript-hang",)


def test_memory_pressure_from_the_oom_killer_not_agent_stopped(tmp_path: Path) -> None:
    syslog = (
        "Dec  7 11:58:00 vm1 kernel: Out of memory: Killed process 112 (python3)\n"
        "Dec  7 11:58:01 vm1 systemd[1]: walinuxagent.service: Main process exited, code=killed\n"
    )
    assert causes(tmp_path, healthy(**{"var/log/syslog": syslog})) == ("memory-pressure",)


def test_dhcp_disabled_from_the_agents_dhcp_request(tmp_path: Path) -> None:
    log = AGENT_LOG_27 + (
        f"\n{T} ERROR Daemon Daemon Failed to send DHCP request: [Errno 1] Operation not permitted"
    )
    assert causes(tmp_path, healthy(**{"var/log/waagent.log": log})) == ("dhcp-disabled",)


def test_dhcp_disabled_from_a_static_stanza(tmp_path: Path) -> None:
    files = healthy(**{"etc/network/interfaces": "auto eth0\niface eth0 inet static\n"})
    found = diagnose_bundle(open_bundle(bundle_zip(tmp_path, files)))
    assert found.cause_ids == ("dhcp-disabled",)
    assert "etc/network/interfaces:2: iface eth0 inet static" in found.causes[0].evidence


def test_a_lease_without_option_245(tmp_path: Path) -> None:
    lease = 'lease {\n  interface "eth0";\n  option routers 10.0.0.1;\n}\n'
    files = healthy(**{"var/lib/dhcp/dhclient.eth0.leases": lease})
    assert causes(tmp_path, files) == ("dhcp-disabled",)


def test_missing_files_are_not_observed_never_passed(tmp_path: Path) -> None:
    found = run_bundle_checks(open_bundle(bundle_zip(tmp_path, {"etc/hostname": "vm1\n"})))
    for check in ("guest.agent_version", "guest.waagent_conf", "guest.memory", "guest.dhcp"):
        assert not found[check].result.observed, check


def test_rules_needing_checks_a_bundle_cannot_run_are_undecided(tmp_path: Path) -> None:
    found = diagnose_bundle(open_bundle(bundle_zip(tmp_path, healthy())))
    undecided = {item.cause: item for item in found.undecided}
    assert {"guest-shutdown", "cpu-saturation"} <= set(undecided)
    assert "blocked-egress" not in undecided  # the extension's last snapshot reached storage
    for item in found.undecided:
        rule = next(rule for rule in RULES if rule.cause == item.cause)
        assert set(item.needs) <= set(checks_in(rule.when))


def test_benign_noise_never_counts_as_an_error(tmp_path: Path) -> None:
    noisy = AGENT_LOG_27 + (
        f"\n{T} WARNING ExtHandler ExtHandler Failed to get firewall packets: 'iptables -w -t "
        "security -L OUTPUT --zero OUTPUT -nxv' failed: 2"
        f"\n{T} ERROR ExtHandler ExtHandler Something real went wrong"
    )
    bundle = open_bundle(bundle_zip(tmp_path, healthy(**{"var/log/waagent.log": noisy})))
    assert [record.line for record in errors(bundle)] == [7]
    assert diagnose_bundle(bundle).causes == ()
    assert benign("No route exists to 168.63.129.16")


def test_rotated_and_gzipped_agent_logs_are_read_oldest_first(tmp_path: Path) -> None:
    import gzip

    old = f"{T} INFO Daemon Daemon Azure Linux Agent Version:2.2.47\n"
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("var/log/waagent.log.2.gz", gzip.compress(old.encode()))
        archive.writestr("var/log/waagent.log", AGENT_LOG_27)
    found = run_bundle_checks(open_bundle(path))["guest.agent_version"]
    assert found.result.passed  # the newest (2.7.3.0) wins over the rotated 2.2.47


def test_a_bundle_read_from_a_stopped_vms_disk_does_not_judge_the_agent(tmp_path: Path) -> None:
    log = AGENT_LOG_27 + (
        f"\n{T} INFO Daemon Daemon Agent WALinuxAgent-2.7.3.0 forwarding signal 15 to "
        "WALinuxAgent-2.7.3.0"
    )
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("var/log/waagent.log", log)
        archive.writestr(
            "results.txt",
            "2026-12-07T12:00:00Z INFO the VM is not running (container exited): no command "
            "can run in it, so its disk was read as a rescue VM would read it\n",
        )
    found = diagnose_bundle(open_bundle(path))
    assert found.cause_ids == ()
    assert "agent-stopped" in {item.cause for item in found.undecided}


def test_bundle_diagnosis_knows_no_fault_or_scenario() -> None:
    """The same walk as test_independence, from lab/bundle: reading and diagnosing a
    bundle never imports the faults, the scenarios or the runner."""
    from tests.unit.test_independence import walk

    seen, violations = walk(("lab/bundle",))
    assert {"lab.bundle.evidence", "lab.bundle.diagnose", "lab.bundle.reader"} <= seen
    assert not violations, "\n".join(str(v) for v in violations)


def test_storage_unreachable_from_the_extensions_status_leaves_the_nsg_open(
    tmp_path: Path,
) -> None:
    status = json.dumps(
        [
            {
                "status": {
                    "status": "error",
                    "code": 76,
                    "formattedMessage": {
                        "message": "Enable failed with FailedRetryableSnapshotFailedNoNetwork"
                    },
                }
            }
        ]
    )
    found = diagnose_bundle(
        open_bundle(bundle_zip(tmp_path, healthy(**{f"{HDIR}/status/0.status": status})))
    )
    assert found.causes == ()
    undecided = {item.cause: item for item in found.undecided}
    assert undecided["blocked-egress"].needs[0] == "platform.nsg_egress"
    assert any(
        line.startswith(f"{HDIR}/status/0.status:1: ") for line in undecided["blocked-egress"].seen
    )
    assert "schedule-storm" not in undecided  # a cause in the VM itself rules it out
