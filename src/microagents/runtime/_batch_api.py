"""Message Batches mode: a model layer that defers a journaled run's calls into a batch.

`BatchApiModel` sits where the standard back-end's stack would (under `JournaledModel`). A
call it sees inside a journaled run is one the journal could not replay: it records the call
as pending — its custom id, journal step, request signature and wire parameters — and
raises `RunSuspended`, so the run ends `waiting` and holds no memory. The round driver
(`_rounds`) submits the pending calls as Message Batches, journals each result under the
call's step, and runs the item again: the journal replays the answer and the run goes on to
its next call. The scheduler and the batch runner do not know the difference.

A call whose request failed for good raises what a direct call would have (`ServerError` or
`InvalidRequestError` for ``errored``, so the escalation ladder's ``error`` trigger applies;
`NodeError` for ``canceled`` and for ``expired`` past the limit, failing the item). Outside
a journaled run — and in a pass the driver runs `direct`, to finish a small tail of calls
without waiting for another round — a call goes to the standard API (with the standard
stack's rate limits and retries), at standard prices.
"""

from __future__ import annotations

import hashlib
import json

import anyio.to_thread

from ..errors import InvalidRequestError, NodeError, RunSuspended, ServerError
from ..models._anthropic import AnthropicModel
from ..models._cache import request_key
from ..models._protocol import Model, ModelRequest, ModelResponse, aclose_inner
from ..models._ratelimit import RateLimitedModel
from ..models._retry import RetryingModel
from ..results._results import WaitingFor
from ._batch_calls import BatchCallStore, CallState, PendingCall
from ._journal import CURRENT_RUN, CURRENT_STEP

FLUSH_EVERY = 2000
"""Pending calls held in memory before they are written to the store."""


def custom_id(run_id: str, step: str) -> str:
    """The custom id of a run's call at `step`: the same on every pass and every process."""
    digest = hashlib.blake2b(f"{run_id}\0{step}".encode(), digest_size=16).hexdigest()
    return f"ma-{digest}"


class BatchApiModel:
    """Defers the live calls of journaled runs to Message Batches (see the module doc).

    ```python
    model = BatchApiModel(AnthropicModel(tiers=tiers))
    async with Engine(model, tiers=tiers, journal=SQLiteJournal()) as engine:
        summary = await run_batch(engine, workflow, "tickets.jsonl", batch_api=True)
    ```
    """

    def __init__(self, backend: AnthropicModel, *, standard: Model | None = None) -> None:
        self.backend = backend
        self.inner = backend
        self.standard: Model = standard or RetryingModel(RateLimitedModel(backend, backend.tiers))
        """Where a call goes on the standard API: `backend` under rate limits and retries."""
        self.direct = False
        """This pass makes its calls on the standard API (the driver finishes a tail)."""
        self.direct_calls = 0
        self.direct_cost_usd = 0.0
        self.dedupe = False
        """A response cache is on (above this layer): a request the pass has already deferred
        is not deferred again; the call follows the first one's result."""
        self.leaders: dict[str, str] = {}
        """The pass's deferred requests, by cache key → the custom id of the first."""
        self.batch: str | None = None
        self.round = 0
        self.states: dict[str, CallState] = {}
        self.queued: list[PendingCall] = []
        self.store: BatchCallStore | None = None

    async def aclose(self) -> None:
        await aclose_inner(self.standard)  # the layers over `backend` close it

    def begin_pass(
        self, store: BatchCallStore, batch: str, round_: int, states: dict[str, CallState]
    ) -> None:
        """Get ready for a pass over `batch`'s items, knowing its calls' `states`."""
        self.store, self.batch, self.round, self.states = store, batch, round_, states
        self.queued = []
        self.leaders = {}

    async def flush(self) -> None:
        """Write the calls deferred so far to the store (pending, for the next round)."""
        queued, self.queued = self.queued, []
        if queued and self.store is not None and self.batch is not None:
            await anyio.to_thread.run_sync(self.store.add_pending, self.batch, self.round, queued)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        run = CURRENT_RUN.get()
        step = CURRENT_STEP.get()
        if run is None or step is None or self.batch is None:
            return await self.standard.complete(request)
        key, signed = step
        cid = custom_id(run.run_id, key)
        known = self.states.get(cid)
        if self.direct or (known is not None and known.state == "direct"):
            response = await self.standard.complete(request)
            self.direct_calls += 1
            self.direct_cost_usd += response.cost_usd or 0.0
            return response
        signature = signed if isinstance(signed, str) else signed()
        node = request.metadata.get("node", "")
        if known is not None and known.state == "failed":
            raise _failure(node, cid, known)
        if known is None:
            self.queued.append(self._pending(request, cid, run.run_id, key, signature, node))
            if len(self.queued) >= FLUSH_EVERY:
                await self.flush()
        raise RunSuspended(
            WaitingFor(
                node,
                f"the result of a Message Batches request ({cid}) of round {self.round}",
                {},
                key,
                kind="batch_result",
            )
        )

    def _pending(
        self, request: ModelRequest, cid: str, run_id: str, step: str, signature: str, node: str
    ) -> PendingCall:
        cache_key = request_key(request) if self.dedupe and request.temperature == 0 else None
        leader = self.leaders.get(cache_key) if cache_key is not None else None
        if leader is not None:
            return PendingCall(
                cid, run_id, step, signature, node, request.model, "", same_as=leader
            )
        if cache_key is not None:
            self.leaders[cache_key] = cid
        params = json.dumps(self.backend.to_params(request), ensure_ascii=False)
        return PendingCall(
            cid, run_id, step, signature, node, request.model, params, cache_key=cache_key
        )


def _failure(node: str, cid: str, known: CallState) -> Exception:
    error = known.error or "no detail"
    if known.outcome == "errored":
        if "invalid_request" in error:
            return InvalidRequestError(f"the Message Batches request {cid} was refused: {error}")
        return ServerError(f"the Message Batches request {cid} errored: {error}")
    if known.outcome == "expired":
        return NodeError(
            f"node '{node}': the Message Batches request {cid} expired too many times ({error})"
        )
    return NodeError(f"node '{node}': the Message Batches request {cid} was canceled ({error})")
