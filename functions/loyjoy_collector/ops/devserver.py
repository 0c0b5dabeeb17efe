"""The demo page for `loyjoy-collector dev`: the snippet and a LoyJoy stand-in, plus the latest rows.

Serves `snippet/` of the checkout on its own origin (another port than the collector's), so the page talks
to the collector across origins exactly as a real site does.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SNIPPET_DIR = Path(__file__).resolve().parents[3] / "snippet"
SHIPPED = Path(__file__).resolve().parents[1] / "static" / "loyjoy-collector.min.js"
# A charting library for the demo's charts, served from the checkout (npm, pinned in snippet/package.json).
CHARTS = SNIPPET_DIR / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"


class DemoHandler(SimpleHTTPRequestHandler):
    collector = ""
    rows: Any = None

    def log_message(self, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        if self.path.startswith("/test/"):  # the browser tests' page: prove the snippet needs no eval
            self.send_header("Content-Security-Policy", "script-src 'self' http://127.0.0.1:*; object-src 'none'")
        super().end_headers()

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self.path = "/demo/index.html"
        elif self.path == "/config.js":
            return self._send(
                "application/javascript", f"window.DEMO_CONFIG = {json.dumps({'collector': self.collector})};"
            )
        elif self.path == "/rows":
            return self._send("application/json", json.dumps(type(self).rows(), default=str))
        elif self.path == "/analytics":
            return self._send("application/json", json.dumps(analytics(), default=str))
        elif self.path == "/vendor/chart.umd.min.js":
            return self._send("application/javascript", CHARTS.read_text())
        elif self.path == "/dist/loyjoy-collector.min.js":  # the build the collector serves, for pages here
            return self._send("application/javascript", SHIPPED.read_text())
        return super().do_GET()

    def _send(self, mimetype: str, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


@cache
def _sink() -> Any:
    from ..settings import Settings
    from ..sink import BigQuerySink

    return BigQuerySink(Settings())  # one client for the page's polling, not one per poll


def latest_rows() -> dict[str, list[dict[str, Any]]]:
    sink = _sink()
    out: dict[str, list[dict[str, Any]]] = {}
    for table, columns in (
        ("events", "event_ts, event_name, event_name_raw, process_name, label, email_hash, client_id, detail"),
        ("events_rejected", "received_at, reason, reason_detail, raw_payload"),
    ):
        query = f"SELECT {columns} FROM `{sink.table_id(table)}` ORDER BY received_at DESC LIMIT 15"
        out["events" if table == "events" else "rejected"] = [dict(r.items()) for r in sink.client.query(query)]
    return out


def analytics() -> dict[str, Any]:
    """The last 30 days from the analyst tables, as the demo's charts draw them (and as Looker Studio reads them:
    by the partition column, so only those days are read)."""
    sink = _sink()
    window = "day >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY)"
    funnel = f"""SELECT SUM(loaded) AS loaded, SUM(shown) AS shown, SUM(opened) AS opened, SUM(started) AS started,
        SUM(signed_up) AS signed_up, SUM(opted_in) AS opted_in FROM `{sink.table_id("funnel_daily")}` WHERE {window}"""
    daily = f"""SELECT day, SUM(events) AS events, SUM(sessions) AS sessions FROM `{sink.table_id("daily_counts")}`
        WHERE {window} GROUP BY day ORDER BY day"""
    # What arrived and what provably did not, per day (delivery_health: README "Is anything lost?").
    delivery = f"""SELECT event_date AS day, SUM(events_received) AS events, SUM(events_numbered) AS numbered,
        SUM(seq_gaps) AS gaps, SUM(dropped_overflow + dropped_quota + dropped_consent) AS dropped,
        SUM(resent) AS resent FROM `{sink.table_id("delivery_health")}`
        WHERE event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY) GROUP BY day ORDER BY day"""
    # LoyJoy's NPS per day (loyjoy_kpis), and conversion with and without a chat (chat_impact, with a GA4 export).
    nps = f"""SELECT day, SUM(nps_responses) AS answers, SUM(promoters) AS promoters, SUM(detractors) AS detractors,
        100 * SAFE_DIVIDE(SUM(promoters) - SUM(detractors), SUM(nps_responses)) AS nps
        FROM `{sink.table_id("loyjoy_kpis")}` WHERE {window} GROUP BY day ORDER BY day"""
    impact = f"""SELECT chatted, SUM(ga4_sessions) AS sessions, SUM(converting_sessions) AS converting,
        SUM(revenue) AS revenue FROM `{sink.table_id("chat_impact")}` WHERE {window} GROUP BY chatted"""
    try:
        steps = [dict(row.items()) for row in sink.client.query(funnel).result()]
        days = [dict(row.items()) for row in sink.client.query(daily).result()]
        delivered = [dict(row.items()) for row in sink.client.query(delivery).result()]
        scores = [dict(row.items()) for row in sink.client.query(nps).result()]
    except Exception as exc:  # tables not built yet: the page says so
        return {"error": str(exc)[:200]}
    try:
        chats = [dict(row.items()) for row in sink.client.query(impact).result()]
    except Exception:  # no GA4 export configured: no chat_impact
        chats = None
    return {"funnel": steps[0] if steps else {}, "daily": days, "delivery": delivered, "nps": scores, "impact": chats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--collector", required=True)
    parser.add_argument("--directory", default=str(SNIPPET_DIR))
    args = parser.parse_args()
    DemoHandler.collector = args.collector
    DemoHandler.rows = staticmethod(latest_rows)
    os.chdir(args.directory)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), partial(DemoHandler, directory=args.directory))
    server.serve_forever()


if __name__ == "__main__":
    main()
