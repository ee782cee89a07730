"""The Message Batches API, as the fake server speaks it.

`POST /v1/messages/batches` takes up to 100,000 requests (each a `custom_id` and the `params`
of a Messages call), checks them as the API does, and answers at once with the batch in
progress; every request is answered — by the same scripted replies, faults aside, and prompt
cache as a direct call — when the batch is created, but nothing shows until
`processing_seconds` have passed. Then `GET /v1/messages/batches/{id}` reports it `ended`
with its request counts and a `results_url`, and the results stream as JSONL, in an order that
is not the requests' (as the API warns). Configurable shares of requests end `errored`,
`expired` or `canceled` instead (seeded: the same ones every run). Cancel, list and delete
behave as the API documents.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ._fake_wire import Json, error_body, validate_messages_request

BATCHES_PATH = "/v1/messages/batches"
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BATCH_LIFETIME = timedelta(hours=24)

Outcome = Literal["succeeded", "errored", "expired", "canceled"]


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How the fake processes batches: how long they take, and what share of requests end
    other than `succeeded` (drawn with `seed`, the same requests on every run)."""

    processing_seconds: float = 0.0
    errored: float = 0.0
    expired: float = 0.0
    canceled: float = 0.0
    seed: int = 0
    queue_limit: int | None = None
    """Requests the account may have processing at once (the API's limit on batch requests
    in the processing queue): a batch that would exceed it is refused with 429
    ``rate_limit_error``, and creates nothing. None: no limit."""


@dataclass(slots=True)
class RecordedBatch:
    """A batch as the fake holds it: its requests, and what each came to."""

    id: str
    created: float
    created_at: datetime
    custom_ids: tuple[str, ...]
    bodies: tuple[Json, ...]
    results: dict[str, Json] = field(default_factory=dict)
    """The result line of each custom id, as the results file will have it."""
    cancel_requested: float | None = None
    deleted: bool = False

    def outcome(self, custom_id: str) -> str:
        return str(self.results[custom_id]["result"]["type"])


BatchEndpoint = Literal["create", "retrieve", "list", "results", "cancel", "delete"]


def batch_endpoint(method: str, path: str) -> BatchEndpoint | None:
    """Which Message Batches endpoint a request is for (None: none of them)."""
    parts = [p for p in path.removeprefix(BATCHES_PATH).split("/") if p]
    if not parts:
        return "create" if method == "POST" else "list" if method == "GET" else None
    if len(parts) == 1:
        return "retrieve" if method == "GET" else "delete" if method == "DELETE" else None
    if len(parts) == 2 and parts[1] in ("cancel", "results"):
        return "cancel" if parts[1] == "cancel" else "results"
    return None


AnswerOne = Callable[[Json, str], Json]
"""Answer one request's params as the Messages API would: a message body (raises on a fault)."""


