"""A loopback fake of the Anthropic Messages API, for tests that use the real `anthropic` SDK.

```python
with FakeAnthropicServer() as server:
    server.on(Reply.text("positive"), system_contains="sentiment")
    server.fail(Fault.overloaded(), on_calls=[1])
    client = anthropic.Anthropic(api_key="test-key", base_url=server.base_url)
```

It serves `POST /v1/messages` (JSON and SSE), `POST /v1/messages/count_tokens` and the
Message Batches API (`/v1/messages/batches`: create, retrieve, list, cancel, delete, results as
JSONL; see `_fake_batches`) on 127.0.0.1, from a `ThreadingHTTPServer` in a background
thread. Each request goes through the API's own checks (path, `x-api-key`,
`anthropic-version`, body), then the first scripted fault that fires, the optional rate-limit
enforcement, and finally the first reply rule that matches.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import socketserver
import sys
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from ._fake_batches import (
    BATCHES_PATH,
    BatchEndpoint,
    BatchRequestError,
    BatchSettings,
    FakeBatches,
    RecordedBatch,
    batch_endpoint,
)
from ._fake_script import (
    Fault,
    Match,
    ReceivedRequest,
    RecordedRequest,
    RenderedReply,
    Reply,
    ReplyFunction,
    RequestPredicate,
    ScriptError,
    default_reply,
    render_reply,
)
from ._fake_wire import (
    CachePlan,
    Json,
    PromptCache,
    RateMeter,
    ServerRateLimits,
    count_input_tokens,
    encode_sse,
    error_body,
    final_message,
    input_segments,
    stream_error_events,
    stream_events,
    validate_messages_request,
)

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# --- what the handler writes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _JsonAnswer:
    status: int
    headers: Mapping[str, str]
    body: Json


@dataclass(frozen=True, slots=True)
class _StreamAnswer:
    headers: Mapping[str, str]
    events: list[tuple[str, Json]]


@dataclass(frozen=True, slots=True)
class _FileAnswer:
    status: int
    headers: Mapping[str, str]
    data: bytes


@dataclass(frozen=True, slots=True)
class _Drop:
    pass


_Answer = _JsonAnswer | _StreamAnswer | _FileAnswer | _Drop


# --- scripting state ------------------------------------------------------------------------


@dataclass(slots=True)
class _ReplyRule:
    match: Match
    replies: deque[Reply | ReplyFunction]
    repeats: bool  # a single reply answers forever; a list is consumed, then falls through


@dataclass(slots=True)
class _FaultRule:
    fault: Fault
    match: Match
    on_calls: frozenset[int] | None
    rate: float
    rng: random.Random
    calls: int = 0

    def fires(self) -> bool:
        # Always count and always draw, so each rule's decisions depend only on its own
        # matching calls, not on whether an earlier rule fired.
        self.calls += 1
        draw = self.rng.random()
        if self.on_calls is not None:
            return self.calls in self.on_calls
        return draw < self.rate


@dataclass(slots=True)
class _State:
    rules: list[_ReplyRule] = field(default_factory=list)
    faults: list[_FaultRule] = field(default_factory=list)
    batch_faults: list[tuple[BatchEndpoint | None, _FaultRule]] = field(default_factory=list)
    records: list[RecordedRequest] = field(default_factory=list)


class FakeAnthropicServer:
    """The Anthropic Messages API on 127.0.0.1, scripted by the test; see the module docs.

    Start and stop it with `with`; point the SDK at `base_url`. `on` scripts replies, `fail`
    injects faults, `requests` and `paid_calls` tell what happened, `reset` forgets it all.
    Unscripted requests get a minimal valid instance of the forced tool's (or output format's)
    schema, or a short text. Thread-safe; tokens are `estimate_tokens` of the content.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        rate_limits: ServerRateLimits | None = None,
        min_cacheable_tokens: int | None = None,
        stream_chunk_chars: int = 16,
        seed: int = 0,
        batches: BatchSettings | None = None,
    ) -> None:
        """`api_key`: the only key accepted (any non-empty key when None). `seed` seeds the
        generated ids, so a sequential test sees the same ids on every run."""
        self._api_key = api_key
        self._limits = rate_limits or ServerRateLimits()
        self._chunk_chars = max(1, stream_chunk_chars)
        self._seed = seed
        self._lock = threading.RLock()
        self._state = _State()
        self._cache = PromptCache(min_cacheable_tokens)
        self._meter = RateMeter(self._limits)
        self._ids = random.Random(seed)
        self._batches = FakeBatches(self._new_id)
        self._batches.settings = batches or BatchSettings()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("the fake Anthropic server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long `stop` waits for the loop
            name=f"fake-anthropic:{self._httpd.server_port}",
            daemon=True,  # `stop` joins it; a test that forgets to stop must not hang exit
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and wait for every handler thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in Fault.slow
        httpd.shutdown()
        httpd.close_open_connections()  # wakes handlers waiting on idle keep-alive connections
        httpd.server_close()  # joins the handler threads
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Where the SDK should send requests, e.g. `http://127.0.0.1:54321`."""
        if self._httpd is None:
            raise RuntimeError(
                "start the fake server first: `with FakeAnthropicServer() as server`"
            )
        return f"http://127.0.0.1:{self._httpd.server_port}"

    # --- scripting ---

    def on(
        self,
        reply: Reply | ReplyFunction | Sequence[Reply | ReplyFunction],
        *,
        match: RequestPredicate | None = None,
        model: str | None = None,
        system_contains: str | None = None,
        message_contains: str | None = None,
        tool_choice_name: str | None = None,
    ) -> None:
        """Answer matching `/v1/messages` requests with `reply`; rules are tried in order.

        `reply` is a `Reply`, a function of the `ReceivedRequest` returning one, or a list of
        those consumed one per call (once used up, the rule no longer matches and later rules
        or the default answer). All given criteria must hold; `model` must equal exactly.
        """
        items = list(reply) if isinstance(reply, Sequence) else [reply]
        for item in items:
            if not isinstance(item, Reply) and (isinstance(item, str) or not callable(item)):
                raise TypeError(
                    f"server.on takes a Reply, a function returning one, or a list of those, "
                    f"not {item!r}; build replies with Reply.text(...), Reply.tool_call(...), ..."
                )
        criteria = Match(match, model, system_contains, message_contains, tool_choice_name)
        rule = _ReplyRule(criteria, deque(items), repeats=not isinstance(reply, Sequence))
        with self._lock:
            self._state.rules.append(rule)

    def fail(
        self,
        fault: Fault,
        *,
        on_calls: Iterable[int] | None = None,
        rate: float | None = None,
        seed: int = 0,
        match: RequestPredicate | None = None,
        model: str | None = None,
        system_contains: str | None = None,
        message_contains: str | None = None,
        tool_choice_name: str | None = None,
    ) -> None:
        """Inject `fault` into valid `/v1/messages` calls that match the criteria.

        `on_calls=[1, 2]`: on the 1st and 2nd matching call (retries count as calls).
        `rate=0.2, seed=7`: on a seeded-random fifth of matching calls, the same ones every run.
        Neither: on every matching call. The first fault (in `fail` order) that fires wins.
        """
        if on_calls is not None and rate is not None:
            raise ValueError("give `on_calls` or `rate`, not both")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        criteria = Match(match, model, system_contains, message_contains, tool_choice_name)
        calls = frozenset(on_calls) if on_calls is not None else None
        rule = _FaultRule(
            fault, criteria, calls, 1.0 if rate is None else rate, random.Random(seed)
        )
        with self._lock:
            self._state.faults.append(rule)

    def fail_batches(
        self,
        fault: Fault,
        *,
        endpoint: BatchEndpoint | None = None,
        on_calls: Iterable[int] | None = None,
    ) -> None:
        """Inject `fault` into Message Batches calls to `endpoint` (``create``, ``retrieve``,
        ``list``, ``results``, ``cancel``, ``delete``; None: any), on the listed matching
        calls (None: every one). An error answers instead of the endpoint: a create refused
        creates nothing. `Fault.drop_connection` closes the connection *after* the endpoint
        acted: a create whose answer was lost did create its batch, and the client cannot
        tell — the case a client must recover from without creating it twice."""
        calls = frozenset(on_calls) if on_calls is not None else None
        rule = _FaultRule(fault, Match(), calls, 1.0, random.Random(0))
        with self._lock:
            self._state.batch_faults.append((endpoint, rule))

    def reset(self) -> None:
        """Forget rules, faults, recorded requests, the prompt cache and rate-limit usage."""
        with self._lock:
            self._state = _State()
            self._cache.clear()
            self._meter = RateMeter(self._limits)
            self._ids.seed(self._seed)
        self._batches.reset()

    # --- what happened ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._state.records)

    @property
    def paid_calls(self) -> int:
        """How many `/v1/messages` calls got a complete 200 answer (and would be billed)."""
        with self._lock:
            return sum(r.path == MESSAGES_PATH and r.succeeded for r in self._state.records)

    @property
    def batch_settings(self) -> BatchSettings:
        """How batches are processed: time, and shares of errored/expired/canceled results."""
        return self._batches.settings

    @batch_settings.setter
    def batch_settings(self, settings: BatchSettings) -> None:
        self._batches.settings = settings

    @property
    def batches(self) -> list[RecordedBatch]:
        """Every Message Batch created so far, oldest first, with what each request came to."""
        return self._batches.batches

    @property
    def paid_batch_requests(self) -> int:
        """How many batch requests ended `succeeded` (billed, at batch rates)."""
        return self._batches.paid_requests

    # --- serving (called from handler threads) ---

    def _serve(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        raw: bytes,
        query: Mapping[str, str] | None = None,
    ) -> _Answer:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock:
            call = len(self._state.records) + 1
            request = ReceivedRequest(
                call, method, path, headers, body if isinstance(body, dict) else {}
            )
            record = RecordedRequest(
                call,
                method,
                path,
                headers,
                request.body,
                request_id=self._new_id("req_011C", 20),
                status=None,
                fault=None,
                response=None,
            )
            self._state.records.append(record)
            records = self._state.records
        fault: Fault | None = None
        try:
            answer, fault = self._answer(request, record.request_id, body, query or {})
        except ScriptError as error:
            # Never retried: the script, not the "API", is broken.
            answer = self._error(500, "api_error", str(error), record.request_id, retry=False)
        except Exception as error:  # a bug of the fake: still answer, and say so
            problem = f"the fake Anthropic server failed: {error!r}"
            answer = self._error(500, "api_error", problem, record.request_id, retry=False)
        status: int | None = None
        response: Json | None = None
        if isinstance(answer, _JsonAnswer):
            status, response = answer.status, answer.body
        elif isinstance(answer, _StreamAnswer):
            last_event, last_data = answer.events[-1]
            status = 200
            response = final_message(answer.events) if last_event == "message_stop" else last_data
        with self._lock:
            if records is self._state.records:  # not reset meanwhile
                records[call - 1] = replace(record, status=status, fault=fault, response=response)
        return answer

    def _answer(
        self, request: ReceivedRequest, request_id: str, body: Any, query: Mapping[str, str]
    ) -> tuple[_Answer, Fault | None]:
        if request.path.startswith(BATCHES_PATH):
            return self._answer_batches(request, request_id, body, query), None
        if request.path not in (MESSAGES_PATH, COUNT_TOKENS_PATH):
            message = f"Not found: {request.method} {request.path}"
            return self._error(404, "not_found_error", message, request_id), None
        if request.method != "POST":
            message = f"Method {request.method} not allowed on {request.path}"
            return self._error(405, "invalid_request_error", message, request_id), None
        problem = self._auth_problem(request.headers)
        if problem:
            return self._error(401, "authentication_error", problem, request_id), None
        if "anthropic-version" not in request.headers:
            problem = "anthropic-version: header is required"
        elif not isinstance(body, dict):
            problem = "The request body is not valid JSON."
        else:
            counting = request.path == COUNT_TOKENS_PATH
            problem = validate_messages_request(body, count_tokens=counting)
        if problem:
            return self._error(400, "invalid_request_error", problem, request_id), None
        if request.path == COUNT_TOKENS_PATH:
            tokens = {"input_tokens": count_input_tokens(request.body)}
            return _JsonAnswer(200, {"request-id": request_id}, tokens), None

        fault = self._pick_fault(request)
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                return _Drop(), fault  # the server is stopping: do not answer late
            if fault.kind == "drop":
                return _Drop(), fault
            if fault.kind == "error" or (fault.kind == "stream_error" and not request.stream):
                return self._fault_error(fault, request_id), fault
        return self._answer_message(request, request_id, fault), fault

    def _answer_message(
        self, request: ReceivedRequest, request_id: str, fault: Fault | None
    ) -> _Answer:
        with self._lock:
            plan = self._cache.plan(request.model, input_segments(request.body))
            # Cache reads do not count towards the input-tokens-per-minute limit.
            counted_input = plan.input_tokens + plan.cache_creation_input_tokens
            over = self._meter.over_limit(counted_input)
        if over is not None:
            problem, retry_after = over
            return self._error(
                429, "rate_limit_error", problem, request_id, retry_after=retry_after
            )
        reply = self._next_reply(request)  # after the limit check: a 429 consumes no reply
        rendered = render_reply(request, reply, self._new_id)
        with self._lock:
            self._cache.commit(plan)
            self._meter.record(counted_input, rendered.output_tokens)
            headers = {"request-id": request_id, **self._meter.headers()}
            message = self._message(request, plan, rendered, "standard")
        if fault is not None and fault.kind == "stream_error":
            error = error_body(fault.error_type, fault.message, request_id)
            return _StreamAnswer(headers, stream_error_events(message, error))
        if request.stream:
            return _StreamAnswer(
                headers, stream_events(message, rendered.raw_tool_json, self._chunk_chars)
            )
        return _JsonAnswer(200, headers, message)

    def _answer_batches(
        self, request: ReceivedRequest, request_id: str, body: Any, query: Mapping[str, str]
    ) -> _Answer:
        problem = self._auth_problem(request.headers)
        if problem:
            return self._error(401, "authentication_error", problem, request_id)
        if "anthropic-version" not in request.headers:
            message = "anthropic-version: header is required"
            return self._error(400, "invalid_request_error", message, request_id)

        def answer_one(params: Json, custom_id: str) -> Json:
            one = ReceivedRequest(0, "POST", MESSAGES_PATH, request.headers, params)
            return self._batch_message(one, f"{request_id}:{custom_id}")

        endpoint = batch_endpoint(request.method, request.path)
        with self._lock:
            fired = [
                rule.fault
                for kind, rule in self._state.batch_faults
                if kind in (None, endpoint) and rule.fires()
            ]
        fault = fired[0] if fired else None
        if fault is not None and fault.kind == "error":
            return self._fault_error(fault, request_id)
        status, answer = self._batches.answer(
            request.method, request.path, query, body, self.base_url, request_id, answer_one
        )
        if fault is not None and fault.kind == "drop":
            return _Drop()
        headers = {"request-id": request_id}
        if status == 429:
            headers["retry-after"] = "1"
        if isinstance(answer, bytes):
            return _FileAnswer(status, headers, answer)
        return _JsonAnswer(status, headers, answer)

    def _batch_message(self, request: ReceivedRequest, request_id: str) -> Json:
        """One batch request answered as a direct call would be (prompt cache included; no
        rate limits: batches are outside them)."""
        with self._lock:
            plan = self._cache.plan(request.model, input_segments(request.body))
        try:
            reply = self._next_reply(request)
        except ScriptError as error:
            raise BatchRequestError(error_body("api_error", str(error), request_id)) from error
        rendered = render_reply(request, reply, self._new_id)
        with self._lock:
            self._cache.commit(plan)
        return self._message(request, plan, rendered, "batch")

    def _message(
        self, request: ReceivedRequest, plan: CachePlan, rendered: RenderedReply, tier: str
    ) -> Json:
        """The Message object of a reply, with its usage as the prompt cache planned it."""
        return {
            "id": self._new_id("msg_01", 22),
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": rendered.content,
            "stop_reason": rendered.stop_reason,
            "stop_sequence": rendered.stop_sequence,
            "usage": {
                "input_tokens": plan.input_tokens,
                "cache_creation_input_tokens": plan.cache_creation_input_tokens,
                "cache_read_input_tokens": plan.cache_read_input_tokens,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": plan.cache_creation_input_tokens
                    - plan.cache_creation_1h_input_tokens,
                    "ephemeral_1h_input_tokens": plan.cache_creation_1h_input_tokens,
                },
                "output_tokens": rendered.output_tokens,
                "service_tier": tier,
            },
        }

    def _auth_problem(self, headers: Mapping[str, str]) -> str | None:
        authorization = headers.get("authorization", "")
        bearer = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        key = headers.get("x-api-key") or bearer
        if not key:
            return "x-api-key header is required"
        if self._api_key is not None and key != self._api_key:
            return "invalid x-api-key"
        return None

    def _pick_fault(self, request: ReceivedRequest) -> Fault | None:
        with self._lock:
            fired = [
                rule.fault
                for rule in self._state.faults
                if self._matches(rule.match, request) and rule.fires()
            ]
        return fired[0] if fired else None

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            chosen: Reply | ReplyFunction | None = None
            for rule in self._state.rules:
                if rule.replies and self._matches(rule.match, request):
                    chosen = rule.replies[0] if rule.repeats else rule.replies.popleft()
                    break
        if chosen is None:
            return default_reply(request)
        if isinstance(chosen, Reply):
            return chosen
        try:
            # Called outside the lock: a reply function may take its time.
            reply = chosen(request)
        except Exception as error:
            raise ScriptError(f"the reply function {chosen!r} raised {error!r}") from error
        if not isinstance(reply, Reply):
            raise ScriptError(f"the reply function {chosen!r} returned {reply!r}, not a Reply")
        return reply

    @staticmethod
    def _matches(match: Match, request: ReceivedRequest) -> bool:
        try:
            return match(request)
        except Exception as error:
            raise ScriptError(f"the match predicate {match!r} raised {error!r}") from error

    # --- ids and errors ---

    def _new_id(self, prefix: str, length: int) -> str:
        with self._lock:
            return prefix + "".join(self._ids.choices(_ID_ALPHABET, k=length))

    def _fault_error(self, fault: Fault, request_id: str) -> _JsonAnswer:
        return self._error(
            fault.status,
            fault.error_type,
            fault.message,
            request_id,
            retry_after=fault.retry_after,
            retry=fault.should_retry,
        )

    def _error(
        self,
        status: int,
        error_type: str,
        message: str,
        request_id: str,
        *,
        retry_after: float | None = None,
        retry: bool | None = None,
    ) -> _JsonAnswer:
        headers = {"request-id": request_id}
        if status == 429:
            with self._lock:
                headers.update(self._meter.headers())
        if retry_after is not None:
            headers["retry-after"] = _seconds(retry_after)
        if retry is not None:
            headers["x-should-retry"] = "true" if retry else "false"
        return _JsonAnswer(status, headers, error_body(error_type, message, request_id))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- HTTP plumbing --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close, so none outlives the server.
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeAnthropicServer) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away mid-answer (a timeout, a test that stopped early)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked SSE like the real API
    server: _HTTPServer

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def setup(self) -> None:
        super().setup()
        # Without this, each answer written in two parts (head, then body) waits ~40 ms for
        # the client's delayed ACK (Nagle's algorithm), which makes every call slow.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `server.requests`, not stderr

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        path, _, query = self.path.partition("?")
        parameters = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        answer = self.server.fake._serve(self.command, path, headers, raw, parameters)
        try:
            if isinstance(answer, _Drop):
                self.close_connection = True
            elif isinstance(answer, _JsonAnswer):
                self._send_json(answer)
            elif isinstance(answer, _FileAnswer):
                self._send_file(answer)
            else:
                self._send_stream(answer)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. timed out) first

    def _start(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status, "Overloaded" if status == 529 else None)
        for name, value in headers.items():
            self.send_header(name, value)

    def _send_json(self, answer: _JsonAnswer) -> None:
        data = json.dumps(answer.body, ensure_ascii=False).encode()
        self._start(answer.status, answer.headers)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_file(self, answer: _FileAnswer) -> None:
        self._start(answer.status, answer.headers)
        self.send_header("content-type", "application/binary")
        self.send_header("content-length", str(len(answer.data)))
        self.end_headers()
        self.wfile.write(answer.data)

    def _send_stream(self, answer: _StreamAnswer) -> None:
        self._start(200, answer.headers)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event, data in answer.events:
            chunk = encode_sse(event, data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
