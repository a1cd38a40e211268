"""Test fixtures for the data scripts: release files with a manifest of their checksums, and a local
HTTP mirror (127.0.0.1 only) that serves them under raw.githubusercontent.com's OWNER/REPO/COMMIT/PATH
layout, honours Range requests and can cut a connection half way through a file."""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data.fetch import file_digests

REPO, COMMIT = "test-owner/test-repo", "c0ffee" + "0" * 34


@dataclass
class Release:
    """A source folder in the release layout, the same files in a mirror layout, and their manifest."""

    source: Path
    mirror: Path
    manifest: Path
    files: dict[str, dict] = field(default_factory=dict)

    def url_path(self, relative: str) -> str:
        return f"/{REPO}/{COMMIT}/data/{relative}"

    def mirror_file(self, relative: str) -> Path:
        return self.mirror / REPO / COMMIT / "data" / relative


def make_release(root: Path, files: dict[str, str | bytes], absent: dict[str, str] | None = None) -> Release:
    """Write ``files`` (release path -> content) into a source folder and a mirror; ``absent`` (release path ->
    git blob SHA-1) adds manifest entries for files that exist nowhere."""
    release = Release(source=root / "source", mirror=root / "mirror", manifest=root / "sources.json")
    for relative, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        for path in (release.source / relative, release.mirror_file(relative)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        release.files[relative] = {"repo": REPO, "commit": COMMIT, "path": f"data/{relative}",
                                   **file_digests(release.source / relative)}
    for relative, sha1 in (absent or {}).items():
        release.files[relative] = {"repo": REPO, "commit": COMMIT, "path": f"data/{relative}", "git_sha1": sha1,
                                   "sha256": None, "size": None}
    write_manifest(release)
    return release


def write_manifest(release: Release) -> None:
    manifest = {"base_url": "https://mirror.invalid", "url_layout": "{base_url}/{repo}/{commit}/{path}",
                "files": release.files}
    release.manifest.write_text(json.dumps(manifest, indent=1), encoding="utf-8")


class MirrorServer(http.server.ThreadingHTTPServer):
    """Serves a folder; ``cut[url_path] = n`` sends only n bytes of that file's next response, then hangs up,
    and ``cut_every[url_path] = n`` does so on every response."""

    def __init__(self, root: Path, honour_range: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.root, self.honour_range = root, honour_range
        self.cut: dict[str, int] = {}
        self.cut_every: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    server: MirrorServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = urllib.parse.unquote(self.path.split("?")[0])
        self.server.requests.append((path, self.headers.get("Range")))
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_file() or self.server.root.resolve() not in file.parents:
            self.send_error(404)
            return
        data = file.read_bytes()
        start, wanted = 0, self.headers.get("Range")
        if wanted and self.server.honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.cut.pop(path, self.server.cut_every.get(path))
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def serve(root: Path, honour_range: bool = True) -> Iterator[MirrorServer]:
    server = MirrorServer(root, honour_range)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: what a machine without network sees."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def snapshot(folder: Path) -> dict[str, tuple[int, bytes] | None]:
    """Every file under ``folder`` with its time and content, and every folder, to show that a failed run
    changed nothing: no file or folder created or removed, no file rewritten or touched."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (os.stat(p).st_mtime_ns, p.read_bytes()) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def plain_pickle(words: list[str]) -> bytes:
    """Protocol 2: PROTO, EMPTY_LIST, MARK, one BINUNICODE per word, APPENDS, STOP (as the authors' file)."""
    items = b"".join(b"X" + struct.pack("<I", len(w.encode())) + w.encode() for w in words)
    return b"\x80\x02](" + items + b"e."
