"""W&B's artifact storage, faked at its two transports: GraphQL (through wandb_backend.FakeCore) and HTTP.

A version is stored from what a run's `log_artifact` wrote to its transaction log: the record W&B's
client would upload (name, type, aliases, manifest with each file's digest and staged copy). The
public API (`wandb.Api().artifact`, `.download`, `.artifacts`, `.delete`) then reads it through
W&B's own code: GraphQL answers in the server's shapes, and the manifest and files served over HTTP
on loopback from their "direct URLs", as object storage serves them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from wandb_backend import AnswersGraphQL

NOW = "2026-11-25T00:00:00Z"


@dataclass
class StoredVersion:
    index: int
    type: str
    files: dict[str, bytes]
    digests: dict[str, str]
    digest: str
    metadata: str
    aliases: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return base64.b64encode(f"Artifact:{self.index}".encode()).decode()

    def manifest(self) -> dict:
        contents = {path: {"digest": self.digests[path], "size": len(data)} for path, data in self.files.items()}
        return {
            "version": 1,
            "storagePolicy": "wandb-storage-policy-v1",
            "storagePolicyConfig": {"storageLayout": "V2"},
            "contents": contents,
        }


def artifact_records(run_dir: Path) -> list[dict]:
    """The artifact records in a run's transaction log, as `wandb leet inspect --json` prints them."""
    inspect = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in inspect.stdout.splitlines() if line.startswith("{")]
    return [record["artifact"] for record in records if record.get("type") == "artifact"]


