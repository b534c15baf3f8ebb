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


def _process_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes owner-only files; a result gets the mode open() would give it (0644 under umask 022)
_FILE_MODE = 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_open(path, mode="w", **open_kwargs):
    """A new file object (``mode`` "w" or "wb") that replaces ``path`` when the block ends
    without an error; on an error the temporary file is removed and ``path`` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=os.path.splitext(path)[1], dir=directory)
    try:
        os.fchmod(fd, _FILE_MODE)
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


def remove_stale_temps(directory, suffix=".pth"):
    """Delete the temporary ``suffix`` files (checkpoints: the large ones) a killed writer left in
    ``directory``; returns their number. Small results' temporaries are left: evaluate.py may be
    writing its CSV into a run directory while that run resumes.

    Call only when no other process is writing such files there (on resume)."""
    stale = glob.glob(os.path.join(directory, f"{TMP_PREFIX}*{suffix}"))
    for path in stale:
        os.remove(path)
    return len(stale)
