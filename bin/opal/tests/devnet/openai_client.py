"""Drive an Opal node's OpenAI-compatible API with the official `openai` client, unchanged apart
from its base URL and API key. Used by bin/opal/tests/devnet/llm.rs:

    python openai_client.py BASE_URL API_KEY MODEL OUT_DIR [SMALL_KEY]

SMALL_KEY, if given, is a key whose allowance cannot cover a call: it must be refused (429).

Writes OUT_DIR/<case>.receipt.json (each reply's `opal_receipt`, a file `opal verify` reads) and
prints one JSON object on stdout: for each case what came back (text, usage, finish reason,
receipt header), and for each bad input the error's status, type, code and param.
"""

import json
import os
import sys

import openai
from openai import OpenAI

base_url, api_key, model, out_dir = sys.argv[1:5]
small_key = sys.argv[5] if len(sys.argv) > 5 else None
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
report = {"openai_version": openai.__version__, "cases": {}, "errors": {}}


def save(name, receipt):
    path = os.path.join(out_dir, f"{name}.receipt.json")
    with open(path, "w") as f:
        json.dump(receipt, f)
    return path


def extra(obj, key):
    """A field the OpenAI types do not declare (pydantic keeps it as an extra)."""
    return (obj.model_extra or {}).get(key)


# 1. Chat, not streamed, through the raw response to read the x-opal-receipt header too.
raw = client.chat.completions.with_raw_response.create(
    model=model,
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one word."},
    ],
    max_tokens=16,
    temperature=0,
    seed=7,
)
chat = raw.parse()
receipt = extra(chat, "opal_receipt")
report["cases"]["chat"] = {
    "object": chat.object,
    "text": chat.choices[0].message.content,
    "role": chat.choices[0].message.role,
    "finish_reason": chat.choices[0].finish_reason,
    "usage": chat.usage.model_dump(),
    "model": chat.model,
    "header": raw.headers.get("x-opal-receipt"),
    "request_id": receipt["request_id"],
    "price": receipt["price"],
    "unit_price": receipt["unit_price"],
    "seed": receipt["llm_input"]["seed"],
    "file": save("chat", receipt),
}

# 2. The same chat again with the same seed: the same tokens (a distinct request and receipt).
again = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one word."},
    ],
    max_tokens=16,
    temperature=0,
    seed=7,
)
r2 = extra(again, "opal_receipt")
report["cases"]["chat_again"] = {
    "text": again.choices[0].message.content,
    "request_id": r2["request_id"],
    "output_tokens": r2["output_tokens"],
    "price": r2["price"],
    "file": save("chat_again", r2),
}
report["cases"]["chat"]["output_tokens"] = receipt["output_tokens"]

# 3. Chat, streamed, with usage in the last chunk; the receipt arrives in the last chunk.
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Count from one to five."}],
    max_tokens=20,
    temperature=0.7,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, finish, usage, s_receipt, chunks, roles = [], None, None, None, 0, []
for chunk in stream:
    chunks += 1
    if chunk.choices:
        d = chunk.choices[0].delta
        if d.role:
            roles.append(d.role)
        if d.content:
            pieces.append(d.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    if chunk.usage:
        usage = chunk.usage.model_dump()
    if extra(chunk, "opal_receipt"):
        s_receipt = extra(chunk, "opal_receipt")
report["cases"]["chat_stream"] = {
    "text": "".join(pieces),
    "chunks": chunks,
    "roles": roles,
    "finish_reason": finish,
    "usage": usage,
    "request_id": s_receipt and s_receipt["request_id"],
    "price": s_receipt and s_receipt["price"],
    "seed": s_receipt and s_receipt["llm_input"]["seed"],
    "file": s_receipt and save("chat_stream", s_receipt),
}

# 4. Text completion, not streamed.
comp = client.completions.create(
    model=model, prompt="The three primary colours are", max_tokens=12, temperature=0, seed=1
)
c_receipt = extra(comp, "opal_receipt")
report["cases"]["completion"] = {
    "object": comp.object,
    "text": comp.choices[0].text,
    "finish_reason": comp.choices[0].finish_reason,
    "usage": comp.usage.model_dump(),
    "request_id": c_receipt["request_id"],
    "price": c_receipt["price"],
    "file": save("completion", c_receipt),
}

# 5. Text completion, streamed (no usage asked: the receipt rides on the finishing chunk).
cs = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
)
pieces, finish, cs_receipt = [], None, None
for chunk in cs:
    if chunk.choices:
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    if extra(chunk, "opal_receipt"):
        cs_receipt = extra(chunk, "opal_receipt")
