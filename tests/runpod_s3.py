"""A stand-in for RunPod's S3-compatible API over network volumes, on loopback: RunPod is the boundary.

It is as strict as the real one where a client could go wrong: each volume is a bucket named by its
id, addressed by path, in its own data center (the region of the request's signature), and every
request must carry a valid AWS Signature Version 4 made with the one S3 API key it knows. The
signature is checked here from the request as received, independently of the client's code. A
missing key is S3's `NoSuchKey`, a wrong signature `SignatureDoesNotMatch`, as XML errors.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

ACCESS_KEY = "user_2f21CfO73Mm2Uq2lEGFiEF24IPw"
SECRET_KEY = "rps_SECRET_s3_key"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/s3/aws4_request, "
    r"SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


class FakeVolumeS3(BaseHTTPRequestHandler):
    """GET of one file on a volume: `volumes` maps a volume id to (its data center, the folder it holds)."""

    volumes: dict[str, tuple[str, Path]] = {}
    requests: list[str] = []

    def do_GET(self):
        self.requests.append(self.path)
        bucket, _, key = urlsplit(self.path).path.lstrip("/").partition("/")
        if bucket not in self.volumes:
            return self.error(404, "NoSuchBucket", "The specified bucket does not exist.")
        data_center, root = self.volumes[bucket]
        signed = AUTHORIZATION.fullmatch(self.headers.get("Authorization", ""))
        if signed is None or signed["key"] != ACCESS_KEY:
            return self.error(403, "InvalidAccessKeyId", "The access key you provided does not exist.")
        if signed["region"] != data_center or signed["signature"] != self.signature(signed):
            return self.error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        path = root / unquote(key)
        if not path.is_file():
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        self.send(200, path.read_bytes(), "application/octet-stream")

    def signature(self, signed: re.Match) -> str:
        url = urlsplit(self.path)
        query = "&".join(sorted(part if "=" in part else f"{part}=" for part in url.query.split("&") if part))
        names = signed["headers"].split(";")
        headers = "".join(f"{name}:{' '.join(self.headers.get(name, '').split())}\n" for name in names)
        canonical = "\n".join(
            [self.command, url.path, query, headers, signed["headers"], self.headers["x-amz-content-sha256"]]
        )
        scope = f"{signed['date']}/{signed['region']}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{self.headers['x-amz-date']}\n{scope}\n{sha256(canonical.encode())}"
        key = ("AWS4" + SECRET_KEY).encode()
        for part in (signed["date"], signed["region"], "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def error(self, status: int, code: str, message: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        self.send(status, body.encode(), "application/xml")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
