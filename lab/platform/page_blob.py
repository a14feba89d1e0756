"""Page-blob status uploads, reassembled as Azure storage would accept them.

Agents upload their VM status either as one block blob or as a page blob: a create
``PUT`` declaring the size, then ``comp=page`` writes addressed by ``x-ms-range``. Both
the HostGAPlugin envelope and the direct StatusUploadBlob ``PUT`` use this protocol;
this module holds the parts they share.
"""

from __future__ import annotations

from lab.platform.status_report import StatusFormatError

# Page blobs are created with an explicit size; refuse absurd ones (the agent caps a
# status at a few MiB).
MAX_PAGE_BLOB_BYTES = 16 * 1024 * 1024


class PageBlob:
    """Reassembles a page-blob upload (create PUT, then ``comp=page`` range writes).

    The agent only ever writes a status as one or a few consecutive ranges, so the blob
    is "complete" once bytes up to its declared size have been written.
    """

    def __init__(self, size: int) -> None:
        if size < 0 or size > MAX_PAGE_BLOB_BYTES:
            raise StatusFormatError(f"page blob size {size} out of range")
        self.size = size
        self._buffer = bytearray(size)
        self._high_water = 0

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset < 0 or end > self.size:
            raise StatusFormatError(f"page write {offset}-{end} outside blob of {self.size} bytes")
        self._buffer[offset:end] = data
        self._high_water = max(self._high_water, end)

    @property
    def complete(self) -> bool:
        return self.size > 0 and self._high_water >= self.size

    @property
    def content(self) -> bytes:
        return bytes(self._buffer)


def parse_range(header: str | None) -> tuple[int, int]:
    """``x-ms-range: bytes=<start>-<end>`` (inclusive end) -> (start, end + 1)."""
    if not header:
        raise StatusFormatError("page write without x-ms-range")
    unit, _, span = header.strip().partition("=")
    start_text, _, end_text = span.partition("-")
    try:
        start, end = int(start_text), int(end_text)
    except ValueError as exc:
        raise StatusFormatError(f"bad x-ms-range {header!r}") from exc
    if unit.strip().lower() != "bytes" or start < 0 or end < start:
        raise StatusFormatError(f"bad x-ms-range {header!r}")
    return start, end + 1
