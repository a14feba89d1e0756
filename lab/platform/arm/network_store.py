"""The lab's NSG rules as the twin keeps them: what ARM shows, and what the host firewall
is made to hold.

Each NSG's rules (inbound and outbound, as given), with their etag and provisioning
state (``Updating`` while the host firewall is being changed, ``Deleting`` while a rule
is being removed, ``Succeeded`` once it holds). The store is written to one JSON file in
the twin's container after every change (a temporary file renamed over the old one), so
a restarted twin shows and enforces the same rules; without a path it lives in memory
(tests). It is not thread-safe: :class:`~lab.platform.arm.network.NetworkProvider`
holds its lock around every use.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from lab.platform.arm.network_rules import SecurityRule

SUCCEEDED = "Succeeded"
UPDATING = "Updating"
DELETING = "Deleting"


def new_etag() -> str:
    """An ARM etag (Microsoft.Network's weak form), new for each change."""
    return f'W/"{uuid.uuid4()}"'


@dataclass(frozen=True)
class StoredRule:
    rule: SecurityRule
    etag: str
    state: str = SUCCEEDED

    def to_json(self) -> dict[str, object]:
        return {"rule": self.rule.to_json(), "etag": self.etag, "state": self.state}

    @classmethod
    def from_json(cls, raw: object) -> StoredRule:
        if not isinstance(raw, dict) or not isinstance(raw.get("rule"), dict):
            raise ValueError("a stored rule is not an object with a rule")
        return cls(
            rule=SecurityRule.from_json(raw["rule"]),
            etag=str(raw.get("etag") or new_etag()),
            state=str(raw.get("state") or SUCCEEDED),
        )


class NsgStore:
    """Security rules per NSG (NSG and rule names compared without regard to case)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._nsgs: dict[str, list[StoredRule]] = {}
        if path is not None and path.exists():
            self._nsgs = _load(path)

    def rules(self, nsg: str) -> list[StoredRule]:
        """The NSG's rules, inbound then outbound, each by priority."""
        return sorted(
            self._nsgs.get(nsg.lower(), []), key=lambda s: (s.rule.direction, s.rule.priority)
        )

    def get(self, nsg: str, name: str) -> StoredRule | None:
        wanted = name.lower()
        return next((s for s in self.rules(nsg) if s.rule.name.lower() == wanted), None)

    def put(self, nsg: str, stored: StoredRule) -> None:
        """Add ``stored``, or replace the rule of the same name."""
        wanted = stored.rule.name.lower()
        kept = [s for s in self._nsgs.get(nsg.lower(), []) if s.rule.name.lower() != wanted]
        self._nsgs[nsg.lower()] = [*kept, stored]
        self._save()

    def set_state(self, nsg: str, name: str, state: str) -> None:
        found = self.get(nsg, name)
        if found is not None:
            self.put(nsg, replace(found, state=state))

    def remove(self, nsg: str, name: str) -> None:
        wanted = name.lower()
        kept = [s for s in self._nsgs.get(nsg.lower(), []) if s.rule.name.lower() != wanted]
        self._nsgs[nsg.lower()] = kept
        self._save()

    def replace_all(self, nsg: str, rules: list[StoredRule]) -> None:
        self._nsgs[nsg.lower()] = list(rules)
        self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {"nsgs": {k: [s.to_json() for s in v] for k, v in self._nsgs.items()}}, indent=1
        )
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, self._path)


def _load(path: Path) -> dict[str, list[StoredRule]]:
    """The stored NSGs; a file that cannot be read is a ValueError (the twin must not
    show rules other than the ones it enforces)."""
    raw = json.loads(path.read_text())
    nsgs = raw.get("nsgs") if isinstance(raw, dict) else None
    if not isinstance(nsgs, dict):
        raise ValueError(f"{path}: no 'nsgs' object")
    loaded: dict[str, list[StoredRule]] = {}
    for name, rules in nsgs.items():
        if not isinstance(rules, list):
            raise ValueError(f"{path}: NSG {name!r} has no rule list")
        loaded[str(name).lower()] = [StoredRule.from_json(r) for r in rules]
    return loaded
