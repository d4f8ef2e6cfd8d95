"""Conversions between sensor_msgs images and RGB numpy arrays (what cv_bridge does, for the encodings we accept).

Camera drivers publish rgb8, bgr8 (most USB and RealSense colour streams), mono8, and compressed JPEG/PNG; every
other encoding is refused with a ValueError that names it.
"""

import io

import numpy as np
from PIL import Image as PilImage
from sensor_msgs.msg import CompressedImage, Image

ACCEPTED_ENCODINGS = ("rgb8", "bgr8", "mono8")
ACCEPTED_COMPRESSED_FORMATS = ("jpeg", "png")


def image_to_rgb(message: Image) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a raw Image; ValueError for other encodings or inconsistent sizes."""
    encoding = message.encoding.lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise ValueError(f"unsupported image encoding '{message.encoding}' (accepted: {', '.join(ACCEPTED_ENCODINGS)})")
    channels = 1 if encoding == "mono8" else 3
    row_bytes = message.width * channels
    if message.step < row_bytes or len(message.data) != message.step * message.height:
        raise ValueError(f"{message.encoding} image {message.width}x{message.height} with step {message.step} "
                         f"does not match its {len(message.data)} data bytes")
    rows = np.frombuffer(bytes(message.data), dtype=np.uint8).reshape(message.height, message.step)
    pixels = rows[:, :row_bytes].reshape(message.height, message.width, channels)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    return pixels.copy()


def compressed_to_rgb(message: CompressedImage) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a JPEG or PNG CompressedImage; ValueError for anything else."""
    # image_transport writes e.g. "jpeg", "png" or "rgb8; jpeg compressed bgr8".
    fmt = message.format.lower()
    if not any(name in fmt for name in ACCEPTED_COMPRESSED_FORMATS):
        raise ValueError(f"unsupported compressed format '{message.format}' (accepted: jpeg, png)")
    try:
        with PilImage.open(io.BytesIO(bytes(message.data))) as decoded:
            return np.asarray(decoded.convert("RGB"))
    except OSError as error:
        raise ValueError(f"cannot decode {message.format} image: {error}") from None


def rgb_to_image(pixels: np.ndarray, header=None) -> Image:
    """An rgb8 Image message from an (H, W, 3) uint8 array."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}")
    message = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0,
                    step=pixels.shape[1] * 3)
    if header is not None:
        message.header = header
    message.data = np.ascontiguousarray(pixels).tobytes()
    return message
