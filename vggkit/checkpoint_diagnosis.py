"""What is wrong with a checkpoint file, inspected rather than guessed from torch's message.

Cheap checks of the layout (size, zip directory, the CRC-32 of the pickle) and one
error per bad file that names it and says what is wrong: empty, truncated, not a torch
checkpoint, damaged, or holding objects that are not weights.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import Optional

from vggkit.errors import UserError

#: what to do about a damaged file, whoever wrote it
REPLACE = ("replace it with an intact copy (re-download it, re-convert it, or resume from an "
           "earlier checkpoint)")
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: the message names it and says why."""


class UnsafeCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint holds objects outside the allow-list (possibly code)."""


def read_head(path: str, size: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _zip_problem(path: str, size: int) -> Optional[CheckpointError]:
    """Why a file that starts like a zip archive is not a readable torch checkpoint."""
    where = f"checkpoint '{path}'"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        # the directory sits at the end of a zip: without it the file was cut short
        return CheckpointError(f"{where} is truncated ({size} bytes; its zip directory at the "
                               f"end is missing): it was not written or copied completely; "
                               f"{REPLACE}")
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"]
        if not pickles:
            if any("/data/" in n or n.endswith(("/byteorder", "/version")) for n in names):
                return CheckpointError(f"{where} is damaged (its zip directory lists no "
                                       f"data.pkl); {REPLACE}")
            return CheckpointError(f"{where} is not a torch checkpoint (a zip archive without "
                                   f"torch's data.pkl, holding e.g. {names[:3]}); pass the "
                                   ".pth file written by torch.save or vggkit")
        return _pickle_crc_problem(archive, pickles[0], where)


def _pickle_crc_problem(archive: zipfile.ZipFile, name: str, where: str
                        ) -> Optional[CheckpointError]:
    """A damaged ``data.pkl`` (zipfile checks its CRC-32 while reading it)."""
    if archive.getinfo(name).CRC == 0:
        return None  # written with torch.serialization.set_crc32_options(False)
    try:
        archive.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error):
        return CheckpointError(f"{where} is damaged: its pickled structure (data.pkl) fails its "
                               f"CRC-32 check; {REPLACE}")
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\t\r\n" for c in text)
    return printable >= 0.95 * max(1, len(text))


def _foreign_kind(head: bytes) -> str:
    """What a file that is no torch checkpoint looks like, with the fix."""
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights; fetch them with `git lfs pull`"
    if len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0:
        return ("a safetensors file; convert it with tools/convert_weights.py "
                "--src {torchvision,timm,mmpretrain} FILE.safetensors OUT.pth")
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file; decompress it first"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (Keras weights?); vggkit reads torch checkpoints"
    if _looks_like_text(head):
        first = head.decode("utf-8", errors="replace").splitlines()[0][:40]
        return f"a text file starting {first!r}; pass the .pth file written by torch.save"
    return f"a file starting with bytes {head[:8]!r}; pass the .pth file written by torch.save"


def inspect_file(path: str) -> Optional[CheckpointError]:
    """What is wrong with ``path`` as a torch checkpoint, if its layout shows it.

    Cheap (reads the zip directory and the pickle, not the tensors). Returns
    None when the file looks like a torch checkpoint, zip or legacy format.
    """
    size = os.path.getsize(path)
    if size == 0:
        return CheckpointError(f"checkpoint '{path}' is empty (0 bytes): it was never written "
                               f"completely; {REPLACE}")
    head = read_head(path)
    if head.startswith(ZIP_MAGIC) or (size < len(ZIP_MAGIC) and ZIP_MAGIC.startswith(head)):
        return _zip_problem(path, size)
    if head.startswith(b"\x80"):  # a pickle: torch's legacy (pre-1.6) format
        return None
    return CheckpointError(f"'{path}' is not a torch checkpoint: it is {_foreign_kind(head)}")


def _torch_reason(exc: BaseException) -> str:
    """The informative part of torch's (long) message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker in ("WeightsUnpickler error:", "from a trusted source."):
        text = text.split(marker, 1)[-1]
    text = text.split(" Check the documentation")[0].split(" This is an internal miniz")[0]
    return text.strip()[:300]


def load_failure(path: str, exc: BaseException) -> CheckpointError:
    """The error for a ``torch.load`` failure of a file :func:`inspect_file` passed."""
    reason = _torch_reason(exc)
    refused = "Weights only load failed" in str(exc) and not reason.startswith(
        "Unsupported operand")  # an unknown opcode is garbage, not a refused object
    if refused:
        return UnsafeCheckpointError(
            f"refusing to load checkpoint '{path}': it contains objects that are not weights "
            f"({reason}), and loading it could run code. If you trust it, extract its state_dict "
            "in a sandbox (torch.load(..., weights_only=False)) and save that with "
            "vggkit.models.save_checkpoint; vggkit never loads with weights_only=False.")
    return CheckpointError(f"checkpoint '{path}' is damaged ({type(exc).__name__}: {reason}); "
                           f"{REPLACE}")
