"""A local HTTP server that serves model folders in the Hugging Face Hub's layout, for
``HF_ENDPOINT``: the endpoints ``huggingface_hub.snapshot_download`` calls, nothing more.

- ``GET /api/models/<repo>/revision/<rev>``: the repo's commit and file list;
- ``GET /api/models/<repo>/tree/<commit>``: the files with sizes (safetensors as LFS);
- ``HEAD``/``GET /<repo>/resolve/<rev>/<file>``: a file, with the commit and ETag headers.

Every request is recorded (method, path), so a test sees what was fetched and that a second
use fetched nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serves ``repos`` ({"org/name": folder}) at ``self.url`` until ``close()``.

    Example::

        with HubServer({"acme/tiny": folder}) as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
    """

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {name: Path(folder) for name, folder in repos.items()}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub._handle(self, body=True)

            def do_HEAD(self) -> None:
                hub._handle(self, body=False)

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fetched(self) -> list[str]:
        """The files whose content was sent (GET .../resolve/...)."""
        return sorted(
            p.split("/resolve/", 1)[1].split("/", 1)[1]
            for m, p in self.requests
            if m == "GET" and "/resolve/" in p
        )

    # -- the Hub's endpoints --------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        self.requests.append((request.command, path))
        if path.startswith("/api/models/"):
            self._api(request, path[len("/api/models/") :])
        elif "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            self._file(request, repo, rest.split("/", 1)[1], body=body)
        else:
            self._send(request, 404, b'{"error": "not found"}')

    def _api(self, request: BaseHTTPRequestHandler, rest: str) -> None:
        for marker in ("/revision/", "/tree/"):
            if marker in rest:
                repo = rest.split(marker, 1)[0]
                break
        else:
            return self._send(request, 404, b"{}")
        folder = self.repos.get(repo)
        if folder is None:
            return self._send(
                request, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}
            )
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if "/revision/" in rest:
            info = {
                "id": repo,
                "sha": COMMIT,
                "siblings": [{"rfilename": p.relative_to(folder).as_posix()} for p in files],
            }
        else:
            info = [self._entry(folder, p) for p in files]
        return self._send(request, 200, json.dumps(info).encode())

    @staticmethod
    def _entry(folder: Path, path: Path) -> dict:
        data = path.read_bytes()
        entry = {
            "type": "file",
            "path": path.relative_to(folder).as_posix(),
            "size": len(data),
            "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
        }
        if path.suffix == ".safetensors":
            entry["lfs"] = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": 134,
            }
        return entry

    def _file(self, request: BaseHTTPRequestHandler, repo: str, name: str, *, body: bool) -> None:
        folder = self.repos.get(repo)
        path = folder / name if folder is not None else None
        if path is None or not path.is_file():
            return self._send(
                request, 404, b"Entry not found", {"X-Error-Code": "EntryNotFound"}, body=body
            )
        data = path.read_bytes()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Content-Type": "application/octet-stream",
        }
        return self._send(request, 200, data, headers, body=body)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        *,
        body: bool = True,
    ) -> None:
        request.send_response(status)
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if body:
            request.wfile.write(data)
