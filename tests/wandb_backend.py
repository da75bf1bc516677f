"""A stand-in for W&B's server, at the one boundary wandb 0.31's public API crosses to reach it.

Since 0.31, `wandb.Api()` (and `wandb-workspaces`, which calls through it) sends every request to
wandb-core, a Go process that talks to the server: GraphQL documents, history scans and the login
check, as protobuf `ApiRequest`s over `ServiceApi`'s session connection. Tests cannot reach a
server, so `serve()` replaces that connection (`ServiceApi._get_api_session`) with `FakeCore`,
which answers as wandb-core would with the server's data. Everything above it is wandb's real
code: `Api`, `Sweep`, the paged `Runs`, lazy `Run` loading, `HTTPSummary`, `HistoryScan`,
`ServiceApi.execute_graphql`, and `wandb_workspaces`' Workspace and Report `.save()`.

Runs are stored as W&B stores them: config as `{key: {"value": ..., "desc": ...}}` holding every
key transformers' WandbCallback copies in (100+) and `_wandb`; summary and config as JSON strings.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from wandb.apis.public import service_api
from wandb.proto import wandb_api_pb2 as pb
from wandb.sdk import wandb_setup
from wandb.sdk.lib.service.service_connection import WandbApiFailedError

API_KEY = "k" * 40


@dataclass
class StoredRun:
    name: str
    state: str
    params: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]

    def stored_config(self) -> str:
        """The run's config as W&B stores it: every entry wrapped, transformers' keys and `_wandb` included."""
        config = {key: {"value": value, "desc": None} for key, value in transformers_config().items()}
        config.update({key: {"value": value, "desc": None} for key, value in self.params.items()})
        config["_wandb"] = {"value": {"cli_version": "0.31.0", "python_version": "3.11", "t": {"1": [1, 11, 49]}}}
        return json.dumps(config)


@functools.cache
def transformers_config() -> dict[str, Any]:
    """What WandbCallback puts in a run's config: every TrainingArguments field (plus a model config's keys)."""
    from transformers import TrainingArguments

    values = {}
    for spec in dataclasses.fields(TrainingArguments):
        default = spec.default if spec.default is not dataclasses.MISSING else None
        values[spec.name] = default if isinstance(default, (int, float, str, bool, type(None))) else str(default)
    values.update({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "vocab_size": 128256})
    return values


class AnswersGraphQL:
    """A fake server's GraphQL: operation `Name` is answered by its `on_Name(variables)`; mutations recorded."""

    mutations: list[tuple[str, dict]]

    def answer(self, query: str, variables: dict) -> Any:
        operation = re.search(r"(?:query|mutation)\s+(\w+)", query).group(1)
        if query.lstrip("#graphql \n").startswith("mutation"):
            self.mutations.append((operation, variables))
        handler = getattr(self, f"on_{operation}", None)
        if handler is None:
            raise AssertionError(f"the fake server does not know {operation}")
        return handler(variables)


