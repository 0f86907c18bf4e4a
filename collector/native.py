"""The hot modules, compiled with mypyc. `make native` builds them in place, next to their
sources, as one extension group; it does nothing while the build matches the sources.
Nothing waits for it: `make serve` runs without it, `make test` runs whichever build is
there (and says which), CI and `make bench` build it first.

The same sources run as plain Python when nothing is built, when the build no longer
matches them (a source was edited since: the build stamps a fingerprint of the sources,
and `collector/__init__.py` checks it before any module is imported), or when
`COLLECTOR_PURE_PYTHON=1` is set. So an edited module never runs as its old build.

Compiled: the ingestion endpoint (web/ingest.py), validation, the pipeline, enrichment, bot
detection, the User-Agent cache, ids, times, auth, rate limits and the models: the
collector's own work above a bare Starlette endpoint is about a third of what it is as
plain Python (docs/benchmarks.md). Also the funnel algorithm, which walks every event of a
funnel's steps in Python: compiled, it takes half the time. Not compiled: modules mypyc
cannot compile (web/app.py: its lifespan is an async generator), that tests and the
benchmark patch at run time (the store), and the writer: compiled code checks every value
against its declared type, and asyncio's stubs do not match uvloop (`remove_reader`
returns None, not a bool; its handles are its own classes)."""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
MODULES = (  # dotted names under the package
    "ingest.normalize",
    "ingest.pipeline",
    "ingest.enrich",
    "ingest.geo",
    "ingest.sources",
    "timeutil",
    "ids",
    "ingest.bots",
    "ingest.useragent",
    "ingest.auth",
    "ingest.ratelimit",
    "models",
    "web.ingest",
    "ingest.encoding",
    "ingest.dialects.base",
    "ingest.dialects.segment",
    "ingest.dialects.posthog",
    "query.funnels",
    "store.visits",
)
GROUP = "collector._native"  # the shared library of the group: collector/_native__mypyc…so
STAMP = PACKAGE / "_native.stamp"
PURE_ENV = "COLLECTOR_PURE_PYTHON"

log = logging.getLogger("collector")


def sources() -> list[Path]:
    return [_source(name) for name in MODULES]


def _source(name: str) -> Path:
    return PACKAGE.joinpath(*name.split(".")).with_suffix(".py")


def built() -> list[Path]:
    """The extension files in the package: the compiled modules, the group's library, and
    any left from an earlier build (the package has no other)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES  # ".so" among them: a set, then
    return sorted({path for suffix in suffixes for path in PACKAGE.rglob(f"*{suffix}")})


def _module(path: Path) -> str:
    """A built file's dotted name under the package (`ingest/bots.cpython-311-….so` →
    `ingest.bots`)."""
    relative = path.relative_to(PACKAGE)
    return ".".join([*relative.parent.parts, relative.name.partition(".")[0]])


def fingerprint() -> str:
    """What a build was made from: the sources and the interpreter's version. (A missing
    source counts as empty: it makes the build stale, never the import fail.)"""
    digest = hashlib.sha256(sys.version.encode())
    for path in sources():
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def fresh(files: list[Path] | None = None) -> bool:
    """Whether the build present (`files`, else looked up) is of exactly these modules,
    made from their sources as they are now."""
    files = built() if files is None else files
    expected = {*MODULES, GROUP.rpartition(".")[2] + "__mypyc"}
    return (
        {_module(path) for path in files} == expected
        and STAMP.exists()
        and STAMP.read_text().strip() == fingerprint()
    )


COMPILED = "compiled with mypyc"


def status(files: list[Path] | None = None) -> str:
    """How the compiled modules run: COMPILED, or plain Python and why."""
    files = built() if files is None else files
    if not files:
        return "plain Python (not built: make native)"
    if not fresh(files):
        return "plain Python (the build is older than the sources: make native)"
    if os.environ.get(PURE_ENV):
        return f"plain Python ({PURE_ENV} is set)"
    return COMPILED


class _Sources(importlib.abc.MetaPathFinder):
    """Loads the modules that have an extension file from their .py files instead."""

    def __init__(self, files: list[Path]) -> None:
        self.names = {_module(path) for path in files}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != "collector" or name not in self.names:
            return None
        source = _source(name)
        if not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def choose() -> None:
    """Called by `collector/__init__.py` before any module is imported: if a build is
    present but must not be used, load every compiled module from its source instead
    (all of them: compiled modules call each other inside the group's library)."""
    files = built()  # one look at the package and one fingerprint, at every start-up
    if not files:
        return
    state = status(files)
    if state == COMPILED:
        return
    if not os.environ.get(PURE_ENV):
        log.warning("collector: running %s", state)
    sys.meta_path.insert(0, _Sources(files))


def build() -> None:
    """Compile the modules in place and stamp the build (mypyc and a C compiler needed)."""
    import warnings

    from mypyc.build import mypycify
    from setuptools import setup

    # setup() reads pyproject.toml and warns about its tables; the build does not use them.
    warnings.filterwarnings("ignore", module="setuptools")

    fp = fingerprint()
    for path in built():
        path.unlink()
    STAMP.unlink(missing_ok=True)
    cwd = Path.cwd()
    os.chdir(ROOT)  # build_ext --inplace places each module by its path from here
    try:
        paths = [str(p.relative_to(ROOT)) for p in sources()]
        setup(
            name="collector-native",
            ext_modules=mypycify(paths, group_name=GROUP, opt_level="3"),
            script_args=["--quiet", "build_ext", "--inplace"],
        )
    finally:
        os.chdir(cwd)
    STAMP.write_text(fp + "\n")


def main() -> None:
    """`make native`: build unless the build matches the sources already."""
    if fresh():
        print(f"collector: {len(MODULES)} modules already compiled")
        return
    build()
    print(f"collector: compiled {len(MODULES)} modules with mypyc")
