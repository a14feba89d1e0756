"""Image copying between engines, with fake engines that keep images as bytes by id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from docker.errors import APIError, ImageNotFound

from lab.errors import ProvisionFailed
from lab.provision.image_copy import copy_images, engine_label


@dataclass
class FakeImage:
    engine: FakeEngine
    id: str
    tags: list[str]

    def save(self, chunk_size: int, named: str) -> Iterator[bytes]:
        assert named in self.tags
        self.engine.saved.append(named)
        payload = self.engine.payloads[self.id]
        for start in range(0, len(payload), 3):
            yield payload[start : start + 3]

    def tag(self, repository: str, tag: str) -> bool:
        self.engine.tag(f"{repository}:{tag}", self.id)
        return True


@dataclass
class FakeImages:
    engine: FakeEngine

    def get(self, name: str) -> FakeImage:
        image_id = self.engine.tags.get(name, name if name in self.engine.payloads else None)
        if image_id is None:
            raise ImageNotFound(f"No such image: {name}")
        return FakeImage(
            self.engine, image_id, [t for t, i in self.engine.tags.items() if i == image_id]
        )


@dataclass
class FakeApi:
    engine: FakeEngine
    base_url: str

    def load_image(self, data: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        body = b"".join(data)  # the request body is consumed while the request is sent
        self.engine.loaded_bodies.append(body)
        if self.engine.load_error:
            return iter([{"error": self.engine.load_error}])
        image_id, _, tag = body.decode().partition("|")
        self.engine.payloads[image_id] = body
        self.engine.tag(tag, image_id)
        return iter([{"stream": f"Loaded image: {tag}\n"}])


@dataclass
class FakeEngine:
    url: str
    payloads: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    saved: list[str] = field(default_factory=list)
    loaded_bodies: list[bytes] = field(default_factory=list)
    load_error: str = ""

    def __post_init__(self) -> None:
        self.images = FakeImages(self)
        self.api = FakeApi(self, self.url)

    def add(self, tag: str, image_id: str) -> None:
        self.payloads[image_id] = f"{image_id}|{tag}".encode()
        self.tag(tag, image_id)

    def tag(self, tag: str, image_id: str) -> None:
        self.tags[tag] = image_id


def engines() -> tuple[FakeEngine, FakeEngine]:
    source = FakeEngine("http://one:2375")
    source.add("snaplab/host:aaa", "sha256:host")
    source.add("snaplab/guest-2.7.3.0:bbb", "sha256:guest")
    return source, FakeEngine("http://two:2375")


def test_copies_each_missing_image_and_reports_one_line_each() -> None:
    source, target = engines()
    lines: list[str] = []
    copied = copy_images(
        source, target, ["snaplab/host:aaa", "snaplab/guest-2.7.3.0:bbb"], lines.append
    )
    assert target.tags == {
        "snaplab/host:aaa": "sha256:host",
        "snaplab/guest-2.7.3.0:bbb": "sha256:guest",
    }
    assert [c.tag for c in copied] == ["snaplab/host:aaa", "snaplab/guest-2.7.3.0:bbb"]
    assert copied[0].size_bytes == len(b"sha256:host|snaplab/host:aaa")
    assert len(lines) == 2
    assert lines[0].startswith("copied snaplab/host:aaa to http://two:2375: ")
    assert lines[0].endswith(" s")


def test_streams_the_save_into_the_load_unchanged() -> None:
    source, target = engines()
    copy_images(source, target, ["snaplab/host:aaa"], lambda _: None)
    assert target.loaded_bodies == [source.payloads["sha256:host"]]
    assert source.saved == ["snaplab/host:aaa"]


def test_an_image_the_target_has_by_id_is_not_copied() -> None:
    source, target = engines()
    target.add("snaplab/host:aaa", "sha256:host")
    lines: list[str] = []
    copied = copy_images(source, target, ["snaplab/host:aaa"], lines.append)
    assert copied == [] and lines == [] and target.loaded_bodies == []


def test_a_stale_tag_on_the_target_is_replaced() -> None:
    source, target = engines()
    target.add("snaplab/host:aaa", "sha256:older-build")
    copy_images(source, target, ["snaplab/host:aaa"], lambda _: None)
    assert target.tags["snaplab/host:aaa"] == "sha256:host"


def test_a_tag_missing_on_the_source_names_tag_and_engines() -> None:
    source, target = engines()
    with pytest.raises(ProvisionFailed) as caught:
        copy_images(source, target, ["snaplab/storage:ccc"], lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert "snaplab/storage:ccc" in message
    assert "http://one:2375" in message and "http://two:2375" in message


def test_an_error_in_the_load_stream_fails_the_copy() -> None:
    source, target = engines()
    target.load_error = "no space left on device"
    with pytest.raises(ProvisionFailed, match=r"snaplab/host:aaa .*no space left on device"):
        copy_images(source, target, ["snaplab/host:aaa"], lambda _: None)


def test_an_api_error_from_the_target_is_one_line() -> None:
    source, target = engines()

    def refuse(data: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        raise APIError("500 Server Error: write /var/lib/docker: read-only\nmore")

    target.api.load_image = refuse  # type: ignore[method-assign]
    with pytest.raises(ProvisionFailed) as caught:
        copy_images(source, target, ["snaplab/host:aaa"], lambda _: None)
    assert "\n" not in str(caught.value)
    assert "read-only" in str(caught.value)


def test_engine_label_names_a_unix_socket_by_its_path() -> None:
    import docker

    client = docker.DockerClient(base_url="unix:///run/snaplab-engine2/docker.sock", version="1.41")
    try:
        assert engine_label(client) == "unix:///run/snaplab-engine2/docker.sock"
    finally:
        client.close()
