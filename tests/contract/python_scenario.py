#!/usr/bin/env python3
"""Contract scenario through a Python client generated from the committed OpenAPI spec.

Usage: python_scenario.py            (environment: PARLEY_URL, PARLEY_API_KEY, PARLEY_SPEC)

1. Generates a client with openapi-python-client (pinned and installed into the interpreter this
   runs with by tests/contract/run, which exports the version) from the spec into a
   temporary directory. Any schema or operation the generator drops is a failure: a client
   generated from the spec must cover it.
2. Runs the scenario through that client only (no hand-written HTTP): create a bot, add a text
   source, wait until it is ready, chat without streaming and check the answer cites a source,
   find the conversation, read the bot's site key from its widget settings, start a visitor
   conversation leaving an email, find the lead, create an inactive webhook endpoint and list it,
   then clear its note by sending null.
   Every response must have the expected status and deserialize into the documented model
   (the client raises on undocumented statuses; unexpected documented ones fail the step).

If generation from the committed spec drops anything, that is reported as a failure, and the
scenario then runs on a client generated from a copy of the spec in which the only change is
that `allOf: [{$ref: X}, {description: ...}]` wrappers are replaced by `$ref: X` (the same
schema in OpenAPI 3.0: the description is an annotation). That way the scenario still reports
on the server's behaviour; the run fails either way.

Prints one line per step and ends with `python scenario: N passed, M failed`.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path


def installed_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# tests/contract/run pins, installs and exports it; run alone, this reports what is installed.
OPENAPI_PYTHON_CLIENT_VERSION = (
    os.environ.get("CONTRACT_OPENAPI_PYTHON_CLIENT_VERSION") or installed_version("openapi-python-client")
)
SOURCE_READY_TIMEOUT_S = 120

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

BASE_URL = os.environ.get("PARLEY_URL", "http://127.0.0.1:8080")
API_KEY = os.environ.get("PARLEY_API_KEY", "")
SPEC = Path(os.environ.get("PARLEY_SPEC", str(REPO / "openapi" / "openapi.json")))

results: list[tuple[str, bool, str]] = []
warnings: list[str] = []


def record(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, ok, detail))
    mark = "PASS" if ok else "FAIL"
    print(f"  [{mark}] {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


class StepFailed(Exception):
    pass


def ensure_generator() -> Path:
    """The openapi-python-client next to this interpreter (tests/contract/run installs it there)."""
    exe = Path(sys.executable).parent / "openapi-python-client"
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: run tests/contract/run, which installs openapi-python-client")
    return exe


def generate(exe: Path, spec_path: Path, out_dir: Path) -> tuple[bool, list[str]]:
    """Generates the client; returns (lossless, problems reported by the generator)."""
    config = out_dir.parent / "generator-config.json"
    config.write_text(json.dumps({"post_hooks": [], "project_name_override": "parley_client", "package_name_override": "parley_client"}))
    proc = subprocess.run(
        [str(exe), "generate", "--path", str(spec_path), "--output-path", str(out_dir), "--meta", "none",
         "--config", str(config), "--overwrite"],
        capture_output=True, text=True,
    )
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        return False, [f"generator exited {proc.returncode}: {output.strip()[-2000:]}"]
    problems: list[str] = []
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Unable to process schema"):
            reason = next((l for l in lines[i + 1:i + 4] if l), "")
            problems.append(f"{line} {reason}")
        elif line.startswith("WARNING parsing"):
            reason = next((l for l in lines[i + 1:i + 4] if l), "")
            reason = re.sub(r"<openapi_python_client\.schema\.untrusted_string\.UntrustedString object at 0x[0-9a-f]+>", "<status>", reason)
            problems.append(f"{line} {reason}")
    return not problems, problems


def unwrap_description_allof(spec: dict) -> int:
    """Replaces `allOf: [{$ref}, {description}]` by `$ref` (equivalent in OpenAPI 3.0)."""
    count = 0

    def walk(node):
        nonlocal count
        if isinstance(node, dict):
            all_of = node.get("allOf")
            if (isinstance(all_of, list) and len(all_of) == 2 and set(all_of[0]) == {"$ref"}
                    and set(all_of[1]) <= {"description"}):
                ref = all_of[0]["$ref"]
                node.clear()
                node["$ref"] = ref
                count += 1
            for value in list(node.values()):
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return count


def nulls_in_non_nullable(obj, path="") -> list[str]:
    """Attributes the client set to None although their declared type does not admit None.

    The generated `from_dict` copies a JSON `null` into a `str`, `int`, `bool` or `float`
    attribute without complaint, so a client typed from the spec would hand out a None the
    types promise cannot happen: the same contract violation as a failed deserialization.
    """
    found: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += nulls_in_non_nullable(item, f"{path}[{i}]")
        return found
    if not hasattr(obj, "__attrs_attrs__"):
        return found
    for attr in obj.__attrs_attrs__:
        if attr.name == "additional_properties":
            continue
        value = getattr(obj, attr.name)
        where = f"{path}.{attr.name}" if path else attr.name
        annotation = attr.type if isinstance(attr.type, str) else repr(attr.type)
        if value is None and "None" not in annotation and "Any" not in annotation:
            found.append(f"{where} is null (declared {annotation})")
        else:
            found += nulls_in_non_nullable(value, where)
    return found


def extra_fields(obj, path="") -> list[str]:
    """Fields the server sent that the spec does not describe (collected as additional_properties)."""
    found: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += extra_fields(item, f"{path}[{i}]")
        return found
    if not hasattr(obj, "__attrs_attrs__"):
        return found
    for name in getattr(obj, "additional_properties", {}) or {}:
        if not type(obj).__name__.endswith("Fields") and type(obj).__name__ not in ("Spec",):
            found.append(f"{path}.{name}" if path else name)
    for attr in obj.__attrs_attrs__:
        if attr.name == "additional_properties":
            continue
        found += extra_fields(getattr(obj, attr.name), f"{path}.{attr.name}" if path else attr.name)
    return found


def main() -> int:
    if not API_KEY:
        print("PARLEY_API_KEY is not set", file=sys.stderr)
        return 2
    print(f"python scenario (openapi-python-client {OPENAPI_PYTHON_CLIENT_VERSION}) against {BASE_URL}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="parley-pyclient-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    exe = ensure_generator()
    out = work / "parley_client"
    lossless, problems = generate(exe, SPEC, out)
    detail = "every schema and operation generated" if lossless else f"{len(problems)} problems"
    record("generate client from the committed spec", lossless, detail)
    for p in problems:
        print(f"      - {p}", flush=True)
    if not lossless:
        spec = json.loads(SPEC.read_text())
        patched = copy.deepcopy(spec)
        n = unwrap_description_allof(patched)
        patched_path = work / "openapi.unwrapped.json"
        patched_path.write_text(json.dumps(patched))
        shutil.rmtree(out, ignore_errors=True)
        lossless2, problems2 = generate(exe, patched_path, out)
        print(f"      (continuing with a client generated from a copy of the spec with {n} "
              f"`allOf: [$ref, {{description}}]` wrappers unwrapped: "
              f"{'lossless' if lossless2 else str(len(problems2)) + ' problems remain'})", flush=True)
        for p in problems2:
            print(f"      - {p}", flush=True)
        if not (out / "__init__.py").exists():
            record("scenario", False, "no client could be generated")
            return summary()

    sys.path.insert(0, str(work))
    try:
        scenario()
    except StepFailed:
        pass
    except Exception:  # an unexpected exception in the scenario itself
        record("scenario aborted", False, traceback.format_exc().strip().splitlines()[-1])
        traceback.print_exc()
    return summary()


def summary() -> int:
    passed = sum(1 for _, ok, _ in results if ok)
    failed = sum(1 for _, ok, _ in results if not ok)
    for w in warnings:
        print(f"  [WARN] {w}", flush=True)
    print(f"python scenario: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def scenario() -> None:
    pc = importlib.import_module("parley_client")
    from parley_client import errors
    from parley_client.types import Unset

    AuthenticatedClient = pc.AuthenticatedClient

    def mod(name: str):
        return importlib.import_module(f"parley_client.{name}")

    client = AuthenticatedClient(base_url=BASE_URL, token=API_KEY, raise_on_unexpected_status=True,
                                 timeout=60.0)

    def call(step: str, fn, expected_status: int, model_name: str, **kwargs):
        """Calls a generated `sync_detailed`, checks the status and the parsed model."""
        try:
            resp = fn(**kwargs)
        except errors.UnexpectedStatus as e:
            record(step, False, f"undocumented status {e.status_code}: {e.content[:300]!r}")
            raise StepFailed
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            record(step, False, f"response did not deserialize: {type(e).__name__}: {e}")
            traceback.print_exc()
            raise StepFailed
        if int(resp.status_code) != expected_status:
            record(step, False, f"status {int(resp.status_code)} (expected {expected_status}): {resp.content[:400]!r}")
            raise StepFailed
        parsed = resp.parsed
        if type(parsed).__name__ != model_name:
            record(step, False, f"parsed as {type(parsed).__name__}, expected {model_name}")
            raise StepFailed
        nulls = nulls_in_non_nullable(parsed)
        if nulls:
            record(step, False, f"response does not match the spec's types ({len(nulls)}): {'; '.join(nulls[:8])}")
            raise StepFailed
        extra = extra_fields(parsed)
        if extra:
            warnings.append(f"{step}: fields not described by the spec: {', '.join(sorted(set(extra)))}")
        return resp, parsed

    def check(step: str, cond: bool, detail: str) -> None:
        if not cond:
            record(step, False, detail)
            raise StepFailed

    run_id = uuid.uuid4().hex[:8]

    # 1. Create a bot.
    step = "create bot (POST /bots -> 201 Bot)"
    create_bot = mod("api.bots.create_bot")
    CreateBotRequest = mod("models.create_bot_request").CreateBotRequest
    _, bot = call(step, create_bot.sync_detailed, 201, "Bot", client=client,
                  body=CreateBotRequest(name=f"Contract Py {run_id}", language="en"),
                  idempotency_key=f"contract-py-{run_id}")
    check(step, bot.name == f"Contract Py {run_id}" and bot.version >= 1, f"unexpected bot {bot.to_dict()}")
    record(step, True, f"bot {bot.id}")

    # 2. Add a text source.
    step = "add text source (POST /bots/{id}/sources -> 202 SourceInfo)"
    add_source = mod("api.sources.add_source")
    TextInput = mod("models.add_source_request_text_source_input")
    text = (
        "# Pricing\n\nThe Pro plan costs 49 euros per month and includes unlimited bots. "
        "The Team plan costs 99 euros per month and adds shared inboxes.\n\n"
        "# Refunds\n\nRefunds are possible within 30 days of purchase, by writing to billing@acme.example.\n"
    )
    type_enum = TextInput.AddSourceRequestTextSourceInputType if hasattr(TextInput, "AddSourceRequestTextSourceInputType") \
        else mod("models.add_source_request_text_source_input_type").AddSourceRequestTextSourceInputType
    _, source = call(step, add_source.sync_detailed, 202, "SourceInfo", client=client, bot_id=bot.id,
                     body=TextInput.AddSourceRequestTextSourceInput(title="Pricing and refunds", body=text,
                                                                    type_=type_enum("text")))
    record(step, True, f"source {source.id}, status {source.status}")

    # 3. Poll until ready.
    step = "source becomes ready (GET /bots/{id}/sources/{sid} -> 200 SourceDetail)"
    get_source = mod("api.sources.get_source")
    deadline = time.time() + SOURCE_READY_TIMEOUT_S
    detail = None
    while time.time() < deadline:
        _, detail = call(step, get_source.sync_detailed, 200, "SourceDetail", client=client,
                         bot_id=bot.id, source_id=source.id)
        if detail.status in ("ready", "failed"):
            break
        time.sleep(0.5)
    check(step, detail is not None and detail.status == "ready",
          f"status {getattr(detail, 'status', None)} after {SOURCE_READY_TIMEOUT_S}s, error {getattr(detail, 'error', None)}")
    record(step, True, f"{detail.chunks} chunks, {len(detail.page_list)} pages")

    # 4. Chat without streaming; the answer must cite a source.
    step = "chat stream=false (POST /bots/{id}/chat -> 200 ChatReply with a cited source)"
    chat = mod("api.chat.chat")
    ChatRequest = mod("models.chat_request").ChatRequest
    visitor_id = f"contract-py-{run_id}"
    _, reply = call(step, chat.sync_detailed, 200, "ChatReply", client=client, bot_id=bot.id,
                    body=ChatRequest(message="How much does the Pro plan cost?", stream=False, visitor_id=visitor_id))
    check(step, not reply.unanswered, f"unanswered: {reply.answer!r}")
    check(step, len(reply.sources) >= 1, f"no sources: {reply.to_dict()}")
    check(step, re.search(r"\[\d+\]", reply.answer) is not None, f"no citation marker in {reply.answer!r}")
    check(step, "49" in reply.answer, f"answer does not contain the price: {reply.answer!r}")
    check(step, any(s.source_id == source.id for s in reply.sources),
          f"sources do not cite {source.id}: {[s.to_dict() for s in reply.sources]}")
    record(step, True, f"conversation {reply.conversation_id}, {len(reply.sources)} sources")

    # 5. List conversations and find it.
    step = "list conversations (GET /conversations?bot_id -> 200 ConversationList, contains it)"
    list_conversations = mod("api.conversations.list_conversations")
    _, convs = call(step, list_conversations.sync_detailed, 200, "ConversationList", client=client, bot_id=bot.id)
    found = [c for c in convs.items if c.id == reply.conversation_id] 
    check(step, len(found) == 1, f"conversation {reply.conversation_id} not in {convs.to_dict()}")
    check(step, found[0].message_count == 2, f"message_count {found[0].message_count}")
    record(step, True, f"{len(convs.items)} conversations")

    step = "get conversation (GET /conversations/{id} -> 200 ConversationDetail)"
    get_conversation = mod("api.conversations.get_conversation")
    _, conv = call(step, get_conversation.sync_detailed, 200, "ConversationDetail", client=client,
                   conversation_id=reply.conversation_id)
    check(step, len(conv.messages) == 2, f"{len(conv.messages)} messages")
    record(step, True, f"{len(conv.messages)} messages")

    # 6. The site key from the widget settings.
    step = "widget settings (GET /bots/{id}/widget-settings -> 200 WidgetSettingsInfo with site_key)"
    get_widget = mod("api.widget.get_widget_settings")
    _, widget = call(step, get_widget.sync_detailed, 200, "WidgetSettingsInfo", client=client, bot_id=bot.id)
    site_key = widget.site_key
    check(step, isinstance(site_key, str) and site_key.startswith("ps_"), f"site_key {site_key!r}")
    record(step, True, f"site key {site_key[:7]}...")

    # 7. A visitor starts a conversation leaving an email (site key instead of the secret key).
    visitor = AuthenticatedClient(base_url=BASE_URL, token=site_key, prefix="", auth_header_name="X-Parley-Site-Key",
                                  raise_on_unexpected_status=True, timeout=60.0)
    step = "visitor config (GET /public/bots/{id}/config -> 200 WidgetConfig)"
    visitor_config = mod("api.visitor.visitor_config")
    _, cfg = call(step, visitor_config.sync_detailed, 200, "WidgetConfig", client=visitor, bot_id=bot.id)
    record(step, True)

    step = "visitor starts a conversation with an email (POST /public/bots/{id}/conversations -> 201 StartedConversation)"
    start = mod("api.visitor.visitor_start_conversation")
    StartConversation = mod("models.start_conversation").StartConversation
    email = f"ana.{run_id}@shop.example"
    visitor_token = f"contract-py-visitor-{run_id}"
    _, started = call(step, start.sync_detailed, 201, "StartedConversation", client=visitor, bot_id=bot.id,
                      body=StartConversation(visitor_token=visitor_token, email=email, name="Ana",
                                             message="Can I get a refund?"))
    check(step, bool(started.token), "no conversation token")
    check(step, len(started.messages) == 2, f"{len(started.messages)} messages (expected the question and the answer)")
    record(step, True, f"conversation {started.conversation_id}, lead {started.lead_id}")

    step = "visitor reads the conversation (GET /public/.../messages -> 200 VisitorConversation)"
    visitor_messages = mod("api.visitor.visitor_messages")
    _, vconv = call(step, visitor_messages.sync_detailed, 200, "VisitorConversation", client=visitor, bot_id=bot.id,
                    conversation_id=started.conversation_id, x_parley_conversation_token=started.token)
    check(step, len(vconv.messages) == 2, f"{len(vconv.messages)} messages")
    record(step, True)

    # 8. List leads and find it.
    step = "list leads (GET /leads?bot_id -> 200 LeadList, contains the email)"
    list_leads = mod("api.leads.list_leads")
    _, leads = call(step, list_leads.sync_detailed, 200, "LeadList", client=client, bot_id=bot.id)
    match = [l for l in leads.items if l.email == email]
    check(step, len(match) == 1, f"no lead with {email} in {leads.to_dict()}")
    check(step, match[0].conversation_id == started.conversation_id,
          f"lead conversation {match[0].conversation_id} != {started.conversation_id}")
    record(step, True, f"lead {match[0].id}")

    # 9. An inactive webhook endpoint at an unreachable address, then list it.
    step = "create webhook active=false (POST /webhooks -> 201 CreatedWebhook)"
    create_webhook = mod("api.webhooks.create_webhook")
    CreateWebhookRequest = mod("models.create_webhook_request").CreateWebhookRequest
    _, hook = call(step, create_webhook.sync_detailed, 201, "CreatedWebhook", client=client,
                   body=CreateWebhookRequest(url="http://127.0.0.1:9/hook", active=False,
                                             events=["lead.captured"], description=f"contract {run_id}"))
    check(step, hook.active is False, f"active {hook.active}")
    check(step, isinstance(hook.secret, str) and hook.secret.startswith("whsec_"), f"secret {hook.secret!r}")
    record(step, True, f"webhook {hook.id}")

    step = "list webhooks (GET /webhooks -> 200 WebhookList, contains it inactive)"
    list_webhooks = mod("api.webhooks.list_webhooks")
    _, hooks = call(step, list_webhooks.sync_detailed, 200, "WebhookList", client=client)
    mine = [h for h in hooks.items if h.id == hook.id]
    check(step, len(mine) == 1 and mine[0].active is False and mine[0].url == "http://127.0.0.1:9/hook",
          f"webhook {hook.id} not listed as inactive: {hooks.to_dict()}")
    check(step, isinstance(getattr(mine[0], "secret", None), (type(None), Unset)) or not hasattr(mine[0], "secret"),
          "the list shows the secret")
    record(step, True, f"{len(hooks.items)} endpoints")

    # 10. A field the spec marks nullable: null through the generated client clears it.
    step = "clear the webhook's note (PATCH /webhooks/{id} description=null -> 200 WebhookEndpoint)"
    update_webhook = mod("api.webhooks.update_webhook")
    UpdateWebhookRequest = mod("models.update_webhook_request").UpdateWebhookRequest
    _, cleared = call(step, update_webhook.sync_detailed, 200, "WebhookEndpoint", client=client,
                      webhook_id=hook.id, body=UpdateWebhookRequest(description=None))
    check(step, isinstance(cleared.description, (type(None), Unset)),
          f"description still {cleared.description!r}")
    check(step, cleared.url == "http://127.0.0.1:9/hook" and cleared.active is False,
          f"other fields changed: {cleared.to_dict()}")
    record(step, True, "description removed")


if __name__ == "__main__":
    sys.exit(main())
