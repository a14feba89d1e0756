"""The commands a trainee types in their guest's shell, with times, for the debrief.

Each login shell in the guest (``ssh``, ``sudo -i``, ``su -``) reads
``/etc/profile.d/``; :data:`PROFILE_SCRIPT` there sets ``HISTTIMEFORMAT`` and a
``PROMPT_COMMAND`` that hands every new history entry to the journal with ``logger``
(tag :data:`TAG`): ``<user> <epoch>: <command>``, with the time bash stamped the entry
when it was typed (the prompt comes back only once the command is over: ``sudo -i`` is
logged when its root shell ends, with the time it was typed). :func:`collect_commands`
reads it back through Docker (``journalctl -o json``) before the drill's labs go, ordered
by that time. Runbook steps and ``snaplab ssh -- CMD`` run no prompt, so they are not
recorded; a nested non-login ``bash`` is not either.

This is an audit trail, not evidence: trainees are root in their guest and can remove
the script, unset ``PROMPT_COMMAND`` or edit the journal, as on any VM they administer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab.errors import ProvisionFailed
from lab.platform.roster import Roster
from lab.provision.containers import put_file

TAG = "bash-audit"
PROFILE_PATH = Path("/etc/profile.d/zz-bash-audit.sh")
# Sourced by bash (and dash, which skips it) for every login shell. The first prompt
# only notes where history stands (the shell loaded earlier sessions' lines); each later
# prompt logs the newest entry once, by its history number.
PROFILE_SCRIPT = f"""\
# Shell audit: every command typed at a bash prompt goes to the journal
# (journalctl -t {TAG}). Set by the platform for this session; root can change it.
if [ -n "${{BASH_VERSION:-}}" ] && [ -n "${{PS1:-}}" ]; then
    HISTTIMEFORMAT='%Y-%m-%dT%H:%M:%S%z '
    __audit_prompt() {{
        local number stamp rest
        read -r number stamp rest <<< "$(HISTTIMEFORMAT='%s ' builtin history 1)"
        if [ -z "${{__audit_seen+x}}" ]; then
            __audit_seen=$number
            return
        fi
        [ -n "$number" ] && [ "$number" != "$__audit_seen" ] || return
        __audit_seen=$number
        logger -t {TAG} -- "$(id -un) $stamp: $rest"
    }}
    PROMPT_COMMAND="__audit_prompt${{PROMPT_COMMAND:+; $PROMPT_COMMAND}}"
fi
"""
JOURNAL_SECONDS = 30


@dataclass(frozen=True)
class Command:
    """One command typed at a prompt: when the journal got it, who typed it, what."""

    at: str
    user: str
    command: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def install(container: Container) -> None:
    """Put the audit script in a guest (before the trainee's first login)."""
    put_file(container, PROFILE_PATH, PROFILE_SCRIPT.encode(), 0o644)


def parse_journal(lines: Iterable[str]) -> list[Command]:
    """``journalctl -o json`` lines of :data:`TAG` -> commands, oldest first.

    A line that is not a record of the tag (or not JSON) is skipped: the journal is the
    trainee's to write in.
    """
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("SYSLOG_IDENTIFIER") != TAG:
            continue
        message = record.get("MESSAGE")
        stamp = record.get("__REALTIME_TIMESTAMP")
        if not isinstance(message, str) or not str(stamp or "").isdigit():
            continue
        head, sep, command = message.partition(": ")
        if not sep:
            head, command = "", message
        user, _, typed = head.partition(" ")
        seconds = int(typed) if typed.isdigit() else int(str(stamp)) / 1e6
        at = datetime.fromtimestamp(seconds, UTC)
        found.append(Command(at=at.strftime("%Y-%m-%dT%H:%M:%SZ"), user=user, command=command))
    return sorted(found, key=lambda c: c.at)


def collect_commands(client: docker.DockerClient, roster: Roster, vm: str) -> list[Command]:
    """The commands typed in ``vm``'s shells, from its journal (read through Docker)."""
    guest = roster.guest_by_name(vm)
    if guest is None:
        raise ProvisionFailed(f"lab {roster.lab} has no VM {vm}")
    try:
        container = client.containers.get(guest.container)
        code, output = container.exec_run(
            [
                "journalctl",
                "-t",
                TAG,
                "-o",
                "json",
                "--no-pager",
                "--output-fields",
                "MESSAGE,SYSLOG_IDENTIFIER,__REALTIME_TIMESTAMP",
            ],
        )
    except (APIError, NotFound) as exc:
        raise ProvisionFailed(f"{guest.container}: cannot read its journal") from exc
    text = output.decode(errors="replace") if isinstance(output, bytes) else ""
    if code != 0:
        return []
    return parse_journal(text.splitlines())
