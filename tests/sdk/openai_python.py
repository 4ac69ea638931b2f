"""The official `openai` Python package, used exactly as an application would, against chatgate.

Run by tests/tests/sdk.rs (see `make sdk` for the environment). Each named check talks to the
gateway through the SDK's public API only and asserts on the SDK's parsed objects.

Environment:
  CHATGATE_BASE_URL         the gateway's origin, e.g. http://127.0.0.1:3000
  CHATGATE_API_KEY          an API key the gateway accepts
  CHATGATE_JWT              a bearer JWT the gateway accepts (checks `azure-ad`)
  CHATGATE_MODEL            model id / Azure deployment name (default: chatgate-rag)
  CHATGATE_EXPECT_CONTENT   if set, the exact answer text the completion provider gives

Usage: python openai_python.py [check ...]   (default: every check but `azure-ad`)
Exits 0 when every selected check passed, 1 otherwise, naming each failure.
"""

import asyncio
import os
import sys
import time
import traceback
from urllib.parse import parse_qs, urlsplit

import openai
from openai import AsyncOpenAI, AzureOpenAI, OpenAI

BASE_URL = os.environ["CHATGATE_BASE_URL"].rstrip("/")
API_KEY = os.environ["CHATGATE_API_KEY"]
MODEL = os.environ.get("CHATGATE_MODEL", "chatgate-rag")
EXPECT_CONTENT = os.environ.get("CHATGATE_EXPECT_CONTENT")
API_VERSION = "2024-10-21"
# A hung gateway fails the check instead of waiting out the SDK's ten-minute default.
TIMEOUT_SECONDS = 60.0
QUESTION = "What does the web application firewall block?"
MESSAGES = [{"role": "user", "content": QUESTION}]


class CheckFailed(AssertionError):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def openai_client(**overrides):
    return OpenAI(**{"base_url": f"{BASE_URL}/v1", "api_key": API_KEY, "timeout": TIMEOUT_SECONDS, **overrides})


def azure_client(**credential):
    return AzureOpenAI(azure_endpoint=BASE_URL, api_version=API_VERSION, timeout=TIMEOUT_SECONDS, **credential)


def extra(model, name):
    """A field the OpenAI schema does not declare (Azure's `context`), as the SDK keeps it."""
    extras = model.model_extra or {}
    expect(name in extras, f"{type(model).__name__} has no `{name}`; its extra fields are {sorted(extras)}")
    # Attribute access on unknown fields is what application code written for Azure uses.
    expect(getattr(model, name) == extras[name], f"`{name}` differs between attribute and model_extra")
    return extras[name]


def check_citations(context, where):
    expect(isinstance(context, dict), f"{where}.context is {type(context).__name__}, not an object")
    citations = context.get("citations")
    expect(isinstance(citations, list) and citations, f"{where}.context.citations is empty or missing: {context!r}")
    for index, citation in enumerate(citations):
        label = f"{where}.context.citations[{index}]"
        for field in ("title", "content", "chunk_id"):
            expect(
                isinstance(citation.get(field), str) and citation[field].strip(),
                f"{label}.{field} is missing or empty: {citation!r}",
            )
        expect(
            any(isinstance(citation.get(field), str) and citation[field] for field in ("url", "filepath")),
            f"{label} has neither url nor filepath: {citation!r}",
        )
    return citations


def check_answer_text(content, citations, where):
    expect(isinstance(content, str) and content.strip(), f"{where}: empty answer")
    if EXPECT_CONTENT is not None:
        expect(content == EXPECT_CONTENT, f"{where}: answer {content!r}, expected {EXPECT_CONTENT!r}")
        return
    markers = [n for n in range(1, len(citations) + 1) if f"[doc{n}]" in content]
    expect(markers, f"{where}: no [docN] marker for the {len(citations)} citations in {content!r}")


def check_usage(usage, where):
    expect(usage is not None, f"{where}: no usage")
    expect(usage.prompt_tokens > 0, f"{where}: prompt_tokens {usage.prompt_tokens}")
    expect(usage.completion_tokens > 0, f"{where}: completion_tokens {usage.completion_tokens}")
    expect(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"{where}: total_tokens {usage.total_tokens} != {usage.prompt_tokens} + {usage.completion_tokens}",
    )


