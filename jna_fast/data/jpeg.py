"""A cheap check of a JPEG file's structure, run on every rawframes JPEG before it is decoded.

Why: DALI 2.4's CPU image decoder crashes the whole process now and then (a segmentation fault in its worker
threads) when one sample of a large batch fails to decode, e.g. one truncated flow JPEG among the 250 of a test
clip. So DALI must never be given a file it would fail on. Measured on 12,000 files, some 10,500 of them damaged
(truncated, overwritten with zeros or random bytes, bit flips, bytes deleted or inserted; baseline, progressive,
restart-marker, grey and colour files from OpenCV and Pillow), DALI fails on two kinds of damage, both found here
without decoding:

- the data ends before the image does (truncation: no end-of-image marker after the last scan);
- a header libjpeg refuses: not a JPEG, an unsupported coding (arithmetic, lossless, 12-bit), bad sampling
  factors, malformed or undefined Huffman or quantisation tables, bad scan parameters, an unknown marker.

Every damaged file that passed the check decoded in DALI (to wrong pixels where the entropy-coded data is damaged,
as with any decoder); the check is stricter than DALI on some (a stray marker in the image data, for one), which
are damaged all the same. The check also refuses an image whose size is not the expected one (the folder's flow size),
so that a damaged header can neither misplace the crops nor make a decoder allocate gigabytes. The PyAV backend
runs the same check, so both backends skip the same files (OpenCV would silently fill a truncated one with grey).

Cost: the headers (a few hundred bytes, the same in every file an encoder writes at one size) are checked once and
remembered; the rest of a file is scanned for markers with NumPy: about 13 us for a 320x240 flow JPEG,
which takes about 300 us to decode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..io.errors import DataError

_SOI, _EOI, _SOS, _DHT, _DQT, _DRI, _DNL, _COM = 0xD8, 0xD9, 0xDA, 0xC4, 0xDB, 0xDD, 0xDC, 0xFE
_SEQUENTIAL_FRAMES = (0xC0, 0xC1)  # SOF0 baseline, SOF1 extended sequential, both Huffman-coded
_PROGRESSIVE_FRAME = 0xC2
_UNSUPPORTED_FRAMES = {0xC3: "lossless", 0xC5: "differential sequential", 0xC6: "differential progressive",
                       0xC7: "differential lossless", 0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded progressive",
                       0xCB: "arithmetic-coded lossless", 0xCD: "differential arithmetic-coded",
                       0xCE: "differential arithmetic-coded progressive",
                       0xCF: "differential arithmetic-coded lossless"}
_APPLICATION = range(0xE0, 0xF0)
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RST0-7 and TEM carry no length
_TABLES = 4  # libjpeg's NUM_HUFF_TBLS and NUM_QUANT_TBLS
_MAX_BLOCKS_IN_MCU = 10
# Huffman tables 0 and 1 may be left out of a sequential JPEG (Motion-JPEG does): libjpeg-turbo then uses the
# standard ones. A progressive JPEG must define every table it uses.
_STANDARD_HUFFMAN_TABLES = 2

# A 0xFF byte starts a marker unless the next byte is 0x00 (a stuffed 0xFF of the entropy-coded data), 0xFF (fill)
# or RST0-7 (restart markers, which belong to the entropy-coded data).
_STARTS_MARKER = np.ones(256, dtype=bool)
_STARTS_MARKER[[0x00, 0xFF, *range(0xD0, 0xD8)]] = False


@dataclass
class _Tables:
    """What the headers read so far have defined."""

    frame: dict | None = None  # progressive, components: id -> {"blocks", "quantisation_table"}
    huffman: set = field(default_factory=set)  # (0 = DC | 1 = AC, table index)
    quantisation: set = field(default_factory=set)
    scans: int = 0

    def copy(self) -> "_Tables":
        return _Tables(self.frame, set(self.huffman), set(self.quantisation), self.scans)


def read_jpeg(path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """The bytes (uint8) of the JPEG file at ``path``, once :func:`jpeg_problem` finds nothing wrong with them;
    otherwise a DataError naming the file and the problem."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DataError(f"{path}: missing or unreadable file ({error.strerror})") from None
    problem = jpeg_problem(data, expected_size)
    if problem is not None:
        raise DataError(f"{path}: corrupt JPEG: {problem}")
    return data


