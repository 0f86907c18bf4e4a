"""The compiled hot modules (collector/native.py): used when the build matches the
sources, never when it does not, and the plain-Python fallback works."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collector import native

_PROBE = (
    "import collector.native as n, collector.ingest.normalize as m, collector.ingest.enrich as w\n"
    "from collector.ingest.normalize import parse_payload\n"
    "p = parse_payload({'event': 'page_viewed', 'anonymous_id': 'a1'}, source='browser')\n"
    "print(n.status()); print(m.__file__); print(w.__file__); print(p.items[0].name)\n"
)


def _probe(root: Path, probe: str = _PROBE, **env: str) -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines(), result.stderr


def _copy(tmp_path: Path) -> Path:
    """The package with its build, as a tree of its own to edit."""
    shutil.copytree(
        native.PACKAGE, tmp_path / "collector", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


needs_build = pytest.mark.skipif(not native.fresh(), reason="no current build: make native")


@needs_build
def test_the_hot_modules_run_compiled_when_the_build_matches() -> None:
    lines, stderr = _probe(native.ROOT)
    assert lines[0] == "compiled with mypyc"
    assert all(line.endswith(".so") for line in lines[1:3]), lines
    assert lines[3] == "page_viewed"
    assert "plain Python" not in stderr


@needs_build
def test_an_edited_source_runs_as_python_and_not_as_its_old_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    source = root / "collector" / "ids.py"
    source.write_text(source.read_text() + "\n# edited\n")
    lines, stderr = _probe(root)
    # Every compiled module falls back together: they call each other inside the group.
    assert lines[0].startswith("plain Python (the build is older than the sources")
    assert lines[1].endswith("normalize.py") and lines[2].endswith("enrich.py")
    assert lines[3] == "page_viewed"
    assert "make native" in stderr  # said once, at import


@needs_build
def test_an_extension_left_by_an_earlier_build_is_not_used(tmp_path: Path) -> None:
    # writer.py was compiled once; a build without it must not leave it shadowing writer.py.
    root = _copy(tmp_path)
    package = root / "collector"
    ids_so = next(package.glob("ids.*.so"))
    shutil.copy(ids_so, package / ids_so.name.replace("ids.", "writer.", 1))
    lines, _ = _probe(
        root, _PROBE.replace("collector.ingest.enrich as w", "collector.ingest.writer as w")
    )
    assert lines[0].startswith("plain Python (the build is older")
    assert lines[2].endswith("writer.py")


def test_plain_python_on_request_or_without_a_build(tmp_path: Path) -> None:
    lines, stderr = _probe(native.ROOT, COLLECTOR_PURE_PYTHON="1")
    assert lines[1].endswith("normalize.py") and lines[2].endswith("enrich.py")
    assert lines[3] == "page_viewed"
    assert stderr == ""  # asked for: no warning

    root = _copy(tmp_path)
    for path in (root / "collector").rglob("*.so"):
        path.unlink()
    lines, stderr = _probe(root)
    assert lines[0] == "plain Python (not built: make native)"
    assert lines[1].endswith("normalize.py")
    assert stderr == ""


def test_the_fingerprint_follows_every_compiled_source(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = native.fingerprint()
    for name in native.MODULES:
        assert (root / "collector" / (name.replace(".", "/") + ".py")).exists()
    # The fingerprint is of the running package's sources; an edit anywhere changes it.
    saved = native.PACKAGE
    try:
        native.PACKAGE = root / "collector"
        assert native.fingerprint() == before
        (native.PACKAGE / "models.py").write_text("# changed\n")
        assert native.fingerprint() != before
    finally:
        native.PACKAGE = saved
