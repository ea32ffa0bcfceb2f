#!/usr/bin/env bash
# Schemathesis against a running Parley server, with the committed spec.
#
#   tests/contract/schemathesis.sh BASE_URL API_KEY WORK_DIR
#
# 1. Seeds real resources with the secret key (two bots, a ready text and Q&A source, a chat
#    conversation, a visitor conversation with a lead and an attachment, a second API key, two
#    webhook endpoints and a delivery), so that path parameters point at things that exist and
#    every operation gets past its 404: each operation's ids are fixed in a generated
#    schemathesis.toml. Operations that delete or change a resource get one of their own (the
#    second bot, key, webhook and source), so they cannot take the others' resources away. A
#    member who joined by invitation and an open invitation serve the member operations.
# 2. Runs every operation of the spec with a bounded number of examples (ST_MAX_EXAMPLES, default
#    60), sending `Authorization: Bearer <key>` and `X-Parley-Site-Key: <the main bot's site key>`,
#    with the checks not_a_server_error, status_code_conformance, content_type_conformance and
#    response_schema_conformance.
# 3. Prints the numbers (operations, test cases, findings by check) and every distinct finding.
#    Exits 0 only when there is no finding and no error.
#
# Reproduce a run with ST_SEED=<seed printed in the summary>.
#
# Uses the Schemathesis that tests/contract/run pinned and installed (it exports CONTRACT_VENV and
# CONTRACT_SCHEMATHESIS_VERSION); run alone, it uses tests/contract/.venv as that left it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BASE_URL="${1:?usage: schemathesis.sh BASE_URL API_KEY WORK_DIR}"
API_KEY="${2:?usage: schemathesis.sh BASE_URL API_KEY WORK_DIR}"
WORK="${3:?usage: schemathesis.sh BASE_URL API_KEY WORK_DIR}"
SPEC="${PARLEY_SPEC:-$REPO/openapi/openapi.json}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-60}"
VENV="${CONTRACT_VENV:-$HERE/.venv}"
PY="$VENV/bin/python"
ST="$VENV/bin/schemathesis"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"

if [[ ! -x "$ST" ]]; then
  echo "schemathesis.sh: no Schemathesis in $VENV (tests/contract/run installs it)" >&2
  exit 2
fi
st_version="${CONTRACT_SCHEMATHESIS_VERSION:-$("$PY" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')}"

mkdir -p "$WORK"
SEED_JSON="$WORK/seed.json"
CONFIG="$WORK/schemathesis.toml"

echo "schemathesis $st_version: seeding resources"
"$PY" - "$BASE_URL" "$API_KEY" "$SEED_JSON" "$CONFIG" <<'PYEOF'
"""Seeds real resources and writes a schemathesis.toml fixing each operation's ids to them."""
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE, KEY, SEED_JSON, CONFIG = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
API = BASE + "/api/v1"


