"""Drives pg-nlq-bridge over stdio with the official Python MCP SDK (`mcp` on PyPI).

Usage: mcp_client.py BINARY CONFIG [--sampling]

Starts `BINARY serve --config CONFIG`, initializes, lists the tools, calls list_databases,
run_sql and query, and prints one JSON document with what it saw, for the Rust test
(tests/python_sdk.rs) to check. With --sampling the client declares the sampling capability
and answers the bridge's sampling requests itself (the configuration then has no API key), and
only `query` is called.

The SDK checks the structured content of every successful result against the tool's
`outputSchema` itself (a result that does not conform raises); the errors are checked too,
through the SDK's own `validate_tool_result`, and each summary says whether they conform.
"""

import json
import sys

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

COUNT_SQL = "SELECT count(*) AS customers FROM public.customers"


def result_summary(result: types.CallToolResult) -> dict:
    texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    return {
        "is_error": bool(result.is_error),
        "structured": result.structured_content,
        "text": "\n".join(texts),
    }


async def answer_sampling(context, params: types.CreateMessageRequestParams):
    system = params.system_prompt or ""
    if "sql_answer" in system:
        reply = {"sql": COUNT_SQL, "explanation": "Counts the customers.", "assumptions": []}
    elif "result_verdict" in system:
        reply = {"score": 9, "reasons": "Counts every customer.", "critique": ""}
    else:
        return types.ErrorData(code=types.INVALID_REQUEST, message="unexpected sampling request")
    SAMPLED.append({"system_has_schema": "sql_answer" in system or "result_verdict" in system,
                    "messages": len(params.messages),
                    "include_context": params.include_context,
                    "max_tokens": params.max_tokens})
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=json.dumps(reply)),
        model="python-sdk-test-model",
        stop_reason="endTurn",
    )


SAMPLED: list = []


async def call_checked(session: ClientSession, name: str, arguments: dict) -> dict:
    """Calls a tool; the SDK validates a success against the output schema, this an error."""
    result = await session.call_tool(name, arguments)
    summary = result_summary(result)
    try:
        await session.validate_tool_result(name, result)
        summary["conforms"] = True
    except RuntimeError as e:
        summary["conforms"] = str(e)
    return summary


async def main(binary: str, config: str, sampling: bool) -> dict:
    server = StdioServerParameters(command=binary, args=["serve", "--config", config])
    out: dict = {}
    async with stdio_client(server) as (read, write):
        async with ClientSession(
            read, write, sampling_callback=answer_sampling if sampling else None
        ) as session:
            init = await session.initialize()
            out["protocol_version"] = init.protocol_version
            out["server_name"] = init.server_info.name
            out["server_version"] = init.server_info.version
            out["instructions"] = init.instructions or ""
            tools = await session.list_tools()
            out["tools"] = {
                tool.name: {
                    "read_only": tool.annotations.read_only_hint if tool.annotations else None,
                    "destructive": tool.annotations.destructive_hint if tool.annotations else None,
                    "required": tool.input_schema.get("required", []),
                    "output_schema_type": (tool.output_schema or {}).get("type"),
                }
                for tool in tools.tools
            }
            if not sampling:
                out["errors"] = {
                    "run_sql": await call_checked(
                        session, "run_sql", {"database": "nlq_small", "sql": "DELETE FROM books"}
                    ),
                    "describe_schema": await call_checked(
                        session, "describe_schema", {"database": "no_such_db"}
                    ),
                    "validate_sql": await call_checked(session, "validate_sql", {"database": "nlq_small"}),
                    "query": await call_checked(
                        session, "query", {"question": "How many books?", "database": "no_such_db"}
                    ),
                }
                out["validate_sql"] = await call_checked(
                    session, "validate_sql", {"database": "nlq_small", "sql": "DELETE FROM books"}
                )
                out["describe_schema"] = await call_checked(
                    session, "describe_schema", {"database": "nlq_small", "filter": "books"}
                )
                out["refresh_schema"] = await call_checked(session, "refresh_schema", {"database": "nlq_small"})
                out["list_databases"] = result_summary(await session.call_tool("list_databases", {}))
                out["run_sql"] = result_summary(
                    await session.call_tool(
                        "run_sql",
                        {"database": "nlq_small",
                         "sql": "SELECT id, title FROM books ORDER BY id",
                         "row_limit": 2},
                    )
                )
            out["query"] = result_summary(
                await session.call_tool(
                    "query",
                    {"question": "How many customers are there?", "database": "nlq_small",
                     "return_mode": "both"},
                )
            )
            out["sampled"] = SAMPLED
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    result = anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3:] == ["--sampling"])
    print(json.dumps(result, default=str))
