"""Application-consistency pre/post scripts, with the real extension's rules and codes.

``/etc/azure/VMSnapshotPluginHost.conf`` (``[pre_post]``: ``timeoutInSeconds``,
``numberOfPlugins``, ``pluginName0``, ``pluginPath0``, ``pluginConfigPath0``) names a
plugin config, ``/etc/azure/VMSnapshotScriptPluginConfig.json`` (``preScriptLocation``,
``postScriptLocation``, ``preScriptParams``, ``postScriptParams``,
``preScriptNoOfRetries``, ``postScriptNoOfRetries``, ``timeoutInSeconds``,
``continueBackupOnFailure``, ``fsFreezeEnabled``). When the host config is absent the
copy shipped with the handler is used, so a VM without a plugin config simply gets a
file-system consistent backup (FailedPrepostPluginConfigNotFound, not an error).

The files must be root-owned and not writable (scripts: not accessible) by group or
others, else the scripts are skipped with a permission code. A script is run as
``sh <location> <params...>``; one that exits non-zero fails (300/301), one that runs past
``min(timeoutInSeconds, host timeoutInSeconds)`` times out (308/309) and is left running,
as the real extension leaves it. ``*NoOfRetries`` is read and logged but, as in the real
extension, a failed script is not started again.

Configured timeouts are Azure seconds: the minimum is taken in Azure seconds (the plugin
host caps it at 1800) and the wait then runs on the task's clock (:mod:`.durations`), so
a script window is the same share of the platform's snapshot window at any time scale.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import durations, protocol
from .log import ExtensionLog
from .paths import GuestPaths

# Azure seconds: the plugin host never waits longer; a plugin config that names no
# timeoutInSeconds gets the default.
HOST_TIMEOUT_CAP = int(durations.SCRIPT_TIMEOUT_CAP.azure_seconds)  # 1800
SCRIPT_TIMEOUT_DEFAULT = int(durations.SCRIPT_TIMEOUT_DEFAULT.azure_seconds)  # 10
OUTPUT_TAIL = 2000  # characters of a script's output kept in the log


@dataclass(frozen=True)
class ScriptConfig:
    plugin: str
    pre_location: Path
    post_location: Path
    pre_params: tuple[str, ...] = ()
    post_params: tuple[str, ...] = ()
    pre_retries: int = 0
    post_retries: int = 0
    timeout: float = SCRIPT_TIMEOUT_DEFAULT  # Azure seconds
    continue_on_failure: bool = True
    fsfreeze: bool = True


@dataclass(frozen=True)
class Precheck:
    """What the plugin host found before any script ran.

    ``code`` 0 means the scripts will run; any other code means a file-system
    consistent backup (``do_backup`` says whether one is still wanted).
    """

    code: int
    do_backup: bool = True
    fsfreeze: bool = True
    config: ScriptConfig | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def scripts_enabled(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class ScriptOutcome:
    code: int  # 0, or 300/301 failed, 308/309 timed out
    continue_backup: bool = True

    @property
    def failed(self) -> bool:
        return self.code != 0


NO_SCRIPT = ScriptOutcome(0)


def precheck(paths: GuestPaths, handler_dir: Path) -> Precheck:
    """Validate the plugin host config, the plugin config and both scripts."""
    notes: list[str] = []
    host_conf = paths.plugin_host_conf
    if not host_conf.is_file():
        notes.append(f"{host_conf} not found: using the handler's default")
        host_conf = handler_dir / "main" / "VMSnapshotPluginHost.conf"
    if not host_conf.is_file():
        return Precheck(protocol.CODE_PLUGINHOST_CONFIG_NOT_FOUND, notes=tuple(notes))
    owner, group, other = _mode_digits(host_conf)
    if group not in (0, 4) or other not in (0, 4) or not _trusted(host_conf, paths):
        notes.append(f"{host_conf}: mode {owner}{group}{other}, owner uid {_uid(host_conf)}")
        return Precheck(protocol.CODE_PLUGINHOST_CONFIG_PERMISSION, notes=tuple(notes))
    try:
        host_timeout, plugins = _read_host_conf(host_conf)
    except (configparser.Error, ValueError, OSError) as exc:
        notes.append(f"{host_conf}: {exc}")
        return Precheck(protocol.CODE_PLUGINHOST_CONFIG_PARSING, notes=tuple(notes))
    notes.append(
        f"{host_conf}: timeoutInSeconds {host_timeout} (Azure seconds), {len(plugins)} plugin(s)"
    )
    if not plugins:
        return Precheck(0, notes=tuple(notes))  # nothing to run, nothing failed
    if len(plugins) > 1:
        notes.append("only the first plugin is run")
    name, config_path = plugins[0]
    return _check_plugin(paths, name, paths.resolve(config_path), host_timeout, notes)


def script_timeout(config: ScriptConfig) -> durations.AzureDuration:
    """The configured window (Azure seconds) as a duration of the table."""
    return durations.SCRIPT_TIMEOUT_DEFAULT.with_azure_seconds(config.timeout)


def run_script(
    kind: str, config: ScriptConfig, log: ExtensionLog, scale: float = 1.0
) -> ScriptOutcome:
    """Run the ``pre`` or ``post`` script and map its ending to the real codes; the
    timeout runs on the clock of ``scale`` (1 = Azure's)."""
    pre = kind == "pre"
    location = config.pre_location if pre else config.post_location
    params = config.pre_params if pre else config.post_params
    retries = config.pre_retries if pre else config.post_retries
    failed_code = protocol.CODE_PRESCRIPT_FAILED if pre else protocol.CODE_POSTSCRIPT_FAILED
    timeout_code = protocol.CODE_PRESCRIPT_TIMEOUT if pre else protocol.CODE_POSTSCRIPT_TIMEOUT
    window = script_timeout(config)
    wait = window.lab_seconds(scale)
    log.info(
        f"{kind}-script: running sh {location} with params {list(params)} "
        f"(timeoutInSeconds {window.describe(scale)}; NoOfRetries {retries} not used)"
    )
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                ["sh", str(location), *params],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            log.error(f"{kind}-script: cannot start: {exc}")
            return ScriptOutcome(failed_code, config.continue_on_failure)
        try:
            returncode = process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            log.error(
                f"{kind}-script for {config.plugin} timed out after {wait:.2f} s "
                f"({config.timeout:g} s on Azure's clock); pid {process.pid} is left "
                f"running{protocol.status_code_tag(timeout_code)}"
            )
            return ScriptOutcome(timeout_code, config.continue_on_failure)
        output.seek(0)
        tail = output.read().decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
    elapsed = time.monotonic() - started
    if tail:
        log.info(f"{kind}-script output: {tail}")
    if returncode != 0:
        log.error(
            f"{kind}-script for {config.plugin} failed with exit code {returncode} after "
            f"{elapsed:.2f} s{protocol.status_code_tag(failed_code)}"
        )
        return ScriptOutcome(failed_code, config.continue_on_failure)
    log.info(f"{kind}-script for {config.plugin} succeeded in {elapsed:.2f} s")
    return NO_SCRIPT


def _check_plugin(
    paths: GuestPaths, name: str, config_path: Path, host_timeout: int, notes: list[str]
) -> Precheck:
    if not config_path.is_file():
        notes.append(f"plugin config {config_path} not found")
        return Precheck(protocol.CODE_PLUGIN_CONFIG_NOT_FOUND, notes=tuple(notes))
    owner, group, other = _mode_digits(config_path)
    if owner % 2 == 1 or group or other or not _trusted(config_path, paths):
        notes.append(f"{config_path}: mode {owner}{group}{other}, owner uid {_uid(config_path)}")
        return Precheck(protocol.CODE_PLUGIN_CONFIG_PERMISSION, notes=tuple(notes))
    try:
        config = _read_plugin_config(config_path, name, host_timeout, paths)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        notes.append(f"plugin config {config_path}: {exc!r}")
        return Precheck(protocol.CODE_PLUGIN_CONFIG_PARSING, notes=tuple(notes))
    notes.append(
        f"plugin {config.plugin}: pre {config.pre_location}, post {config.post_location}, "
        f"timeoutInSeconds {config.timeout:g} (Azure seconds), continueBackupOnFailure "
        f"{config.continue_on_failure}, "
        f"fsFreezeEnabled {config.fsfreeze}"
    )
    checks = (
        (
            config.pre_location,
            protocol.CODE_PRESCRIPT_NOT_FOUND,
            protocol.CODE_PRESCRIPT_PERMISSION,
        ),
        (
            config.post_location,
            protocol.CODE_POSTSCRIPT_NOT_FOUND,
            protocol.CODE_POSTSCRIPT_PERMISSION,
        ),
    )
    for script, missing, permission in checks:
        code = 0
        if not script.is_file():
            code = missing
            notes.append(f"script {script} not found")
        else:
            owner, group, other = _mode_digits(script)
            if group or other or not _trusted(script, paths):
                code = permission
                notes.append(f"{script}: mode {owner}{group}{other}, owner uid {_uid(script)}")
        if code:
            return Precheck(code, config.continue_on_failure, config.fsfreeze, config, tuple(notes))
    return Precheck(0, config.continue_on_failure, config.fsfreeze, config, tuple(notes))


def _read_host_conf(path: Path) -> tuple[int, list[tuple[str, str]]]:
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    timeout = HOST_TIMEOUT_CAP
    if parser.has_option("pre_post", "timeoutInSeconds"):
        timeout = min(int(parser.get("pre_post", "timeoutInSeconds")), HOST_TIMEOUT_CAP)
    count = 0
    if parser.has_option("pre_post", "numberOfPlugins"):
        count = int(parser.get("pre_post", "numberOfPlugins"))
    plugins = [
        (parser.get("pre_post", f"pluginName{i}"), parser.get("pre_post", f"pluginConfigPath{i}"))
        for i in range(count)
    ]
    return timeout, plugins


def _read_plugin_config(
    path: Path, name: str, host_timeout: int, paths: GuestPaths
) -> ScriptConfig:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    timeout = min(float(data.get("timeoutInSeconds", SCRIPT_TIMEOUT_DEFAULT)), host_timeout)
    return ScriptConfig(
        plugin=str(data.get("pluginName", name)),
        pre_location=paths.resolve(str(data["preScriptLocation"])),
        post_location=paths.resolve(str(data["postScriptLocation"])),
        pre_params=_params(data.get("preScriptParams")),
        post_params=_params(data.get("postScriptParams")),
        pre_retries=int(data.get("preScriptNoOfRetries", 0)),
        post_retries=int(data.get("postScriptNoOfRetries", 0)),
        timeout=timeout,
        continue_on_failure=bool(data.get("continueBackupOnFailure", True)),
        fsfreeze=bool(data.get("fsFreezeEnabled", True)),
    )


def _params(raw: Any) -> tuple[str, ...]:
    return tuple(str(p) for p in raw) if isinstance(raw, list) else ()


def _mode_digits(path: Path) -> tuple[int, int, int]:
    mode = os.stat(path).st_mode & 0o777
    return mode >> 6, (mode >> 3) & 7, mode & 7


def _uid(path: Path) -> int:
    return os.stat(path).st_uid


def _trusted(path: Path, paths: GuestPaths) -> bool:
    return _uid(path) == paths.trusted_uid
