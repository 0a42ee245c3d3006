#!/usr/bin/env bash
# Gradescope's setup step: runs once when the image is built, never per submission. This one needs
# no network: it generates the large sample log that the performance test reads.
set -euo pipefail
mkdir -p /opt/access-log
python3 - <<'PY'
import random

rng = random.Random(2026)
paths = ["/", "/index.html", "/about", "/api/items", "/api/items/7", "/login", "/static/app.js"]
with open("/opt/access-log/large.log", "w") as log:
    for i in range(50_000):
        status = rng.choice([200, 200, 200, 304, 404, 500])
        size = "-" if status == 304 else str(rng.randint(100, 9000))
        log.write(
            f'10.0.0.{i % 250} - - [10/Oct/2026:13:{i % 60:02d}:00 +0000] '
            f'"GET {rng.choice(paths)} HTTP/1.1" {status} {size}\n'
        )
PY
