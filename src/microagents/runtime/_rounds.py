"""Message Batches mode: a batch run advanced in rounds.

```python
model = BatchApiModel(AnthropicModel(tiers=tiers))
async with Engine(model, tiers=tiers, journal=SQLiteJournal()) as engine:
    summary = await run_batch(engine, workflow, "tickets.jsonl", batch_api=True)
```

A round is: collect every Message Batch in flight (poll with backoff; journal each result
under its call's step, *then* mark the call done), then one pass of the ordinary batch runner
over the input (finished items are skipped; every other item replays its journal and runs
until it finishes or reaches a call with no result, which `BatchApiModel` defers), then submit
the deferred calls as Message Batches (5,000 requests each by default, at most the API's
100,000 and 256 MB; each batch's intent journaled before the API call and its id right
after), and so on until no call is left. Runs are suspended in the journal between rounds:
memory does not grow with the batch.

Detached (`detach`), the driver returns once a round is submitted; a later run with
`resume` — in any process that sees the same journal — collects and goes on.

Results: ``succeeded`` is journaled (priced at batch rates) and its run resumes; ``errored``
is submitted again in the next round while the retry policy allows (a retryable error), then
raised as a model error (the escalation ladder's ``error`` trigger); ``expired`` is submitted
again up to `BatchApiOptions.expired_limit` times, then fails its item, as ``canceled`` does.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anthropic
import anyio
import anyio.to_thread

from .._groups import single_errors
from ..errors import MicroagentsError
from ..graph._compiled import CompiledWorkflow
from ..models._cache import CachedModel
from ..models._protocol import BatchedCall, ModelResponse, Usage
from ..models._retry import RetryPolicy
from ..results._summary import (
    BatchApiCost,
    BatchApiFigures,
    BatchStats,
    BatchSummary,
    duration_text,
)
from ._batch import (
    BatchObserver,
    BatchProgress,
    BatchRunner,
    MessageBatchProgress,
    RoundsProgress,
    count_lines,
    default_out_path,
    layer_of,
)
from ._batch_api import BatchApiModel
from ._batch_calls import BatchCallStore, Follower, MessageBatchRecord, Submitted
from ._engine import DEFAULT_CONCURRENCY, Engine
from ._journal import batch_key, encode_response
from ._journal_store import JournalStore

MAX_REQUESTS = 100_000
"""The API's limits of one Message Batch: requests, and bytes of its body."""
MAX_BYTES = 256 * 1024 * 1024
REQUESTS_PER_BATCH = 5_000
"""The default size of one Message Batch: creating one holds each of its requests in memory
about three times (the JSON, its dicts, the SDK's copy; ~9 KB for a small agent's request),
so a 100,000-request batch would take ~900 MB while a 5,000 one takes ~45 MB. The batches of
a round are created one after another and processed by the API side by side."""
Outcome = tuple[str, str, str | None, str | None, float | None, float | None]
"""What a call came to: (custom id, new state, outcome, error, cost, standard cost)."""
RETRYABLE_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


@dataclass(frozen=True, slots=True)
class BatchApiOptions:
    """How a batch run uses Message Batches."""

    poll_interval: float = 10.0
    """Seconds before the first poll of a batch in flight; each wait is 1.5x the last."""
    max_poll_interval: float = 300.0
    expired_limit: int = 2
    """Times an expired request is submitted again before its item fails."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Tries of an errored request (retryable errors only), one per round."""
    requests_per_batch: int = REQUESTS_PER_BATCH
    """Requests in one Message Batch, at most (the API takes up to 100,000)."""
    bytes_per_batch: int = MAX_BYTES
    """Bytes of one Message Batch's requests, at most (the API takes up to 256 MB)."""
    detach: bool = False
    """Return once a round is submitted; collect later with ``resume``."""
    standard_tail: int = 0
    """When a round after the first would hold at most this many calls, make them on the
    standard API instead (at standard prices, in seconds rather than another round's minutes
    to hours), and every call after them until the items finish. 0: never."""

    def __post_init__(self) -> None:
        if not 0 < self.requests_per_batch <= MAX_REQUESTS:
            raise MicroagentsError(
                f"requests_per_batch must be between 1 and {MAX_REQUESTS:,} (the API's limit), "
                f"not {self.requests_per_batch:,}"
            )
        if not 0 < self.bytes_per_batch <= MAX_BYTES:
            raise MicroagentsError(
                f"bytes_per_batch must be between 1 and {MAX_BYTES:,} (256 MB, the API's "
                f"limit), not {self.bytes_per_batch:,}"
            )