def jpeg_problem(data: np.ndarray, expected_size: tuple[int, int] | None = None) -> str | None:
    """What makes the JPEG file in ``data`` (uint8, the whole file) undecodable, or None when its structure is
    sound; with ``expected_size`` (height, width), an image of another size is a problem too."""
    raw = data.tobytes()
    if len(raw) < 4 or raw[0] != 0xFF or raw[1] != _SOI:
        return "not a JPEG file (it does not start with the SOI marker)"
    candidates = np.flatnonzero(data[:-1] == 0xFF)
    markers = candidates[_STARTS_MARKER[data[candidates + 1]]]
    expected_size = None if expected_size is None else tuple(expected_size)
    scan_data = _first_scan_data(raw)
    if scan_data is None:  # irregular headers: walk them without the cache, for the message
        return _check_segments(raw, 2, _Tables(), markers, expected_size)
    problem, tables = _checked_headers(raw[:scan_data], expected_size)
    if problem is not None:
        return problem
    position = _marker_after_scan(markers, scan_data)
    if position is None:
        return "truncated (the image data stops before the end-of-image marker)"
    return _check_segments(raw, position, tables.copy(), markers, expected_size)


def _first_scan_data(raw: bytes) -> int | None:
    """Where the entropy-coded data of the first scan starts, hopping over the segments by their lengths (None if
    the headers are not a plain sequence of marker segments)."""
    position = 2
    while position + 4 <= len(raw) and raw[position] == 0xFF:
        marker = raw[position + 1]
        if marker == 0xFF or marker in _STANDALONE or marker in (_SOI, _EOI):
            return None
        end = position + 2 + ((raw[position + 2] << 8) | raw[position + 3])
        if marker == _SOS:
            return end if end <= len(raw) else None
        position = end
    return None


@functools.lru_cache(maxsize=64)  # the files of a dataset share a few headers: each is checked once
def _checked_headers(headers: bytes, expected_size) -> tuple[str | None, _Tables]:
    tables = _Tables()
    return _check_segments(headers, 2, tables, None, expected_size), tables


def _marker_after_scan(markers: np.ndarray, position: int) -> int | None:
    following = int(np.searchsorted(markers, position))
    return int(markers[following]) if following < len(markers) else None


def _check_segments(raw: bytes, position: int, tables: _Tables, markers: np.ndarray | None,
                    expected_size) -> str | None:
    """Check the marker segments from ``position`` to the end-of-image marker, following each scan's entropy-coded
    data to the next marker; with ``markers`` None (the headers alone), stop after the first scan header."""
    while True:
        if position >= len(raw) or raw[position] != 0xFF:
            return f"no marker where one must be (byte {position})"
        while position < len(raw) and raw[position] == 0xFF:
            position += 1
        if position >= len(raw):
            return "truncated (it ends inside a marker)"
        marker = raw[position]
        position += 1
        if marker == _EOI:
            return None if tables.scans else "no image data before the end-of-image marker"
        if marker in _STANDALONE:
            continue
        if position + 2 > len(raw):
            return "truncated (it ends inside a marker segment)"
        length = (raw[position] << 8) | raw[position + 1]
        end = position + length
        if length < 2 or end > len(raw):
            return f"truncated or damaged (a marker segment at byte {position - 2} runs past the end)"
        problem = _check_segment(marker, raw[position + 2:end], tables, expected_size)
        if problem is not None:
            return problem
        if marker != _SOS:
            position = end
        elif markers is None:
            return None
        else:
            position = _marker_after_scan(markers, end)
            if position is None:
                return "truncated (the image data stops before the end-of-image marker)"


def _check_segment(marker: int, segment: bytes, tables: _Tables, expected_size) -> str | None:
    if marker in _SEQUENTIAL_FRAMES or marker == _PROGRESSIVE_FRAME:
        if tables.frame is not None:
            return "two frame headers (SOF markers)"
        tables.frame, problem = _frame(segment, marker == _PROGRESSIVE_FRAME, expected_size)
        return problem
    if marker in _UNSUPPORTED_FRAMES:
        return f"{_UNSUPPORTED_FRAMES[marker]} JPEG coding, which the decoders do not support"
    if marker == _DHT:
        return _huffman_tables(segment, tables.huffman)
    if marker == _DQT:
        return _quantisation_tables(segment, tables.quantisation)
    if marker == _DRI:
        return None if len(segment) == 2 else "bad restart interval (DRI) segment"
    if marker == _SOS:
        tables.scans += 1
        return _scan_header(segment, tables)
    if marker in _APPLICATION or marker in (_COM, _DNL):
        return None
    return f"unknown or misplaced marker 0xFF{marker:02X}"