class FakeBatches:
    """The batches of one fake server; thread-safe."""

    def __init__(self, new_id: Callable[[str, int], str]) -> None:
        self.settings = BatchSettings()
        self._new_id = new_id
        self._lock = threading.Lock()
        self._batches: dict[str, RecordedBatch] = {}
        self._order: list[str] = []

    @property
    def batches(self) -> list[RecordedBatch]:
        """Every batch created, oldest first."""
        with self._lock:
            return [self._batches[i] for i in self._order]

    @property
    def paid_requests(self) -> int:
        """Requests that ended `succeeded`: the ones that would be billed (at batch rates)."""
        return sum(
            1
            for batch in self.batches
            for line in batch.results.values()
            if line["result"]["type"] == "succeeded"
        )

    def reset(self) -> None:
        with self._lock:
            self._batches.clear()
            self._order.clear()

    # -- the endpoints ---------------------------------------------------------------------

    def answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        base_url: str,
        request_id: str,
        answer_one: AnswerOne,
    ) -> tuple[int, Json | bytes]:
        """Status and body (JSON, or the results file's bytes) for a batches request."""
        rest = path.removeprefix(BATCHES_PATH).strip("/")
        parts = rest.split("/") if rest else []
        if not parts:
            if method == "POST":
                return self._create(body, base_url, request_id, answer_one)
            if method == "GET":
                return 200, self._list(query, base_url)
        elif len(parts) == 1:
            if method == "GET":
                return self._with_batch(parts[0], request_id, lambda b: self._view(b, base_url))
            if method == "DELETE":
                return self._with_batch(parts[0], request_id, self._delete)
        elif len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            return self._with_batch(parts[0], request_id, lambda b: self._cancel(b, base_url))
        elif len(parts) == 2 and parts[1] == "results" and method == "GET":
            return self._with_batch(parts[0], request_id, self._results)
        return 404, error_body("not_found_error", f"Not found: {method} {path}", request_id)

    def _create(
        self, body: Any, base_url: str, request_id: str, answer_one: AnswerOne
    ) -> tuple[int, Json]:
        problem = _check_requests(body)
        if problem:
            return 400, error_body("invalid_request_error", problem, request_id)
        requests = body["requests"]
        limit = self.settings.queue_limit
        if limit is not None:
            with self._lock:
                processing = sum(
                    len(b.custom_ids)
                    for b in self._batches.values()
                    if not b.deleted and not self._ended(b)
                )
            if processing + len(requests) > limit:
                message = (
                    f"Number of batch requests in the processing queue ({processing:,} + "
                    f"{len(requests):,}) would exceed your rate limit of {limit:,}"
                )
                return 429, error_body("rate_limit_error", message, request_id)
        custom_ids = tuple(str(r["custom_id"]) for r in requests)
        bodies = tuple(dict(r["params"]) for r in requests)
        batch = RecordedBatch(
            id=self._new_id("msgbatch_01", 22),
            created=time.monotonic(),
            created_at=datetime.now(UTC),
            custom_ids=custom_ids,
            bodies=bodies,
        )
        settings = self.settings
        draw = random.Random(f"{settings.seed}:{len(self._order)}")
        for custom_id, params in zip(custom_ids, bodies, strict=True):
            roll = draw.random()
            outcome: Outcome = "succeeded"
            if roll < settings.errored:
                outcome = "errored"
            elif roll < settings.errored + settings.expired:
                outcome = "expired"
            elif roll < settings.errored + settings.expired + settings.canceled:
                outcome = "canceled"
            batch.results[custom_id] = self._result(custom_id, params, outcome, answer_one)
        with self._lock:
            self._batches[batch.id] = batch
            self._order.append(batch.id)
        return 200, self._view(batch, base_url)[1]

    def _result(self, custom_id: str, params: Json, outcome: Outcome, answer: AnswerOne) -> Json:
        if outcome == "succeeded":
            try:
                message = answer(params, custom_id)
            except BatchRequestError as error:
                outcome = "errored"
                return _line(custom_id, {"type": "errored", "error": error.body})
            return _line(custom_id, {"type": "succeeded", "message": message})
        if outcome == "errored":
            failure = error_body("api_error", "Internal server error", "req_batch")
            return _line(custom_id, {"type": "errored", "error": failure})
        return _line(custom_id, {"type": outcome})

    def _with_batch(
        self,
        batch_id: str,
        request_id: str,
        act: Callable[[RecordedBatch], tuple[int, Json | bytes]],
    ) -> tuple[int, Json | bytes]:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None or batch.deleted:
            message = f"No message batch with id {batch_id!r}"
            return 404, error_body("not_found_error", message, request_id)
        return act(batch)

    def _view(self, batch: RecordedBatch, base_url: str) -> tuple[int, Json]:
        ended = self._ended(batch)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if ended:
            for custom_id in batch.custom_ids:
                counts[self._final(batch, custom_id)] += 1
        else:
            counts["processing"] = len(batch.custom_ids)
        ended_at = (
            batch.created_at + timedelta(seconds=self.settings.processing_seconds)
            if ended
            else None
        )
        status = "ended" if ended else "canceling" if batch.cancel_requested else "in_progress"
        return 200, {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _timestamp(batch.created_at),
            "expires_at": _timestamp(batch.created_at + BATCH_LIFETIME),
            "ended_at": _timestamp(ended_at) if ended_at else None,
            "cancel_initiated_at": (
                _timestamp(batch.created_at) if batch.cancel_requested is not None else None
            ),
            "archived_at": None,
            "results_url": f"{base_url}{BATCHES_PATH}/{batch.id}/results" if ended else None,
        }

    def _list(self, query: Mapping[str, str], base_url: str) -> Json:
        with self._lock:
            ids = [i for i in reversed(self._order) if not self._batches[i].deleted]
        limit = max(1, min(1000, int(query.get("limit", 20))))
        if "after_id" in query and query["after_id"] in ids:
            ids = ids[ids.index(query["after_id"]) + 1 :]
        if "before_id" in query and query["before_id"] in ids:
            ids = ids[: ids.index(query["before_id"])]
        page = ids[:limit]
        data = [self._view(self._batches[i], base_url)[1] for i in page]
        return {
            "data": data,
            "has_more": len(ids) > limit,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }

    def _cancel(self, batch: RecordedBatch, base_url: str) -> tuple[int, Json]:
        if not self._ended(batch) and batch.cancel_requested is None:
            batch.cancel_requested = time.monotonic()
        return self._view(batch, base_url)

    def _delete(self, batch: RecordedBatch) -> tuple[int, Json]:
        if not self._ended(batch):
            message = f"Batch {batch.id} cannot be deleted while it is processing; cancel it first"
            return 400, error_body("invalid_request_error", message, "req_batch")
        batch.deleted = True
        return 200, {"id": batch.id, "type": "message_batch_deleted"}

    def _results(self, batch: RecordedBatch) -> tuple[int, bytes]:
        if not self._ended(batch):
            message = f"Batch {batch.id} has not ended; its results are not ready"
            return 400, json.dumps(error_body("invalid_request_error", message, "req")).encode()
        order = list(batch.custom_ids)
        random.Random(batch.id).shuffle(order)  # the API does not keep the requests' order
        lines = []
        for custom_id in order:
            line = batch.results[custom_id]
            if self._final(batch, custom_id) == "canceled" and line["result"]["type"] != "canceled":
                line = _line(custom_id, {"type": "canceled"})
            lines.append(json.dumps(line, ensure_ascii=False))
        return 200, ("\n".join(lines) + "\n").encode()

    # -- time ----------------------------------------------------------------------------

    def _ended(self, batch: RecordedBatch) -> bool:
        if batch.cancel_requested is not None:
            return True  # the fake cancels at once what had not been processed
        return time.monotonic() - batch.created >= self.settings.processing_seconds

    def _final(self, batch: RecordedBatch, custom_id: str) -> str:
        """What a request came to, once the batch has ended: a cancel before the processing
        time was up cancels every request (none had been processed yet)."""
        cancelled_early = (
            batch.cancel_requested is not None
            and batch.cancel_requested - batch.created < self.settings.processing_seconds
        )
        return "canceled" if cancelled_early else batch.outcome(custom_id)


class BatchRequestError(Exception):
    """One request of a batch failed as a direct call would (its error body goes in the
    result line as `errored`)."""

    def __init__(self, body: Json) -> None:
        super().__init__(str(body))
        self.body = body


def _check_requests(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return "requests: Field required"
    requests = body["requests"]
    if not requests:
        return "requests: List should have at least 1 item after validation, not 0"
    if len(requests) > MAX_REQUESTS:
        return f"requests: List should have at most {MAX_REQUESTS} items, not {len(requests)}"
    if len(json.dumps(body)) > MAX_BYTES:
        return "request_too_large: the batch is larger than 256 MB"
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, dict):
            return f"requests.{index}: Input should be a valid dictionary"
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return (
                f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            return f"requests.{index}.custom_id: Duplicate custom_id {custom_id!r} in the batch"
        seen.add(custom_id)
        params = request.get("params")
        if not isinstance(params, dict):
            return f"requests.{index}.params: Field required"
        if params.get("stream"):
            return f"requests.{index}.params.stream: streaming is not supported in batches"
        problem = validate_messages_request(params)
        if problem:
            return f"requests.{index}.params.{problem}"
    return None


def _line(custom_id: str, result: Json) -> Json:
    return {"custom_id": custom_id, "result": result}


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