def req(method, path, body=None, headers=None, expect=(200,), raw=None):
    h = {"Authorization": f"Bearer {KEY}"}
    h.update(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if raw is not None:
        data, h["Content-Type"] = raw
    h = {k: v for k, v in h.items() if v is not None}
    request = urllib.request.Request(API + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in expect:
        raise SystemExit(f"seed: {method} {path} -> {status} (expected {expect}): {text[:500]}")
    return json.loads(text) if text and text.lstrip()[:1] in "{[" else text


def wait(cond, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"seed: timed out waiting for {what}")


def items(page):
    return page.get("items", page.get("data", []))


run = uuid.uuid4().hex[:8]
S = {}
b1 = req("POST", "/bots", {"name": f"Schemathesis main {run}"}, expect=(201,))
b2 = req("POST", "/bots", {"name": f"Schemathesis mutable {run}"}, expect=(201,))
S["bot"], S["bot_mutable"] = b1["id"], b2["id"]
s1 = req("POST", f"/bots/{b1['id']}/sources", {"type": "text", "title": "Pricing",
         "body": "# Pricing\n\nThe Pro plan costs 49 euros per month. The Team plan costs 99 euros per month.\n"},
         expect=(202,))
s2 = req("POST", f"/bots/{b1['id']}/sources",
         {"type": "qa", "pairs": [{"question": "Do you ship abroad?", "answer": "Yes, to the whole EU."}]}, expect=(202,))
S["source"], S["source_deletable"] = s1["id"], s2["id"]
for sid in (s1["id"], s2["id"]):
    wait(lambda: req("GET", f"/bots/{b1['id']}/sources/{sid}")["status"] == "ready", f"source {sid} to be ready")
chat = req("POST", f"/bots/{b1['id']}/chat", {"message": "How much is the Pro plan?", "stream": False, "visitor_id": "st-visitor"})
S["conversation"], S["message"] = chat["conversation_id"], chat["message_id"]
S["site_key"] = req("GET", f"/bots/{b1['id']}/widget-settings")["site_key"]
visitor = {"X-Parley-Site-Key": S["site_key"], "Authorization": None}
started = req("POST", f"/public/bots/{b1['id']}/conversations",
              {"visitor_token": f"st-visitor-token-{run}", "email": f"st.{run}@shop.example", "name": "St",
               "message": "How much is the Team plan?"}, headers=visitor, expect=(201,))
S["visitor_conversation"], S["visitor_token"] = started["conversation_id"], started["token"]
S["visitor_user_message"] = next(m["id"] for m in started["messages"] if m["role"] == "user")
S["visitor_message"] = next(m["id"] for m in started["messages"] if m["role"] != "user")
boundary = "parleyseed" + run
multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\n"
             f"Content-Type: text/plain\r\n\r\nA short note from the visitor.\n\r\n--{boundary}--\r\n").encode()
attachment = req("POST", f"/public/bots/{b1['id']}/conversations/{started['conversation_id']}/messages/"
                 f"{S['visitor_user_message']}/attachments",
                 headers={**visitor, "X-Parley-Conversation-Token": started["token"]},
                 raw=(multipart, f"multipart/form-data; boundary={boundary}"), expect=(201,))
S["attachment"] = attachment["id"]
S["lead"] = items(req("GET", f"/leads?bot_id={b1['id']}"))[0]["id"]
S["key_revocable"] = req("POST", "/keys", {"name": f"schemathesis {run}"}, expect=(201,))["id"]
w1 = req("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["source.ready"]}, expect=(201,))
w2 = req("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook2", "active": False}, expect=(201,))
S["webhook"], S["webhook_deletable"] = w1["id"], w2["id"]
req("POST", f"/webhooks/{w1['id']}/ping", expect=(202,))
S["delivery"] = wait(lambda: (items(req("GET", f"/webhooks/{w1['id']}/deliveries")) or [{}])[0].get("id"),
                     "a webhook delivery")
invited = req("POST", "/invitations", {"email": f"st-agent-{run}@shop.example", "role": "agent"}, expect=(201,))
joined = req("POST", "/invitations/accept", {"token": invited["token"], "password": f"st passphrase {run}"},
             headers={"Authorization": None}, expect=(201,))
S["member"] = joined["person"]["id"]
S["invitation"] = req("POST", "/invitations", {"email": f"st-pending-{run}@shop.example", "role": "agent"},
                      expect=(201,))["id"]
json.dump(S, open(SEED_JSON, "w"), indent=1)

main_bot = {"bot_id": S["bot"]}
ops = {
    # secret-key operations on the main bot, which nothing deletes, deactivates or re-keys
    **{op: main_bot for op in ("get_bot", "list_sources", "add_source", "upload_document", "chat",
                               "search_knowledge", "bot_feedback", "bot_insights", "get_widget_settings")},
    # operations that change or delete a bot, or rotate its site key: the second bot
    **{op: {"bot_id": S["bot_mutable"]} for op in ("update_bot", "delete_bot", "rotate_site_key",
                                                   "set_widget_settings")},
    **{op: {"bot_id": S["bot"], "source_id": S["source"]} for op in ("get_source", "update_source",
                                                                     "refresh_source")},
    "delete_source": {"bot_id": S["bot"], "source_id": S["source_deletable"]},
    # never the key the tests authenticate with
    **{op: {"key_id": S["key_revocable"]} for op in ("get_api_key", "revoke_api_key")},
    **{op: {"conversation_id": S["conversation"]} for op in (
        "get_conversation", "escalate_conversation", "reply_to_conversation", "set_conversation_tags",
        "add_conversation_tags", "remove_conversation_tag", "close_conversation", "reopen_conversation",
        "export_conversation")},
    "rate_answer": {"conversation_id": S["conversation"], "message_id": S["message"]},
    "download_attachment": {"conversation_id": S["visitor_conversation"], "attachment_id": S["attachment"]},
    "get_lead": {"lead_id": S["lead"]},
    **{op: {"webhook_id": S["webhook"]} for op in ("get_webhook", "update_webhook", "rotate_webhook_secret",
                                                   "ping_webhook", "list_webhook_deliveries")},
    **{op: {"webhook_id": S["webhook"], "delivery_id": S["delivery"]} for op in ("get_webhook_delivery",
                                                                                "redeliver_webhook")},
    "delete_webhook": {"webhook_id": S["webhook_deletable"]},
    **{op: {"person_id": S["member"]} for op in ("change_member_role", "remove_member")},
    "revoke_invitation": {"invitation_id": S["invitation"]},
    # the live stream holds its connection until the client leaves: one second each
    "stream_events": {"for_seconds": 1},
    # the visitor API of the main bot, whose site key every request carries
    **{op: main_bot for op in ("visitor_config", "visitor_start_conversation")},
}
conversation = {"bot_id": S["bot"], "conversation_id": S["visitor_conversation"],
                "X-Parley-Conversation-Token": S["visitor_token"]}
for op in ("visitor_messages", "visitor_send_message", "visitor_escalate", "visitor_submit_lead"):
    ops[op] = conversation
ops["visitor_rate_answer"] = {**conversation, "message_id": S["visitor_message"]}
ops["visitor_attach_file"] = {**conversation, "message_id": S["visitor_user_message"]}
ops["visitor_download_attachment"] = {**conversation, "attachment_id": S["attachment"]}

lines = ["# Generated by tests/contract/schemathesis.sh: ids of the resources it seeded.", ""]
for op, params in ops.items():
    lines += ["[[operations]]", f"include-operation-id = {json.dumps(op)}",
              "parameters = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in params.items()) + " }", ""]
open(CONFIG, "w").write("\n".join(lines))
print(f"  seeded: bots {S['bot']} (main) and {S['bot_mutable']} (mutable), {len(ops)} operations pointed at them")
PYEOF

SITE_KEY="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["site_key"])' "$SEED_JSON")"
ST_SEED="${ST_SEED:-$("$PY" -c 'import random; print(random.getrandbits(64))')}"
REPORTS="$WORK/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"

echo "schemathesis $st_version: every operation, --max-examples $MAX_EXAMPLES, checks $CHECKS, seed $ST_SEED"
set +e
( cd "$WORK" && timeout 420 "$ST" --config-file "$CONFIG" run "$SPEC" \
    --url "$BASE_URL" \
    -H "Authorization: Bearer $API_KEY" \
    -H "X-Parley-Site-Key: $SITE_KEY" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --continue-on-failure \
    --workers 2 \
    --request-timeout 60 \
    --seed "$ST_SEED" \
    --generation-database none \
    --no-color \
    --report ndjson,junit \
    --report-dir "$REPORTS" \
    --report-ndjson-path "$REPORTS/events.ndjson" \
    --report-junit-path "$REPORTS/junit.xml" ) > "$WORK/schemathesis.log" 2>&1
ST_RC=$?
set -e
# The CLI's summary (ST_VERBOSE=1: also its account of every failure), then ours.
if [[ "${ST_VERBOSE:-0}" = 1 ]]; then
  sed -n '/^=* FAILURES =*$/,/^=* WARNINGS =*$/p' "$WORK/schemathesis.log"
fi
sed -n '/^=* SUMMARY =*$/,$p' "$WORK/schemathesis.log"
if [[ $ST_RC -eq 124 ]]; then
  echo "schemathesis: timed out after 420 s"
fi

"$PY" - "$REPORTS/events.ndjson" "$ST_RC" "$ST_SEED" <<'PYEOF'
"""Numbers and distinct findings from the NDJSON event report."""
import base64
import collections
import json
import re
import shlex
import sys

path, rc, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
operations_total = operations_selected = 0
labels, cases, statuses = set(), set(), collections.Counter()
by_check = collections.defaultdict(set)     # check -> {(operation, finding)}
failing_cases = collections.defaultdict(set)  # check -> {case id}
findings = collections.defaultdict(set)     # (check, title, detail) -> {operation}
examples = {}                               # (check, title, detail) -> a curl reproducing it


def curl(interaction):
    """A curl command for a recorded request, with the filtered credentials as shell variables."""
    if not interaction or not interaction.get("request"):
        return ""
    request = interaction["request"]
    parts = ["curl", "-sS", "-i", "-X", request["method"]]
    for name, values in (request.get("headers") or {}).items():
        if name.lower() in ("user-agent", "accept-encoding", "accept", "connection", "content-length",
                            "x-schemathesis-testcaseid"):
            continue
        for value in values:
            if value == "[Filtered]":
                value = {"authorization": "Bearer $PARLEY_API_KEY", "x-parley-site-key": "$SITE_KEY",
                         "x-parley-conversation-token": "$CONVERSATION_TOKEN"}.get(name.lower(), "$SECRET")
                parts += ["-H", f'"{name}: {value}"']
            else:
                parts += ["-H", shlex.quote(f"{name}: {value}")]
    body = (request.get("body") or {}).get("$base64")
    if body:
        raw = base64.b64decode(body)
        try:
            text = raw.decode("utf-8")
            printable = len(text) <= 600 and all(c.isprintable() or c in "\r\n\t" for c in text)
        except UnicodeDecodeError:
            printable = False
        parts += ["--data-binary", shlex.quote(text)] if printable else ["--data-binary", f"@<{len(raw)} bytes>"]
    parts.append(shlex.quote(request["uri"]))
    return " ".join(parts)
running_time = None
try:
    events = open(path)
except FileNotFoundError:
    print(f"schemathesis: no report ({path}); exit code {rc}")
    sys.exit(1)
for line in events:
    event = json.loads(line)
    if "LoadingFinished" in event:
        ops = event["LoadingFinished"]["statistic"]["operations"]
        operations_total, operations_selected = ops["total"], ops["selected"]
    elif "EngineFinished" in event:
        running_time = event["EngineFinished"]["running_time"]
    elif "ScenarioFinished" in event:
        scenario = event["ScenarioFinished"]
        statuses[scenario["status"]] += 1
        recorder = scenario["recorder"]
        if not recorder["label"].startswith("Stateful"):
            labels.add(recorder["label"])
        cases.update(recorder.get("cases", {}).keys())
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] == "success":
                    continue
                failure = (check.get("failure_info") or {}).get("failure") or {}
                operation = failure.get("operation") or recorder["label"]
                message = failure.get("message") or ""
                first = message.splitlines()[0] if message else ""
                where = re.search(r"Schema at (\S+?):?$", message, re.M)
                detail = f"{first}" + (f" (schema {where.group(1)})" if where else "")
                by_check[check["name"]].add((operation, failure.get("title"), detail))
                failing_cases[check["name"]].add(case_id)
                key = (check["name"], failure.get("title") or "", detail)
                findings[key].add(operation)
                if key not in examples:
                    examples[key] = curl((recorder.get("interactions") or {}).get(case_id))

