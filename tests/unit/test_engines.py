"""Several Docker engines: naming them, placing labs on them, finding the lab's again."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.errors import BadInput
from lab.provision import engines
from lab.provision.network import host_routes
from lab.runner.drivers import DockerDrivers
from lab.runner.placement import PlacedDrivers, lab_drivers

ROUTES = """Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-x\t0000D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
bad line
"""


def test_the_routing_table_gives_every_bridge_on_the_machine() -> None:
    assert host_routes(ROUTES) == {
        ipaddress.IPv4Network("172.17.0.0/16"),
        ipaddress.IPv4Network("10.213.0.0/24"),
    }


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("default", ""),
        ("unix:///run/snaplab-engine2/docker.sock", "unix:///run/snaplab-engine2/docker.sock"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
    ],
)
def test_an_engine_is_named_by_url_or_default(text: str, url: str) -> None:
    assert engines.resolve(text).url == url


def test_a_docker_context_gives_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    class Context:
        Host = "unix:///run/other.sock"

    monkeypatch.setattr(
        "lab.provision.engines.ContextAPI.get_context", staticmethod(lambda name: Context())
    )
    assert engines.resolve("room2") == engines.Engine("room2", "unix:///run/other.sock")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty value"),
        ("ssh://trainer@host2", "unsupported scheme 'ssh'"),
        ("no-such-context-here", "no Docker context of that name"),
    ],
)
def test_a_bad_engine_is_one_line(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        engines.resolve(text)


def test_engines_given_twice_count_once_and_none_means_the_default() -> None:
    url = "unix:///run/e2.sock"
    assert engines.resolve_all([url, url, "default"]) == [
        engines.Engine(url, url),
        engines.DEFAULT,
    ]
    assert engines.resolve_all([]) == [engines.DEFAULT]


def test_seats_are_spread_round_robin() -> None:
    a, b = engines.DEFAULT, engines.Engine("e2", "unix:///e2")
    placed = engines.place(["t01", "t02", "t03", "t04", "t05"], [a, b])
    assert [placed[t] for t in ("t01", "t02", "t03", "t04", "t05")] == [a, b, a, b, a]


def test_an_engine_socket_is_what_the_twin_binds() -> None:
    assert engines.Engine("e2", "unix:///run/e2/docker.sock").socket_path == "/run/e2/docker.sock"
    assert engines.Engine("t", "tcp://127.0.0.1:2375").socket_path == engines.DEFAULT_SOCKET


def test_an_engine_of_another_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Client:
        def info(self) -> dict[str, Any]:
            return {"Name": "some-other-host"}

    monkeypatch.setattr("lab.provision.engines.socket.gethostname", lambda: "this-host")
    with pytest.raises(BadInput, match="runs on host 'some-other-host', not on this machine"):
        engines.require_this_machine(engines.Engine("e2", "tcp://h2:2375"), Client())


def test_engines_labs_went_to_are_remembered_for_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    assert engines.known() == [engines.DEFAULT]
    e2 = engines.Engine("e2", "unix:///run/e2.sock")
    engines.remember([engines.DEFAULT, e2])
    engines.remember([e2])
    assert engines.known() == [engines.DEFAULT, e2]


def test_the_docker_cli_reaches_the_same_engine() -> None:
    client: Any = object()
    engines._engines_by_client[id(client)] = engines.Engine("e2", "unix:///run/e2.sock")
    try:
        assert engines.docker_cli(client) == ["docker", "-H", "unix:///run/e2.sock"]
    finally:
        del engines._engines_by_client[id(client)]
    assert engines.docker_cli(object()) == ["docker"]


class _Engine(DockerDrivers):
    """A DockerDrivers that records calls instead of reaching an engine."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    def down(self, lab: str) -> None:
        self.calls.append(f"down {lab}")


def test_a_new_lab_goes_to_the_least_busy_engine_and_stays_there() -> None:
    one, two = _Engine("one"), _Engine("two")
    placed = PlacedDrivers([one, two])
    assert placed.on("a") is one
    assert placed.on("b") is two
    assert placed.on("a") is one
    placed.down("a")
    assert one.calls == ["down a"] and two.calls == []
    assert placed.on("c") is one  # "a" is gone: one is the less busy again
    assert lab_drivers(placed, "b") is two


def test_a_lab_the_run_did_not_place_is_removed_from_every_engine() -> None:
    one, two = _Engine("one"), _Engine("two")
    PlacedDrivers([one, two]).down("left-over")
    assert one.calls == ["down left-over"] and two.calls == ["down left-over"]


def test_placement_is_safe_from_many_threads() -> None:
    engines_ = [_Engine(str(i)) for i in range(3)]
    placed = PlacedDrivers(engines_)
    threads = [threading.Thread(target=placed.on, args=(f"lab{i}",)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = [sum(1 for d in placed.placement().values() if d is e) for e in engines_]
    assert counts == [10, 10, 10]


def test_a_bad_engine_option_exits_2_with_one_line() -> None:
    from lab.cli import cli

    argv = ["drill", "start", "--trainees", "1", "--scenario", "agent-stopped"]
    result = CliRunner().invoke(cli, [*argv, "--engine", "ssh://x"], obj={})
    assert result.exit_code == 2
    assert "--engine 'ssh://x': unsupported scheme 'ssh'" in result.output


def test_an_engine_that_does_not_answer_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    gone = engines.Engine("gone", f"unix://{tmp_path}/no-such.sock")
    engines.remember([gone])
    default: Any = object()
    skipped: list[engines.Engine] = []
    found = list(engines.answering(default, lambda placed, exc: skipped.append(placed)))
    assert found == [(engines.DEFAULT, default)]
    assert skipped == [gone]
