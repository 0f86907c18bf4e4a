"""Compressed request bodies (ingest/encoding.py): inflated in bounded steps, the size
limits applied to what they inflate to, on every ingestion path."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from starlette.testclient import TestClient

from collector.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from collector.ingest import encoding
from collector.ingest.encoding import decode_content
from collector.models import App
from collector.store import Store
from tests.conftest import auth


def test_identity_gzip_and_deflate() -> None:
    data = b'{"event": "a"}' * 100
    assert decode_content(data, None, 10_000) is data
    assert decode_content(data, "identity", 10_000) is data
    assert decode_content(gzip.compress(data), "gzip", 10_000) == data
    assert decode_content(gzip.compress(data), " GZIP ", 10_000) == data
    assert decode_content(zlib.compress(data), "deflate", 10_000) == data


def test_a_decompression_bomb_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB in ~50 KB
    assert len(bomb) < 100_000
    seen: list[int] = []
    real = zlib.decompressobj

    class Watched:
        """Records how much each inflating step may produce."""

        def __init__(self, wbits: int) -> None:
            self.inner = real(wbits)

        def decompress(self, data: bytes, max_length: int) -> bytes:
            seen.append(max_length)
            return self.inner.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(encoding.zlib, "decompressobj", Watched)
    with pytest.raises(PayloadTooLarge) as err:
        decode_content(bomb, "gzip", 512 * 1024)
    assert err.value.errors[0]["field"] == "body"
    # Bounded steps: it stopped just past the limit, never inflating the whole bomb.
    assert seen and set(seen) == {encoding.STEP}
    assert len(seen) <= 512 * 1024 // encoding.STEP + 1


@pytest.mark.parametrize(
    ("body", "name", "error"),
    [
        (b"not gzip at all", "gzip", InvalidRequest),
        (gzip.compress(b'{"a": 1}')[:-12], "gzip", InvalidRequest),  # truncated
        (b"{}", "br", UnsupportedMediaType),
    ],
)
def test_bad_compressed_bodies(body: bytes, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_content(body, name, 10_000)


@pytest.mark.parametrize("size", [10, 150_000])
def test_bytes_after_the_end_of_the_stream_are_a_400_not_an_endless_loop(
    monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Found by make fuzz: a 756-byte gzip body with bytes after its end held a worker
    forever (once an output step was cut short, zlib handed those bytes back on every
    call after the end, and the loop waited for them to be used up)."""
    calls = [0]
    real = zlib.decompressobj

    class Counted:
        def __init__(self, wbits: int) -> None:
            self.inner = real(wbits)

        def decompress(self, data: bytes, max_length: int) -> bytes:
            calls[0] += 1
            assert calls[0] < 100, "inflating never ends"
            return self.inner.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(encoding.zlib, "decompressobj", Counted)
    data = b'{"event": "' + bytes(range(97, 123)) * (size // 26 + 1) + b'"}'
    for name, packed in (("gzip", gzip.compress(data)), ("deflate", zlib.compress(data))):
        with pytest.raises(InvalidRequest) as err:
            decode_content(packed + b"trailing bytes", name, 512 * 1024)
        assert err.value.errors == [
            {"field": "body", "message": f"has data after the end of its {name} stream"}
        ]
        assert decode_content(packed, name, 512 * 1024) == data  # without them: fine


@pytest.mark.parametrize(
    "path", ["/v1/event", "/v1/events", "/events", "/api/v1/events", "/v1/track", "/v1/batch"]
)
def test_gzip_on_every_ingestion_path(
    client: TestClient, store: Store, app: App, key: str, path: str
) -> None:
    body = {"event": "zipped", "user": "u"}
    if path == "/v1/batch":
        body = {"batch": [{"type": "track", "event": "zipped", "userId": "u"}]}
    r = client.post(
        path,
        content=gzip.compress(orjson.dumps(body)),
        headers={**auth(key), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code in (200, 202), r.text
    assert [e["event"] for e in store.export_events(app.app_id)] == ["zipped"]


def test_bomb_and_garbage_through_the_endpoint(client: TestClient, key: str) -> None:
    headers = {**auth(key), "Content-Encoding": "gzip"}
    bomb = gzip.compress(b'{"events": [' + b" " * 20_000_000 + b"]}")
    r = client.post("/v1/events", content=bomb, headers=headers)
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "body"
    r = client.post("/v1/events", content=b"\x1f\x8b garbage", headers=headers)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body"
    r = client.post("/v1/events", content=b"{}", headers={**auth(key), "Content-Encoding": "br"})
    assert r.status_code == 415 and r.json()["errors"][0]["field"] == "content-encoding"
