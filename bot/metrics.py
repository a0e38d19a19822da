"""Prometheus metrics: one registry per process, names documented in the README."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter("huike_http_requests_total", "HTTP requests", ["method", "route", "status"])
MESSAGES_IN = Counter("huike_messages_in_total", "Inbound messages stored", ["channel"])
MESSAGES_OUT = Counter("huike_messages_out_total", "Outbound messages recorded", ["channel", "sender"])
DUPLICATES = Counter("huike_duplicate_deliveries_total", "Inbound deliveries dropped as duplicates", ["channel"])
ANSWER_LATENCY = Histogram(
    "huike_answer_latency_seconds",
    "Time from receiving a message to its replies being recorded",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HANDLED_BY = Counter("huike_turns_total", "Turns by the handler that answered", ["handler"])
OUTBOX_DELIVERIES = Counter("huike_outbox_deliveries_total", "Outbox delivery attempts", ["channel", "result"])