report["cases"]["completion_stream"] = {
    "text": "".join(pieces),
    "finish_reason": finish,
    "request_id": cs_receipt and cs_receipt["request_id"],
    "price": cs_receipt and cs_receipt["price"],
    "file": cs_receipt and save("completion_stream", cs_receipt),
}

# 6. The activations tier, asked through extra_body: the receipt carries the commitment. With
# a certain audit (opal_audit_bps 10000) the validators check it after settlement.
act = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Say hi."}],
    max_tokens=6,
    temperature=0,
    extra_body={"opal_tier": "activations", "opal_audit_bps": 10000},
)
a_receipt = extra(act, "opal_receipt")
report["cases"]["activations"] = {
    "tier": a_receipt["tier"],
    "attachments": a_receipt["attachments"],
    "request_id": a_receipt["request_id"],
    "price": a_receipt["price"],
    "file": save("activations", a_receipt),
}

# 6b. A `signed` call asking for a certain audit: no commitment, yet the validators check it
# (every token against the model's logits).
sa = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=6,
    temperature=0.7,
    seed=11,
    extra_body={"opal_audit_bps": 10000},
)
sa_receipt = extra(sa, "opal_receipt")
report["cases"]["signed_audited"] = {
    "tier": sa_receipt["tier"],
    "request_id": sa_receipt["request_id"],
    "price": sa_receipt["price"],
    "file": save("signed_audited", sa_receipt),
}

# 7. The model list.
report["models"] = [m.id for m in client.models.list().data]


# 8. Bad inputs: each must be an OpenAI-shaped error the client raises as its typed exception.
def expect_error(name, fn):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        report["errors"][name] = {
            "status": e.status_code,
            "exception": type(e).__name__,
            "type": body.get("type"),
            "code": body.get("code"),
            "param": body.get("param"),
            "message": body.get("message"),
        }
        return
    report["errors"][name] = {"status": None, "exception": "no error raised"}


msg = [{"role": "user", "content": "hi"}]
expect_error(
    "audit_bps_out_of_range",
    lambda: client.chat.completions.create(
        model=model,
        messages=msg,
        max_tokens=2,
        extra_body={"opal_tier": "activations", "opal_audit_bps": 10001},
    ),
)
expect_error(
    "unknown_model",
    lambda: client.chat.completions.create(model="no-such-model", messages=msg, max_tokens=4),
)
expect_error(
    "context_too_long",
    lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello " * 12000}], max_tokens=4
    ),
)
expect_error(
    "completion_too_long",
    lambda: client.chat.completions.create(model=model, messages=msg, max_tokens=1_000_000),
)
expect_error(
    "malformed_messages_role",
    lambda: client.chat.completions.create(
        model=model, messages=[{"role": "wizard", "content": "hi"}], max_tokens=4
    ),
)
expect_error(
    "malformed_messages_missing_content",
    lambda: client.chat.completions.create(model=model, messages=[{"role": "user"}], max_tokens=4),
)
expect_error(
    "malformed_messages_empty",
    lambda: client.chat.completions.create(model=model, messages=[], max_tokens=4),
)
expect_error(
    "malformed_messages_not_a_list",
    lambda: client.chat.completions.create(model=model, messages="hi", max_tokens=4),
)
expect_error(
    "negative_max_tokens",
    lambda: client.chat.completions.create(model=model, messages=msg, max_tokens=-5),
)
expect_error(
    "negative_max_tokens_completion",
    lambda: client.completions.create(model=model, prompt="hi", max_tokens=-1),
)
expect_error(
    "bad_api_key",
    lambda: OpenAI(base_url=base_url, api_key="sk-not-an-opal-grant", max_retries=0)
    .chat.completions.create(model=model, messages=msg, max_tokens=4),
)
if small_key:
    expect_error(
        "over_allowance",
        lambda: OpenAI(base_url=base_url, api_key=small_key, max_retries=0)
        .chat.completions.create(model=model, messages=msg, max_tokens=4),
    )

print(json.dumps(report))
