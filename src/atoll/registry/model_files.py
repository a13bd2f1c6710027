"""The files of a fitted model, kept in the registry's database beside its record.

A model directory (``model.json`` and its tree files, all small and flat) is packed into a
gzipped tar (``pack``) and stored with the model's version when it is registered; a node that
does not hold the directory unpacks it from there (``unpack``). Unpacking takes regular files
with plain names only, and checks the SHA-256 it was stored with.

>>> import tempfile, pathlib
>>> src = pathlib.Path(tempfile.mkdtemp())
>>> _ = (src / "model.json").write_text("{}")
>>> data = pack(src)
>>> out = pathlib.Path(tempfile.mkdtemp()) / "m"
>>> unpack(data, digest(data), out)
>>> sorted(p.name for p in out.iterdir())
['model.json']
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from sqlalchemy import Connection, insert, select

from atoll.core.errors import InvalidInput
from atoll.registry import tables as t
from atoll.registry.tokens import now_us

#: The most a model's packed files may take in the database.
MAX_BYTES = 200 * 1024 * 1024


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(directory: Path) -> bytes:
    """The files of ``directory`` (flat) as a gzipped tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(directory.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name, recursive=False)
    data = buf.getvalue()
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the model's files take {len(data)} bytes packed: over {MAX_BYTES}")
    return data


def unpack(data: bytes, sha256: str, directory: Path) -> None:
    """Unpack ``data`` into ``directory`` (made here); ``InvalidInput`` if it is not what was
    stored or holds anything but plain files."""
    if digest(data) != sha256:
        raise InvalidInput("the model's stored files do not match their SHA-256")
    directory.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isfile() or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise InvalidInput(f"the model's stored files hold {name!r}, not a plain file")
            got = tar.extractfile(member)
            assert got is not None  # a regular file
            (directory / name).write_bytes(got.read())


def put(conn: Connection, model_id: str, data: bytes) -> None:
    conn.execute(
        insert(t.model_files).values(
            model=model_id,
            data=data,
            size=len(data),
            sha256=digest(data),
            created_at=now_us(),
        )
    )


def get(conn: Connection, model_id: str) -> tuple[bytes, str] | None:
    """The packed files of ``model_id`` and their SHA-256, or ``None``."""
    row = conn.execute(
        select(t.model_files.c.data, t.model_files.c.sha256).where(
            t.model_files.c.model == model_id
        )
    ).first()
    return None if row is None else (bytes(row.data), row.sha256)