def check_completion(completion, where):
    expect(completion.object == "chat.completion", f"{where}: object {completion.object!r}")
    expect(completion.id.startswith("chatcmpl-"), f"{where}: id {completion.id!r}")
    expect(abs(completion.created - time.time()) < 600, f"{where}: created {completion.created} is not now")
    expect(isinstance(completion.model, str) and completion.model, f"{where}: model {completion.model!r}")
    expect(len(completion.choices) == 1, f"{where}: {len(completion.choices)} choices")
    choice = completion.choices[0]
    expect(choice.index == 0, f"{where}: choice index {choice.index}")
    expect(choice.finish_reason == "stop", f"{where}: finish_reason {choice.finish_reason!r}")
    expect(choice.message.role == "assistant", f"{where}: role {choice.message.role!r}")
    citations = check_citations(extra(choice.message, "context"), f"{where}.choices[0].message")
    check_answer_text(choice.message.content, citations, where)
    check_usage(completion.usage, where)


def check_stream(stream, where, include_usage):
    chunks = list(stream)
    expect(chunks, f"{where}: the stream had no chunks")
    ids = {chunk.id for chunk in chunks}
    expect(len(ids) == 1, f"{where}: chunks carry several ids {ids}")
    expect(next(iter(ids)).startswith("chatcmpl-"), f"{where}: id {ids}")
    models = {chunk.model for chunk in chunks}
    expect(len(models) == 1, f"{where}: chunks name several models {sorted(models)}")
    for chunk in chunks:
        expect(chunk.object == "chat.completion.chunk", f"{where}: object {chunk.object!r}")
        expect(abs(chunk.created - time.time()) < 600, f"{where}: created {chunk.created}")

    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    if include_usage:
        expect(len(usage_chunks) == 1, f"{where}: {len(usage_chunks)} chunks carry usage, expected exactly one")
        expect(usage_chunks[0] is chunks[-1], f"{where}: usage is not in the final chunk")
        expect(chunks[-1].choices == [], f"{where}: the usage chunk has choices {chunks[-1].choices!r}")
        check_usage(chunks[-1].usage, where)
        content_chunks = chunks[:-1]
    else:
        expect(not usage_chunks, f"{where}: usage sent without stream_options.include_usage")
        content_chunks = chunks

    for chunk in content_chunks:
        expect(len(chunk.choices) == 1 and chunk.choices[0].index == 0, f"{where}: choices {chunk.choices!r}")
    first = content_chunks[0].choices[0].delta
    expect(first.role == "assistant", f"{where}: first delta role {first.role!r}")
    citations = check_citations(extra(first, "context"), f"{where}: first chunk's choices[0].delta")
    finish_reasons = [chunk.choices[0].finish_reason for chunk in content_chunks]
    expect(
        finish_reasons[-1] == "stop" and all(reason is None for reason in finish_reasons[:-1]),
        f"{where}: finish_reasons {finish_reasons}, expected only the last to be 'stop'",
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in content_chunks)
    check_answer_text(text, citations, where)
    return text


# ---------------------------------------------------------------------------------------------
# checks


def openai_chat():
    client = openai_client()
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    check_completion(completion, "OpenAI chat.completions.create")


def openai_chat_parts_and_options():
    """Request fields the SDK's users commonly send are accepted."""
    client = openai_client()
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=400,
        stop=["\n\n\n"],
        n=1,
        user="sdk-test",
        seed=7,
    )
    check_completion(completion, "OpenAI chat with content parts and sampling options")


def openai_max_tokens():
    client = openai_client()
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)
    choice = completion.choices[0]
    expect(choice.finish_reason == "length", f"finish_reason {choice.finish_reason!r} with max_tokens=3")
    expect(choice.message.content, "no content with max_tokens=3")
    expect(
        0 < completion.usage.completion_tokens <= 3,
        f"completion_tokens {completion.usage.completion_tokens} with max_tokens=3",
    )


def openai_stream():
    client = openai_client()
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    check_stream(stream, "OpenAI stream with include_usage", include_usage=True)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    check_stream(stream, "OpenAI stream without usage", include_usage=False)


def openai_stream_helper():
    """The SDK's higher-level streaming helper accumulates the chunks into one completion."""
    client = openai_client()
    with client.chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    expect(deltas, "the stream helper reported no content.delta events")
    expect(final.choices[0].message.content == "".join(deltas), "final completion text != the deltas")
    expect(final.choices[0].finish_reason == "stop", f"finish_reason {final.choices[0].finish_reason!r}")
    check_usage(final.usage, "stream helper")


def openai_async_stream():
    async def run():
        async with AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key=API_KEY, timeout=TIMEOUT_SECONDS) as client:
            completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            check_completion(completion, "AsyncOpenAI create")
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            expect(text, "AsyncOpenAI stream gave no text")
            if EXPECT_CONTENT is not None:
                expect(text == EXPECT_CONTENT, f"AsyncOpenAI stream text {text!r}")
            check_usage(chunks[-1].usage, "AsyncOpenAI stream")

    asyncio.run(run())


