import pytest
import torch

from tests.cifar_fixtures import write_fake_cifar10

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory):
    """A 300-image fake CIFAR-10 in the standard pickle layout (data_dir)."""
    root = tmp_path_factory.mktemp("data")
    write_fake_cifar10(str(root), n_train=300, n_test=100)
    return str(root)


@pytest.fixture
def tiny_run_args(cifar10_dir, tmp_path):
    """CLI arguments for a fast CPU run: width 8, batch 64, no progress bar."""
    return ["-c", "config_cifar10.json", "--data_dir", cifar10_dir, "--bs", "64",
            "-o", "arch.args.width=8", "-o", f"trainer.save_dir={tmp_path / 'saved'}",
            "-o", "trainer.progress_bar=false", "-o", "data_loader.eval_batch_size=100"]
