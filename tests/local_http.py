"""A real HTTP server on 127.0.0.1 for the download tests.

It runs in a thread of the test process and serves whatever a test puts in
its route table, including deliberately broken responses (a Content-Length
larger than the body, corrupted bytes, 404s). The ``server`` fixture in
conftest.py hands each test the module's one server with empty tables.
"""

import hashlib
import http.server
import threading


class _Route:
    """What the server answers for one path."""

    def __init__(self, body, status=200, extra_length=0):
        self.body = body
        self.status = status
        self.extra_length = extra_length   # > 0 promises more than is sent


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(route.status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length",
                         str(len(route.body) + route.extra_length))
        self.end_headers()
        self.wfile.write(route.body)
        # BaseHTTPRequestHandler speaks HTTP/1.0 by default: the connection
        # closes after this, so a short body really is cut off.

    def log_message(self, format, *args):
        pass


class LocalServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     _Handler)
        self.httpd.routes = {}
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def serve(self, path, body, **kwargs):
        self.httpd.routes[path] = _Route(body, **kwargs)
        return self.url + path

    @property
    def requests(self):
        return self.httpd.requests


def running_server():
    """Yields one started LocalServer; stops it afterwards."""
    local = LocalServer()
    local.thread.start()
    try:
        yield local
    finally:
        local.httpd.shutdown()
        local.httpd.server_close()
        local.thread.join(timeout=5)


def cleared(local):
    """``local`` with an empty route table and request log."""
    local.httpd.routes.clear()
    local.httpd.requests.clear()
    return local


def sha256(data):
    return hashlib.sha256(data).hexdigest()
