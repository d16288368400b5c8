"""Where the data directory is: an explicit path, else ``$LOGBROKER_DATA_DIR``, else ``./segments``.

Every client (Broker, Producer, Consumer, the console tools) resolves its data directory here, below
all of them, so none has to import another for it.
"""

from __future__ import annotations

import os
import stat

from ..errors import DataDirError

__all__ = ["resolve_data_dir", "data_dir_path", "DEFAULT_DATA_DIR", "ENV_DATA_DIR"]

DEFAULT_DATA_DIR = "segments"
ENV_DATA_DIR = "LOGBROKER_DATA_DIR"


def data_dir_path(data_dir: str | os.PathLike | None = None) -> str:
    """The data directory a client would use: ``data_dir``, else ``$LOGBROKER_DATA_DIR``, else
    ``./segments``. Touches nothing on disk."""
    return os.fspath(data_dir) if data_dir else os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR


def resolve_data_dir(data_dir: str | os.PathLike | None = None, create: bool = True) -> str:
    """:func:`data_dir_path`, created when missing (unless ``create`` is false: DataDirError).

    Raises DataDirError when the path exists and is not a directory.
    """
    path = data_dir_path(data_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            raise DataDirError(f"data directory {path} does not exist", path=path) from None
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create data directory {path}: {exc.strerror}", path=path) from None
        return path
    except NotADirectoryError:
        raise DataDirError(f"data directory {path} is not a directory", path=path) from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(f"data directory {path} is not a directory", path=path)
    return path