@dataclass
class FakeServer(AnswersGraphQL):
    entity: str
    project: str
    sweep_name: str
    sweep_config: dict[str, Any]
    runs: list[StoredRun]
    failing_runs_page: int | None = None
    """The page of the sweep's runs whose request fails (0-based), as a server behind a bad gateway would."""
    failing_history_run: str | None = None
    """The run whose history scan fails, as wandb-core reports a failed download."""
    views: dict[str, dict] = field(default_factory=dict)
    """Workspace views by name."""
    reports: dict[str, dict] = field(default_factory=dict)
    """Reports by id, as the server returns them."""
    mutations: list[tuple[str, dict]] = field(default_factory=list)
    """Every mutation received: (operation name, variables)."""

    def on_GetDefaultEntity(self, variables):
        return {"viewer": {"id": "VXNlcjox", "entity": self.entity}}

    def on_GetSweep(self, variables):
        if variables["name"] != self.sweep_name:
            return {"project": {"sweep": None}}
        sweep = {
            "__typename": "Sweep",
            "id": "U3dlZXA6MQ==",
            "name": self.sweep_name,
            "displayName": None,
            "method": self.sweep_config.get("method"),
            "state": "FINISHED",
            "description": None,
            "bestLoss": None,
            "config": yaml.safe_dump(self.sweep_config, sort_keys=False),
            "createdAt": "2026-11-01T00:00:00",
            "updatedAt": "2026-11-01T01:00:00",
            "runCount": len(self.runs),
            "runCountExpected": None,
        }
        return {"project": {"sweep": sweep}}

    def on_Runs(self, variables):
        assert json.loads(variables["filters"]) == {"$and": [{"sweep": self.sweep_name}]}
        offset, per_page = int(variables.get("cursor") or 0), variables["perPage"]
        if self.failing_runs_page is not None and offset // per_page == self.failing_runs_page:
            raise WandbApiFailedError("returned error 502 Bad Gateway: upstream connect error")
        page = self.runs[offset : offset + per_page]
        edges = [
            {"node": {"projectId": "1", **lightweight(run)}, "cursor": str(offset + index + 1)}
            for index, run in enumerate(page)
        ]
        runs = {
            "edges": edges,
            "pageInfo": {"endCursor": str(offset + len(page)), "hasNextPage": offset + per_page < len(self.runs)},
        }
        return {"project": {"internalId": "1", "runCount": len(self.runs), "readOnly": False, "runs": runs}}

    def on_Run(self, variables):
        run = self.run_named(variables["name"])
        full = {
            **lightweight(run),
            "projectId": "1",
            "config": run.stored_config(),
            "summaryMetrics": json.dumps(run.summary),
            "systemMetrics": json.dumps({"system/gpu.0.memoryAllocatedBytes": 3.1e9}),
            "historyKeys": history_keys(run),
        }
        return {"project": {"run": full}}

    def on_RunHistoryKeys(self, variables):
        return {"project": {"run": {"historyKeys": history_keys(self.run_named(variables["name"]))}}}

    def run_named(self, name: str) -> StoredRun:
        return next(run for run in self.runs if run.name == name)

    # wandb-workspaces: views, projects, reports

    def on_View(self, variables):
        view = self.views.get(variables["viewName"])
        edges = [{"node": {"id": view["id"], "displayName": view["displayName"], "spec": view["spec"]}}] if view else []
        return {"project": {"allViews": {"edges": edges}}}

    def on_UpsertView2(self, variables):
        view = {**variables, "id": variables.get("id") or f"view{len(self.views) + 1}"}
        inserted = view["name"] not in self.views
        self.views[view["name"]] = view
        return {"upsertView": {"view": {"id": view["id"], "name": view["name"]}, "inserted": inserted}}

    def on_GetProjects(self, variables):
        node = {
            "__typename": "Project",
            "id": "UHJvamVjdDox",
            "name": self.project,
            "entityName": self.entity,
            "createdAt": "2026-11-01T00:00:00",
            "isBenchmark": False,
            "user": None,
        }
        page = {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False}
        return {"models": {"pageInfo": page, "edges": [{"node": node}]}}

    def on_ProjectInternalId(self, variables):
        if (variables["entityName"], variables["projectName"]) != (self.entity, self.project):
            return {"project": None}
        return {"project": {"id": "UHJvamVjdDox", "internalId": "1"}}

    def on_ProjectViews(self, variables):
        """The project's reports (`wandb.Api().reports`), oldest first, one page."""
        if (variables["entity"], variables["project"]) != (self.entity, self.project):
            return {"project": None}
        named = [r for r in self.reports.values() if variables.get("viewName") in (None, r["name"])]
        edges = [{"node": report, "cursor": report["id"]} for report in named]
        page = {"endCursor": edges[-1]["cursor"] if edges else None, "hasNextPage": False}
        return {"project": {"allViews": {"edges": edges, "pageInfo": page}}}

    def on_upsertView(self, variables):
        """Create a report, or update the one whose id is given (W&B keeps its id and URL)."""
        inserted = not variables.get("id")
        if not inserted and variables["id"] not in self.reports:
            raise WandbApiFailedError(f"returned error 404 Not Found: no view {variables['id']}")
        view = {
            "id": variables.get("id") or f"UmVwb3J0Ojk{len(self.reports) + 1}",
            "type": variables["type"],
            "name": variables["name"],
            "displayName": variables["displayName"],
            "description": variables["description"],
            "project": {"id": "UHJvamVjdDox", "name": variables["projectName"], "entityName": variables["entityName"]},
            "spec": variables["spec"],
            "user": {"username": "tester", "photoUrl": None, "email": None},
            "createdAt": "2026-11-01T02:00:00",
            "updatedAt": f"2026-11-01T02:{len(self.mutations):02d}:00",
        }
        self.reports[view["id"]] = view
        return {"upsertView": {"view": view, "inserted": inserted}}


