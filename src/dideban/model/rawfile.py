"""Reading the files raw measurements live in: .json, .jsonc, .jsonl, .jsonl.gz, .jsonl.zst.

Shared by the pipeline (which parses whole files) and the store (which reads one measurement
back). Compressed files may still be growing (the collector appends to them): decompression
keeps what it could decode and drops a truncated tail, so only complete lines are returned.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

RAW_SUFFIXES: tuple[str, ...] = (".json", ".jsonc", ".jsonl", ".jsonl.gz", ".jsonl.zst")


def is_raw_file(path: Path) -> bool:
    name = path.name
    return any(name.endswith(s) for s in RAW_SUFFIXES) or name.endswith((".json.gz", ".json.zst"))


def _gunzip(data: bytes) -> bytes:
    out: list[bytes] = []
    while data:
        d = zlib.decompressobj(31)
        try:
            out.append(d.decompress(data))
        except zlib.error:
            break
        if not d.eof:
            break  # truncated member: the writer is still appending
        data = d.unused_data
    return b"".join(out)


def _unzstd(data: bytes) -> bytes:
    import zstandard

    out: list[bytes] = []
    while data:
        d = zstandard.ZstdDecompressor().decompressobj()
        try:
            out.append(d.decompress(data))
        except zstandard.ZstdError:
            break
        if not d.eof:
            break
        data = d.unused_data
    return b"".join(out)


def read_bytes(path: Path) -> bytes:
    """The decompressed content of a raw file."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return _gunzip(data)
    if path.name.endswith(".zst"):
        return _unzstd(data)
    return data


def strip_jsonc(text: str) -> str:
    """Remove `//` line comments (outside strings) from JSON-with-comments."""
    if "//" not in text:
        return text
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if "//" not in line:
            out.append(line)
            continue
        in_str = False
        esc = False
        cut = len(line)
        for i, ch in enumerate(line):
            if esc:
                esc = False
            elif ch == "\\" and in_str:
                esc = True
            elif ch == '"':
                in_str = not in_str
            elif ch == "/" and not in_str and line[i + 1 : i + 2] == "/":
                cut = i
                break
        out.append(line[:cut] + ("\n" if cut < len(line) and line.endswith("\n") else ""))
    return "".join(out)


def is_jsonl(path: Path) -> bool:
    return ".jsonl" in path.name


def load_raw(path: Path, line: int | None = None, index: int | None = None) -> Any:
    """One raw measurement: line `line` (1-based) of a JSONL file, item `index` of a JSON
    array, or the file's one object. None when the file or the position is gone."""
    try:
        data = read_bytes(path)
    except OSError:
        return None
    try:
        if line is not None:
            lines = data.split(b"\n")
            if not 1 <= line <= len(lines):
                return None
            return json.loads(lines[line - 1])
        text = data.decode("utf-8")
        if path.name.endswith(".jsonc"):
            text = strip_jsonc(text)
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if index is not None:
        return doc[index] if isinstance(doc, list) and 0 <= index < len(doc) else None
    return doc