class RoundDriver:
    """One batch run in Message Batches mode (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        workflow: CompiledWorkflow,
        input_path: Path | str,
        out_path: Path | str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        resume: bool = False,
        budget_usd: float | None = None,
        store: JournalStore | None = None,
        observer: BatchObserver | None = None,
        options: BatchApiOptions | None = None,
    ) -> None:
        layer = layer_of(engine.model, BatchApiModel)
        if layer is None:
            raise MicroagentsError(
                "batch_api needs an engine on the Message Batches back-end: "
                "Engine.for_backend('anthropic', batch_api=True) or "
                "Engine(BatchApiModel(AnthropicModel()), journal=...)"
            )
        journal = store or engine.journal
        path = getattr(journal, "path", None)
        if journal is None or path is None:
            raise MicroagentsError(
                "batch_api needs a journal in a SQLite file (SQLiteJournal): runs wait in it "
                "between rounds"
            )
        self.engine = engine
        self.workflow = workflow
        self.input_path = Path(input_path)
        self.out_path = Path(out_path) if out_path is not None else default_out_path(input_path)
        self.simulated = False
        self.concurrency = concurrency
        self.resume = resume
        self.budget_usd = budget_usd
        self.journal: JournalStore = journal
        self.observer = observer
        self.options = options or BatchApiOptions()
        self.layer = layer
        self.cache = layer_of(engine.model, CachedModel)
        """The response cache over the batch layer, if on: requests the same as one in the
        round are asked once, and every result is cached (for later rounds and runs)."""
        layer.dedupe = self.cache is not None
        self.calls = BatchCallStore(Path(path))
        self.batch = batch_key(workflow, self.input_path)
        self.round = 0
        self.stopped_by_budget = False
        self._runner: BatchRunner | None = None
        """The pass running now; its items join `_tally` when it ends."""
        self._tally = BatchStats()
        """Items finished in the passes that ended (each item finishes in one pass)."""
        self._passes = 0
        self._lines: int | None = None
        self._finished_before: int | None = None
        self._phase = "starting"
        self._in_flight: dict[str, MessageBatchProgress] = {}
        self._in_batches = 0
        self._spent = 0.0
        self._started = time.perf_counter()

    def progress(self) -> BatchProgress:
        """Where the run stands: items over every round so far, and the round's batches."""
        tally, runner = self._tally, self._runner
        current = runner.stats if runner is not None else BatchStats()
        before = self._finished_before
        if before is None and runner is not None:
            before = runner.finished_before
        to_do = None if self._lines is None or before is None else max(0, self._lines - before)
        resumed = current.resumed if self._passes == 0 else tally.resumed
        # While its calls are being made ready and submitted, a round is the next one.
        preparing = self._phase in ("starting", "running items", "submitting")
        shown_round = self.round + 1 if preparing else self.round
        return BatchProgress(
            done=tally.done + current.done,
            failed=tally.failed + current.failed,
            escalated=tally.escalated_items + current.escalated_items,
            tokens=tally.tokens + current.tokens,
            cost_usd=self._spent + self.layer.direct_cost_usd,
            elapsed=time.perf_counter() - self._started,
            to_do=to_do,
            resumed=resumed,
            skipped_by_budget=0,
            simulated=False,
            lines_read=runner.progress().lines_read if runner is not None else 0,
            rounds=RoundsProgress(
                round=shown_round,
                phase=self._phase,
                in_flight=tuple(self._in_flight.values()),
                in_batches=self._in_batches if runner is None else current.in_batches,
            ),
        )

    def summary(self) -> BatchSummary:
        """The items finished so far, every round's (marked interrupted)."""
        return self._tallied().summary(
            workflow=self.workflow.name,
            elapsed=time.perf_counter() - self._started,
            out_path=str(self.out_path),
            budget_usd=self.budget_usd,
            interrupted=True,
        )

    def _tallied(self) -> BatchStats:
        """The tally with the pass running now, if any."""
        if self._runner is None:
            return self._tally
        tally = BatchStats()
        tally.merge(self._tally, resumed=True)
        tally.merge(self._runner.stats, resumed=self._passes == 0)
        return tally

    # -- the rounds ------------------------------------------------------------------------

    async def run(self) -> BatchSummary:
        """Run rounds until every item finishes (or, detached, until one is submitted)."""
        try:
            with single_errors():  # the reporter only reports: what fails is a round
                async with anyio.create_task_group() as group:
                    if self.observer is not None:
                        group.start_soon(self._report, self.observer)
                    summary = await self._rounds()
                    group.cancel_scope.cancel()
            return summary
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.calls.close)

    async def _rounds(self) -> BatchSummary:
        calls = self.calls
        if self.resume:
            self.round = await anyio.to_thread.run_sync(calls.last_round, self.batch)
            await self._update_spent()
        else:
            await anyio.to_thread.run_sync(calls.forget, self.batch)
        while True:
            await self._collect()
            self._phase = "finishing on the standard API" if self.layer.direct else "running items"
            summary = await self._pass(resume=self.resume or self._passes > 0)
            pending = await anyio.to_thread.run_sync(calls.count, self.batch, "pending")
            if summary.interrupted or not pending:
                return await self._summary(summary)
            # A tail follows a round: a batch whose first round is small is still a batch.
            tail = self.round > 0 and pending <= self.options.standard_tail
            if self.budget_usd is not None and not await self._affordable(pending, tail):
                self.stopped_by_budget = True
                return await self._summary(replace(summary, stopped_by_budget=True))
            if tail:
                await self._finish_on_standard(pending)
                continue
            self.round += 1
            self._phase = "submitting"
            await self._submit()
            if self.options.detach:
                self._note(
                    f"detached after submitting round {self.round}: collect with the same "
                    "command and --resume (or `microagents batches collect`)"
                )
                return await self._summary(summary)

    async def _pass(self, *, resume: bool) -> BatchSummary:
        await anyio.to_thread.run_sync(self.calls.release_orphans, self.batch)
        states = await anyio.to_thread.run_sync(self.calls.states, self.batch)
        self.layer.begin_pass(self.calls, self.batch, self.round + 1, states)
        runner = BatchRunner(
            self.engine,
            self.workflow,
            self.input_path,
            self.out_path,
            concurrency=self.concurrency,
            resume=resume,
            store=self.journal,
            observer=self.observer,
            in_rounds=True,
            # A pass on the standard API makes every call: nothing waits on a batch.
            still_blocked=(
                None
                if self.layer.direct
                else functools.partial(self.calls.still_blocked, self.batch)
            ),
        )
        self._runner = runner
        try:
            summary = await runner.run()
        finally:
            with anyio.CancelScope(shield=True):
                await self.layer.flush()
        states.clear()
        if self._passes == 0:
            self._finished_before = runner.finished_before
        self._tally.merge(runner.stats, resumed=self._passes == 0)
        self._in_batches = runner.stats.in_batches
        self._runner = None
        self._passes += 1
        return summary

    # -- submitting ------------------------------------------------------------------------

    async def _submit(self) -> None:
        """Submit the pending calls as Message Batches. When the API refuses one for now (its
        queue of requests in processing is full, or it is down), the rest wait for the next
        round if a batch of ours is in flight (its end makes room), or else after a pause."""
        options = self.options
        sizes: list[int] = []
        pause = options.poll_interval
        per_batch = options.requests_per_batch
        while True:
            rows = await anyio.to_thread.run_sync(self.calls.pending, self.batch, per_batch)
            if not rows:
                break
            chunks: list[list[tuple[str, str]]] = [[]]
            size = 0
            for cid, _model, params in rows:
                weight = len(params) + len(cid) + 64
                if chunks[-1] and size + weight > options.bytes_per_batch:
                    chunks.append([])
                    size = 0
                chunks[-1].append((cid, params))
                size += weight
            try:
                for chunk in chunks:
                    sizes.append(await self._create(chunk))
            except _NotNow as refused:
                left = await anyio.to_thread.run_sync(self.calls.count, self.batch, "pending")
                if sizes or await self._ours_in_flight():
                    self._note(
                        f"round {self.round}: {refused}; {left:,} requests wait for the next "
                        "round (a batch in flight makes room as it ends)"
                    )
                    break
                if refused.full and per_batch > 1:
                    # Nothing of ours in the queue and still no room: it may be smaller than
                    # a batch of this size (or others' batches fill it). Try smaller ones.
                    per_batch = max(1, per_batch // 2)
                self._note(
                    f"round {self.round}: {refused}; trying again in {pause:g} s"
                    + (f" with batches of {per_batch:,}" if refused.full else "")
                )
                await anyio.sleep(pause)
                pause = min(options.max_poll_interval, pause * 1.5)
        self._note(
            f"round {self.round}: submitted {len(sizes)} Message "
            f"{'Batch' if len(sizes) == 1 else 'Batches'} ({sum(sizes):,} requests)"
        )

    async def _ours_in_flight(self) -> bool:
        records = await anyio.to_thread.run_sync(self.calls.message_batches, self.batch)
        return any(r.in_flight for r in records)

    async def _create(self, chunk: Sequence[tuple[str, str]]) -> int:
        intent = f"intent-{uuid.uuid4().hex}"
        ids = [cid for cid, _ in chunk]
        # The intent first: a kill between the API call and the id's record is recovered
        # from it (`_recover`), never by creating the batch again.
        await anyio.to_thread.run_sync(self.calls.intend, self.batch, self.round, intent, ids)
        requests: Any = [{"custom_id": cid, "params": json.loads(params)} for cid, params in chunk]
        # No retry by the SDK here: a create retried after a lost answer may create the batch
        # twice. A lost answer is resolved from the API's list, as after a crash.
        client = self.layer.backend.client
        try:
            created = await client.messages.batches.create(requests=requests)
        except anthropic.APIConnectionError:  # a timeout too: created or not, we cannot tell
            adopted = await self._recover_patiently()
            if adopted.get(intent) is None:
                raise _NotNow("the API could not be reached to create a batch") from None
            return len(chunk)
        except anthropic.APIStatusError as exc:  # answered: certainly not created
            await anyio.to_thread.run_sync(self.calls.abandon, intent)
            if isinstance(exc, anthropic.RateLimitError):
                message = f"the API refused a batch for now: {_api_message(exc)}"
                raise _NotNow(message, full=True) from None
            if _transient(exc):
                raise _NotNow(f"the API failed to create a batch: {_api_message(exc)}") from None
            raise MicroagentsError(f"the Message Batch was refused: {exc}") from None
        await anyio.to_thread.run_sync(self.calls.created, intent, created.id)
        return len(chunk)

    async def _affordable(self, pending: int, standard: bool) -> bool:
        spent = await self._spent_so_far()
        estimate, _ = await self._estimate(standard=standard)
        assert self.budget_usd is not None
        if spent + estimate <= self.budget_usd:
            return True
        what = "the standard API" if standard else f"round {self.round + 1}"
        self._note(
            f"stopped by the budget before {what}: ${spent:.4f} spent, and its "
            f"{pending:,} requests would cost about ${estimate:.4f} more, crossing "
            f"${self.budget_usd:g}; finished items are written, the rest wait (re-run with "
            "--resume and a higher --budget-usd)"
        )
        return False

    async def _spent_so_far(self) -> float:
        await self._update_spent()
        return self._spent + self.layer.direct_cost_usd

    async def _estimate(self, *, standard: bool = False) -> tuple[float, bool]:
        """The pending calls' cost, at batch (or `standard`) rates: each call at the average
        its model's calls cost so far; for a model with none yet, `guessed` from the
        requests' sizes (`_guess`)."""
        averages = await anyio.to_thread.run_sync(self.calls.average_costs, self.batch)
        sizes = await anyio.to_thread.run_sync(self.calls.pending_sizes, self.batch)
        total, guessed = 0.0, False
        unknown: dict[str, list[int]] = {}
        for model, size in sizes:
            if model in averages:
                total += averages[model][1 if standard else 0]
            else:
                unknown.setdefault(model, []).append(size)
        for model, model_sizes in unknown.items():
            price = self.engine.tiers.price_of(model)
            if price is None:
                continue
            sample = await anyio.to_thread.run_sync(
                self.calls.pending_sample, self.batch, model, 20
            )
            total += price.cost(_guess(model_sizes, sample), batch=not standard)
            guessed = True
        return total, guessed

    async def _finish_on_standard(self, pending: int) -> None:
        """Make the pending calls, and every call after them, on the standard API: a tail
        this small is not worth another round's wait."""
        standard, guessed = await self._estimate(standard=True)
        batch, _ = await self._estimate()
        took = await anyio.to_thread.run_sync(self.calls.round_took, self.batch, self.round)
        waited = f"the {duration_text(took)} round {self.round} took" if took else "a round's wait"
        self._note(
            f"{pending:,} calls left (at most --standard-tail {self.options.standard_tail}): "
            f"making them on the standard API, in seconds rather than {waited}, for about "
            f"${standard:.4f} at standard rates (${standard - batch:.4f} more than in a "
            "Message Batch"
            + (
                "; a guess from the requests' sizes: no call of a model they use has been "
                "answered yet)"
                if guessed
                else ")"
            )
        )
        await anyio.to_thread.run_sync(self.calls.go_direct, self.batch)
        self.layer.direct = True

    # -- collecting ------------------------------------------------------------------------

    async def _collect(self) -> None:
        await self._recover_patiently()
        in_flight = [
            record
            for record in await anyio.to_thread.run_sync(self.calls.message_batches, self.batch)
            if record.in_flight
        ]
        if not in_flight:
            return
        waiting = {record.id: record for record in in_flight}
        delay = self.options.poll_interval
        self._phase = "waiting for results"
        for record in in_flight:
            self._in_flight[record.id] = MessageBatchProgress(
                record.id, record.round, record.status, {"processing": record.requests}
            )
        failing = False
        try:
            while waiting:
                try:
                    await self._poll(waiting)
                    failing = False
                except (anthropic.APIConnectionError, anthropic.APIStatusError) as exc:
                    # The batches are safe at the API: a blip (even of hours) only delays
                    # their collection. A refusal other than rate limits or the API's own
                    # failure (a revoked key) does not heal: say so and stop.
                    if isinstance(exc, anthropic.APIStatusError) and not _transient(exc):
                        raise MicroagentsError(
                            f"polling the Message Batches failed: {exc}; they go on at the "
                            "API: collect them later with --resume"
                        ) from None
                    if not failing:
                        self._note(
                            f"polling the Message Batches failed ({_api_message(exc)}); "
                            "trying again"
                        )
                    failing = True
                if waiting:
                    await anyio.sleep(delay)
                    delay = min(self.options.max_poll_interval, delay * 1.5)
        finally:
            self._in_flight.clear()

    async def _poll(self, waiting: dict[str, MessageBatchRecord]) -> None:
        """One look at the batches in flight: one page of the API's list (the newest first,
        so ours) and a retrieve for any not on it; collect each that has ended."""
        client = self.layer.backend.client.with_options(max_retries=2)
        page = await client.messages.batches.list(limit=100)
        listed = {found.id: found for found in page.data}
        for batch_id in list(waiting):
            found = listed.get(batch_id) or await client.messages.batches.retrieve(batch_id)
            self._in_flight[batch_id] = _seen(waiting[batch_id], found)
            if found.processing_status == "ended":
                self._phase = "collecting"
                await self._results(waiting[batch_id], found)
                del waiting[batch_id], self._in_flight[batch_id]
                self._phase = "waiting for results"

    async def _results(self, record: MessageBatchRecord, found: Any) -> None:
        client = self.layer.backend.client.with_options(max_retries=2)
        calls = self.calls
        submitted = await anyio.to_thread.run_sync(calls.submitted, record.id)
        followers = await anyio.to_thread.run_sync(calls.followers, self.batch, record.id)
        followed = {f.same_as for f in followers}
        outcomes: list[Outcome] = []
        answers: dict[str, tuple[Outcome, ModelResponse | None]] = {}
        to_cache: list[tuple[str, ModelResponse]] = []
        counts: dict[str, int] = {}
        now = time.time()
        async for line in await client.messages.batches.results(record.id):
            call = submitted.get(line.custom_id)
            if call is None:
                continue
            kind = line.result.type
            counts[kind] = counts.get(kind, 0) + 1
            outcome, response = self._outcome(record, call, line.result, now)
            outcomes.append(outcome)
            if call.custom_id in followed:
                answers[call.custom_id] = (outcome, response)
            if response is not None and call.cache_key is not None:
                to_cache.append((call.cache_key, response))
        outcomes += self._follow(record, followers, answers, now)
        # The answers are committed to the journal before their calls are marked done: a
        # kill in between collects them again (the same rows), it never loses one.
        await self.journal.durable()
        await anyio.to_thread.run_sync(calls.settle, self.batch, record.id, outcomes, counts)
        if self.cache is not None and to_cache:
            await anyio.to_thread.run_sync(self.cache.put_many, to_cache)
        await self._update_spent()
        described = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        shared = sum(1 for o in outcomes if o[2] == "duplicate")
        also = f" (and {shared} identical requests answered with them)" if shared else ""
        self._note(f"round {record.round}: {record.id} ended: {described}{also}")

    def _follow(
        self,
        record: MessageBatchRecord,
        followers: Sequence[Follower],
        answers: dict[str, tuple[Outcome, ModelResponse | None]],
        now: float,
    ) -> list[Outcome]:
        """Each follower gets its leader's fate: its answer (journaled as a response-cache
        hit: no cost), or its failure; a leader tried again takes its followers along."""
        outcomes: list[Outcome] = []
        for follower in followers:
            found = answers.get(follower.same_as)
            if found is None:
                continue
            (_, state, outcome, error, _, _), response = found
            cid = follower.custom_id
            if response is not None:
                batched = BatchedCall(record.id, cid, now - follower.queued, 0.0)
                copied = replace(response, cached=True, cost_usd=0.0, batch=batched)
                self.journal.record_step(
                    follower.run_id, follower.step, "model", follower.signature,
                    encode_response(copied),
                )  # fmt: skip
                outcomes.append((cid, "done", "duplicate", None, None, None))
            elif state == "failed":
                outcomes.append((cid, "failed", outcome, error, None, None))
        return outcomes

    def _outcome(
        self, record: MessageBatchRecord, call: Submitted, result: Any, now: float
    ) -> tuple[Outcome, ModelResponse | None]:
        kind = result.type
        cid = call.custom_id
        if kind == "succeeded":
            backend = self.layer.backend
            response = backend.to_response(
                result.message, latency=now - call.queued, headers={}, request_id=record.id
            )
            price = self.engine.tiers.price_of(response.model)
            cost = price.cost(response.usage, batch=True) if price is not None else None
            standard = price.cost(response.usage) if price is not None else None
            batched = BatchedCall(record.id, cid, now - call.queued, standard)
            response = replace(response, cost_usd=cost, batch=batched)
            self.journal.record_step(
                call.run_id, call.step, "model", call.signature, encode_response(response)
            )
            return (cid, "done", kind, None, cost, standard), response
        return self._unanswered(record, call, result), None

    def _unanswered(self, record: MessageBatchRecord, call: Submitted, result: Any) -> Outcome:
        kind = result.type
        cid = call.custom_id
        if kind == "errored":
            error = result.error.error
            text = f"{error.type}: {error.message}"
            again = error.type in RETRYABLE_ERRORS and call.tries < self.options.retry.max_attempts
            return cid, "pending" if again else "failed", kind, text, None, None
        if kind == "expired":
            again = call.expiries < self.options.expired_limit
            text = f"expired {call.expiries + 1} times"
            return cid, "pending" if again else "failed", kind, text, None, None
        return cid, "failed", kind, f"canceled in {record.id}", None, None

    async def _recover_patiently(self) -> dict[str, str | None]:
        """`_recover`, through failures of the API for as long as they last: until the
        API's list says whether a batch was created, its calls can be neither sent again nor
        awaited."""
        delay = self.options.poll_interval
        while True:
            try:
                return await self._recover()
            except (anthropic.APIConnectionError, anthropic.APIStatusError) as exc:
                if isinstance(exc, anthropic.APIStatusError) and not _transient(exc):
                    raise
                self._note(f"listing the Message Batches failed ({_api_message(exc)}); waiting")
                await anyio.sleep(delay)
                delay = min(self.options.max_poll_interval, delay * 1.5)

    async def _recover(self) -> dict[str, str | None]:
        """Batches whose creation was interrupted (a crash, a lost answer): adopt the one the
        API lists with the same size, created since the intent, that no record names; else
        put its calls back to pending (none was paid). Each intent → the id adopted, or None."""
        intents = await anyio.to_thread.run_sync(
            lambda: self.calls.message_batches(self.batch, "submitting")
        )
        if not intents:
            return {}
        known = {r.id for r in await anyio.to_thread.run_sync(lambda: self.calls.message_batches())}
        client = self.layer.backend.client.with_options(max_retries=2)
        since = min(intent.created for intent in intents) - 60
        listed = []
        async for found in client.messages.batches.list(limit=100):  # the newest first
            if found.created_at.timestamp() < since:
                break
            listed.append(found)
        adopted: dict[str, str | None] = {}
        for intent in intents:
            match = next(
                (
                    b
                    for b in listed
                    if b.id not in known
                    and b.created_at.timestamp() >= intent.created - 60
                    and _total(b) == intent.requests
                ),
                None,
            )
            if match is None:
                await anyio.to_thread.run_sync(self.calls.abandon, intent.id)
                adopted[intent.id] = None
            else:
                known.add(match.id)
                await anyio.to_thread.run_sync(self.calls.created, intent.id, match.id)
                adopted[intent.id] = match.id
        return adopted

    # -- reporting -------------------------------------------------------------------------

    async def _update_spent(self) -> None:
        self._spent, _, _ = await anyio.to_thread.run_sync(self.calls.costs, self.batch)

    async def _report(self, observer: BatchObserver) -> None:
        self._lines = await anyio.to_thread.run_sync(count_lines, self.input_path)
        while True:
            observer.update(self.progress())
            await anyio.sleep(observer.interval)

    async def _summary(self, summary: BatchSummary) -> BatchSummary:
        """The whole run's summary: every round's items, and what its calls cost."""
        calls = self.calls
        cost, standard, count = await anyio.to_thread.run_sync(calls.costs, self.batch)
        records = await anyio.to_thread.run_sync(lambda: calls.message_batches(self.batch))
        pending = await anyio.to_thread.run_sync(calls.count, self.batch, "pending")
        by_node = await anyio.to_thread.run_sync(calls.costs_by_node, self.batch)
        waited = await anyio.to_thread.run_sync(calls.waited, self.batch)
        duplicates = await anyio.to_thread.run_sync(calls.duplicates, self.batch)
        in_flight = sum(1 for r in records if r.in_flight)
        self._phase = "detached" if in_flight else "stopped" if pending else "finished"
        figures = BatchApiFigures(
            rounds=self.round,
            message_batches=len(records),
            calls=count,
            cost_usd=cost,
            standard_cost_usd=standard,
            pending=pending,
            in_flight=in_flight,
            items_waiting=self._in_batches,
            duplicates=duplicates,
            standard_calls=self.layer.direct_calls,
            standard_calls_cost_usd=self.layer.direct_cost_usd,
            by_node=tuple(BatchApiCost(*row) for row in by_node),
            waited_p50=waited[0],
            waited_max=waited[1],
        )
        whole = self._tally.summary(
            workflow=self.workflow.name,
            elapsed=time.perf_counter() - self._started,
            out_path=str(self.out_path),
            budget_usd=self.budget_usd,
            stopped_by_budget=summary.stopped_by_budget or self.stopped_by_budget,
            interrupted=summary.interrupted,
        )
        return replace(whole, batch_api=figures)

    def _note(self, message: str) -> None:
        if self.observer is not None:
            self.observer.note(message)


def _guess(sizes: Sequence[int], sample: Sequence[str]) -> Usage:
    """What requests of these sizes (bytes of wire parameters) will use, before any has been
    answered: ~4 bytes a token; the share of a request before its last prompt-cache mark
    (measured on `sample`) written to the cache once and read by every other request; and
    a tenth of the rest, at least 64 tokens, as output. A guess, on the high side."""
    shares = [_cached_share(params) for params in sample]
    share = sum(shares) / len(shares) if shares else 0.0
    tokens = sum(sizes) // 4
    cached = int(tokens * share)
    written = int(max(sizes) // 4 * share)
    fresh = tokens - cached
    output = sum(max(64, int(size // 4 * (1 - share)) // 10) for size in sizes)
    return Usage(
        input_tokens=fresh,
        output_tokens=output,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=max(0, cached - written),
    )


def _cached_share(params_text: str) -> float:
    """The share of a request's bytes up to its last prompt-cache mark, in the order the
    API caches them: tools, then system, then messages."""
    params: Any = json.loads(params_text)
    blocks: list[Any] = [*params.get("tools", [])]
    system = params.get("system")
    blocks += system if isinstance(system, list) else [system] if system else []
    for message in params.get("messages", []):
        content = message.get("content")
        blocks += content if isinstance(content, list) else [content]
    seen = marked = 0
    for block in blocks:
        seen += len(json.dumps(block))
        if isinstance(block, dict) and "cache_control" in block:
            marked = seen
    return marked / seen if seen else 0.0


class _NotNow(Exception):
    """The API did not take a batch now (its queue is full, it failed, it could not be
    reached); nothing was created. The message says which."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full
        """Refused for its size: the API's queue of requests in processing is full."""


def _transient(exc: anthropic.APIStatusError) -> bool:
    """A refusal that passes: rate limits, and the API's own failures."""
    return exc.status_code == 429 or exc.status_code >= 500


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('type', 'error')}: {error['message']}"
    return str(exc)


def _seen(
    record: MessageBatchRecord, found: anthropic.types.messages.MessageBatch
) -> MessageBatchProgress:
    counts = found.request_counts
    return MessageBatchProgress(
        record.id,
        record.round,
        found.processing_status,
        {
            "processing": counts.processing,
            "succeeded": counts.succeeded,
            "errored": counts.errored,
            "canceled": counts.canceled,
            "expired": counts.expired,
        },
    )


def _total(batch: anthropic.types.messages.MessageBatch) -> int:
    counts = batch.request_counts
    return counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
