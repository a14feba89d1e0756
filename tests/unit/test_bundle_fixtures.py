"""diagnose_bundle over bundles collected from real labs (tests/fixtures/bundles, made by
make_fixtures.py): a healthy VM's bundle names no cause on every agent version (2.2.47 is
below Azure's minimum, so it is stale-agent, as the lab's own diagnosis says), each broken
VM's bundle names its cause with ``path:line: text`` evidence, and a cause the guest's
files cannot show is left undecided, naming the checks it needs — never guessed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.bundle.diagnose import diagnose_bundle
from lab.bundle.reader import open_bundle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
EVIDENCE_LINE = re.compile(r"^[\w./@:+-]+:\d+: \S")

# fixture -> the causes its bundle names
NAMED: dict[str, tuple[str, ...]] = {
    "healthy-2.7.3.0": (),
    "healthy-2.12.0.2": (),
    "healthy-2.2.47": ("stale-agent",),
    "agent-stopped": ("agent-stopped",),
    "stale-agent": ("stale-agent",),
    "extension-update-failed": ("extension-update-failed",),
    "extensions-disabled": ("extensions-disabled",),
    "prescript-hang": ("prescript-hang",),
    "broken-extension": ("broken-extension",),
    "dhcp-disabled": ("dhcp-disabled",),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_the_bundle_names_its_cause(name: str) -> None:
    found = diagnose_bundle(open_bundle(FIXTURES / f"{name}.zip"))
    assert found.cause_ids == NAMED[name]
    for cause in found.causes:
        assert any(EVIDENCE_LINE.match(line) for line in cause.evidence), cause.evidence


@pytest.mark.parametrize("name", ["healthy-2.2.47", "healthy-2.7.3.0", "healthy-2.12.0.2"])
def test_healthy_bundles_show_only_benign_noise(name: str) -> None:
    assert diagnose_bundle(open_bundle(FIXTURES / f"{name}.zip")).log_errors == ()


def test_every_fixture_is_listed() -> None:
    on_disk = {path.stem for path in FIXTURES.glob("*.zip")}
    assert on_disk == set(NAMED) | set(UNDECIDED)


# fixture -> (causes a bundle cannot decide for it, a check each needs)
UNDECIDED: dict[str, tuple[str, str]] = {
    # Debian 12 keeps the kernel's log in journald only: no OOM line on disk for a bundle.
    "memory-pressure": ("memory-pressure", "guest.memory"),
    # Shut down inside while the platform shows it running: a platform-only view; the
    # bundle is read from its disk and cannot tell a stopped agent from a stopped OS.
    "guest-shutdown": ("guest-shutdown", "platform.power_state"),
    # The extension's status shows storage unreachable; the NSG rule is the platform's.
    "blocked-egress": ("blocked-egress", "platform.nsg_egress"),
    # The same, and the system proxy the agent ignores lives in /etc/environment, which
    # no bundle holds.
    "blocked-egress-proxy": ("blocked-egress-proxy", "guest.agent_proxy"),
    # The extension reports it got the command too late (code 402, CRP timeout reached);
    # the CPU it waited for is only seen by sampling the running VM.
    "cpu-saturation": ("cpu-saturation", "guest.cpu_load"),
    # The platform busy with other VMs: this VM's files show a healthy agent that never
    # received the snapshot command (no VMSnapshot in its goal state).
    "schedule-storm": ("schedule-storm", "platform.concurrent_backups"),
}


@pytest.mark.parametrize("name", sorted(UNDECIDED))
def test_platform_only_causes_stay_undecided(name: str) -> None:
    cause, needs = UNDECIDED[name]
    found = diagnose_bundle(open_bundle(FIXTURES / f"{name}.zip"))
    assert found.cause_ids == ()
    undecided = {item.cause: item for item in found.undecided}
    assert cause in undecided and needs in undecided[cause].needs


def test_every_benign_pattern_is_seen_in_a_healthy_bundle() -> None:
    """The benign list holds facts about healthy VMs, not guesses: each pattern matches a
    line of at least one healthy bundle's agent or extension logs."""
    import re

    from lab.bundle.agentlog import BENIGN, member_text

    texts: list[str] = []
    for name in ("healthy-2.2.47", "healthy-2.7.3.0", "healthy-2.12.0.2"):
        bundle = open_bundle(FIXTURES / f"{name}.zip")
        logs = bundle.glob("var/log/waagent.log*") + bundle.glob("var/log/azure/**/*")
        texts.extend(member_text(bundle, member) for member in logs)
    corpus = "\n".join(texts)
    for pattern, why in BENIGN:
        assert re.search(pattern, corpus), (pattern, why)