def openai_models():
    client = openai_client()
    models = list(client.models.list())
    ids = [model.id for model in models]
    expect(MODEL in ids, f"models.list() ids {ids} lack {MODEL!r}")
    for model in models:
        expect(model.object == "model", f"model {model.id}: object {model.object!r}")
        expect(isinstance(model.owned_by, str) and model.owned_by, f"model {model.id}: owned_by {model.owned_by!r}")
        expect(isinstance(model.created, int), f"model {model.id}: created {model.created!r}")
    model = client.models.retrieve(MODEL)
    expect(model.id == MODEL, f"models.retrieve({MODEL!r}).id is {model.id!r}")


def expect_error(error_type, status, call, where):
    try:
        call()
    except error_type as error:
        expect(error.status_code == status, f"{where}: status {error.status_code}, expected {status}")
        expect(isinstance(error.body, dict), f"{where}: error body {error.body!r} is not the `error` object")
        expect(
            isinstance(error.message, str) and error.body.get("message") in error.message,
            f"{where}: the exception message {error.message!r} lacks the gateway's message",
        )
        expect(error.type == error.body.get("type") and error.type, f"{where}: type {error.type!r}")
        return error
    except openai.APIError as error:
        raise CheckFailed(
            f"{where}: raised {type(error).__name__} ({getattr(error, 'status_code', None)}: {error}), "
            f"expected {error_type.__name__}"
        ) from error
    raise CheckFailed(f"{where}: no error raised, expected {error_type.__name__}")


def errors():
    wrong_key = openai_client(api_key="sk-not-a-chatgate-key", max_retries=0)
    error = expect_error(
        openai.AuthenticationError,
        401,
        lambda: wrong_key.chat.completions.create(model=MODEL, messages=MESSAGES),
        "wrong API key",
    )
    expect(error.code == "invalid_api_key", f"wrong API key: code {error.code!r}")
    expect("sk-not-a-chatgate-key" not in str(error), "the gateway echoed the wrong key")
    expect(
        error.response.headers.get("www-authenticate", "").startswith("Bearer"),
        f"wrong API key: www-authenticate {error.response.headers.get('www-authenticate')!r}",
    )

    client = openai_client(max_retries=0)
    error = expect_error(
        openai.BadRequestError,
        400,
        lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, n=2),
        "n=2",
    )
    expect(error.param == "n", f"n=2: param {error.param!r}")

    error = expect_error(
        openai.NotFoundError,
        404,
        lambda: client.chat.completions.create(model="no-such-model", messages=MESSAGES),
        "unknown model",
    )
    expect(error.param == "model", f"unknown model: param {error.param!r}")
    expect("no-such-model" in error.message, f"unknown model: message {error.message!r} does not name it")

    error = expect_error(
        openai.BadRequestError,
        400,
        lambda: client.chat.completions.create(model=MODEL, messages=[]),
        "no messages",
    )
    expect(error.param == "messages", f"no messages: param {error.param!r}")

    # Errors surface the same way from a streaming call.
    expect_error(
        openai.BadRequestError,
        400,
        lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, n=2, stream=True),
        "n=2 with stream=True",
    )


def gateway_extras():
    """What the gateway adds, as an SDK user reaches it: request ids, extra_body, typed refusals."""
    client = openai_client(max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    expect(
        completion._request_id and completion._request_id == raw.headers.get("x-request-id"),
        f"completion._request_id {completion._request_id!r} is not the x-request-id header",
    )

    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body={"chatgate": {"retrieval": False}}
    )
    context = (completion.choices[0].message.model_extra or {}).get("context") or {}
    expect(
        not context.get("citations"),
        f"retrieval turned off through extra_body, yet citations came back: {context!r}",
    )

    error = expect_error(
        openai.BadRequestError,
        400,
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        ),
        "tools",
    )
    expect(error.param == "tools", f"tools: param {error.param!r}")

    error = expect_error(
        openai.PermissionDeniedError,
        403,
        # Outside the prompt fields: message contents are prose for the model, not markup.
        lambda: client.chat.completions.create(
            model=MODEL, messages=MESSAGES, user="<script>alert(1)</script>"
        ),
        "a script tag in `user` blocked by the WAF",
    )
    expect(str(error.code).startswith("waf_rule_"), f"WAF: code {error.code!r}")


