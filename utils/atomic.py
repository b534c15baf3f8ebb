"""Files that are replaced whole or not at all.

A result is written to a temporary file in the same directory, fsynced and
renamed over its name, so a kill or a full disk at any moment leaves either
the previous file or the new one, never a part of it.
"""
import contextlib
import glob
import os
import tempfile

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_open(path, mode="w", **open_kwargs):
    """A new file object (``mode`` "w" or "wb") that replaces ``path`` when the block ends
    without an error; on an error the temporary file is removed and ``path`` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=os.path.splitext(path)[1], dir=directory)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def remove_stale_temps(directory):
    """Delete temporary files a killed writer left in ``directory``; returns their number.

    Call only when no other process is writing there (on resume)."""
    stale = glob.glob(os.path.join(directory, f"{TMP_PREFIX}*"))
    for path in stale:
        os.remove(path)
    return len(stale)
