"""An alert still reaches someone when the data volume broke: an outbox that cannot be written (here its
folder's name taken by a file; disk full or a read-only volume raise the same OSError) neither stops the
webhook nor the log line, and the sender does not raise (a sensor would then page again every tick)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fraud_assets.lib.alerting import Alert, AlertSink


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_an_alert_reaches_the_webhook_and_the_log_when_the_outbox_cannot_be_written(tmp_path, caplog):
    (tmp_path / "alerts").write_text("not a folder")
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = AlertSink(data_dir=str(tmp_path), webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
        alert = Alert(
            severity="ERROR", kind="run_failure", subject="landed_day", message="disk full", run_id="r"
        )
        log = logging.getLogger("test_alert_delivery")
        with caplog.at_level(logging.WARNING, logger=log.name):
            assert sink.send([alert], log=log) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert [(m["kind"], m["subject"], m["message"]) for m in _Webhook.received] == [
        ("run_failure", "landed_day", "disk full")
    ]
    assert "[ALERT ERROR] run_failure landed_day: disk full" in caplog.text
    assert "cannot be written" in caplog.text
