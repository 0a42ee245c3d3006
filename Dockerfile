# The grading service (web, workers, reconciler share this image). Build: docker build -t microcred-grader .
FROM python:3.11-slim-bookworm
# fonts-dejavu-core: the credential certificates' font (names in Latin, Greek and Cyrillic scripts).
RUN apt-get update && apt-get install -y --no-install-recommends git bubblewrap fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 grader
WORKDIR /app
COPY pyproject.toml README.md ./
COPY grader grader
COPY workers workers
COPY rubrics rubrics
COPY sandbox sandbox
COPY examples examples
RUN pip install --no-cache-dir .
USER grader
ENV GRADER_DATA_DIR=/var/lib/grader
EXPOSE 8000
CMD ["gunicorn", "-c", "python:grader.entrypoints.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-", "grader.entrypoints.wsgi:app"]
