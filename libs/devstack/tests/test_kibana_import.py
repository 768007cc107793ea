"""`aimesh kibana import` against a tiny in-process HTTP server standing in for Kibana's import API.

The server checks what Kibana checks (the ``kbn-xsrf`` header, a multipart body whose ``file`` field is
the NDJSON) and answers as Kibana does; the tests cover success, space and overwrite in the URL,
per-object errors, an HTTP error with Kibana's message, and nothing listening.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aimesh.devstack import cli
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.kibana import import_saved_objects, import_url

OBJECTS = [
    {"type": "index-pattern", "id": "v1", "attributes": {"title": "x-*"}, "references": []},
    {"type": "dashboard", "id": "d1", "attributes": {"title": "D"}, "references": []},
]


class FakeKibana(BaseHTTPRequestHandler):
    """Answers ``POST .../api/saved_objects/_import``; ``server.answer`` is (status, body) or None (derive)."""

    server: KibanaServer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if not self.headers.get("kbn-xsrf"):
            self._send(400, {"statusCode": 400, "error": "Bad Request", "message": "Request must contain kbn-xsrf."})
            return
        message = BytesParser(policy=HTTP).parsebytes(
            b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + body
        )
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        if "file" not in parts or not str(parts["file"].get_filename()).endswith(".ndjson"):
            self._send(415, {"statusCode": 415, "error": "Unsupported Media Type", "message": "no .ndjson file"})
            return
        payload = parts["file"].get_payload(decode=True)
        lines = payload.decode().splitlines() if isinstance(payload, bytes) else []
        objects = [json.loads(line) for line in lines if line.strip()]
        self.server.objects.append(objects)
        if self.server.answer is not None:
            self._send(*self.server.answer)
            return
        results = [{"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"]["title"]}} for o in objects]
        self._send(200, {"success": True, "successCount": len(objects), "successResults": results})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``server.requests`` instead."""


class KibanaServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeKibana)
        self.requests: list[dict[str, Any]] = []
        self.objects: list[list[dict[str, Any]]] = []
        self.answer: tuple[int, dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def kibana() -> Iterator[KibanaServer]:
    server = KibanaServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def ndjson(tmp_path: Path) -> Path:
    path = tmp_path / "objects.ndjson"
    path.write_text("".join(json.dumps(o) + "\n" for o in OBJECTS))
    return path


def test_the_file_is_posted_as_multipart_with_the_xsrf_header(kibana: KibanaServer, ndjson: Path) -> None:
    result = import_saved_objects(kibana.url, ndjson)
    assert result.success_count == 2
    assert result.imported == ("index-pattern/v1", "dashboard/d1")
    (request,) = kibana.requests
    assert request["path"] == "/api/saved_objects/_import"
    assert request["headers"]["kbn-xsrf"]
    assert request["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert kibana.objects == [OBJECTS]


def test_space_overwrite_and_credentials_reach_kibana(kibana: KibanaServer, ndjson: Path) -> None:
    import_saved_objects(kibana.url + "/", ndjson, space="ops", overwrite=True, headers={"Authorization": "ApiKey k"})
    (request,) = kibana.requests
    assert request["path"] == "/s/ops/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["Authorization"] == "ApiKey k"
    assert import_url("http://k:5601", None, False) == "http://k:5601/api/saved_objects/_import"


def test_objects_kibana_refused_are_each_listed(kibana: KibanaServer, ndjson: Path) -> None:
    kibana.answer = (
        200,
        {
            "success": False,
            "successCount": 0,
            "errors": [
                {"type": "index-pattern", "id": "v1", "meta": {"title": "x-*"}, "error": {"type": "conflict"}},
                {
                    "type": "dashboard",
                    "id": "d1",
                    "meta": {"title": "D"},
                    "error": {"type": "missing_references", "references": [{"type": "lens", "id": "l9"}]},
                },
            ],
        },
    )
    with pytest.raises(DevstackError) as caught:
        import_saved_objects(kibana.url, ndjson)
    text = str(caught.value)
    assert "2 object(s) not imported" in text
    assert "index-pattern v1 (x-*): already exists" in text
    assert "dashboard d1 (D): missing references lens l9" in text
    assert "--overwrite" in text


def test_an_http_error_carries_kibanas_message(kibana: KibanaServer, ndjson: Path) -> None:
    kibana.answer = (400, {"statusCode": 400, "error": "Bad Request", "message": "Unsupported saved object type: x"})
    with pytest.raises(DevstackError, match=r"Kibana answered 400 .*Unsupported saved object type: x"):
        import_saved_objects(kibana.url, ndjson)
    kibana.answer = (401, {"statusCode": 401, "error": "Unauthorized", "message": "missing authentication"})
    with pytest.raises(DevstackError, match=r"refused the import \(401\): missing authentication.*KIBANA_API_KEY"):
        import_saved_objects(kibana.url, ndjson)


def test_nothing_listening_is_one_clear_error(ndjson: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DevstackError, match=rf"Kibana at http://127.0.0.1:{port} is not reachable .*fix --url"):
        import_saved_objects(f"http://127.0.0.1:{port}", ndjson, timeout_s=5)


def test_the_cli_imports_the_repositorys_saved_objects(kibana: KibanaServer) -> None:
    result = CliRunner().invoke(cli.app, ["kibana", "import", "--url", kibana.url, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
    (request,) = kibana.requests
    assert request["path"] == "/api/saved_objects/_import?overwrite=true"
    (objects,) = kibana.objects
    assert {o["type"] for o in objects} == {"index-pattern", "search", "lens", "dashboard"}
