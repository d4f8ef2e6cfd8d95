"""Random shifts and brightness of training images, and images resized to what a model sees."""

import torch

from rlvla_ros.policies.augmentation import shift_and_brighten
from rlvla_ros.policies.observations import image_tensor, resized_images

from .conftest import make_obs


def dot_images(batch: int, size: int = 16, at: int = 8) -> torch.Tensor:
    images = torch.zeros(batch, size, size, 3, dtype=torch.uint8)
    images[:, at, at] = 255
    return images


def test_a_shift_moves_each_image_by_at_most_shift_px_and_draws_differ():
    shifted = shift_and_brighten(dot_images(64), 2, 0.0, torch.Generator().manual_seed(0))
    where = [tuple(torch.nonzero(image[..., 0]).flatten().tolist()) for image in shifted]
    assert all(len(point) == 2 and abs(point[0] - 8) <= 2 and abs(point[1] - 8) <= 2 for point in where)
    assert len(set(where)) > 1


def test_brightness_scales_each_image_within_its_bounds():
    images = torch.full((64, 4, 4, 3), 100, dtype=torch.uint8)
    brightened = shift_and_brighten(images, 0, 0.2, torch.Generator().manual_seed(0))
    per_image = brightened.flatten(1)
    assert (per_image == per_image[:, :1]).all()  # one factor per image
    assert per_image.min() >= 80 and per_image.max() <= 120 and len(per_image[:, 0].unique()) > 1


def test_no_shift_and_no_brightness_leave_the_images_as_they_are():
    images = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(shift_and_brighten(images, 0, 0.0, torch.Generator()), images)


def test_the_same_generator_seed_draws_the_same_augmentation():
    images = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8)
    first, second = (shift_and_brighten(images, 3, 0.3, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(first, second)


def test_resized_images_are_what_the_model_sees_in_uint8():
    images = make_obs(3, size=48)["image"]
    resized = resized_images(images, 16, chunk=2)
    assert resized.shape == (3, 16, 16, 3) and resized.dtype == torch.uint8
    seen = image_tensor(images, 16, torch.device("cpu")).permute(0, 2, 3, 1) * 255
    assert (resized.float() - seen).abs().max() <= 0.5 + 1e-4
