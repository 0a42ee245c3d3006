"""A passing submission of `access-log-report` (for `grader demo --smoke`)."""

import re
from collections import Counter

LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\d+|-)$'
)


def summarise(lines):
    requests = 0
    classes = Counter()
    paths = Counter()
    total = 0
    for line in lines:
        match = LINE.match(line)
        if match is None:
            continue
        requests += 1
        classes[match["status"][0] + "xx"] += 1
        paths[match["path"]] += 1
        total += 0 if match["size"] == "-" else int(match["size"])
    top = sorted(paths.items(), key=lambda item: (-item[1], item[0]))[:3]
    return {
        "requests": requests,
        "by_status_class": dict(sorted(classes.items())),
        "top_paths": [[path, count] for path, count in top],
        "bytes": total,
    }
