"""Span names and attribute keys: the OpenTelemetry GenAI conventions, OpenInference's, ours.

GenAI names follow the semantic conventions for GenAI spans (client and agent spans; status
"development"). A few OpenInference names (span kind, input and output values, the project)
are there because Phoenix and other OpenInference readers rely on them where the GenAI
conventions have nothing, or nothing they read. Ours live under ``microagents.*``. One module,
so that the tracer, the trace store and the viewer agree on every key.
"""

from __future__ import annotations

from typing import Final

# -- span names and operations (GenAI conventions) ----------------------------------------
OP_WORKFLOW: Final = "invoke_workflow"
OP_AGENT: Final = "invoke_agent"
OP_TOOL: Final = "execute_tool"
OP_CHAT: Final = "chat"
OP_HUMAN: Final = "ask_human"
"""A human node (no GenAI operation fits: a person answers, not a model or a tool)."""
PROVIDER: Final = "anthropic"

# -- GenAI attributes ----------------------------------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
"""Per the conventions this includes cached input: fresh + cache writes + cache reads."""
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION: Final = "gen_ai.usage.cache_creation.input_tokens"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_TYPE: Final = "gen_ai.tool.type"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
ERROR_TYPE: Final = "error.type"

# -- OpenInference (Phoenix and other OpenInference readers) --------------------------------
SPAN_KIND: Final = "openinference.span.kind"
KIND_CHAIN: Final = "CHAIN"
"""A run, a sub-workflow node, a fan-out: viewers show it as a workflow step."""
KIND_AGENT: Final = "AGENT"
KIND_LLM: Final = "LLM"
KIND_TOOL: Final = "TOOL"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
PROJECT_NAME: Final = "openinference.project.name"
"""A resource attribute: the Phoenix project the spans land in."""
SERVICE_NAME: Final = "service.name"

# -- ours ----------------------------------------------------------------------------------
WORKFLOW_NAME: Final = "microagents.workflow.name"
WORKFLOW_VERSION: Final = "microagents.workflow.version"
RUN_ID: Final = "microagents.run.id"
RUN_STATUS: Final = "microagents.run.status"
RUN_NESTED: Final = "microagents.run.nested"
"""On a sub-workflow's run span: part of its parent's run, not a run of its own."""
FAN_OUT_ITEMS: Final = "microagents.fan_out.items"
NODE_ID: Final = "microagents.node.id"
NODE_KIND: Final = "microagents.node.kind"
NODE_VISIT: Final = "microagents.node.visit"
ITEM_INDEX: Final = "microagents.item.index"
"""Index of a fan-out item (map) or of a batch input line."""
BATCH_INDEX: Final = "microagents.batch.index"
TIER: Final = "microagents.tier"
ESCALATION_TRIGGER: Final = "microagents.escalation.trigger"
ESCALATION_TO: Final = "microagents.escalation.to_tier"
ESCALATION_COUNT: Final = "microagents.escalations"
ESCALATED: Final = "microagents.escalated"
"""On a node span: a step of this visit climbed its ladder (the span's name ends ``⤴ tier``)."""
COST_USD: Final = "microagents.cost_usd"
"""Absent, with `COST_UNKNOWN` set, when the model has no known price (never a false $0)."""
COST_UNKNOWN: Final = "microagents.cost_unknown"
PROMPT_CACHE_HIT_RATE: Final = "microagents.prompt_cache.hit_rate"
"""The share of the call's input tokens read from the prompt cache."""
REQUEST_EFFORT: Final = "microagents.request.effort"
OUTPUT_TYPE: Final = "gen_ai.output.type"
"""`json` when the answer was asked for as native structured output."""
CACHE_HIT: Final = "microagents.cache_hit"
REPLAYED: Final = "microagents.replayed"
"""A step answered from the run's journal on resume: no call was made."""
RUN_ATTEMPT: Final = "microagents.run.attempt"
"""1 for a run's first start, 2 for its first resume, ..."""
RUN_WAITING_NODE: Final = "microagents.run.waiting_for"
SIMULATED: Final = "microagents.simulated"
ATTEMPTS: Final = "microagents.attempts"
RATE_LIMIT_WAIT: Final = "microagents.rate_limit.wait_s"
MCP_SERVER: Final = "microagents.mcp.server"
"""On a tool span: the MCP server (its name in the config) that ran the tool."""
MCP_METHOD: Final = "mcp.method.name"
"""The MCP conventions' method name: ``tools/call`` on an MCP tool's span."""

# -- events ----------------------------------------------------------------------------------
EVENT_ESCALATION: Final = "microagents.escalation"
EVENT_RATE_LIMIT_WAIT: Final = "microagents.rate_limit.wait"
EVENT_MODEL_WARNING: Final = "microagents.model.warning"
"""A Python warning the model's client library raised during the call (reported once)."""

CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
