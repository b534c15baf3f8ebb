import torch

from utils.matrix_image import matrix_image


def test_matrix_image_maps_zero_to_white_and_one_to_dark_blue():
    image = matrix_image([[0.0, 1.0], [0.5, 0.0]], cell=3)
    assert image.shape == (3, 6, 6) and image.dtype == torch.float32
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(image[:, 0, 3], torch.tensor([0.03, 0.19, 0.42]))
    torch.testing.assert_close(image[:, 3, 0], torch.tensor([0.515, 0.595, 0.71]))


def test_large_cells_get_grid_lines_and_values_are_clipped():
    image = matrix_image([[2.0]], cell=8)
    assert image.shape == (3, 8, 8)
    torch.testing.assert_close(image[:, 0, 4], torch.tensor([0.6, 0.6, 0.6]))
    torch.testing.assert_close(image[:, 4, 4], torch.tensor([0.03, 0.19, 0.42]))
