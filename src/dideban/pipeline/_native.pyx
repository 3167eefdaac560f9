# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The pipeline's hot path, compiled: a JSON decoder that keeps only what the analysis reads.

A measurement is ~9 KB of JSON, and most of it (TLS certificates, network events, the request
headers, the test helper's request...) is never looked at by the analysis. Decoding all of it
into Python objects costs more than the whole analysis. `decode_pruned(data, spec)` parses and
validates the whole text but builds Python objects only for the keys that `spec` names; the
result is the document with every other key removed from the objects the spec describes (and
the objects it describes as records made tuples), so code that reads only spec'd keys sees
what it would see in the full document.

The spec is a tree (see `dideban.pipeline.fields.PRUNE_SPEC`):

- `None`: keep this value whole;
- a dict `{key: spec}`: if the value is an object, keep only these keys (each pruned by its
  own spec); any other JSON type is kept whole;
- a tuple of `(key, spec)` pairs: if the value is an object, a record: the tuple of these
  keys' values in this order (None for a key that is not there); any other JSON type is
  kept whole;
- a one-element list `[spec]`: if the value is an array, prune each element with `spec`; any
  other JSON type is kept whole;
- `bytes`: if the value is a string, its UTF-8 as bytes (checked as a str would be, but no
  characters decoded: HTTP bodies, which are only searched and measured); any other JSON type
  is kept whole;
- `tuple`: if the value is an array, a tuple of its elements, kept whole (header pairs: a
  tuple costs one allocation, a list two); any other JSON type is kept whole;
- `RAW`: any value as its JSON text (bytes), checked as a skipped value is, not decoded
  (`decode_raw` decodes it as the whole document's decode would);
- `KEYS`: if the value is an object, the tuple of its keys (those of the dict it decodes to,
  in that order), its values checked as skipped ones are; any other JSON type is kept whole.

Duplicate keys: the last one wins, as in `json.loads` and orjson.

What it refuses (it raises `Unsupported`, and the caller decodes the line with the reference
decoders instead, which also produce the exact error message): anything that is not strict
JSON in UTF-8 (orjson's grammar), and what the reference accepts but orjson does not (NaN,
Infinity, lone surrogates in \\u escapes), and nesting deeper than 512.
"""

cimport cython
import json

import orjson
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.bytearray cimport PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport HUGE_VAL
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset


cdef extern from "Python.h":
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    void *PyUnicode_DATA(object text)
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0
    object PyLong_FromString(const char *str, char **pend, int base)
    object PyUnicode_FromStringAndSize(const char *u, Py_ssize_t size)


class Unsupported(ValueError):
    """The text is not JSON this decoder takes; decode it with the reference decoders."""


cdef int MAX_DEPTH = 512

cdef enum:
    SHORT = 32          # strings up to this many bytes go through the cache
    CACHE_SLOTS = 4096


cdef extern from *:
    int __builtin_ctz(unsigned int) nogil
    int __builtin_ctzll(unsigned long long) nogil

cdef extern from "_scan.h":
    uint64_t dideban_special64(uint64_t w) nogil
    unsigned int dideban_special16(const unsigned char *p) nogil
    unsigned int dideban_backslash16(const unsigned char *p) nogil
    int DIDEBAN_SCAN_SIMD

# Whether the string scans take 16 bytes in one vector step (SSE2) or in two words.
SCAN_SIMD = bool(DIDEBAN_SCAN_SIMD)


cdef inline int _utf8_char(const unsigned char *s, Py_ssize_t avail) noexcept nogil:
    """Length of the well-formed UTF-8 character (not ASCII) at s, or 0."""
    cdef unsigned char c = s[0], d
    if 0xC2 <= c <= 0xDF:
        if avail >= 2 and (s[1] & 0xC0) == 0x80:
            return 2
        return 0
    if 0xE0 <= c <= 0xEF:
        if avail < 3:
            return 0
        d = s[1]
        if (d & 0xC0) != 0x80 or (s[2] & 0xC0) != 0x80:
            return 0
        if (c == 0xE0 and d < 0xA0) or (c == 0xED and d > 0x9F):
            return 0
        return 3
    if 0xF0 <= c <= 0xF4:
        if avail < 4:
            return 0
        d = s[1]
        if (d & 0xC0) != 0x80 or (s[2] & 0xC0) != 0x80 or (s[3] & 0xC0) != 0x80:
            return 0
        if (c == 0xF0 and d < 0x90) or (c == 0xF4 and d > 0x8F):
            return 0
        return 4
    return 0


# The value of each byte as a hex digit, -1 for a byte that is not one.
cdef signed char _HEX[256]
# What the two-character escape `\c` stands for, by c: its byte (1 to 127); 0 for `u` (four
# hex digits follow); -1 for a character JSON does not escape with.
cdef signed char _ESCAPED[256]
for _k in range(256):
    _HEX[_k] = int(chr(_k), 16) if chr(_k) in "0123456789abcdefABCDEF" else -1
    _ESCAPED[_k] = -1
for _c, _b in zip('"\\/bfnrtu', '"\\/\b\f\n\r\t\0', strict=True):
    _ESCAPED[ord(_c)] = ord(_b)


cdef inline long _hex4(const unsigned char *s) noexcept nogil:
    """The value of the four hex digits at s, or -1 (a table read each, no branch but the
    last: real OONI bodies are full of \\u003c and \\u003e)."""
    cdef long a = _HEX[s[0]], b = _HEX[s[1]], c = _HEX[s[2]], d = _HEX[s[3]]
    if (a | b | c | d) < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef inline Py_ssize_t _plain_run(const unsigned char *s, Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    """Past the plain bytes of a string from j, sixteen at a time (`_scan.h`), then eight: to
    the first quote, backslash, control or non-ASCII byte, or to where fewer than eight bytes
    are left."""
    cdef uint64_t w, special
    cdef unsigned int mask
    while j + 16 <= n:
        mask = dideban_special16(s + j)
        if mask:
            return j + __builtin_ctz(mask)
        j += 16
    while j + 8 <= n:
        memcpy(&w, s + j, 8)
        special = dideban_special64(w)
        if special:
            return j + (__builtin_ctzll(special) >> 3)
        j += 8
    return j


cdef inline Py_ssize_t _plain_end(
    const unsigned char *s, Py_ssize_t j, Py_ssize_t n, int blocks
) noexcept nogil:
    """The index of the closing quote of a string that starts at j (just after its opening
    quote) when it is shorter than `blocks` 16-byte blocks of plain ASCII (no escape, control
    or non-ASCII byte) and that many blocks of text follow j; else -1. Most keys (1 block)
    and short values (2 blocks) are such strings: found without the general scan's loop (or
    call)."""
    cdef unsigned int mask
    cdef int k
    if j + 16 * blocks > n:
        return -1
    for k in range(blocks):
        mask = dideban_special16(s + j + 16 * k)
        if mask:
            j += 16 * k + __builtin_ctz(mask)
            return j if s[j] == 34 else -1
    return -1


cdef inline Py_ssize_t _skip_string(const unsigned char *s, Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    """From just after a string's opening quote to just after its closing one, checking it
    (escapes, no control characters, UTF-8); -1 if it is not valid. Lone surrogates in
    \\u escapes are let through, as the standard parser lets them through."""
    cdef unsigned char c
    cdef signed char e
    cdef int k
    while True:
        j = _plain_run(s, j, n)
        if j >= n:
            return -1
        c = s[j]
        if c == 34:
            return j + 1
        if c == 92:
            if j + 1 >= n:
                return -1
            e = _ESCAPED[s[j + 1]]
            if e > 0:
                j += 2
            elif e == 0:  # \u
                if j + 6 > n or _hex4(s + j + 2) < 0:
                    return -1
                j += 6
            else:
                return -1
        elif c < 32:
            return -1
        elif c >= 128:
            k = _utf8_char(s + j, n - j)
            if k == 0:
                return -1
            j += k
        else:
            j += 1


cdef inline Py_ssize_t _copy_run(
    const unsigned char *s, Py_ssize_t j, Py_ssize_t end, char *out, Py_ssize_t *o,
    bint any_special
) noexcept nogil:
    """Copies the plain bytes of a string from s[j] to out + o[0] (o advanced) up to the
    first backslash, or with `any_special` the first quote, backslash, control or non-ASCII
    byte (`_scan.h`), or to end; returns where it stopped. Sixteen bytes at a time, each
    block copied whole: `out` needs 16 bytes of room past what is copied (the output of an
    unescaped string is never longer than the input read so far)."""
    cdef unsigned int found
    cdef unsigned char c
    while j + 16 <= end:
        memcpy(out + o[0], s + j, 16)
        if any_special:
            found = dideban_special16(s + j)
        else:
            found = dideban_backslash16(s + j)
        if found:
            c = __builtin_ctz(found)
            o[0] += c
            return j + c
        j += 16
        o[0] += 16
    while j < end:
        c = s[j]
        if c == 92 or (any_special and (c == 34 or c < 32 or c >= 128)):
            break
        out[o[0]] = <char>c
        o[0] += 1
        j += 1
    return j


cdef enum:
    # What `_escape` returns for an escape it does not take (the index after it otherwise).
    BAD_ESCAPE = -1
    SHORT_U = -2
    BAD_U = -3
    LONE_SURROGATE = -4


cdef inline Py_ssize_t _escape(
    const unsigned char *s, Py_ssize_t j, Py_ssize_t end, char *out, Py_ssize_t *o
) noexcept nogil:
    """The escape whose backslash is at s[j] (the text ends at end), undone: its UTF-8 written
    at out + o[0] (at most 4 bytes; it is at least 2 bytes long in the input, a \\u escape 6
    and a pair 12), o[0] advanced. Returns the index just past it, or one of BAD_ESCAPE,
    SHORT_U, BAD_U, LONE_SURROGATE."""
    cdef unsigned char c
    cdef signed char e
    cdef long cp, lo
    cdef char *b = out + o[0]
    if j + 1 >= end:
        return BAD_ESCAPE
    c = s[j + 1]
    j += 2
    e = _ESCAPED[c]
    if e > 0:
        b[0] = <char>e
    elif e == 0:  # \u
        if j + 4 > end:
            return SHORT_U
        cp = _hex4(s + j)
        if cp < 0:
            return BAD_U
        j += 4
        if 0xD800 <= cp <= 0xDBFF:
            if j + 6 > end or s[j] != 92 or s[j + 1] != 117:
                return LONE_SURROGATE
            lo = _hex4(s + j + 2)
            if not (0xDC00 <= lo <= 0xDFFF):
                return LONE_SURROGATE
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
            j += 6
        elif 0xDC00 <= cp <= 0xDFFF:
            return LONE_SURROGATE
        if cp < 0x80:
            b[0] = <char>cp
        elif cp < 0x800:
            b[0] = <char>(0xC0 | (cp >> 6))
            b[1] = <char>(0x80 | (cp & 0x3F))
            o[0] += 1
        elif cp < 0x10000:
            b[0] = <char>(0xE0 | (cp >> 12))
            b[1] = <char>(0x80 | ((cp >> 6) & 0x3F))
            b[2] = <char>(0x80 | (cp & 0x3F))
            o[0] += 2
        else:
            b[0] = <char>(0xF0 | (cp >> 18))
            b[1] = <char>(0x80 | ((cp >> 12) & 0x3F))
            b[2] = <char>(0x80 | ((cp >> 6) & 0x3F))
            b[3] = <char>(0x80 | (cp & 0x3F))
            o[0] += 3
    else:
        return BAD_ESCAPE
    o[0] += 1
    return j


cdef Py_ssize_t _utf8_string(
    const unsigned char *s, Py_ssize_t j, Py_ssize_t n, char *out, Py_ssize_t *size
) noexcept nogil:
    """From just after a string's opening quote: its text as UTF-8 with the escapes undone,
    written to `out` (room for n - j + 16 bytes: the output is never longer than the input
    read, and plain runs are copied sixteen bytes at a time), and `size`. Returns the index
    just past the closing quote, or -1 for anything but a well-formed string (a control
    character, a bad escape, a lone surrogate, bytes that are not UTF-8, no end): the
    caller then finds out which, in steps."""
    cdef Py_ssize_t o = 0
    cdef unsigned char c
    cdef int k
    while True:
        j = _copy_run(s, j, n, out, &o, True)
        if j >= n:
            return -1
        c = s[j]
        if c == 34:
            size[0] = o
            return j + 1
        if c == 92:
            j = _escape(s, j, n, out, &o)
            if j < 0:
                return -1
        elif c < 32:
            return -1
        else:  # a non-ASCII byte: one well-formed character, copied
            k = _utf8_char(s + j, n - j)
            if k == 0:
                return -1
            memcpy(out + o, s + j, k)
            j += k
            o += k


cdef bint _valid_utf8(const unsigned char *s, Py_ssize_t n) noexcept nogil:
    """Whether s[:n] is well-formed UTF-8 (ASCII runs eight bytes at a time)."""
    cdef Py_ssize_t j = 0
    cdef uint64_t w
    cdef int k
    while j < n:
        if j + 8 <= n:
            memcpy(&w, s + j, 8)
            if (w & 0x8080808080808080ULL) == 0:
                j += 8
                continue
        if s[j] < 128:
            j += 1
            continue
        k = _utf8_char(s + j, n - j)
        if k == 0:
            return False
        j += k
    return True


cdef inline bint _same_short(const unsigned char *x, const unsigned char *y, Py_ssize_t size) noexcept nogil:
    """x[:size] == y[:size], for short strings (no call to memcmp)."""
    cdef uint64_t u, v
    cdef Py_ssize_t k = 0
    while k + 8 <= size:
        memcpy(&u, x + k, 8)
        memcpy(&v, y + k, 8)
        if u != v:
            return False
        k += 8
    while k < size:
        if x[k] != y[k]:
            return False
        k += 1
    return True


cdef inline Py_ssize_t _skip_ws(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef unsigned char c
    while i < n:
        c = s[i]
        # (Compact JSON, as OONI writes it, has none: one comparison tells.)
        if c > 32 or not (c == 32 or c == 10 or c == 13 or c == 9):
            break
        i += 1
    return i


cdef inline Py_ssize_t _skip_number(
    const unsigned char *s, Py_ssize_t j, Py_ssize_t n, bint *is_int
) noexcept nogil:
    """Past a number in JSON's grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, or -1;
    `is_int`: it has neither a fraction nor an exponent."""
    is_int[0] = True
    if j < n and s[j] == 45:
        j += 1
    if j >= n or not (48 <= s[j] <= 57):
        return -1
    if s[j] == 48:
        j += 1
    else:
        while j < n and 48 <= s[j] <= 57:
            j += 1
    if j < n and s[j] == 46:
        is_int[0] = False
        j += 1
        if j >= n or not (48 <= s[j] <= 57):
            return -1
        while j < n and 48 <= s[j] <= 57:
            j += 1
    if j < n and (s[j] == 101 or s[j] == 69):
        is_int[0] = False
        j += 1
        if j < n and (s[j] == 43 or s[j] == 45):
            j += 1
        if j >= n or not (48 <= s[j] <= 57):
            return -1
        while j < n and 48 <= s[j] <= 57:
            j += 1
    return j


# 10**k for k <= 22: every one is a double exactly.
cdef double _POW10[23]
for _k in range(23):
    _POW10[_k] = 10.0 ** _k


cdef inline bint _exact_decimal(const unsigned char *s, Py_ssize_t size, double *out) noexcept nogil:
    """A number in JSON's grammar without an exponent, -?digits.digits, with at most 15
    digits in all, as the double nearest to it, which is what strtod gives: the digits as an
    integer (below 2**53, so a double exactly) divided by 10**fraction (exact for up to 22
    digits), and IEEE division rounds correctly (Clinger's fast path). False for any other
    number (the general conversion takes it)."""
    cdef Py_ssize_t k = 0, digits = 0, point = -1
    cdef uint64_t m = 0
    cdef bint negative = s[0] == 45
    if negative:
        k = 1
    while k < size:
        if s[k] == 46:
            point = k
        elif 48 <= s[k] <= 57:
            m = m * 10 + (s[k] - 48)
            digits += 1
        else:
            return False  # an exponent
        k += 1
    if digits > 15 or point < 0:
        return False
    out[0] = <double>m / _POW10[size - point - 1]
    if negative:
        out[0] = -out[0]
    return True


cdef inline Py_ssize_t _skip_key(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Past `"key" :` at i (and the whitespace after the colon's), or -1."""
    cdef Py_ssize_t end
    if i >= n or s[i] != 34:
        return -1
    end = _plain_end(s, i + 1, n, 1)
    if end >= 0:
        i = end + 1
    else:
        i = _skip_string(s, i + 1, n)
        if i < 0:
            return -1
    i = _skip_ws(s, i, n)
    if i >= n or s[i] != 58:
        return -1
    return i + 1


cdef Py_ssize_t _skip_value(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, int depth) noexcept nogil:
    """Past the JSON value at i (after whitespace), checking it as it goes; -1 if it is not
    valid JSON (or nests beyond MAX_DEPTH). One loop with its own stack of open brackets:
    this is where most of a measurement's text goes by, key after key of parts the analysis
    never reads."""
    cdef unsigned char stack[520]
    cdef int top = 0
    cdef bint is_int
    cdef unsigned char c
    cdef int limit = MAX_DEPTH - depth
    cdef bint key = False  # a key comes first (just into an object, or after its comma)
    while True:
        if key:  # (one call of _skip_key, which the compiler then inlines)
            i = _skip_key(s, _skip_ws(s, i, n), n)
            if i < 0:
                return -1
            key = False
        # A value.
        i = _skip_ws(s, i, n)
        if i >= n:
            return -1
        c = s[i]
        if c == 34:
            i = _skip_string(s, i + 1, n)
        elif c == 123 or c == 91:
            i = _skip_ws(s, i + 1, n)
            if i < n and s[i] == c + 2:  # {} or []
                i += 1
            else:
                if top >= limit:
                    return -1
                stack[top] = c
                top += 1
                key = c == 123
                continue
        elif c == 116:
            if i + 4 > n or memcmp(s + i, b"true", 4) != 0:
                return -1
            i += 4
        elif c == 102:
            if i + 5 > n or memcmp(s + i, b"false", 5) != 0:
                return -1
            i += 5
        elif c == 110:
            if i + 4 > n or memcmp(s + i, b"null", 4) != 0:
                return -1
            i += 4
        else:
            i = _skip_number(s, i, n, &is_int)
        if i < 0:
            return -1
        # After a value: close brackets, or a comma and the next value (key first in objects).
        while True:
            if top == 0:
                return i
            i = _skip_ws(s, i, n)
            if i >= n:
                return -1
            c = s[i]
            i += 1
            if c == 44:
                key = stack[top - 1] == 123
                break
            if c == stack[top - 1] + 2:
                top -= 1
                continue
            return -1


# -- the spec, compiled ---------------------------------------------------------------------

@cython.final
cdef class _Node:
    """One object level of the spec: key names as UTF-8, and what to do with each value."""
    cdef list names      # bytes (kept alive for `ptrs`)
    cdef list keys       # str (the dict keys of the result)
    cdef list children   # _Node, _Each or None (keep whole)
    cdef int count
    cdef bint record     # make a tuple of the values in key order, not a dict
    cdef const char *ptrs[64]
    cdef Py_ssize_t lens[64]
    # The names by `_key_hash`: the first in each bucket, and the next in the same bucket
    # (-1: none). Most keys of a measurement are not in the spec: one probe tells.
    cdef signed char head[64]
    cdef signed char next[64]
    # The first 16 bytes of each name as two words, zero-padded (`find_short`).
    cdef uint64_t w0[64]
    cdef uint64_t w1[64]

    def __init__(self, pairs, bint record):
        if len(pairs) > 64:
            raise ValueError("a prune spec level names at most 64 keys")
        cdef int k, h
        self.record = record
        self.names = []
        self.keys = []
        self.children = []
        memset(self.head, -1, sizeof(self.head))
        for key, sub in pairs:
            name = key.encode("utf-8")
            k = len(self.names)
            self.ptrs[k] = <const char *>name
            self.lens[k] = len(name)
            # Each name at the end of its bucket's chain: the first of equal names is found.
            self.next[k] = -1
            h = _key_hash(<const unsigned char *><const char *>name, len(name))
            if self.head[h] < 0:
                self.head[h] = k
            else:
                h = self.head[h]
                while self.next[h] >= 0:
                    h = self.next[h]
                self.next[h] = k
            self.w0[k] = self.w1[k] = 0
            memcpy(&self.w0[k], <const char *>name, min(len(name), 8))
            if len(name) > 8:
                memcpy(&self.w1[k], <const char *>name + 8, min(len(name) - 8, 8))
            self.names.append(name)
            self.keys.append(key)
            self.children.append(_compile(sub))
        self.count = len(self.names)

    cdef inline int find_short(self, const unsigned char *s, Py_ssize_t n) noexcept:
        """`find` for a key of at most 15 bytes with 16 bytes readable at s: compared as two
        words, without a loop."""
        cdef uint64_t a, b
        cdef int k
        memcpy(&a, s, 8)
        memcpy(&b, s + 8, 8)
        if n < 8:
            a &= (1ULL << (8 * n)) - 1
            b = 0
        else:
            b &= (1ULL << (8 * (n - 8))) - 1
        k = self.head[_key_hash(s, n)]
        while k >= 0:
            if self.lens[k] == n and self.w0[k] == a and self.w1[k] == b:
                return k
            k = self.next[k]
        return -1

    cdef inline int find(self, const unsigned char *s, Py_ssize_t n) noexcept:
        cdef int k = self.head[_key_hash(s, n)]
        while k >= 0:
            if self.lens[k] == n and _same_short(<const unsigned char *>self.ptrs[k], s, n):
                return k
            k = self.next[k]
        return -1


cdef inline int _key_hash(const unsigned char *s, Py_ssize_t n) noexcept nogil:
    """A bucket (0-63) for a key's UTF-8: from its length and its first and last bytes."""
    if n == 0:
        return 0
    return <int>((<Py_ssize_t>s[0] * 7 + <Py_ssize_t>s[n - 1] * 3 + n * 13) & 63)


cdef class _Each:
    """An array level of the spec: each element pruned by `node`."""
    cdef object node

    def __init__(self, node):
        self.node = node


# The compiled forms of the `bytes`, `tuple`, `RAW` and `KEYS` specs (see `decode_pruned`).
cdef object _UTF8 = object()
cdef object _TUPLE = object()
cdef object _TEXT = object()
cdef object _NAMES = object()


@cython.final
cdef class _Raw:
    def __repr__(self):
        return "RAW"

    def __reduce__(self):
        return "RAW"  # the one RAW, copied or pickled (specs are compared by identity)


RAW = _Raw()
"""The prune spec of a value kept as its JSON text (bytes), checked but not decoded: for a
value the analysis reads only now and then (`decode_raw` decodes it then)."""


@cython.final
cdef class _Keys:
    def __repr__(self):
        return "KEYS"

    def __reduce__(self):
        return "KEYS"  # the one KEYS, copied or pickled


KEYS = _Keys()
"""The prune spec of an object of which only the key names are read: the tuple of its keys
(JSON decodes to no tuple, so a reader tells the pruned form from the whole object)."""


cdef object _compile(object spec):
    if spec is None:
        return None
    if spec is bytes:
        return _UTF8
    if spec is tuple:
        return _TUPLE
    if spec is RAW:
        return _TEXT
    if spec is KEYS:
        return _NAMES
    if isinstance(spec, dict):
        return _Node(list(spec.items()), False)
    if isinstance(spec, tuple):
        return _Node(list(spec), True)
    if isinstance(spec, list) and len(spec) == 1:
        return _Each(_compile(spec[0]))
    raise TypeError(f"bad prune spec: {spec!r}")


# Compiled specs by the identity of the spec object (kept alive with it, so the id is not
# reused while it is here); a few are expected (fields.PRUNE_SPEC), so the cache is small.
cdef dict _compiled = {}


cdef object _compiled_spec(object spec):
    key = id(spec)
    got = _compiled.get(key)
    if got is None or got[0] is not spec:
        if len(_compiled) >= 16:
            _compiled.clear()
        got = (spec, _compile(spec))
        _compiled[key] = got
    return got[1]


# -- the parser -----------------------------------------------------------------------------

@cython.final
cdef class _Parser:
    cdef const unsigned char *s
    cdef Py_ssize_t n
    cdef Py_ssize_t i
    cdef char *buf       # scratch for unescaped strings and number literals
    cdef Py_ssize_t cap
    cdef PyObject *cache[CACHE_SLOTS]  # short ASCII strings (owned references)

    def __cinit__(self):
        self.cap = 4096
        self.buf = <char *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)
        for k in range(CACHE_SLOTS):
            Py_XDECREF(self.cache[k])

    cdef int reserve(self, Py_ssize_t need) except -1:
        cdef char *grown
        if need <= self.cap:
            return 0
        while self.cap < need:
            self.cap *= 2
        grown = <char *>realloc(self.buf, self.cap)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        return 0

    cdef inline void ws(self) noexcept:
        self.i = _skip_ws(self.s, self.i, self.n)

    cdef inline int peek(self) except -1:
        self.ws()
        if self.i >= self.n:
            raise Unsupported("unexpected end of text")
        return self.s[self.i]

    cdef inline int colon(self) except -1:
        """Past the colon after a key: where compact JSON has it, without a call."""
        if self.i < self.n and self.s[self.i] == 58:
            self.i += 1
            return 0
        return self.expect(58)

    cdef int expect(self, unsigned char c) except -1:
        if self.peek() != c:
            raise Unsupported(f"expected {chr(c)!r} at byte {self.i}")
        self.i += 1
        return 0

    cdef Py_ssize_t scan_string(self, bint *escaped, bint *high) except -1:
        """The index of the closing quote of the string that opens at self.i; `escaped`:
        whether it has a backslash, `high`: whether it has non-ASCII bytes (checked where
        it is decoded)."""
        cdef Py_ssize_t j = self.i + 1
        cdef const unsigned char *s = self.s
        cdef Py_ssize_t n = self.n
        cdef unsigned char c
        cdef bint esc = False, hi = False
        while True:
            j = _plain_run(s, j, n)
            if j >= n:
                raise Unsupported("unterminated string")
            c = s[j]
            if c == 34:  # "
                escaped[0] = esc
                high[0] = hi
                return j
            if c == 92:  # backslash: skip the escaped character (checked when decoded)
                esc = True
                j += 2
            elif c < 32:
                raise Unsupported("control character in a string")
            else:
                if c >= 128:
                    hi = True
                j += 1

    cdef object string(self):
        """The string at self.i, decoded."""
        cdef bint escaped, high
        cdef Py_ssize_t end = self.scan_string(&escaped, &high)
        cdef Py_ssize_t start = self.i + 1
        self.i = end + 1
        if escaped:
            return self.unescape(start, end)
        if high:
            return PyUnicode_DecodeUTF8(<const char *>self.s + start, end - start, "strict")
        if end - start <= SHORT:
            return self.short_ascii(start, end - start)
        return PyUnicode_FromStringAndSize(<const char *>self.s + start, end - start)

    cdef object utf8(self):
        """The string at self.i as its UTF-8 bytes (escapes undone, the text checked as
        `string` checks it): no str is made, no character decoded. One pass
        (`_utf8_string`); a string it does not take goes through `utf8_checked`, which
        raises the error."""
        cdef Py_ssize_t size = 0, j
        self.reserve(self.n - self.i + 16)
        j = _utf8_string(self.s, self.i + 1, self.n, self.buf, &size)
        if j >= 0:
            self.i = j
            return PyBytes_FromStringAndSize(self.buf, size)
        return self.utf8_checked()

    cdef object utf8_checked(self):
        """`utf8` in steps (find the end, undo the escapes, check the UTF-8), each raising
        its own error."""
        cdef bint escaped, high
        cdef Py_ssize_t end = self.scan_string(&escaped, &high)
        cdef Py_ssize_t start = self.i + 1
        cdef const char *text
        cdef Py_ssize_t size
        self.i = end + 1
        if escaped:
            self.unescape_into_buf(start, end, &size)
            text = self.buf
        else:
            text = <const char *>self.s + start
            size = end - start
        # (\\u escapes come out well-formed: only text with non-ASCII bytes needs checking.)
        if high and not _valid_utf8(<const unsigned char *>text, size):
            raise UnicodeDecodeError("utf-8", bytes(text[:size]), 0, size, "invalid UTF-8")
        return PyBytes_FromStringAndSize(text, size)

    cdef object short_ascii(self, Py_ssize_t start, Py_ssize_t size):
        """A short ASCII string, from a cache of the last ones seen by hash: keys, failure
        strings, addresses, host names repeat within a measurement and across them, and a
        cached str (its hash computed once) costs no allocation.

        The string is read as (at most four, overlapping) 8-byte words, which are hashed
        and compared whole: its closing quote is in the text, so a word that runs past the
        string's end stays in the text when the text has 8 bytes there to read."""
        cdef const unsigned char *p = self.s + start
        cdef uint64_t a, b, c, d, h
        cdef Py_ssize_t k
        cdef PyObject *hit
        if size >= 8:
            memcpy(&a, p, 8)
            memcpy(&b, p + size - 8, 8)
            if size > 16:
                memcpy(&c, p + 8, 8)
                memcpy(&d, p + size - 16, 8)
            else:
                c = d = 0
        elif start + 8 <= self.n:
            memcpy(&a, p, 8)
            a &= (1ULL << (8 * size)) - 1  # (size < 8)
            b = c = d = 0
        else:  # within 8 bytes of the end of the text
            a = 0
            for k in range(size):
                a |= (<uint64_t>p[k]) << (8 * k)
            b = c = d = 0
        h = (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL)
        h ^= (c * 0x165667B19E3779F9ULL) ^ (d * 0xD6E8FEB86659FD93ULL) ^ <uint64_t>size
        h ^= h >> 29
        h *= 0xBF58476D1CE4E5B9ULL
        hit = self.cache[(h >> 40) & (CACHE_SLOTS - 1)]
        if hit != NULL and PyUnicode_GET_LENGTH(<object>hit) == size and _same_short(
            <const unsigned char *>PyUnicode_DATA(<object>hit), p, size
        ):
            return <object>hit
        text = PyUnicode_FromStringAndSize(<const char *>p, size)
        Py_XDECREF(hit)
        Py_INCREF(text)
        self.cache[(h >> 40) & (CACHE_SLOTS - 1)] = <PyObject *>text
        return text

    cdef object unescape(self, Py_ssize_t start, Py_ssize_t end):
        cdef Py_ssize_t size
        self.unescape_into_buf(start, end, &size)
        return PyUnicode_DecodeUTF8(self.buf, size, "strict")

    cdef int unescape_into_buf(self, Py_ssize_t start, Py_ssize_t end, Py_ssize_t *size) except -1:
        """The string's text between start and end with its escapes undone, as UTF-8 in
        self.buf (`size` bytes of it)."""
        cdef Py_ssize_t j = start, o = 0
        self.reserve(end - start + 16)
        cdef char *b = self.buf
        cdef const unsigned char *s = self.s
        while j < end:
            j = _copy_run(s, j, end, b, &o, False)  # (the buffer has 16 bytes to spare)
            if j >= end:
                break
            j = _escape(s, j, end, b, &o)
            if j < 0:
                raise Unsupported(
                    "lone surrogate" if j == LONE_SURROGATE
                    else "short \\u escape" if j == SHORT_U
                    else "bad \\u escape" if j == BAD_U
                    else "bad escape"
                )
        size[0] = o
        return 0

    cdef object number(self):
        cdef bint is_int
        cdef Py_ssize_t end = _skip_number(self.s, self.i, self.n, &is_int)
        if end < 0:
            raise Unsupported(f"bad number at byte {self.i}")
        cdef Py_ssize_t size = end - self.i
        cdef Py_ssize_t k
        cdef long long small = 0
        cdef bint negative = self.s[self.i] == 45
        if is_int and size - negative <= 18:
            # Up to 18 digits fit a long long: no text copy, no general conversion.
            for k in range(self.i + negative, end):
                small = small * 10 + (self.s[k] - 48)
            self.i = end
            return PyLong_FromLongLong(-small if negative else small)
        cdef double fast
        if not is_int and _exact_decimal(self.s + self.i, size, &fast):
            self.i = end
            return PyFloat_FromDouble(fast)
        self.reserve(size + 1)
        memcpy(self.buf, self.s + self.i, size)
        self.buf[size] = 0
        self.i = end
        if is_int:
            value = PyLong_FromString(self.buf, NULL, 10)
            if size > 18 and not (-9223372036854775808 <= value <= 18446744073709551615):
                raise Unsupported("integer beyond 64 bits")  # orjson makes it a float
            return value
        cdef double d = PyOS_string_to_double(self.buf, NULL, NULL)
        if d == HUGE_VAL or d == -HUGE_VAL:
            raise Unsupported("number out of range")  # orjson refuses it, json gives inf
        return PyFloat_FromDouble(d)

    cdef int literal(self, const char *word, Py_ssize_t size) except -1:
        if self.i + size > self.n or not _same_short(self.s + self.i, <const unsigned char *>word, size):
            raise Unsupported(f"bad literal at byte {self.i}")
        self.i += size
        return 0

    # Values.
    cdef object value(self, object spec, int depth):
        """The value at self.i (after whitespace), pruned by `spec`."""
        cdef int c = self.peek()
        cdef Py_ssize_t start, end
        if spec is _TEXT:
            start = self.i
            self.skip(depth)
            return PyBytes_FromStringAndSize(<const char *>self.s + start, self.i - start)
        if c == 34:
            if spec is _UTF8:
                return self.utf8()
            end = _plain_end(self.s, self.i + 1, self.n, 2)
            if end >= 0:  # most strings: short and plain ASCII
                start = self.i + 1
                self.i = end + 1
                return self.short_ascii(start, end - start)
            return self.string()
        if c == 123:
            if spec is _NAMES:
                return self.names(depth + 1)
            return self.obj(<_Node>spec if type(spec) is _Node else None, depth + 1)
        if c == 91:
            if spec is _TUPLE:
                return self.arr_tuple(depth + 1)
            return self.arr(spec, depth + 1)
        if c == 116:
            self.literal("true", 4)
            return True
        if c == 102:
            self.literal("false", 5)
            return False
        if c == 110:
            self.literal("null", 4)
            return None
        return self.number()

    cdef int skip(self, int depth) except -1:
        cdef Py_ssize_t j = _skip_value(self.s, self.i, self.n, depth)
        if j < 0:
            raise Unsupported(f"invalid JSON after byte {self.i}")
        self.i = j
        return 0

    cdef int key_in(self, _Node node) except -2:
        """The index in `node` of the key at self.i (-1: not one of its keys), self.i moved
        past it: any key (`obj` finds plain short ones itself)."""
        cdef bint escaped, high
        cdef Py_ssize_t end = self.scan_string(&escaped, &high)
        cdef Py_ssize_t start = self.i + 1
        cdef bytes kb
        if escaped:
            # Rare: compare the key's UTF-8 once unescaped.
            kb = self.string().encode("utf-8")
            return node.find(<const unsigned char *><const char *>kb, len(kb))
        if high:
            PyUnicode_DecodeUTF8(<const char *>self.s + start, end - start, "strict")
        self.i = end + 1
        return node.find(self.s + start, end - start)

    cdef object obj(self, _Node node, int depth):
        """The object at self.i; with a node, only the node's keys are kept (in a dict, or
        for a record node in a tuple, None for a key that is not there)."""
        cdef object out
        cdef int c
        cdef Py_ssize_t end
        cdef int k
        cdef object key, v
        cdef PyObject *old
        if depth > MAX_DEPTH:
            raise Unsupported("nested too deep")
        if node is not None and node.record:
            out = PyTuple_New(node.count)
            for k in range(node.count):
                Py_INCREF(None)
                PyTuple_SET_ITEM(out, k, None)
        else:
            out = {}
        self.i += 1
        if self.peek() == 125:
            self.i += 1
            return out
        while True:
            if self.peek() != 34:
                raise Unsupported("expected a key")
            if node is None:
                key = self.string()
                self.colon()
                PyDict_SetItem(out, key, self.value(None, depth))
            else:
                end = _plain_end(self.s, self.i + 1, self.n, 1)
                if end >= 0:  # most keys: plain ASCII, found from one block
                    k = node.find_short(self.s + self.i + 1, end - self.i - 1)
                    self.i = end + 1
                else:
                    k = self.key_in(node)
                self.colon()
                if k < 0:
                    self.skip(depth)
                elif node.record:
                    # A repeated key: the last one wins, as in a dict.
                    v = self.value(node.children[k], depth)
                    old = PyTuple_GET_ITEM(out, k)
                    Py_INCREF(v)
                    PyTuple_SET_ITEM(out, k, v)
                    Py_XDECREF(old)
                else:
                    PyDict_SetItem(out, node.keys[k], self.value(node.children[k], depth))
            c = self.peek()
            self.i += 1
            if c == 125:
                return out
            if c != 44:
                raise Unsupported("expected ',' or '}'")

    cdef tuple names(self, int depth):
        """The keys of the object at self.i (the `KEYS` spec): those of the dict it decodes
        to, in that order; its values checked as skipped ones are."""
        cdef dict out = {}
        cdef int c
        if depth > MAX_DEPTH:
            raise Unsupported("nested too deep")
        self.i += 1
        if self.peek() == 125:
            self.i += 1
            return ()
        while True:
            if self.peek() != 34:
                raise Unsupported("expected a key")
            PyDict_SetItem(out, self.string(), None)  # (a repeated key: counted once)
            self.colon()
            self.skip(depth)
            c = self.peek()
            self.i += 1
            if c == 125:
                return tuple(out)
            if c != 44:
                raise Unsupported("expected ',' or '}'")

    cdef object arr_tuple(self, int depth):
        """The array at self.i as a tuple of its elements (whole). Short arrays (header
        pairs) are gathered in a C array: one allocation, the tuple."""
        cdef PyObject *items[8]
        cdef Py_ssize_t count = 0, k
        cdef list more = None
        cdef int c
        cdef object out
        if depth > MAX_DEPTH:
            raise Unsupported("nested too deep")
        self.i += 1
        if self.peek() == 93:
            self.i += 1
            return ()
        try:
            while True:
                v = self.value(None, depth)
                if count < 8:
                    Py_INCREF(v)
                    items[count] = <PyObject *>v
                    count += 1
                else:
                    if more is None:
                        more = []
                    more.append(v)
                c = self.peek()
                self.i += 1
                if c == 93:
                    break
                if c != 44:
                    raise Unsupported("expected ',' or ']'")
            out = PyTuple_New(count + (len(more) if more is not None else 0))
            for k in range(count):
                PyTuple_SET_ITEM(out, k, <object>items[k])  # (steals the reference)
            count = 0
            if more is not None:
                for k in range(len(more)):
                    v = more[k]
                    Py_INCREF(v)
                    PyTuple_SET_ITEM(out, 8 + k, v)
            return out
        finally:
            for k in range(count):  # (left only when an error stopped the array)
                Py_XDECREF(items[k])

    cdef object arr(self, object spec, int depth):
        cdef list out = []
        cdef int c
        cdef object each = (<_Each>spec).node if type(spec) is _Each else None
        if depth > MAX_DEPTH:
            raise Unsupported("nested too deep")
        self.i += 1
        if self.peek() == 93:
            self.i += 1
            return out
        while True:
            PyList_Append(out, self.value(each, depth))
            c = self.peek()
            self.i += 1
            if c == 93:
                return out
            if c != 44:
                raise Unsupported("expected ',' or ']'")


# One parser is reused (its scratch buffer with it); a call that comes while it is in use (a
# finaliser, another thread's callback) gets a fresh one.
cdef _Parser _parser = _Parser()
cdef bint _busy = False


def decode_pruned(data, spec):
    """The JSON text `data` (bytes-like, UTF-8) decoded, keeping only what `spec` names.

    Raises `Unsupported` (a ValueError) for anything the reference decoders should handle,
    and UnicodeDecodeError for text that is not UTF-8."""
    global _busy
    cdef Py_buffer view
    cdef _Parser p = _Parser() if _busy else _parser
    cdef bint shared = p is _parser
    cdef object result
    # (The buffer protocol directly: a typed memoryview costs more than parsing a small text.)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    if shared:
        _busy = True
    p.s = <const unsigned char *>view.buf
    p.n = view.len
    p.i = 0
    try:
        result = p.value(_compiled_spec(spec), 0)
        p.ws()
        if p.i != p.n:
            raise Unsupported("text after the value")
        return result
    finally:
        p.s = NULL
        p.n = 0
        PyBuffer_Release(&view)
        if shared:
            _busy = False


def new_buffer(Py_ssize_t size):
    """A bytearray of `size` bytes, not zeroed: for `readinto` to fill (`bytearray(size)`
    writes each byte first)."""
    if size < 0:
        raise ValueError("negative size")
    return PyByteArray_FromStringAndSize(NULL, size)


# (A module's attribute read from compiled code is a lookup in its dict, at each call.)
cdef object _orjson_loads = orjson.loads


def decode_raw(text):
    """JSON text (bytes-like) decoded whole, as a whole measurement is
    (`readers.RawMeasurement.doc`) and a value kept by the RAW spec is: by orjson, else by the
    standard parser, which is lenient where orjson is strict and takes every text the RAW spec
    lets through (1e999, lone surrogates, integers beyond 64 bits)."""
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError:
        return json.loads(bytes(text))


# -- observations -----------------------------------------------------------------------------
#
# `extract` is `dideban.pipeline.observations.extract` (see its docstring for what it does),
# compiled. It reads a test_keys dict (whole, or pruned by `decode_pruned`: it reads only
# the keys of `fields.PRUNE_SPEC`) and builds the observations, the HTTP exchanges and the
# fingerprint matches. The Python classes (as the SlotMakers that build them) and the rarely
# used helpers come from `dideban.pipeline.observations`, which binds them here when it is
# imported (`bind`).

cdef object as_text = None
cdef object title_of = None


# -- building slots dataclasses --------------------------------------------------------------

cdef extern from "Python.h":
    ctypedef struct PyTypeObject
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    object PyType_GenericAlloc(PyTypeObject *tp, Py_ssize_t nitems)
    PyObject **PySequence_Fast_ITEMS(object sequence)  # of a tuple: its items in place


cdef enum:
    T_OBJECT_EX = 16    # structmember.h: an object slot (AttributeError while unset)
    MAX_SLOTS = 64


@cython.final
cdef class SlotMaker:
    """`SlotMaker(cls)(*values)` is `cls(*values)` for a dataclass made with `slots=True`
    whose every field is given, in order, without running the generated `__init__` (a Python
    function: 18 attribute stores cost ~5x what writing the slots costs here). The instance
    is allocated as `cls.__new__` would, then each value is stored in its field's slot.

    `SlotMaker(cls, cls.__slots__)` does the same for a plain class with `__slots__`, its
    values in the order of `__slots__`: the caller stands in for the class's own `__init__`
    and must store what it would (readers.RawMeasurement: one per measurement read).

    Refused (TypeError) at construction: a class that is not a slots dataclass (or, given
    `slots`, whose `__slots__` are not those), that has a `__post_init__` or a base with
    fields of its own, or a field that is not a plain slot; and at call, a number of values
    that is not the number of fields."""

    cdef object cls
    cdef readonly tuple names
    cdef Py_ssize_t count
    cdef Py_ssize_t offsets[MAX_SLOTS]

    def __init__(self, cls, slots=None):
        import dataclasses

        if slots is not None:
            names = tuple(slots)
            if not isinstance(cls, type) or cls.__dict__.get("__slots__") != slots:
                raise TypeError(f"{cls!r}: {slots!r} are not its __slots__")
            if cls.__mro__[1:] != (object,) or cls.__new__ is not object.__new__:
                raise TypeError(f"{cls.__name__}: its own __new__ or a base class is not supported")
        else:
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise TypeError(f"{cls!r} is not a dataclass")
            if hasattr(cls, "__post_init__") or cls.__mro__[1:] != (object,):
                raise TypeError(f"{cls.__name__}: __post_init__ or a base class is not supported")
            names = tuple(f.name for f in dataclasses.fields(cls))
            if cls.__dict__.get("__slots__") != names:
                raise TypeError(f"{cls.__name__} is not a dataclass made with slots=True")
            # The __init__ dataclasses generates (compiled from a string), not the class's own.
            init_code = getattr(cls.__dict__.get("__init__"), "__code__", None)
            if getattr(init_code, "co_filename", None) != "<string>" or (
                cls.__new__ is not object.__new__
            ):
                raise TypeError(f"{cls.__name__}: its own __new__ or __init__ is not supported")
        if len(names) > MAX_SLOTS:
            raise TypeError(f"{cls.__name__}: more than {MAX_SLOTS} slots")
        offsets = dict(class_layout(cls)[0])  # (TypeError for a slot not an object slot)
        for k, name in enumerate(names):
            if name not in offsets:
                raise TypeError(f"{cls.__name__}.{name} is not a slot")
            self.offsets[k] = offsets[name]
        self.cls = cls
        self.names = names
        self.count = len(names)

    cdef object make(self, tuple values):
        if len(values) != self.count:
            raise TypeError(
                f"{self.cls.__name__} takes {self.count} values, not {len(values)}"
            )
        return self.make_from(PySequence_Fast_ITEMS(values))

    cdef inline object make_from(self, PyObject **values):
        """The instance from `count` values at `values` (borrowed references; each slot
        takes a new one)."""
        cdef Py_ssize_t k
        cdef PyObject *v
        cdef PyObject **slot
        obj = PyType_GenericAlloc(<PyTypeObject *>self.cls, 0)
        for k in range(self.count):
            v = values[k]
            Py_INCREF(<object>v)
            slot = <PyObject **>(<char *><PyObject *>obj + self.offsets[k])
            slot[0] = v
        return obj

    def __call__(self, *values):
        return self.make(values)


cdef SlotMaker _OBSERVATION, _HTTP_EXCHANGE, _MATCH, _EXTRACTED

# Observation's fields, in the order `_observation` takes them (`bind` checks the class).
OBSERVATION_FIELDS = (
    "measurement_uid", "observation_idx", "kind", "transaction_id", "hostname", "ip", "port",
    "dns_engine", "dns_answer", "tls_server_name", "http_request_url", "http_status_code",
    "http_body_length", "http_title", "failure", "t0", "t", "fingerprints",
)


cdef object _observation(
    object uid, object idx, object kind, object tid, object hostname, object ip, object port,
    object engine, object answer, object sni, object url, object code, object blen,
    object title, object failure, object t0, object t, object fingerprints,
):
    """An Observation from each of its fields (OBSERVATION_FIELDS), written to its slots
    without a tuple of them on the way (one per observation, ~8 a measurement)."""
    cdef PyObject *v[18]
    v[0] = <PyObject *>uid
    v[1] = <PyObject *>idx
    v[2] = <PyObject *>kind
    v[3] = <PyObject *>tid
    v[4] = <PyObject *>hostname
    v[5] = <PyObject *>ip
    v[6] = <PyObject *>port
    v[7] = <PyObject *>engine
    v[8] = <PyObject *>answer
    v[9] = <PyObject *>sni
    v[10] = <PyObject *>url
    v[11] = <PyObject *>code
    v[12] = <PyObject *>blen
    v[13] = <PyObject *>title
    v[14] = <PyObject *>failure
    v[15] = <PyObject *>t0
    v[16] = <PyObject *>t
    v[17] = <PyObject *>fingerprints
    return _OBSERVATION.make_from(v)


# -- slot classes read from their C layout (_layouts.pxd) -------------------------------------

from dideban.pipeline._layouts cimport (
    DidebanExtracted, DidebanExtracted_names, DidebanExtracted_offsets,
    DidebanHttpExchange, DidebanHttpExchange_names, DidebanHttpExchange_offsets,
    DidebanMatch, DidebanMatch_names, DidebanMatch_offsets,
    DidebanObservation, DidebanObservation_names, DidebanObservation_offsets,
    DidebanRawMeasurement, DidebanRawMeasurement_names, DidebanRawMeasurement_offsets,
)


cdef tuple _layout(const char *const *names, const Py_ssize_t *offsets, Py_ssize_t size):
    """((name, offset) of each slot, instance size) of a struct of `_layouts.pxd`."""
    cdef Py_ssize_t k = 0
    slots = []
    while names[k] != NULL:
        slots.append((names[k].decode("ascii"), offsets[k]))
        k += 1
    return tuple(slots), size


def layouts():
    """The C layouts of `_layouts.pxd`, by class (module.qualname): ((name, offset) of each
    slot, instance size)."""
    return {
        "dideban.model.verdict.Observation": _layout(
            DidebanObservation_names, DidebanObservation_offsets, sizeof(DidebanObservation)),
        "dideban.pipeline.observations.Extracted": _layout(
            DidebanExtracted_names, DidebanExtracted_offsets, sizeof(DidebanExtracted)),
        "dideban.pipeline.observations.HttpExchange": _layout(
            DidebanHttpExchange_names, DidebanHttpExchange_offsets, sizeof(DidebanHttpExchange)),
        "dideban.pipeline.fingerprints.Match": _layout(
            DidebanMatch_names, DidebanMatch_offsets, sizeof(DidebanMatch)),
        "dideban.pipeline.readers.RawMeasurement": _layout(
            DidebanRawMeasurement_names, DidebanRawMeasurement_offsets,
            sizeof(DidebanRawMeasurement)),
    }


def class_layout(cls):
    """((name, offset) of each of the class's own slots, by offset; instance size), as
    CPython laid them out. TypeError for a slot that is not an object slot."""
    import types

    slots = []
    for name, descr in cls.__dict__.items():
        if type(descr) is types.MemberDescriptorType:
            if (<PyMemberDescrObject *><PyObject *>descr).d_member.type != T_OBJECT_EX:
                raise TypeError(f"{cls.__name__}.{name} is not an object slot")
            slots.append((name, (<PyMemberDescrObject *><PyObject *>descr).d_member.offset))
    slots.sort(key=lambda slot: slot[1])
    return tuple(slots), cls.__basicsize__


def check_layouts(*classes, expected=None):
    """That each class is laid out as its struct in `_layouts.pxd` says (compiled modules
    read their fields from it, see `_records.pxd`): the same slots at the same offsets, the
    same instance size, no base with fields of its own. ImportError saying what differs
    otherwise. `expected`: the layouts to check against (default `layouts()`)."""
    known = layouts() if expected is None else expected
    for cls in classes:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key not in known:
            raise ImportError(f"{key}: no C layout in _layouts.pxd")
        if cls.__mro__[1:] != (object,):
            raise ImportError(f"{key}: a class with a base is not supported")
        have = class_layout(cls)
        if have != known[key]:
            raise ImportError(
                f"{key} changed: its slots and size are {have}, _layouts.pxd says {known[key]}"
            )


def bind(observation, extracted, http_exchange, match, as_text_, title_of_):
    global as_text, title_of, _OBSERVATION, _HTTP_EXCHANGE, _MATCH, _EXTRACTED
    maker = SlotMaker(observation)
    if maker.names != OBSERVATION_FIELDS:
        raise TypeError(f"{observation.__name__}'s fields changed: update _observation")
    as_text, title_of = as_text_, title_of_
    _OBSERVATION = maker
    _HTTP_EXCHANGE = SlotMaker(http_exchange)
    _MATCH = SlotMaker(match)
    _EXTRACTED = SlotMaker(extracted)


# JSON values as the decoders make them, checked by exact class (bool is not a number).
cdef inline object _s(object v):
    return v if type(v) is str else None


cdef inline object _i(object v):
    """An integer the store's BIGINT columns hold; None for any other value."""
    if type(v) is int and -9223372036854775808 <= v <= 9223372036854775807:
        return v
    return None


cdef inline object _n(object v):
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    return None


cdef inline object _get(object d, str key):
    """d[key] or None, for a dict d."""
    cdef PyObject *v = PyDict_GetItemWithError(d, key)
    if v == NULL:
        return None
    return <object>v


# The archival records the extraction reads, as records: the keys, in the order of the tuple
# `decode_pruned` makes for a tuple spec (`fields.PRUNE_SPEC` is built from these), and the
# index of each.
QUERY = ("transaction_id", "hostname", "engine", "failure", "t0", "t", "answers")
ANSWER = ("ipv4", "ipv6", "hostname", "answer_type")
TCP_CONNECT = ("transaction_id", "ip", "port", "status", "t0", "t")
TCP_STATUS = ("failure",)
TLS_HANDSHAKE = ("transaction_id", "address", "server_name", "failure", "t0", "t")
REQUEST = ("transaction_id", "request", "response", "failure", "t0", "t")
REQUEST_REQUEST = ("url",)
REQUEST_RESPONSE = ("body", "headers_list", "headers", "code")
# (The same tuples as C globals: the extraction reads them per record without a lookup.)
cdef tuple _QUERY = QUERY, _ANSWER = ANSWER, _TCP_CONNECT = TCP_CONNECT
cdef tuple _TCP_STATUS = TCP_STATUS, _TLS_HANDSHAKE = TLS_HANDSHAKE, _REQUEST = REQUEST
cdef tuple _REQUEST_REQUEST = REQUEST_REQUEST, _REQUEST_RESPONSE = REQUEST_RESPONSE

cdef enum:
    Q_TID, Q_HOSTNAME, Q_ENGINE, Q_FAILURE, Q_T0, Q_T, Q_ANSWERS
    A_IPV4 = 0, A_IPV6, A_HOSTNAME, A_TYPE
    C_TID = 0, C_IP, C_PORT, C_STATUS, C_T0, C_T
    S_FAILURE = 0
    H_TID = 0, H_ADDRESS, H_SERVER_NAME, H_FAILURE, H_T0, H_T
    R_TID = 0, R_REQUEST, R_RESPONSE, R_FAILURE, R_T0, R_T
    RQ_URL = 0
    RS_BODY = 0, RS_HEADERS_LIST, RS_HEADERS, RS_CODE


cdef inline tuple _record(object value, tuple keys):
    """A record: a tuple as `decode_pruned` made it, or the same tuple from a whole
    document's object; None for any other JSON value."""
    if type(value) is tuple:
        return value
    if type(value) is dict:
        return tuple([_get(value, k) for k in keys])
    return None


cdef list _headers_of(tuple resp):
    """A response's headers as (name, value) pairs: from `headers_list` (values as text,
    pairs that are not [str, value] left out), else from the `headers` object."""
    cdef list out = []
    hl = resp[RS_HEADERS_LIST]
    if type(hl) is list:
        for item in <list>hl:
            if (type(item) is list or type(item) is tuple) and len(item) == 2:
                k, v = item
                if type(k) is str:
                    if type(v) is str:
                        # A pair decoded as a tuple (the pruned decode) is the pair itself.
                        out.append(item if type(item) is tuple else (k, v))
                        continue
                    v = as_text(v)
                    if v is not None:
                        out.append((k, v))
        if out:
            return out
    h = resp[RS_HEADERS]
    if type(h) is bytes:  # kept as its text by the pruned decode (fields.PRUNE_SPEC)
        h = decode_raw(h)
    if type(h) is dict:
        for k, v in (<dict>h).items():
            text = v if type(v) is str else as_text(v)
            if isinstance(k, str) and text is not None:
                out.append((k, text))
    return out


cdef tuple _NO_RESPONSE = (None, None, None, None)
cdef Py_ssize_t HEADER_MEMO = 4096  # header names remembered in a FingerprintDB.header_memo


cdef tuple _split_address(object address):
    """("host", port) of "host:port" or "[v6]:port"; the port is None unless it is 1 to 5
    ASCII digits up to 65535; (address, None) for a string without ":", (None, None) for a
    value that is not a string."""
    cdef str text, host, port
    cdef Py_ssize_t colon, k, n
    cdef long value = 0, digit
    if type(address) is not str:
        return (None, None)
    text = <str>address
    colon = text.rfind(":")
    if colon < 0:
        return (text, None)
    host = text[:colon].strip("[]")
    n = len(text) - colon - 1
    if n < 1 or n > 5:
        return (host, None)
    for k in range(colon + 1, len(text)):
        digit = <long>(<Py_UCS4>text[k]) - 48
        if digit < 0 or digit > 9:
            return (host, None)
        value = value * 10 + digit
    return (host, value if value <= 65535 else None)


cdef list _fp_names(list found, list matches, str probe_cc):
    """The names of the fingerprints found; each is listed in `matches` too, with whether
    it confirms blocking in the probe's country."""
    cdef list out = []
    for fp in found:
        matches.append(_MATCH.make((fp, fp.confirms(probe_cc))))
        out.append(fp.name)
    return out


# What `extract` uses of a FingerprintDB, read once per database (its bound methods are new
# objects at each read): (match_dns, dns_exact, match_body, header_index, header_memo). A
# database's attributes do not change once it is built. The cache is one (database, parts)
# pair, read and replaced whole.
cdef tuple _db_cache = (None, None)


cdef tuple _db_parts(fpdb):
    global _db_cache
    cdef tuple cached = _db_cache
    if cached[0] is fpdb:
        return <tuple>cached[1]
    parts = (fpdb.match_dns, fpdb.dns_exact, fpdb.match_body, fpdb.header_index,
             fpdb.header_memo)
    _db_cache = (fpdb, parts)
    return parts


def extract(dict test_keys, str uid, str probe_cc, fpdb):
    cdef list obs = [], matches = [], http = [], dns = [], tcp = [], tls = []
    cdef list names
    cdef bint any_answer
    cdef object found
    cdef tuple rec, a, status, req, resp
    cdef PyObject *memo

    queries = _get(test_keys, "queries")
    if type(queries) is list:
        match_dns, dns_exact = _db_parts(fpdb)[:2]
        for q in <list>queries:
            rec = _record(q, _QUERY)
            if rec is None:
                continue
            tid = _i(rec[Q_TID])
            hostname = _s(rec[Q_HOSTNAME])
            engine = _s(rec[Q_ENGINE])
            failure = _s(rec[Q_FAILURE])
            t0 = _n(rec[Q_T0])
            t = _n(rec[Q_T])
            answers = rec[Q_ANSWERS]
            any_answer = False
            if type(answers) is list:
                for answer in <list>answers:
                    a = _record(answer, _ANSWER)
                    if a is None:
                        continue
                    any_answer = True
                    value = _s(a[A_IPV4]) or _s(a[A_IPV6]) or _s(a[A_HOSTNAME])
                    atype = a[A_TYPE]
                    is_ip = atype == "A" or atype == "AAAA"
                    if not value:
                        found = None
                    elif type(dns_exact) is dict:
                        found = (<dict>dns_exact).get(value)
                    else:
                        found = match_dns(value)
                    o = _observation(
                        uid, len(obs), "dns", tid, hostname, value if is_ip else None, None,
                        engine, value, None, None, None, None, None, failure, t0, t,
                        _fp_names(found, matches, probe_cc) if found else [],
                    )
                    obs.append(o)
                    dns.append(o)
            if not any_answer:
                o = _observation(
                    uid, len(obs), "dns", tid, hostname, None, None, engine, None, None, None,
                    None, None, None, failure, t0, t, [],
                )
                obs.append(o)
                dns.append(o)
    connects = _get(test_keys, "tcp_connect")
    if type(connects) is list:
        for c in <list>connects:
            rec = _record(c, _TCP_CONNECT)
            if rec is None:
                continue
            status = _record(rec[C_STATUS], _TCP_STATUS)
            failure = _s(status[S_FAILURE]) if status is not None else None
            o = _observation(
                uid, len(obs), "tcp", _i(rec[C_TID]), None, _s(rec[C_IP]), _i(rec[C_PORT]),
                None, None, None, None, None, None, None, failure, _n(rec[C_T0]),
                _n(rec[C_T]), [],
            )
            obs.append(o)
            tcp.append(o)
    handshakes = _get(test_keys, "tls_handshakes")
    if type(handshakes) is list:
        for h in <list>handshakes:
            rec = _record(h, _TLS_HANDSHAKE)
            if rec is None:
                continue
            ip, port = _split_address(rec[H_ADDRESS])
            o = _observation(
                uid, len(obs), "tls", _i(rec[H_TID]), None, ip, port, None, None,
                _s(rec[H_SERVER_NAME]), None, None, None, None, _s(rec[H_FAILURE]),
                _n(rec[H_T0]), _n(rec[H_T]), [],
            )
            obs.append(o)
            tls.append(o)
    requests = _get(test_keys, "requests")
    if type(requests) is list:
        _, _, match_body, header_index, header_memo = _db_parts(fpdb)
        for r in <list>requests:
            rec = _record(r, _REQUEST)
            if rec is None:
                continue
            req = _record(rec[R_REQUEST], _REQUEST_REQUEST)
            resp = _record(rec[R_RESPONSE], _REQUEST_RESPONSE)
            if resp is None:
                resp = _NO_RESPONSE
            # The body: UTF-8 bytes from the pruned decode, text from a whole document.
            raw_body = resp[RS_BODY]
            body = raw_body if type(raw_body) is str or type(raw_body) is bytes else as_text(raw_body)
            headers = _headers_of(resp)
            code = _i(resp[RS_CODE])
            names = []
            if body:
                found = match_body(body)
                if found:
                    names += _fp_names(found, matches, probe_cc)
            for k, v in headers:
                # The fingerprints of the name (what match_header looks up by its lower
                # case), remembered by the name as written: None for a name none looks at.
                memo = PyDict_GetItem(<dict>header_memo, k)
                if memo == NULL:
                    index = (<dict>header_index).get(k.lower())
                    if len(<dict>header_memo) < HEADER_MEMO:
                        (<dict>header_memo)[k] = index
                else:
                    index = <object>memo
                if index is not None:
                    found = (<HeaderIndex>index).match(v)
                    if found:
                        names += _fp_names(found, matches, probe_cc)
            title = title_of(body)
            url = _s(req[RQ_URL]) if req is not None else None
            if body is None:
                blen = None
            elif type(body) is bytes or body.isascii():
                blen = len(body)
            else:
                blen = len(body.encode("utf-8", "replace"))
            failure = _s(rec[R_FAILURE])
            http.append(_HTTP_EXCHANGE.make((url, failure, code, headers, title, blen)))
            o = _observation(
                uid, len(obs), "http", _i(rec[R_TID]), None, None, None, None, None, None,
                url, code if code else None, blen, title, failure, _n(rec[R_T0]),
                _n(rec[R_T]), names,
            )
            obs.append(o)
    return _EXTRACTED.make((obs, matches, http, dns, tcp, tls))


# -- start times ------------------------------------------------------------------------------

from cpython.datetime cimport datetime_new, import_datetime

import_datetime()

cdef int _DAYS[13]
_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef inline int _digits(const char *p, int count) noexcept:
    """The value of `count` ASCII digits at p, or -1."""
    cdef int v = 0, k
    for k in range(count):
        if not (48 <= p[k] <= 57):
            return -1
        v = v * 10 + (p[k] - 48)
    return v


def ooni_time(str text):
    """`text` as a naive datetime when it is exactly OONI's "YYYY-mm-dd HH:MM:SS" (ASCII
    digits) and names a moment that exists; None for any other text, which the caller
    parses in full (`analysis._parse_time`). For the texts it takes, the same datetime as
    `datetime.fromisoformat`."""
    cdef const char *p
    cdef int y, mo, d, h, mi, sec, last
    if len(text) != 19 or not text.isascii():
        return None
    p = <const char *>PyUnicode_DATA(text)
    if p[4] != 45 or p[7] != 45 or p[10] != 32 or p[13] != 58 or p[16] != 58:
        return None
    y = _digits(p, 4)
    mo = _digits(p + 5, 2)
    d = _digits(p + 8, 2)
    h = _digits(p + 11, 2)
    mi = _digits(p + 14, 2)
    sec = _digits(p + 17, 2)
    if y < 1 or not (1 <= mo <= 12) or d < 1 or not (0 <= h <= 23) or not (0 <= mi <= 59):
        return None
    if not (0 <= sec <= 59):
        return None
    last = _DAYS[mo]
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        last = 29
    if d > last:
        return None
    return datetime_new(y, mo, d, h, mi, sec, 0, None)


# -- the page title ----------------------------------------------------------------------------

cdef inline bint _is_tag(const unsigned char *s, const char *lower_name, Py_ssize_t size) noexcept:
    """Whether s[:size] is lower_name, ASCII letters in any case."""
    cdef Py_ssize_t k
    cdef unsigned char c
    for k in range(size):
        c = s[k]
        if 65 <= c <= 90:
            c += 32
        if c != <unsigned char>lower_name[k]:
            return False
    return True


def title_span(bytes body, Py_ssize_t span):
    """Where `<title[^>]*>([^<]*)</title` (IGNORECASE) finds the title in a page given as its
    UTF-8: (start, end) of the group in bytes, None for no title, or False when the page must
    be searched as text instead (longer than `span` bytes: the search is limited to `span`
    characters; or holding "İ" or "ı", which IGNORECASE on text lets "i" match).

    The pattern can match at a "<title" in one way only (to the first ">" after it, then to
    the first "<", which must start "</title"), so each "<title" is tried in turn."""
    cdef const unsigned char *s = <const unsigned char *><const char *>body
    cdef Py_ssize_t n = len(body)
    cdef const unsigned char *p
    cdef Py_ssize_t at = 0, gt, lt
    if n > span:
        return False
    p = <const unsigned char *>memchr(s, 0xC4, n)
    while p != NULL:
        if p + 1 < s + n and (p[1] == 0xB0 or p[1] == 0xB1):
            return False
        p = <const unsigned char *>memchr(p + 1, 0xC4, s + n - p - 1)
    while True:
        p = <const unsigned char *>memchr(s + at, 60, n - at)  # "<"
        if p == NULL:
            return None
        at = p - s
        if at + 6 > n:
            return None
        if not _is_tag(p + 1, "title", 5):
            at += 1
            continue
        p = <const unsigned char *>memchr(s + at + 6, 62, n - at - 6)  # ">"
        if p == NULL:
            return None  # none after this "<title", nor after any later one
        gt = p - s
        p = <const unsigned char *>memchr(s + gt + 1, 60, n - gt - 1)
        if p == NULL:
            return None
        lt = p - s
        if lt + 7 <= n and s[lt + 1] == 47 and _is_tag(p + 2, "title", 5):
            return (gt + 1, lt)
        at += 1


# -- many literals in one text ---------------------------------------------------------------

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL


cdef enum:
    GRAM_BITS = 18     # the 4-byte gram filter: 2^18 bits (32 KB)
    STRIDE = 5         # long words: a 4-byte gram at every 5th position of the text
    SHORT_STRIDE = 3   # 4 to 7 byte words: a 2-byte gram at every 3rd position
    # `find` runs both scans in turns of STRIDE * SHORT_STRIDE bytes (SHORT_STRIDE long and
    # STRIDE short places); a turn at q reads the text up to q + LONG_READ and q + SHORT_READ.
    TURN = STRIDE * SHORT_STRIDE
    LONG_READ = (SHORT_STRIDE - 1) * STRIDE + 4
    SHORT_READ = (STRIDE - 1) * SHORT_STRIDE + 2


ctypedef struct _Slot:
    uint32_t key        # the gram
    int first           # index of its first entry; -1: empty slot
    int count           # its entries

ctypedef struct _Entry:
    uint64_t window     # the word's anchor window (`width` bytes at `anchor`) as an integer
    const char *text    # the word (its bytes, kept alive by the LiteralSet)
    int size            # its length
    int back            # where the gram is in it
    int anchor
    int word            # its index


@cython.final
cdef class _Grams:
    """Grams (4 or 2 bytes, as a uint32) -> the entries of the words that hold the gram
    `back` bytes after their start: an open-addressed table of slots over an array of
    entries (looked up only where the filter bitmap says the gram may be one of them). An
    entry holds all the comparison needs, so that it touches no Python object, and a slot or
    an entry is one read from memory (a struct each: the table is ~0.3 MB, mostly out of the
    closest caches when a page hits it): the word (its bytes and length), and its anchor
    window, compared first (a common gram, "news", is rarely followed by the rest of a
    fingerprint's window)."""
    cdef _Slot *slots
    cdef _Entry *entries
    cdef uint32_t mask
    cdef int width

    def __cinit__(self, dict grams, list words, int width):
        """`grams`: gram -> [(word index, back, anchor)]; `words`: bytes; `width`: 8 or 4."""
        cdef uint32_t size = 16, slot
        cdef int e = 0
        cdef bytes w
        cdef uint64_t v
        while size < 2 * len(grams):
            size *= 2
        self.mask = size - 1
        self.width = width
        total = sum(len(v) for v in grams.values())
        self.slots = <_Slot *>malloc(size * sizeof(_Slot))
        self.entries = <_Entry *>malloc((total + 1) * sizeof(_Entry))
        if not (self.slots and self.entries):
            raise MemoryError()
        for slot in range(size):
            self.slots[slot].first = -1
        for gram, entries in grams.items():
            slot = _hash4(gram) & self.mask
            while self.slots[slot].first != -1:
                slot = (slot + 1) & self.mask
            self.slots[slot].key = gram
            self.slots[slot].first = e
            self.slots[slot].count = len(entries)
            for k, b, at in entries:
                w = <bytes>words[k]
                if at < 0 or at + width > len(w):
                    raise ValueError("anchor window outside the word")
                v = 0
                memcpy(&v, <const char *>w + <Py_ssize_t>at, width)
                self.entries[e].word = k
                self.entries[e].back = b
                self.entries[e].anchor = at
                self.entries[e].window = v
                self.entries[e].text = <const char *>w
                self.entries[e].size = len(w)
                e += 1

    def __dealloc__(self):
        free(self.slots)
        free(self.entries)

    cdef inline const _Slot *find(self, uint32_t gram) noexcept:
        """The gram's slot, or NULL."""
        cdef uint32_t slot = _hash4(gram) & self.mask
        while self.slots[slot].first != -1:
            if self.slots[slot].key == gram:
                return &self.slots[slot]
            slot = (slot + 1) & self.mask
        return NULL


cdef class LiteralSet:
    """Every occurrence of every word (overlapping ones too) in a text, by the words' UTF-8.

    OONI's body fingerprints are ~1,300 literals. An Aho-Corasick automaton that large misses
    the cache at most bytes (~3 ns a byte). Here the text is sampled, not read byte by byte
    (after Wu and Manber): each word of 8 bytes or more is anchored on one of its 8-byte
    windows, the one whose 4-byte grams are rarest among all the words (prefixes such as
    "<title>" and "http://" are shared by hundreds). Every occurrence of an 8-byte anchor
    covers five 4-byte grams, one of them at a multiple of 5 in the text: so only every 5th
    position is looked at, its 4 bytes hashed into a 2^18-bit filter of the anchors' grams
    (32 KB, stays in cache), and only where a bit is set are the words holding that gram
    compared in full at the start it implies. Words of 4 to 7 bytes are found the same way,
    from three consecutive 2-byte grams (the rarest) at every 3rd position; the few shorter
    ones are searched for on their own."""
    cdef list words            # bytes
    cdef _Grams long_grams     # 4-byte grams of the anchors
    cdef _Grams short_grams    # 2-byte grams of the 4 to 7 byte words
    cdef bint any_short
    cdef list tiny             # indexes of words shorter than 4 bytes
    cdef unsigned char bits4[1 << (GRAM_BITS - 3)]
    cdef unsigned char bits2[1 << (16 - 3)]

    def __init__(self, words):
        cdef uint32_t g4
        cdef uint16_t g2
        cdef unsigned int h
        self.words = [w.encode("utf-8") for w in words]
        self.tiny = []
        memset(self.bits4, 0, sizeof(self.bits4))
        memset(self.bits2, 0, sizeof(self.bits2))
        common4 = _commonness(self.words, 4)
        common2 = _commonness(self.words, 2)
        long_grams = {}
        short_grams = {}
        for k, w in enumerate(self.words):
            if not w:
                raise ValueError("empty word")
            if len(w) >= 8:
                # The 8-byte window (five 4-byte grams) whose grams are rarest.
                window = _window(w, 4, STRIDE, common4)
                for back in window:
                    memcpy(&g4, <const char *>w + <Py_ssize_t>back, 4)
                    long_grams.setdefault(g4, []).append((k, back, window.start))
                    h = _hash4(g4)
                    self.bits4[h >> 3] |= 1 << (h & 7)
            elif len(w) >= 4:
                # The 4-byte window (three 2-byte grams) whose grams are rarest.
                window = _window(w, 2, SHORT_STRIDE, common2)
                for back in window:
                    memcpy(&g2, <const char *>w + <Py_ssize_t>back, 2)
                    short_grams.setdefault(g2, []).append((k, back, window.start))
                    self.bits2[g2 >> 3] |= 1 << (g2 & 7)
            else:
                self.tiny.append(k)
        self.long_grams = _Grams(long_grams, self.words, 8)
        self.short_grams = _Grams(short_grams, self.words, 4)
        self.any_short = len(short_grams) > 0

    cdef int _check(self, _Grams grams, uint32_t gram, Py_ssize_t q, const char *s,
                    Py_ssize_t n, list hits) except -1:
        """The words that hold `gram` and so might start just before q: those that do."""
        cdef const _Slot *slot = grams.find(gram)
        cdef const _Entry *e
        cdef const _Entry *last
        cdef Py_ssize_t start
        cdef uint64_t v
        if slot == NULL:
            return 0
        e = grams.entries + slot.first
        last = e + slot.count
        while e < last:
            start = q - e.back
            if start >= 0 and start + e.size <= n:
                v = 0
                if grams.width == 8:
                    memcpy(&v, s + start + e.anchor, 8)
                else:
                    memcpy(&v, s + start + e.anchor, 4)
                if v == e.window and memcmp(s + start, e.text, e.size) == 0:
                    hits.append((e.word, start, start + e.size))
            e += 1
        return 0

    cdef inline int _long_at(self, Py_ssize_t q, const char *s, Py_ssize_t n, list hits) except -1:
        """The long words whose anchor's gram at q is in the filter, checked."""
        cdef uint32_t g4
        cdef unsigned int h
        memcpy(&g4, s + q, 4)
        h = _hash4(g4)
        if self.bits4[h >> 3] & (1 << (h & 7)):
            self._check(self.long_grams, g4, q, s, n, hits)
        return 0

    cdef inline int _short_at(self, Py_ssize_t q, const char *s, Py_ssize_t n, list hits) except -1:
        """The 4 to 7 byte words whose anchor's gram at q is in the filter, checked."""
        cdef uint16_t g2
        memcpy(&g2, s + q, 2)
        if self.bits2[g2 >> 3] & (1 << (g2 & 7)):
            self._check(self.short_grams, g2, q, s, n, hits)
        return 0

    def find(self, text):
        """([(word index, start, end)], size): every occurrence in `text` (str, or its UTF-8
        as bytes), as byte offsets in no particular order, and the text's size in bytes. A
        str with lone surrogates (from \\ud800-style escapes) is searched as "surrogatepass"
        encodes it."""
        cdef Py_ssize_t n, q, size, start
        cdef const char *s
        cdef list hits = []
        cdef bytes w
        cdef bytes encoded
        cdef const char *found
        if type(text) is str:
            try:
                s = PyUnicode_AsUTF8AndSize(text, &n)
            except UnicodeEncodeError:
                encoded = (<str>text).encode("utf-8", "surrogatepass")
                s = encoded
                n = len(encoded)
        elif type(text) is bytes:
            s = <bytes>text
            n = len(<bytes>text)
        else:
            raise TypeError(f"a str or bytes to search, not {type(text).__name__}")
        q = 0
        if self.any_short:
            # Both scans in one loop, a turn at a time, while every place of the turn has its
            # gram in the text; then each scan on its own to the end. The turn's places are
            # written out, SHORT_STRIDE (3) long and STRIDE (5) short: a loop over them costs
            # 1.2% of a measurement's instructions. (A test finds words at every offset.)
            while q + LONG_READ <= n and q + SHORT_READ <= n:
                self._long_at(q, s, n, hits)
                self._long_at(q + STRIDE, s, n, hits)
                self._long_at(q + 2 * STRIDE, s, n, hits)
                self._short_at(q, s, n, hits)
                self._short_at(q + SHORT_STRIDE, s, n, hits)
                self._short_at(q + 2 * SHORT_STRIDE, s, n, hits)
                self._short_at(q + 3 * SHORT_STRIDE, s, n, hits)
                self._short_at(q + 4 * SHORT_STRIDE, s, n, hits)
                q += TURN
        start = q
        while q + 4 <= n:
            self._long_at(q, s, n, hits)
            q += STRIDE
        if self.any_short:
            q = start
            while q + 2 <= n:
                self._short_at(q, s, n, hits)
                q += SHORT_STRIDE
        for k in self.tiny:
            # At each place of the word's first byte (memchr is vectorised; a non-ASCII
            # lead byte, as in "\ufffd", is rare in a page).
            w = <bytes>self.words[k]
            size = len(w)
            q = 0
            while q + size <= n:
                found = <const char *>memchr(s + q, (<const unsigned char *><const char *>w)[0],
                                             n - size + 1 - q)
                if found == NULL:
                    break
                start = found - s
                if memcmp(found, <const char *>w, size) == 0:
                    hits.append((k, start, start + size))
                q = start + 1
        return hits, n


@cython.final
cdef class HeaderIndex:
    """The fingerprints of one header name (`FingerprintDB`): `match(value)` is
    `FingerprintDB.match_header(name, value)`. The `full` values in a dict (value -> indexes
    of their fingerprints), the prefix and contains patterns in one LiteralSet (`literals`:
    per word of the set, (index, is a prefix): a prefix must be found at 0), the regexps
    compiled ((index, pattern)). The matches in the order of `fingerprints`.

    The extraction finds the index of a header name as a page writes it in
    `FingerprintDB.header_memo` and calls `match` from C."""
    cdef readonly list fingerprints
    cdef dict fulls
    cdef LiteralSet literal_set
    cdef list literals
    cdef list regexps

    def __init__(self, list fingerprints not None, dict fulls not None, LiteralSet literal_set,
                 list literals not None, list regexps not None):
        self.fingerprints = fingerprints
        self.fulls = fulls
        self.literal_set = literal_set
        self.literals = literals
        self.regexps = regexps

    cpdef list match(self, str value):
        cdef set found = set()
        cdef list hits
        full = self.fulls.get(value)
        if full:
            found.update(full)
        if self.literal_set is not None:
            hits = self.literal_set.find(value)[0]
            for w, start, _ in hits:
                for k, anchored in <list>self.literals[w]:
                    if start == 0 or not anchored:
                        found.add(k)
        for k, rx in self.regexps:
            if rx.search(value) is not None:
                found.add(k)
        if not found:
            return []
        return [self.fingerprints[k] for k in sorted(found)]


def _commonness(list words, int size):
    """How many of the words hold each gram of `size` bytes: how common it is in the texts
    searched too (the words are HTML, as the bodies are)."""
    common = {}
    for w in words:
        for g in {w[o:o + size] for o in range(len(w) - size + 1)}:
            common[g] = common.get(g, 0) + 1
    return common


def _window(bytes w, int size, int stride, dict common):
    """The offsets in `w` of the `stride` consecutive grams of `size` bytes, rarest in all
    (an occurrence of the word puts one of them at a multiple of `stride` in the text): the
    first such run with the least sum of commonness. One pass, the sum slid along (the
    database's ~1,300 words are laid out once per FingerprintDB, at every start)."""
    cdef Py_ssize_t grams = len(w) - size + 1, o, best = 0
    cdef long total = 0, least
    if grams < stride:
        raise ValueError(f"a word of {len(w)} bytes has no run of {stride} grams of {size}")
    cdef list counts = [common[w[o:o + size]] for o in range(grams)]
    for o in range(stride):
        total += <long>counts[o]
    least = total
    for o in range(1, grams - stride + 1):
        total += <long>counts[o + stride - 1] - <long>counts[o - 1]
        if total < least:
            least, best = total, o
    return range(best, best + stride)


cdef inline unsigned int _hash4(uint32_t gram) noexcept:
    return (gram * 2654435761u) >> (32 - GRAM_BITS)
