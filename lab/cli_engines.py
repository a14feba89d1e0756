"""``--engine``, as ``snaplab run``, ``drill start`` and ``down --all`` take it.

The trainer names the Docker engines of this machine that labs may go on
(:mod:`lab.provision.engines`); without the option every lab goes on the usual engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click
import docker

from lab.provision import engines
from lab.runner.drivers import DockerDrivers, Drivers
from lab.runner.placement import PlacedDrivers, engine_drivers

engine_option = click.option(
    "--engine",
    "engine_names",
    multiple=True,
    metavar="CONTEXT|URL",
    help="A Docker engine of this machine to place labs on (repeatable): a Docker context "
    "or a URL such as unix:///run/docker2.sock; 'default' is the usual one. Labs are spread "
    "over the engines given.",
)


def run_drivers(
    default: docker.DockerClient, names: Sequence[str], report: Callable[[str], None]
) -> Drivers:
    """One engine's drivers, or drivers that spread the run's labs over several."""
    wanted = engines.resolve_all(names)
    if wanted == [engines.DEFAULT]:
        return DockerDrivers(default, report)
    engines.remember(wanted)
    return PlacedDrivers([engine_drivers(default, engine, report) for engine in wanted])
