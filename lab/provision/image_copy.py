"""Copy lab images from one Docker engine to another, as ``docker save | docker load``.

A lab placed on a second engine needs the same images as the first one, and no
container registry is reachable here (images are built from Debian packages, see
:mod:`lab.provision.images`), so they travel engine to engine. Rebuilding them on
every engine would take minutes each and could pick up a newer package than the
first engine's build; copying keeps every engine on the very same image.

The source's ``save`` stream goes straight into the target's ``load`` request body,
chunk by chunk, so a 400 MB image never sits in memory. An image is copied only when
the target has no image of the same *id* under the tag: a tag the target already
holds for an older build (same name, other content) is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound
from requests.exceptions import RequestException

from lab.errors import ProvisionFailed

Report = Callable[[str], None]
CHUNK_SIZE = 4 * 1024 * 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class CopiedImage:
    """One image that went from source to target: its tag, the tar's bytes, the time."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float


def engine_label(client: docker.DockerClient) -> str:
    """How an engine is named in messages: its socket (``unix:///...``) or its URL.

    docker-py rewrites a unix socket's URL to ``http+docker://localhost``, which would
    name every local engine alike; the socket path stays on its transport adapter.
    """
    adapter = getattr(client.api, "_custom_adapter", None)
    socket_path = getattr(adapter, "socket_path", None)
    if isinstance(socket_path, str) and socket_path:
        return f"unix://{socket_path}"
    return str(client.api.base_url)


def copy_images(
    source: docker.DockerClient,
    target: docker.DockerClient,
    tags: Sequence[str],
    report: Report,
) -> list[CopiedImage]:
    """Give ``target`` every image of ``tags`` that it lacks (by id); return what moved.

    Raises :class:`ProvisionFailed` naming the tag and both engines when an image is
    missing on the source or the transfer fails.
    """
    copied: list[CopiedImage] = []
    for tag in tags:
        result = _copy_one(source, target, tag)
        if result is None:
            continue
        copied.append(result)
        report(
            f"copied {tag} to {engine_label(target)}: "
            f"{result.size_bytes / MIB:.0f} MiB in {result.seconds:.1f} s"
        )
    return copied


def _copy_one(
    source: docker.DockerClient, target: docker.DockerClient, tag: str
) -> CopiedImage | None:
    where = f"from {engine_label(source)} to {engine_label(target)}"
    try:
        image = source.images.get(tag)
    except ImageNotFound:
        raise ProvisionFailed(f"cannot copy {tag} {where}: the source has no such image") from None
    except (DockerException, RequestException) as exc:
        raise ProvisionFailed(f"cannot copy {tag} {where}: {_first_line(exc)}") from exc
    image_id = str(image.id)
    if _target_id(target, tag, where) == image_id:
        return None
    started = time.monotonic()
    counter = _Counter()
    try:
        stream = image.save(chunk_size=CHUNK_SIZE, named=tag)
        _check_load(target.api.load_image(counter.wrap(stream)))
        loaded = target.images.get(image_id)
        repository, _, version = tag.rpartition(":")
        loaded.tag(repository, version)
    except (DockerException, RequestException, _LoadFailed) as exc:
        raise ProvisionFailed(f"cannot copy {tag} {where}: {_first_line(exc)}") from exc
    if _target_id(target, tag, where) != image_id:
        raise ProvisionFailed(f"cannot copy {tag} {where}: the target's tag names another image")
    return CopiedImage(tag, image_id, counter.total, time.monotonic() - started)


def _target_id(target: docker.DockerClient, tag: str, where: str) -> str | None:
    try:
        return str(target.images.get(tag).id)
    except ImageNotFound:
        return None
    except (DockerException, RequestException) as exc:
        raise ProvisionFailed(f"cannot copy {tag} {where}: {_first_line(exc)}") from exc


class _LoadFailed(Exception):
    """The target's load answered 200 but reported an error in its progress stream."""


def _check_load(progress: Iterable[Any] | None) -> None:
    """Read the load's progress to its end; an ``error`` message there is a failure."""
    for message in progress or ():
        if isinstance(message, dict) and message.get("error"):
            raise _LoadFailed(str(message["error"]))


class _Counter:
    """Counts the bytes of a stream as it passes, to report the tar's size."""

    def __init__(self) -> None:
        self.total = 0

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.total += len(chunk)
            yield chunk


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
