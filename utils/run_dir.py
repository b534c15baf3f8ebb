"""A fresh run's directory, claimed so that two runs never share one."""
import os

from utils.errors import ConfigError


def claim_new_dir(path):
    """Create ``path``; if it exists (another run with the same name started in the same second),
    create ``path_2``, ``path_3``, ... instead. Returns the directory created. ``os.mkdir`` fails on
    an existing directory, so two processes racing for one name cannot both get it. A directory
    that cannot be made (a file in the way, no permission) is a ConfigError of trainer.save_dir."""
    candidate, number = path, 1
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        while True:
            try:
                os.mkdir(candidate)
                return candidate
            except FileExistsError:
                number += 1
                candidate = f"{path}_{number}"
    except OSError as err:
        raise ConfigError(f"trainer.save_dir: cannot create {err.filename or candidate}: {err.strerror}") from None