def lightweight(run: StoredRun) -> dict:
    return {
        "id": f"UnVuOnt7{run.name}",
        "tags": [],
        "name": run.name,
        "displayName": f"{run.name}-display",
        "sweepName": "sw33p",
        "state": run.state,
        "group": None,
        "jobType": None,
        "commit": None,
        "readOnly": False,
        "createdAt": "2026-11-01T00:00:00",
        "heartbeatAt": "2026-11-01T00:10:00",
        "description": None,
        "notes": None,
        "historyLineCount": len(run.history),
        "user": {"name": "tester", "username": "tester"},
    }


def history_keys(run: StoredRun) -> dict:
    return {"lastStep": max((row["_step"] for row in run.history), default=-1), "keys": {}}


class FakeCore:
    """Answers `ApiRequest`s as wandb-core does, from a FakeServer; records every GraphQL request."""

    def __init__(self, server: FakeServer):
        self.server = server
        self.graphql: list[tuple[str, dict]] = []
        self.scans: dict[int, tuple[str, list[str]]] = {}

    def api_request(self, request: pb.ApiRequest, timeout: float | None = None) -> pb.ApiResponse:
        if request.HasField("graphql_request"):
            variables = json.loads(request.graphql_request.variables_json)
            self.graphql.append((request.graphql_request.query, variables))
            data = self.server.answer(request.graphql_request.query, variables)
            return pb.ApiResponse(graphql_response=pb.GraphQLResponse(data_json=json.dumps(data)))
        if request.HasField("read_run_history_request"):
            return pb.ApiResponse(read_run_history_response=self.read_history(request.read_run_history_request))
        if request.HasField("features_request"):  # a server with none of the optional features
            return pb.ApiResponse(features_response=pb.FeaturesResponse())
        if request.HasField("auth_request"):
            user = pb.AuthenticateResponse(default_entity=self.server.entity, username="tester")
            return pb.ApiResponse(auth_response=pb.AuthResponse(authenticate_response=user))
        raise AssertionError(f"FakeCore got an unexpected request: {request}")

    def read_history(self, request: pb.ReadRunHistoryRequest) -> pb.ReadRunHistoryResponse:
        if request.HasField("scan_run_history_init"):
            init = request.scan_run_history_init
            scan_id = len(self.scans) + 1
            self.scans[scan_id] = (init.run_id, list(init.keys))
            return pb.ReadRunHistoryResponse(scan_run_history_init=pb.ScanRunHistoryInitResponse(request_id=scan_id))
        scan = request.scan_run_history
        run_id, keys = self.scans[scan.request_id]
        if run_id == self.server.failing_history_run:
            raise WandbApiFailedError("failed to read run history: context deadline exceeded")
        rows = [
            row
            for row in self.server.run_named(run_id).history
            if scan.min_step <= row["_step"] < scan.max_step and all(key in row for key in keys)
        ]
        # As the server does, a scan returns the keys it asked for (and `_step`), not the whole row.
        history_rows = [
            pb.HistoryRow(
                history_items=[
                    pb.ParquetHistoryItem(key=k, value_json=json.dumps(v))
                    for k, v in row.items()
                    if k in keys or k == "_step"
                ]
            )
            for row in rows
        ]
        return pb.ReadRunHistoryResponse(run_history=pb.RunHistoryResponse(history_rows=history_rows))

    def finalize(self, obj: object, request: Any):
        return lambda: None


def fresh_wandb_settings(monkeypatch) -> None:
    """wandb keeps the settings it read from the environment (the key, the base URL) in a process-wide
    object: the test gets a fresh one, read from its own environment, as a new process would, and
    later tests never see it."""
    monkeypatch.setattr(wandb_setup, "_singleton", None)


def serve(monkeypatch, server: FakeServer) -> FakeCore:
    """Route every wandb public-API request to `server`; log in with a fake key (nothing leaves the machine)."""
    fresh_wandb_settings(monkeypatch)
    core = FakeCore(server)
    session = service_api._ServiceApiSession(connection=core, api_id="fake-core")
    monkeypatch.setattr(service_api.ServiceApi, "_get_api_session", lambda self: session)
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.test")
    return core
