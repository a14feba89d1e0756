"""What a drill will be, decided before anything starts: its name, its trainees, which
scenario each one gets, and its time limit.

Pure functions over the catalog's ids, so every rule here is unit-tested without a lab.
Lab names are ``<drill>-t01``: a guest sees its lab's name (hostname, DNS), so the
name says who, never what is broken.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lab.drill.state import check_name
from lab.errors import BadInput

MAX_TRAINEES = 99  # ids are t01..t99
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass(frozen=True)
class Seat:
    """One trainee's place in the drill: id, lab and scenario."""

    trainee: str
    lab: str
    scenario: str


def default_name(moment: datetime) -> str:
    """``drill-MMDD-HHMM``: short enough for ``-t01`` to fit a lab name."""
    return moment.strftime("drill-%m%d-%H%M")


def trainee_id(index: int) -> str:
    return f"t{index + 1:02d}"


def lab_for(drill: str, trainee: str) -> str:
    return f"{drill}-{trainee}"


def parse_duration(text: str) -> int:
    """``45m``, ``1h30m``, ``90s`` or a bare number of minutes, in seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value) * 60
    else:
        match = _DURATION.match(value)
        if not value or match is None:
            raise BadInput(f"--time-limit {text!r}: expected a duration such as 45m, 1h30m or 90s")
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise BadInput(f"--time-limit {text!r}: must be longer than zero")
    return seconds


def assign(
    trainees: int,
    catalog: Sequence[str],
    scenarios: Sequence[str] = (),
    random_count: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Each trainee's scenario, in trainee order.

    The given ``scenarios`` are cycled over the trainees; ``random_count`` draws that many
    distinct scenarios from the catalog (seeded, so a drill can be repeated) and cycles
    them; with neither, the catalog itself is drawn from. Neighbours in the room get
    different scenarios whenever there are enough of them.
    """
    if not 1 <= trainees <= MAX_TRAINEES:
        raise BadInput(f"--trainees {trainees}: expected 1 to {MAX_TRAINEES}")
    if scenarios and random_count is not None:
        raise BadInput("give --scenario or --random, not both")
    if scenarios:
        unknown = [s for s in scenarios if s not in catalog]
        if unknown:
            raise BadInput(
                f"--scenario {unknown[0]!r}: unknown scenario (known: {', '.join(catalog)})"
            )
        pool = list(scenarios)
    else:
        count = random_count if random_count is not None else min(trainees, len(catalog))
        if not 1 <= count <= len(catalog):
            raise BadInput(
                f"--random {count}: expected 1 to {len(catalog)} (the catalog's scenarios)"
            )
        pool = random.Random(seed).sample(sorted(catalog), count)
    return [pool[i % len(pool)] for i in range(trainees)]


def seats(drill: str, scenarios: Sequence[str]) -> list[Seat]:
    check_name(drill)
    return [
        Seat(trainee_id(i), lab_for(drill, trainee_id(i)), scenario)
        for i, scenario in enumerate(scenarios)
    ]
