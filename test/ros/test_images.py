"""Image conversions accept what camera drivers publish and refuse the rest with a reason."""

import io

import numpy as np
import pytest
from PIL import Image as PilImage
from sensor_msgs.msg import CompressedImage, Image

from rlvla_ros.ros.images import compressed_to_rgb, image_to_rgb, rgb_to_image

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


def test_rgb8_round_trips_exactly():
    message = rgb_to_image(RGB)
    assert (message.encoding, message.height, message.width, message.step) == ("rgb8", 4, 5, 15)
    np.testing.assert_array_equal(image_to_rgb(message), RGB)


def test_bgr8_is_reordered_to_rgb():
    message = Image(height=4, width=5, encoding="bgr8", step=15, data=RGB[:, :, ::-1].tobytes())
    np.testing.assert_array_equal(image_to_rgb(message), RGB)


def test_mono8_is_replicated_to_three_channels():
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rgb = image_to_rgb(Image(height=4, width=5, encoding="mono8", step=5, data=gray.tobytes()))
    assert rgb.shape == (4, 5, 3)
    np.testing.assert_array_equal(rgb[:, :, 2], gray)


def test_row_padding_in_step_is_dropped():
    padded = np.zeros((4, 16), dtype=np.uint8)
    padded[:, :15] = RGB.reshape(4, 15)
    message = Image(height=4, width=5, encoding="rgb8", step=16, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_rgb(message), RGB)


@pytest.mark.parametrize("encoding", ["16UC1", "yuv422", "bayer_rggb8", "32FC1"])
def test_other_encodings_are_refused_by_name(encoding):
    with pytest.raises(ValueError, match=f"unsupported image encoding '{encoding}'"):
        image_to_rgb(Image(height=1, width=1, encoding=encoding, step=3, data=b"\0\0\0"))


def test_data_shorter_than_declared_size_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        image_to_rgb(Image(height=4, width=5, encoding="rgb8", step=15, data=b"\0" * 10))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_to_rgb(fmt):
    smooth = np.full((8, 8, 3), (200, 40, 90), dtype=np.uint8)
    buffer = io.BytesIO()
    PilImage.fromarray(smooth).save(buffer, format=fmt.upper())
    decoded = compressed_to_rgb(CompressedImage(format=fmt, data=buffer.getvalue()))
    assert decoded.shape == (8, 8, 3)
    assert np.abs(decoded.astype(int) - smooth).max() <= (0 if fmt == "png" else 4)


def test_compressed_garbage_and_unknown_formats_are_refused():
    with pytest.raises(ValueError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ValueError, match="unsupported compressed format 'tiff'"):
        compressed_to_rgb(CompressedImage(format="tiff", data=b""))
