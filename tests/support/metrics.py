"""Reading Prometheus text as Prometheus reads it (prometheus_client's own parser), for the tests."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` of a scrape (exact labels), or None when the scrape has no such series."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def count(text: str, name: str, **labels: str) -> float:
    """A counter's (or a histogram's `_count`) value; a series not yet born counts 0."""
    found = value(text, name, **labels)
    return 0.0 if found is None else found


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return str(response.read().decode("utf-8"))