def _frame(segment: bytes, progressive: bool, expected_size) -> tuple[dict | None, str | None]:
    if len(segment) < 6:
        return None, "bad frame header (SOF)"
    precision, count = segment[0], segment[5]
    height, width = (segment[1] << 8) | segment[2], (segment[3] << 8) | segment[4]
    if precision != 8:
        return None, f"{precision}-bit samples (only 8-bit JPEG is supported)"
    if count not in (1, 3) or len(segment) != 6 + 3 * count:
        return None, f"bad frame header (SOF): {count} components"
    if height == 0 or width == 0:
        return None, f"bad frame header (SOF): {height}x{width} pixels"
    if expected_size is not None and (height, width) != expected_size:
        return None, (f"{height}x{width} pixels, where the folder's flow images have "
                      f"{expected_size[0]}x{expected_size[1]}")
    components = {}
    for offset in range(6, 6 + 3 * count, 3):
        identifier, sampling, table = segment[offset:offset + 3]
        horizontal, vertical = sampling >> 4, sampling & 0x0F
        if not (1 <= horizontal <= 4 and 1 <= vertical <= 4) or table >= _TABLES or identifier in components:
            return None, "bad frame header (SOF): sampling factors, quantisation table or component id"
        components[identifier] = {"blocks": horizontal * vertical, "quantisation_table": table}
    return {"progressive": progressive, "components": components}, None


def _huffman_tables(segment: bytes, defined: set) -> str | None:
    offset = 0
    while offset < len(segment):
        if offset + 17 > len(segment):
            return "bad Huffman table (DHT) segment"
        kind, index = segment[offset] >> 4, segment[offset] & 0x0F
        counts = segment[offset + 1:offset + 17]
        symbols = sum(counts)
        values = segment[offset + 17:offset + 17 + symbols]
        if kind > 1 or index >= _TABLES or not 0 < symbols <= 256 or len(values) != symbols:
            return "bad Huffman table (DHT) segment"
        if not _valid_huffman_code(counts, values, kind == 0):
            return "bogus Huffman table (impossible code lengths or DC symbols)"
        defined.add((kind, index))
        offset += 17 + symbols
    return None


def _valid_huffman_code(counts: bytes, values: bytes, dc: bool) -> bool:
    """libjpeg's rule: the canonical code of these lengths fits, with no code of all ones; DC symbols are <= 15."""
    code = 0
    for length, count in enumerate(counts, start=1):
        code += count
        if code >= 1 << length:
            return False
        code <<= 1
    return not dc or max(values) <= 15


def _quantisation_tables(segment: bytes, defined: set) -> str | None:
    offset = 0
    while offset < len(segment):
        precision, index = segment[offset] >> 4, segment[offset] & 0x0F
        size = 1 + 64 * (precision + 1)
        if precision > 1 or index >= _TABLES or offset + size > len(segment):
            return "bad quantisation table (DQT) segment"
        defined.add(index)
        offset += size
    return None


def _scan_header(segment: bytes, tables: _Tables) -> str | None:
    frame = tables.frame
    if frame is None:
        return "image data (SOS) before the frame header (SOF)"
    count = segment[0] if segment else 0
    if not 1 <= count <= len(frame["components"]) or len(segment) != 4 + 2 * count:
        return "bad scan header (SOS)"
    start, end, approximation = segment[1 + 2 * count:4 + 2 * count]
    high, low = approximation >> 4, approximation & 0x0F
    dc_scan = start == 0
    if frame["progressive"]:
        valid = ((end == 0 if dc_scan else start <= end <= 63 and count == 1)
                 and (high == 0 or low == high - 1) and low <= 13)
    else:
        valid = start == 0 and end == 63 and approximation == 0
    if not valid:
        return "bad scan header (SOS): spectral selection or successive approximation"
    seen, blocks = set(), 0
    for offset in range(1, 1 + 2 * count, 2):
        identifier, selectors = segment[offset], segment[offset + 1]
        if identifier not in frame["components"] or identifier in seen:
            return "bad scan header (SOS): unknown or repeated component"
        seen.add(identifier)
        component = frame["components"][identifier]
        blocks += component["blocks"]
        if component["quantisation_table"] not in tables.quantisation:
            return f"quantisation table {component['quantisation_table']} is not defined"
        # The tables this scan decodes with: DC and AC in a sequential scan; in a progressive one DC for a first
        # DC scan, none for a DC refinement, AC for an AC scan.
        if not frame["progressive"]:
            needed = ((0, selectors >> 4), (1, selectors & 0x0F))
        elif dc_scan:
            needed = ((0, selectors >> 4),) if high == 0 else ()
        else:
            needed = ((1, selectors & 0x0F),)
        for kind, table in needed:
            standard = not frame["progressive"] and table < _STANDARD_HUFFMAN_TABLES
            if table >= _TABLES or not (standard or (kind, table) in tables.huffman):
                return f"bad scan header (SOS): Huffman table {table} is not defined"
    if count > 1 and blocks > _MAX_BLOCKS_IN_MCU:
        return "bad scan header (SOS): sampling factors too large for an interleaved scan"
    return None
