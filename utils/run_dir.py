"""A fresh run's directory, claimed so that two runs never share one."""
import os


def claim_new_dir(path):
    """Create ``path``; if it exists (another run with the same name started in the same second),
    create ``path_2``, ``path_3``, ... instead. Returns the directory created. ``os.mkdir`` fails on
    an existing directory, so two processes racing for one name cannot both get it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    candidate, number = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = f"{path}_{number}"
