"""A removed pod's own files, read from its network volume through RunPod's S3-compatible API.

A pod's start script writes why it ended (`ended`) and its log on the pod's workdir, which is the
network volume when the pod has one, so they outlive the pod. RunPod serves each network volume as
an S3 bucket (https://docs.runpod.io/storage/s3-api): the bucket is the volume's id, a key is a path
under the volume's mount, the region is its data center, and the endpoint is that data center's.
It takes an S3 API key, which is not the RunPod API key: its access key is the user id (`user_...`)
and its secret `rps_...`, both from RunPod's console (Settings, S3 API Keys). boto3 comes with
RunPod's SDK, which requires it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import UserError

S3_ACCESS_KEY_ENV = "RUNPOD_S3_ACCESS_KEY"
S3_SECRET_KEY_ENV = "RUNPOD_S3_SECRET_KEY"
S3_ENDPOINT_ENV = "RUNPOD_S3_ENDPOINT_URL"
"""Another endpoint than the data center's own (a proxy, a test's stand-in)."""


class VolumeReadError(UserError):
    """The volume could not be read (refused, unreachable); the message is one line."""


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Keys | None:
        """The key from the environment, or None when either half is unset."""
        access, secret = env.get(S3_ACCESS_KEY_ENV), env.get(S3_SECRET_KEY_ENV)
        return cls(access, secret) if access and secret else None


def endpoint_url(data_center: str, env: Mapping[str, str]) -> str:
    return env.get(S3_ENDPOINT_ENV) or f"https://s3api-{data_center.lower()}.runpod.io"


class VolumeFiles:
    """Files on one network volume, by their path under the volume's mount."""

    def __init__(self, keys: S3Keys, volume_id: str, data_center: str, env: Mapping[str, str] = os.environ):
        import boto3
        from botocore.config import Config

        self.volume_id = volume_id
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url(data_center, env),
            region_name=data_center,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            # RunPod's buckets are addressed by path; `pods status` must not hang on a slow data center.
            config=Config(
                s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}
            ),
        )

    def read_text(self, path: str) -> str | None:
        """The file's text, or None when the volume holds no such file."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.volume_id, Key=path)
            return answer["Body"].read().decode("utf-8", errors="replace")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                return None
            raise VolumeReadError(f"RunPod's S3 API: {' '.join(str(error).split())}") from None
        except BotoCoreError as error:
            raise VolumeReadError(f"RunPod's S3 API: {' '.join(str(error).split())}") from None
