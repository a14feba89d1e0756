"""Pre/post script configuration against the platform's sub-task timeout."""

from __future__ import annotations

import json

from checks.fakes import HANDLER_DIR, FakeHost, fake_context, healthy_host, status_json
from checks.in_guest.scripts import prepost_scripts

FACTS = fake_context(subtask_timeout_seconds=23.75).facts
PLUGIN = "/etc/azure/VMSnapshotScriptPluginConfig.json"


def with_scripts(timeout: float, cont: bool = True, running: bool = False) -> FakeHost:
    host = healthy_host().file(
        PLUGIN,
        json.dumps(
            {
                "pluginName": "ScriptRunner",
                "preScriptLocation": "/opt/app/pre.sh",
                "postScriptLocation": "/opt/app/post.sh",
                "timeoutInSeconds": timeout,
                "continueBackupOnFailure": cont,
            }
        ),
    )
    if running:
        host.on(
            "ps -eo pid=,etimes=,args=",
            "    1  900 /sbin/init\n  812   31 sh /opt/app/pre.sh\n",
        )
    return host


def test_no_scripts_passes() -> None:
    result = prepost_scripts(healthy_host(), FACTS)
    assert result.passed and "no pre/post scripts" in result.detail


def test_configured_idle_scripts_pass() -> None:
    result = prepost_scripts(with_scripts(600), FACTS)
    assert result.passed
    assert "timeout 600 s (Azure seconds; snapshot sub-task timeout 5700 s)" in result.detail


def test_a_running_script_is_cut_off_before_the_subtask_at_any_scale() -> None:
    # timeoutInSeconds is Azure seconds and the plugin host caps it at 1800: a hanging
    # script ends (308) long before the platform's 95 minutes, whatever the lab's scale.
    result = prepost_scripts(with_scripts(7200, running=True), FACTS)
    assert result.passed
    assert "timeout 1800 s" in result.detail
    assert "pre-script pid 812 running 31 s" in result.detail and "cut off" in result.detail


def test_host_conf_caps_the_timeout() -> None:
    host = with_scripts(600, running=True).file(
        "/etc/azure/VMSnapshotPluginHost.conf",
        "[pre_post]\ntimeoutInSeconds: 5\nnumberOfPlugins: 1\npluginConfigPath0: " + PLUGIN + "\n",
    )
    result = prepost_scripts(host, FACTS)
    assert result.passed and "timeout 5 s" in result.detail and "cut off" in result.detail


def test_hanging_script_with_a_short_timeout_passes() -> None:
    assert prepost_scripts(with_scripts(5, running=True), FACTS).passed


def test_last_snapshot_stopped_by_a_script_timeout_fails() -> None:
    host = with_scripts(5, cont=False).file(
        f"{HANDLER_DIR}/status/0.status",
        status_json("error", 308, "PreScript failed for the plugin ScriptRunner"),
    )
    result = prepost_scripts(host, FACTS)
    assert not result.passed and "code 308" in result.detail


def test_a_timeout_the_backup_continued_past_passes() -> None:
    host = with_scripts(5).file(
        f"{HANDLER_DIR}/status/0.status",
        status_json("success", 1, "Enable Succeeded (file-system consistent)"),
    )
    assert prepost_scripts(host, FACTS).passed