tested = len(labels)
total_findings = sum(len(v) for v in by_check.values())
errors = statuses.get("error", 0) + statuses.get("interrupted", 0)
print()
print("schemathesis summary")
print(f"  operations: {tested} tested of {operations_selected} selected ({operations_total} in the spec)")
print(f"  test cases: {len(cases)} generated and sent" + (f" in {running_time:.0f} s" if running_time else "") + f" (seed {seed})")
print(f"  scenarios: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
print(f"  distinct findings: {len(findings)} (the same finding in several operations counted once), "
      f"{total_findings} per operation")
for check in ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance"):
    print(f"  {check}: {len(by_check.get(check, ()))} findings (operation x finding) in {len(failing_cases.get(check, ()))} test cases")
for check in sorted(set(by_check) - {"not_a_server_error", "status_code_conformance", "content_type_conformance",
                                     "response_schema_conformance"}):
    print(f"  {check}: {len(by_check[check])} findings (operation x finding) in {len(failing_cases[check])} test cases")
if findings:
    print("  findings (check | finding | operations):")
    for (check, title, detail), operations in sorted(findings.items()):
        print(f"    - {check} | {title}: {detail}")
        for operation in sorted(operations):
            print(f"        {operation}")
        if examples.get((check, title, detail)):
            print(f"        e.g. {examples[(check, title, detail)]}")
ok = total_findings == 0 and errors == 0 and rc == 0 and tested == operations_total
if tested != operations_total:
    print(f"  not every operation was tested ({tested} of {operations_total})")
print(f"schemathesis: {tested} operations, {len(cases)} test cases, {total_findings} findings ({len(findings)} distinct), "
      f"{errors} errors (exit code {rc})")
print(f"schemathesis: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PYEOF
