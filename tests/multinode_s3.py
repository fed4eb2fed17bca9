"""A local S3-compatible server for tests: moto's server mode on 127.0.0.1, one bucket.

Clients reach it the way they reach real S3 without code changes: through the standard AWS
environment variables (``AWS_ENDPOINT_URL``, dummy ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), which ``pyarrow.fs.S3FileSystem`` and
``FileSystem.from_uri("s3://...")`` honour (checked with pyarrow 26 here). A cluster's nodes
get the same variables in their environment, as a real cluster's machines would.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ray_cluster import free_ports

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


@dataclass
class LocalS3:
    """A running moto server: ``env`` is what a client needs, ``bucket`` exists."""

    endpoint: str
    bucket: str
    proc: subprocess.Popen
    env: dict[str, str] = field(default_factory=dict)

    def filesystem(self, **options):
        """A ``pyarrow.fs.S3FileSystem`` on this server, with ``options`` added."""
        from pyarrow.fs import S3FileSystem

        return S3FileSystem(
            endpoint_override=self.endpoint,
            access_key=self.env["AWS_ACCESS_KEY_ID"],
            secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region=self.env["AWS_DEFAULT_REGION"],
            **options,
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix`` (a real listing, not a cache)."""
        from pyarrow.fs import FileSelector, FileType

        base = f"{self.bucket}/{prefix}".rstrip("/")
        infos = self.filesystem().get_file_info(
            FileSelector(base, recursive=True, allow_not_found=True)
        )
        return sorted(i.path[len(self.bucket) + 1 :] for i in infos if i.type == FileType.File)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_s3(bucket: str = "pinnacle-test", log: Path | None = None) -> LocalS3:
    """Start ``moto_server`` on a free port of 127.0.0.1, wait until it answers, create
    ``bucket``; raises ``RuntimeError`` (never skips) when it cannot."""
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
    )
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Keep the AWS SDK from probing the EC2 metadata service (no network here).
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server = LocalS3(endpoint=endpoint, bucket=bucket, proc=proc, env=env)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} (log: {log})")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto_server on {endpoint} did not answer in 60 s") from exc
            time.sleep(0.2)
    try:
        server.filesystem(allow_bucket_creation=True).create_dir(bucket)
    except Exception:
        server.stop()
        raise
    return server