class FakeArtifactServer(AnswersGraphQL):
    """One project's artifact collections, answering the GraphQL operations wandb's public API sends."""

    def __init__(self, entity: str, project: str):
        self.entity, self.project = entity, project
        self.collections: dict[str, list[StoredVersion]] = {}
        self.committed: dict[str, int] = {}
        """Versions ever committed per collection: indexes are never reused after a deletion."""
        self.mutations: list[tuple[str, dict]] = []
        self.cut: tuple[str, int] | None = None
        """`(file path, bytes)`: serve that file's first bytes only, then drop the connection, as a
        download cut off by a lost network or a machine going away does (the header promised them all)."""
        self.http = _FileServer(self)

    def receive(self, record: dict) -> StoredVersion:
        """Commit an upload: a new version of the record's collection; its aliases move to it."""
        versions = self.collections.setdefault(record["name"], [])
        contents = record["manifest"]["contents"]
        index = self.committed[record["name"]] = self.committed.get(record["name"], -1) + 1
        version = StoredVersion(
            index=index,
            type=record["type"],
            files={entry["path"]: Path(entry["local_path"]).read_bytes() for entry in contents},
            digests={entry["path"]: entry["digest"] for entry in contents},
            digest=record["digest"],
            metadata=record.get("metadata", "{}"),
            aliases=set(record["aliases"]),
        )
        for older in versions:
            older.aliases -= version.aliases
        version.aliases.add(f"v{version.index}")
        versions.append(version)
        return version

    def live_versions(self, collection: str) -> list[int]:
        return [version.index for version in self.collections.get(collection, [])]

    # -- GraphQL operations
    def on_ArtifactMembershipByName(self, variables):
        collection, _, alias = variables["name"].partition(":")
        version = self._find(collection, alias)
        if version is None:
            return {"project": {**self._project(), "artifactCollectionMembership": None}}
        membership = {
            "__typename": "ArtifactCollectionMembership",
            "id": f"membership-{version.id}",
            "versionIndex": version.index,
            "createdAt": NOW,
            "aliases": self._aliases(version, with_collection=False),
            "artifactCollection": self._collection(collection),
            "artifact": self._artifact(collection, version),
        }
        return {"project": {**self._project(), "artifactCollectionMembership": membership}}

    def on_FetchArtifactManifest(self, variables):
        collection, version = self._by_id(variables["id"])
        return {"artifact": {"currentManifest": {"file": {"directUrl": self.http.url(collection, version, None)}}}}

    def on_GetArtifactMembershipFileUrls(self, variables):
        version = self._find(variables["collection"], variables["alias"])
        edges = [
            {
                "node": {
                    "__typename": "File",
                    "name": path,
                    "directUrl": self.http.url(variables["collection"], version, path),
                }
            }
            for path in version.files
        ]
        page = {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False}
        files = {"pageInfo": page, "edges": edges}
        return {
            "project": {
                "artifactCollection": {"__typename": "ArtifactSequence", "artifactMembership": {"files": files}}
            }
        }

    def on_ProjectArtifacts(self, variables):
        versions = self.collections.get(variables["collection"], [])
        edges = [{"version": f"v{v.index}", "node": self._artifact(variables["collection"], v)} for v in versions]
        page = {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False}
        connection = {"totalCount": len(edges), "pageInfo": page, "edges": edges}
        collection = {"__typename": "ArtifactSequence", "artifacts": connection}
        return {"project": {"artifactType": {"artifactCollection": collection}}}

    def on_DeleteArtifact(self, variables):
        artifact_id = variables["input"]["artifactID"]
        collection, version = self._by_id(artifact_id)
        self.collections[collection].remove(version)
        return {"result": {"artifact": {"id": artifact_id}}}

    # -- shapes
    def _find(self, collection: str, alias: str) -> StoredVersion | None:
        return next((v for v in self.collections.get(collection, []) if alias in v.aliases), None)

    def _by_id(self, artifact_id: str) -> tuple[str, StoredVersion]:
        for collection, versions in self.collections.items():
            for version in versions:
                if version.id == artifact_id:
                    return collection, version
        raise AssertionError(f"no artifact {artifact_id}")

    def _project(self) -> dict:
        return {"id": "UHJvamVjdDox", "internalId": "1", "name": self.project, "entity": {"name": self.entity}}

    def _collection(self, name: str) -> dict:
        return {"__typename": "ArtifactSequence", "name": name, "project": self._project()}

    def _aliases(self, version: StoredVersion, with_collection: bool) -> list[dict]:
        collection = self._by_id(version.id)[0]
        return [
            {
                "__typename": "ArtifactAlias",
                "id": f"alias-{alias}",
                "alias": alias,
                **({"artifactCollection": self._collection(collection)} if with_collection else {}),
            }
            for alias in sorted(version.aliases)
        ]

    def _artifact(self, collection: str, version: StoredVersion) -> dict:
        return {
            "__typename": "Artifact",
            "id": version.id,
            "artifactSequence": self._collection(collection),
            "versionIndex": version.index,
            "artifactType": {"name": version.type},
            "description": None,
            "metadata": version.metadata,
            "ttlDurationSeconds": -2,
            "ttlIsInherited": True,
            "tags": [],
            "historyStep": None,
            "state": "COMMITTED",
            "size": sum(len(data) for data in version.files.values()),
            "digest": version.digest,
            "commitHash": "c0ffee",
            "fileCount": len(version.files),
            "createdAt": NOW,
            "updatedAt": NOW,
            "aliases": self._aliases(version, with_collection=True),
        }


class _FileServer:
    """Object storage on loopback: a version's manifest and files at their direct URLs."""

    def __init__(self, server: FakeArtifactServer):
        artifacts = server

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                _, collection, index, *path = self.path.split("/")
                version = next((v for v in artifacts.collections.get(collection, []) if v.index == int(index)), None)
                if version is None:
                    self.send_error(404)
                    return
                name = "/".join(path)
                body = json.dumps(version.manifest()).encode() if name == "manifest.json" else version.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if artifacts.cut and artifacts.cut[0] == name:
                    self.wfile.write(body[: artifacts.cut[1]])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, collection: str, version: StoredVersion, path: str | None) -> str:
        host, port = self.httpd.server_address
        return f"http://{host}:{port}/{collection}/{version.index}/{path or 'manifest.json'}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