def stream_cut():
    """An answer whose upstream stream breaks must end in an SDK error, never pass as complete."""
    client = openai_client(max_retries=0)
    received = []
    try:
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            for choice in chunk.choices:
                expect(
                    choice.finish_reason is None,
                    f"the cut stream reported finish_reason {choice.finish_reason!r} after {''.join(received)!r}",
                )
                received.append(choice.delta.content or "")
    except openai.APIStatusError as error:
        # Cut before anything was streamed: a plain error response is right too.
        expect(error.status_code >= 500, f"cut stream: status {error.status_code}")
        print(f"     cut stream answered {error.status_code} before streaming: {error.message}")
    except openai.APIError as error:
        expect(isinstance(error.body, dict) and error.body.get("message"), f"cut stream: error body {error.body!r}")
        expect(error.message == error.body["message"], f"cut stream: message {error.message!r}")
        expect(error.type == error.body.get("type") and error.type, f"cut stream: type {error.type!r}")
        print(f"     cut stream raised {type(error).__name__} after {''.join(received)!r}: {error.message}")
    else:
        raise CheckFailed(f"the cut stream ended like a complete answer: {''.join(received)!r}")


def check_azure_request(raw, credential_header):
    request = raw.http_request
    url = urlsplit(str(request.url))
    expect(
        url.path == f"/openai/deployments/{MODEL}/chat/completions",
        f"AzureOpenAI called {url.path}, not the deployment route",
    )
    expect(parse_qs(url.query).get("api-version") == [API_VERSION], f"AzureOpenAI query {url.query!r}")
    expect(credential_header in request.headers, f"AzureOpenAI sent no {credential_header} header")


def azure_with(where, credential_header, **credential):
    client = azure_client(**credential)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    check_azure_request(raw, credential_header)
    check_completion(raw.parse(), f"{where} create")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    check_azure_request(raw, credential_header)
    check_stream(raw.parse(), f"{where} stream", include_usage=True)


def azure():
    azure_with("AzureOpenAI(api_key)", "api-key", api_key=API_KEY)
    wrong_key = azure_client(api_key="not-a-chatgate-key", max_retries=0)
    error = expect_error(
        openai.AuthenticationError,
        401,
        lambda: wrong_key.chat.completions.create(model=MODEL, messages=MESSAGES),
        "AzureOpenAI with a wrong api-key",
    )
    expect(error.code == "invalid_api_key", f"AzureOpenAI wrong key: code {error.code!r}")
    client = azure_client(api_key=API_KEY, max_retries=0)
    expect_error(
        openai.NotFoundError,
        404,
        lambda: client.chat.completions.create(model="no-such-deployment", messages=MESSAGES),
        "AzureOpenAI with an unknown deployment",
    )


def azure_ad():
    azure_with("AzureOpenAI(azure_ad_token)", "authorization", azure_ad_token=os.environ["CHATGATE_JWT"])
    expired = azure_client(azure_ad_token="e30.e30.c2ln", max_retries=0)
    expect_error(
        openai.AuthenticationError,
        401,
        lambda: expired.chat.completions.create(model=MODEL, messages=MESSAGES),
        "AzureOpenAI with a forged token",
    )


CHECKS = {
    "openai-chat": openai_chat,
    "openai-options": openai_chat_parts_and_options,
    "openai-max-tokens": openai_max_tokens,
    "openai-stream": openai_stream,
    "openai-stream-helper": openai_stream_helper,
    "openai-async": openai_async_stream,
    "openai-models": openai_models,
    "errors": errors,
    "gateway-extras": gateway_extras,
    "stream-cut": stream_cut,
    "azure": azure,
    "azure-ad": azure_ad,
}
# `azure-ad` needs a token and `stream-cut` an upstream that breaks: both only when named.
DEFAULT = [name for name in CHECKS if name not in ("azure-ad", "stream-cut")]


def main(names):
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        print(f"unknown checks {unknown}; known: {list(CHECKS)}", file=sys.stderr)
        return 2
    print(f"openai {openai.__version__} (Python) against {BASE_URL}")
    failed = []
    for name in names or DEFAULT:
        try:
            CHECKS[name]()
        except Exception as error:  # every failure is reported, then the next check runs
            failed.append(name)
            print(f"FAIL {name}: {type(error).__name__}: {error}")
            if not isinstance(error, CheckFailed):
                traceback.print_exc(file=sys.stdout)
        else:
            print(f"ok   {name}")
    # Worded unlike a test runner's summary, so CI never counts these checks as tests.
    print(f"openai-python checks: {len(names or DEFAULT) - len(failed)} ok, failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
