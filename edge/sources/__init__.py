"""Frame sources: files, folders, network streams, USB and Pi cameras.

``open_source(spec, **options)`` picks the source type from the spec through a
small registry whose factories are imported only when used::

    from edge.sources import open_source, LatestFrameReader

    with LatestFrameReader(open_source("rtsp://cam.local/stream1", reconnect=True)) as frames:
        while (frame := frames.read()) is not None:
            process(frame.image, frame.time)
"""

from .base import Frame, FrameSource, SourceStats
from .latest import LatestFrameReader
from .registry import SourceType, open_source, register_source, source_types

__all__ = [
    "Frame",
    "FrameSource",
    "LatestFrameReader",
    "SourceStats",
    "SourceType",
    "open_source",
    "register_source",
    "source_types",
]
