"""The two exposition formats /metrics speaks, and how a scraper picks one.

Plain text (0.0.4) is the default; a scraper that asks for
``application/openmetrics-text`` (Prometheus does, first) gets OpenMetrics 1.0: counter
families named without ``_total`` (their samples keep it), ``# UNIT`` where the catalog
declares a unit the name ends with, and ``# EOF``. Sample lines are the same in both, so
the renderer caches one line prefix per series and only the family headers differ.
``Accept-Encoding: gzip`` gets a gzip body (Prometheus asks for it on every scrape),
compressed by ISA-L (``isal``): at 5,000 checks the body is ~26 MB, and stdlib zlib at level 1
spent ~50 ms of a scrape on it where ISA-L spends ~8 ms, and its output is smaller
(benchmarks/exporters.py --scrape).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from isal import isal_zlib

__all__ = [
    "OPENMETRICS",
    "RESERVED_LABELS",
    "TEXT",
    "family_header",
    "format_value",
    "escape_label",
    "label_name",
    "negotiate",
    "wants_gzip",
    "compress_chunks",
    "GzipStream",
]

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_OM_VERSIONS = ("", "1.0.0", "0.0.1")
BLOCK = 4 << 20  # bytes of text handed to the compressor at once (see compress_chunks)
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
# labels Prometheus sets on every target: a sample carrying one would be renamed
# ``exported_*`` (honor_labels: false) or overwrite the target's (honor_labels: true)
RESERVED_LABELS = frozenset({"instance", "job"})


def label_name(tag: str) -> str:
    """A tag key as a valid Prometheus label name that no scrape rewrites.

    Characters Prometheus refuses become ``_``; ``__`` prefixes are reserved; ``instance``
    and ``job`` (target labels) become ``exported_instance`` / ``exported_job`` — what
    Prometheus itself would call them, but the same whatever the scrape config says.
    """
    name = _LABEL_BAD.sub("_", tag)
    if not name or name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = name.lstrip("_") or "_"
        name = "_" + name if name[0].isdigit() else name
    if name in RESERVED_LABELS:
        name = "exported_" + name
    return name


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def format_value(v: float) -> str:
    if v.__class__ is not float:
        v = float(v)  # samples from outside the check firewall may carry ints
    if v.is_integer() and -1e15 < v < 1e15:  # False for inf and NaN
        return f"{int(v)}.0"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v != v:
        return "NaN"
    return repr(v)


def family_header(name: str, ptype: str, doc: str, unit: str, openmetrics: bool) -> str:
    """HELP/TYPE (and OpenMetrics' UNIT) lines of one family.

    ``name`` is the sample name (a counter's ends in ``_total``); OpenMetrics names the
    family without it.
    """
    if not openmetrics:
        return f"# HELP {name} {_help(doc, False)}\n# TYPE {name} {ptype}\n"
    family = name.removesuffix("_total") if ptype == "counter" else name
    head = f"# HELP {family} {_help(doc, True)}\n# TYPE {family} {ptype}\n"
    if unit and family.endswith("_" + unit):
        head += f"# UNIT {family} {unit}\n"
    return head


def _media_ranges(header: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts[0]:
            continue
        params: dict[str, str] = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        out.append((parts[0].lower(), params, q))
    return out


def negotiate(accept: str | None) -> bool:
    """True when the ``Accept`` header prefers OpenMetrics 1.0 to the text format."""
    if not accept:
        return False
    om = text = 0.0
    for media, params, q in _media_ranges(accept):
        if media == "application/openmetrics-text" and params.get("version", "") in _OM_VERSIONS:
            om = max(om, q)
        elif media in ("text/plain", "text/*", "*/*"):
            text = max(text, q)
    return om > 0 and om >= text


def wants_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    return any(media in ("gzip", "*") and q > 0 for media, _p, q in _media_ranges(accept_encoding))


class GzipStream:
    """Gzip (one member, mtime 0) of chunks fed one at a time, so a generator's chunks
    need not all be alive at once, and a renderer on the event loop can stop between them.

    ISA-L's level 1: a sixth of zlib's level-1 CPU on exposition text, and smaller. Chunks
    are copied into one buffer and compressed ``block`` bytes at a time: each compress call
    lets go of the GIL, and a thread that lets go of it waits to get it back (see
    PrometheusExporter.render_async); the buffer is one allocation a render, not one
    mapping a chunk.
    """

    __slots__ = ("_z", "_out", "_buf", "_view", "_pos", "_block")

    def __init__(self, block: int = BLOCK) -> None:
        self._z = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)  # 31: a gzip header
        self._out: list[bytes] = []
        self._buf = bytearray(block)
        self._view = memoryview(self._buf)
        self._pos = 0
        self._block = block

    def feed(self, chunk: bytes) -> None:
        n, pos = len(chunk), self._pos
        if pos + n > self._block:
            if pos:
                self._out.append(self._z.compress(self._view[:pos]))
                pos = 0
            if n > self._block:
                self._pos = 0
                self._out.append(self._z.compress(chunk))
                return
        self._view[pos:pos + n] = chunk
        self._pos = pos + n

    def finish(self) -> bytes:
        """The gzip body; the stream is done."""
        if self._pos:
            self._out.append(self._z.compress(self._view[:self._pos]))
        self._view.release()
        self._out.append(self._z.flush())
        return b"".join(self._out)


def compress_chunks(chunks: Iterable[bytes], block: int = BLOCK) -> bytes:
    """The chunks joined and gzip-compressed (see :class:`GzipStream`)."""
    stream = GzipStream(block)
    for chunk in chunks:
        stream.feed(chunk)
    return stream.finish()
