"""What a client on the host trusts for a lab: the public roots plus the lab's CA.

``REQUESTS_CA_BUNDLE`` replaces a client's roots rather than adding to them, so pointing
it at the lab CA alone would make every other HTTPS call from the same shell fail (``pip``,
``az``'s own look-ups). The bundle is certifi's roots (what ``requests`` trusts by default)
followed by the lab CA, kept in the lab's state folder and removed with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import certifi

from lab.errors import LabNotFound
from lab.provision.state_dir import ca_bundle_file


def ca_bundle(lab: str, lab_ca: Path) -> Path:
    """The lab's bundle, (re)written when it is missing or its parts changed."""
    try:
        own = lab_ca.read_text()
    except OSError as exc:
        raise LabNotFound(
            f"lab {lab!r} has no CA file at {lab_ca} (take it down and up again)"
        ) from exc
    public = Path(certifi.where()).read_text()
    content = f"{public.rstrip()}\n\n# snaplab lab {lab}\n{own.strip()}\n"
    target = ca_bundle_file(lab)
    try:
        if target.read_text() == content:
            return target
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(content)
    partial.replace(target)  # atomic: a reader never sees half a bundle
    return target
