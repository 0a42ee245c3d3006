"""The course team's tests of `summarise`, weighted and numbered the Gradescope way."""

import time
import unittest

from gradescope_json import number, tags, visibility, weight

SAMPLE = [
    '127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326',
    '127.0.0.1 - - [10/Oct/2026:13:55:37 +0000] "GET /about HTTP/1.1" 200 1200',
    '10.0.0.7 - - [10/Oct/2026:13:55:38 +0000] "GET /index.html HTTP/1.1" 304 -',
    '10.0.0.7 - - [10/Oct/2026:13:55:39 +0000] "POST /login HTTP/1.1" 401 90',
    "this line is not a log line",
    '10.0.0.8 - - [10/Oct/2026:13:55:40 +0000] "GET /missing HTTP/1.1" 404 150',
    '10.0.0.8 - - [10/Oct/2026:13:55:41 +0000] "GET /index.html HTTP/1.1" 500 0',
]


def summarise(lines):
    from log_report import summarise as learners

    return learners(lines)


class TestLogReport(unittest.TestCase):
    @weight(2)
    @number("1.1")
    @tags("parsing")
    def test_counts_requests(self):
        """Counts the well-formed lines"""
        self.assertEqual(summarise(SAMPLE)["requests"], 6)

    @weight(3)
    @number("1.2")
    @tags("parsing")
    def test_status_classes(self):
        """Counts requests per status class"""
        self.assertEqual(summarise(SAMPLE)["by_status_class"], {"2xx": 2, "3xx": 1, "4xx": 2, "5xx": 1})

    @weight(3)
    @number("1.3")
    def test_bytes(self):
        """Adds up the sizes, '-' as zero"""
        self.assertEqual(summarise(SAMPLE)["bytes"], 2326 + 1200 + 90 + 150)

    @weight(3)
    @number("2.1")
    @visibility("after_due_date")
    def test_top_paths(self):
        """Lists the three most requested paths"""
        self.assertEqual(summarise(SAMPLE)["top_paths"], [["/index.html", 3], ["/about", 1], ["/login", 1]])

    @weight(2)
    @number("2.2")
    @visibility("hidden")
    def test_empty_log(self):
        """Summarises an empty log"""
        self.assertEqual(summarise([]), {"requests": 0, "by_status_class": {}, "top_paths": [], "bytes": 0})

    @weight(2)
    @number("2.3")
    @visibility("after_published")
    def test_ties_in_alphabetical_order(self):
        """Breaks ties in alphabetical order"""
        lines = [SAMPLE[0].replace("/index.html", path) for path in ("/d", "/b", "/a", "/c", "/b")]
        self.assertEqual(summarise(lines)["top_paths"], [["/b", 2], ["/a", 1], ["/c", 1]])

    @weight(3)
    @number("3.1")
    @visibility("visible")
    def test_large_log_is_fast(self):
        """Summarises 50,000 lines in under two seconds"""
        with open("/opt/access-log/large.log") as log:  # built once by setup.sh
            lines = log.read().splitlines()
        started = time.monotonic()
        report = summarise(lines)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(report["requests"], 50_000)

    @weight(2)
    @number("1.4")
    def test_skips_malformed_lines(self):
        """Skips lines that are not in the Common Log Format"""
        self.assertEqual(summarise(["garbage", ""])["requests"], 0)
