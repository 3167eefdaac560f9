"""Types of the compiled module (`_native.pyx`)."""

import datetime
import re
from typing import Any, Generic, Literal, TypeVar

from dideban.model.verdict import Observation
from dideban.pipeline.fingerprints import Fingerprint, FingerprintDB, Match
from dideban.pipeline.observations import Extracted, HttpExchange

class Unsupported(ValueError): ...

def decode_pruned(data: bytes | bytearray | memoryview, spec: object) -> Any: ...
def decode_raw(text: bytes | bytearray | memoryview) -> Any: ...
def new_buffer(size: int) -> bytearray: ...
def ooni_time(text: str) -> datetime.datetime | None: ...

RAW: object
KEYS: object

def bind(
    observation: type[Observation],
    extracted: type[Extracted],
    http_exchange: type[HttpExchange],
    match: type[Match],
    as_text_: Any,
    title_of_: Any,
) -> None: ...
def extract(
    test_keys: dict[str, Any], uid: str, probe_cc: str, fpdb: FingerprintDB
) -> Extracted: ...

T = TypeVar("T")

class SlotMaker(Generic[T]):
    names: tuple[str, ...]
    def __init__(self, cls: type[T], slots: tuple[str, ...] | None = None) -> None: ...
    def __call__(self, *values: Any) -> T: ...

Layout = tuple[tuple[tuple[str, int], ...], int]

def layouts() -> dict[str, Layout]: ...
def class_layout(cls: type) -> Layout: ...
def check_layouts(*classes: type, expected: dict[str, Layout] | None = None) -> None: ...
def title_span(body: bytes, span: int) -> tuple[int, int] | Literal[False] | None: ...

class LiteralSet:
    def __init__(self, words: list[str]) -> None: ...
    def find(self, text: str | bytes) -> tuple[list[tuple[int, int, int]], int]: ...

class HeaderIndex:
    fingerprints: list[Fingerprint]
    def __init__(
        self,
        fingerprints: list[Fingerprint],
        fulls: dict[str, list[int]],
        literal_set: LiteralSet | None,
        literals: list[list[tuple[int, bool]]],
        regexps: list[tuple[int, re.Pattern[str]]],
    ) -> None: ...
    def match(self, value: str) -> list[Fingerprint]: ...

OBSERVATION_FIELDS: tuple[str, ...]
QUERY: tuple[str, ...]
ANSWER: tuple[str, ...]
TCP_CONNECT: tuple[str, ...]
TCP_STATUS: tuple[str, ...]
TLS_HANDSHAKE: tuple[str, ...]
REQUEST: tuple[str, ...]
REQUEST_REQUEST: tuple[str, ...]
REQUEST_RESPONSE: tuple[str, ...]
