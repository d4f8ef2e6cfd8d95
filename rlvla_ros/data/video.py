"""MP4 camera streams through PyAV (its wheels ship FFmpeg with libx264 and SVT-AV1): write frames, read them back.

Two codecs: ``lossless`` (H.264 RGB 4:4:4 at constant rate factor 0, decodes back bit for bit, so training from an
export equals training from its bags) and ``av1`` (SVT-AV1 in yuv420p, LeRobot's own default: ~4x smaller, lossy,
and needs even image sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class VideoCodec:
    """An FFmpeg encoder with its settings, and the names LeRobot's info.json gives it."""

    encoder: str
    """FFmpeg encoder name."""
    pix_fmt: str
    """Pixel format of the encoded stream."""
    options: tuple[tuple[str, str], ...]
    """Encoder options."""
    codec_name: str
    """`video.codec` in info.json (the stream's codec, as ffprobe names it)."""
    lossless: bool
    """Whether decoded frames equal the encoded ones exactly."""


VIDEO_CODECS = {
    "lossless": VideoCodec("libx264rgb", "rgb24", (("crf", "0"), ("preset", "veryfast")), "h264", True),
    "av1": VideoCodec("libsvtav1", "yuv420p", (("crf", "30"), ("preset", "10")), "av1", False),
}


class VideoWriter:
    """Append (H, W, 3) uint8 RGB frames to one MP4 file at a fixed frame rate; `frames` counts them."""

    def __init__(self, path: Path, codec: VideoCodec, fps: int, height: int, width: int) -> None:
        if not codec.lossless and (height % 2 or width % 2):
            raise ValueError(f"{codec.encoder} needs even image sizes, got {height}x{width}; use the lossless codec")
        # SVT-AV1 prints its whole configuration to stderr for every file unless told to log errors only.
        os.environ.setdefault("SVT_LOG", "1")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.shape = (height, width, 3)
        self.frames = 0
        self._container = av.open(str(path), "w", format="mp4")
        self._stream = self._container.add_stream(codec.encoder, rate=fps, options=dict(codec.options))
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, codec.pix_fmt
        self._stream.time_base = Fraction(1, fps)

    def append(self, frames: np.ndarray) -> None:
        """Encode (T, H, W, 3) uint8 frames after the ones already written."""
        if frames.shape[1:] != self.shape or frames.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be (T, {', '.join(map(str, self.shape))}) uint8, "
                             f"got {frames.shape} {frames.dtype}")
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = self.frames
            self._container.mux(self._stream.encode(video_frame))
            self.frames += 1

    def size_bytes(self) -> int:
        """Bytes written to the file so far (the encoder may still hold a few frames; until its first packet the
        file may not exist)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        self._container.mux(self._stream.encode(None))
        self._container.close()


def read_video(path: Path) -> np.ndarray:
    """Every frame of an MP4 file as (N, H, W, 3) uint8 RGB; ValueError naming the file when it cannot be decoded."""
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"cannot decode video {path}: {err}") from err
    if not frames:
        raise ValueError(f"video {path} holds no frame")
    return np.stack(frames)
