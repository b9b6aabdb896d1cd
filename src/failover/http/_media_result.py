"""What an image or video call returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaResult:
    """One generated or edited image, or one video, whichever provider made it.

    ``data`` holds the bytes (downloaded when the provider answered with a link, unless the
    adapter was made with ``download=False``); ``url`` is the provider's link when it gave one
    (links to generated files usually expire within an hour). ``media_type`` is what the
    provider said it sent (``image/png``, ``video/mp4``, ...). ``cost`` is the platform's
    ``estimated_cost`` (USD) unless the provider reported one. ``job_id`` names the provider's
    job (prediction, queue request, task) for jobs that were submitted and polled.
    """

    data: bytes | None
    media_type: str
    platform: str
    model: str
    cost: float | None = None
    url: str | None = None
    job_id: str | None = None
    seed: int | None = None

    def __repr__(self) -> str:  # never the bytes
        size = "no data" if self.data is None else f"{len(self.data)} bytes"
        return (
            f"MediaResult({self.media_type}, {size}, platform={self.platform!r}, "
            f"model={self.model!r}, job_id={self.job_id!r})"
        )
