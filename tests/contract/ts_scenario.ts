// Contract scenario through openapi-fetch, typed by openapi-typescript from the committed spec.
//
// `tests/contract/run` generates `.out/parley-api.d.ts` from `openapi/openapi.json`, type-checks
// this file against it with `tsc --noEmit --strict` (a request or response that does not fit the
// spec's types fails there), compiles it to `.out/js/` and runs it with node against the server:
//
//   PARLEY_URL=http://127.0.0.1:8080 PARLEY_API_KEY=pk_... PARLEY_SPEC=openapi/openapi.json \
//     node tests/contract/.out/js/ts_scenario.js
//
// The types only hold if the server keeps to the spec, so every response is also checked at run
// time against the schema the spec documents for its operation, status and content type (a small
// OpenAPI 3.0 validator below: `$ref`, `allOf`/`oneOf`/`anyOf`, `type`, `nullable`, `enum`,
// `required`, `properties`, `additionalProperties`, `items`, uuid and date-time formats).
//
// Prints one line per step and ends with `typescript scenario: N passed, M failed`.

import createClient from "openapi-fetch";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import type { components, paths } from "./.out/parley-api.js";

type Schemas = components["schemas"];
type Bot = Schemas["Bot"];
type SourceInfo = Schemas["SourceInfo"];
type SourceDetail = Schemas["SourceDetail"];
type ChatReply = Schemas["ChatReply"];
type ConversationList = Schemas["ConversationList"];
type ConversationDetail = Schemas["ConversationDetail"];
type WidgetSettingsInfo = Schemas["WidgetSettingsInfo"];
type WidgetConfig = Schemas["WidgetConfig"];
type StartedConversation = Schemas["StartedConversation"];
type VisitorConversation = Schemas["VisitorConversation"];
type LeadList = Schemas["LeadList"];
type CreatedWebhook = Schemas["CreatedWebhook"];
type WebhookList = Schemas["WebhookList"];
type WebhookEndpoint = Schemas["WebhookEndpoint"];

const BASE_URL = process.env.PARLEY_URL ?? "http://127.0.0.1:8080";
const API_KEY = process.env.PARLEY_API_KEY ?? "";
const SPEC_PATH = process.env.PARLEY_SPEC ?? "openapi/openapi.json";
const SOURCE_READY_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// A minimal OpenAPI 3.0 schema validator, for the responses.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: unknown };

const spec = JSON.parse(readFileSync(SPEC_PATH, "utf8")) as Schema;

function resolveRef(ref: string): Schema {
  if (!ref.startsWith("#/")) throw new Error(`unsupported $ref ${ref}`);
  let node: unknown = spec;
  for (const part of ref.slice(2).split("/")) {
    node = (node as Schema)[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    if (node === undefined) throw new Error(`unresolvable $ref ${ref}`);
  }
  return node as Schema;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
const CONSTRAINTS = ["$ref", "type", "allOf", "oneOf", "anyOf", "enum", "properties", "items", "required"];

function validate(schema: Schema, value: unknown, at: string, errors: string[], extras: string[]): void {
  if (typeof schema.$ref === "string") {
    validate(resolveRef(schema.$ref), value, at, errors, extras);
    return;
  }
  if (value === null) {
    if (schema.nullable === true || !CONSTRAINTS.some((k) => k in schema)) return;
    errors.push(`${at || "/"}: null, but the spec does not allow null here`);
    return;
  }
  for (const sub of (schema.allOf as Schema[] | undefined) ?? []) validate(sub, value, at, errors, extras);
  for (const [keyword, wanted] of [["oneOf", 1], ["anyOf", 0]] as const) {
    const subs = schema[keyword] as Schema[] | undefined;
    if (!subs) continue;
    const matching = subs.filter((sub) => {
      const e: string[] = [];
      validate(sub, value, at, e, []);
      return e.length === 0;
    }).length;
    if ((wanted === 1 && matching !== 1) || (wanted === 0 && matching === 0)) {
      errors.push(`${at || "/"}: matches ${matching} of the ${keyword} alternatives`);
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value as Json)) {
    errors.push(`${at || "/"}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  const type = schema.type as string | undefined;
  const actual = Array.isArray(value) ? "array" : typeof value;
  if (type !== undefined) {
    const ok =
      type === "integer" ? typeof value === "number" && Number.isInteger(value)
      : type === "number" ? typeof value === "number"
      : type === "array" ? Array.isArray(value)
      : type === "object" ? actual === "object"
      : typeof value === type;
    if (!ok) {
      errors.push(`${at || "/"}: ${JSON.stringify(value)?.slice(0, 80)} is not of type ${type}`);
      return;
    }
  }
  if (typeof value === "string" && schema.format === "uuid" && !UUID.test(value)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not a uuid`);
  }
  if (typeof value === "string" && schema.format === "date-time" && !DATE_TIME.test(value)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not an RFC 3339 date-time`);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => validate(schema.items as Schema, item, `${at}/${i}`, errors, extras));
  }
  if (actual === "object" && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    for (const key of (schema.required as string[] | undefined) ?? []) {
      if (object[key] === undefined) errors.push(`${at}/${key}: required, but missing`);
    }
    const props = (schema.properties as Record<string, Schema> | undefined) ?? {};
    for (const [key, item] of Object.entries(object)) {
      if (key in props) validate(props[key], item, `${at}/${key}`, errors, extras);
      else if (schema.additionalProperties === false) errors.push(`${at}/${key}: not allowed`);
      else if (typeof schema.additionalProperties === "object") {
        validate(schema.additionalProperties as Schema, item, `${at}/${key}`, errors, extras);
      } else if (schema.properties && schema.additionalProperties === undefined && !schema.allOf) {
        extras.push(`${at}/${key}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Steps.

class StepFailed extends Error {}
const results: { name: string; ok: boolean; detail: string }[] = [];
const warnings: string[] = [];

function record(name: string, ok: boolean, detail = ""): void {
  results.push({ name, ok, detail });
  console.log(`  [${ok ? "PASS" : "FAIL"}] ${name}${detail ? `: ${detail}` : ""}`);
}

function check(step: string, cond: boolean, detail: string): asserts cond {
  if (!cond) {
    record(step, false, detail);
    throw new StepFailed(step);
  }
}

type Result<D> = { data?: D; error?: unknown; response: Response };

/** The response has the expected status, a documented content type and a body valid against the spec. */
function expectOk<D>(step: string, result: Result<D>, status: number, path: keyof paths, method: string): D {
  const { response } = result;
  const operation = (spec.paths as Record<string, Record<string, Schema>>)[path as string][method];
  const documented = (operation.responses as Record<string, Schema>)[String(response.status)];
  check(step, documented !== undefined, `undocumented status ${response.status}: ${JSON.stringify(result.error ?? result.data).slice(0, 300)}`);
  check(step, response.status === status, `status ${response.status} (expected ${status}): ${JSON.stringify(result.error ?? result.data).slice(0, 400)}`);
  const contentType = response.headers.get("content-type") ?? "";
  const content = (documented.content as Record<string, { schema?: Schema }> | undefined) ?? {};
  const media = Object.keys(content).find((m) => m.split(";")[0].trim() === contentType.split(";")[0].trim());
  check(step, media !== undefined, `content type ${JSON.stringify(contentType)} is not one of ${JSON.stringify(Object.keys(content))}`);
  const errors: string[] = [];
  const extras: string[] = [];
  const schema = content[media].schema;
  if (schema) validate(schema, result.data, "", errors, extras);
  check(step, errors.length === 0, `response does not match the spec (${errors.length}): ${errors.slice(0, 8).join("; ")}`);
  if (extras.length) warnings.push(`${step}: fields not described by the spec: ${extras.join(", ")}`);
  return result.data as D;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario(): Promise<void> {
  const client = createClient<paths>({ baseUrl: BASE_URL, headers: { Authorization: `Bearer ${API_KEY}` } });
  const run = randomUUID().slice(0, 8);

  // 1. Create a bot.
  let step = "create bot (POST /bots -> 201 Bot)";
  const bot: Bot = expectOk(step,
    await client.POST("/api/v1/bots", {
      params: { header: { "Idempotency-Key": `contract-ts-${run}` } },
      body: { name: `Contract TS ${run}`, language: "en" },
    }), 201, "/api/v1/bots", "post");
  check(step, bot.name === `Contract TS ${run}` && bot.version >= 1, `unexpected bot ${JSON.stringify(bot)}`);
  record(step, true, `bot ${bot.id}`);

  // 2. Add a text source.
  step = "add text source (POST /bots/{id}/sources -> 202 SourceInfo)";
  const text =
    "# Pricing\n\nThe Pro plan costs 49 euros per month and includes unlimited bots. " +
    "The Team plan costs 99 euros per month and adds shared inboxes.\n\n" +
    "# Refunds\n\nRefunds are possible within 30 days of purchase, by writing to billing@acme.example.\n";
  const source: SourceInfo = expectOk(step,
    await client.POST("/api/v1/bots/{bot_id}/sources", {
      params: { path: { bot_id: bot.id } },
      body: { type: "text", title: "Pricing and refunds", body: text },
    }), 202, "/api/v1/bots/{bot_id}/sources", "post");
  record(step, true, `source ${source.id}, status ${source.status}`);

  // 3. Poll until ready.
  step = "source becomes ready (GET /bots/{id}/sources/{sid} -> 200 SourceDetail)";
  const deadline = Date.now() + SOURCE_READY_TIMEOUT_MS;
  let detail: SourceDetail | undefined;
  while (Date.now() < deadline) {
    detail = expectOk(step,
      await client.GET("/api/v1/bots/{bot_id}/sources/{source_id}", {
        params: { path: { bot_id: bot.id, source_id: source.id } },
      }), 200, "/api/v1/bots/{bot_id}/sources/{source_id}", "get");
    if (detail.status === "ready" || detail.status === "failed") break;
    await sleep(500);
  }
  check(step, detail?.status === "ready", `status ${detail?.status}, error ${JSON.stringify(detail?.error)}`);
  record(step, true, `${detail.chunks} chunks, ${detail.page_list.length} pages`);

  // 4. Chat without streaming; the answer must cite the source.
  step = "chat stream=false (POST /bots/{id}/chat -> 200 ChatReply with a cited source)";
  const chatResult = await client.POST("/api/v1/bots/{bot_id}/chat", {
    params: { path: { bot_id: bot.id } },
    body: { message: "How much does the Pro plan cost?", stream: false, visitor_id: `contract-ts-${run}` },
  });
  const answer = expectOk(step, chatResult, 200, "/api/v1/bots/{bot_id}/chat", "post");
  check(step, "answer" in answer, `not a ChatReply: ${JSON.stringify(answer).slice(0, 200)}`);
  const reply: ChatReply = answer;
  check(step, !reply.unanswered, `unanswered: ${reply.answer}`);
  check(step, reply.sources.length >= 1, "no sources");
  check(step, /\[\d+\]/.test(reply.answer), `no citation marker in ${JSON.stringify(reply.answer)}`);
  check(step, reply.answer.includes("49"), `the answer does not give the price: ${JSON.stringify(reply.answer)}`);
  check(step, reply.sources.some((s) => s.source_id === source.id), `sources do not cite ${source.id}`);
  record(step, true, `conversation ${reply.conversation_id}, ${reply.sources.length} sources`);

  // 5. List conversations and find it.
  step = "list conversations (GET /conversations?bot_id -> 200 ConversationList, contains it)";
  const conversations: ConversationList = expectOk(step,
    await client.GET("/api/v1/conversations", { params: { query: { bot_id: bot.id } } }),
    200, "/api/v1/conversations", "get");
  const found = conversations.items.filter((c) => c.id === reply.conversation_id);
  check(step, found.length === 1, `conversation ${reply.conversation_id} not listed`);
  check(step, found[0].message_count === 2, `message_count ${found[0].message_count}`);
  record(step, true, `${conversations.items.length} conversations`);

  step = "get conversation (GET /conversations/{id} -> 200 ConversationDetail)";
  const conversation: ConversationDetail = expectOk(step,
    await client.GET("/api/v1/conversations/{conversation_id}", {
      params: { path: { conversation_id: reply.conversation_id } },
    }), 200, "/api/v1/conversations/{conversation_id}", "get");
  check(step, conversation.messages.length === 2, `${conversation.messages.length} messages`);
  record(step, true, `${conversation.messages.length} messages`);

  // 6. The site key from the widget settings.
  step = "widget settings (GET /bots/{id}/widget-settings -> 200 WidgetSettingsInfo with site_key)";
  const widget: WidgetSettingsInfo = expectOk(step,
    await client.GET("/api/v1/bots/{bot_id}/widget-settings", { params: { path: { bot_id: bot.id } } }),
    200, "/api/v1/bots/{bot_id}/widget-settings", "get");
  const siteKey = widget.site_key;
  check(step, typeof siteKey === "string" && siteKey.startsWith("ps_"), `site_key ${JSON.stringify(siteKey)}`);
  record(step, true, `site key ${siteKey.slice(0, 7)}...`);

  // 7. A visitor starts a conversation leaving an email, with the site key instead of the secret key.
  const visitor = createClient<paths>({ baseUrl: BASE_URL, headers: { "X-Parley-Site-Key": siteKey } });
  step = "visitor config (GET /public/bots/{id}/config -> 200 WidgetConfig)";
  const config: WidgetConfig = expectOk(step,
    await visitor.GET("/api/v1/public/bots/{bot_id}/config", { params: { path: { bot_id: bot.id } } }),
    200, "/api/v1/public/bots/{bot_id}/config", "get");
  check(step, config.bot_id === bot.id, `bot_id ${config.bot_id}`);
  record(step, true);

  step = "visitor starts a conversation with an email (POST /public/bots/{id}/conversations -> 201 StartedConversation)";
  const email = `ana.ts.${run}@shop.example`;
  const started: StartedConversation = expectOk(step,
    await visitor.POST("/api/v1/public/bots/{bot_id}/conversations", {
      params: { path: { bot_id: bot.id } },
      body: { visitor_token: `contract-ts-visitor-${run}`, email, name: "Ana", message: "Can I get a refund?" },
    }), 201, "/api/v1/public/bots/{bot_id}/conversations", "post");
  check(step, started.token.length > 0, "no conversation token");
  check(step, started.messages.length === 2, `${started.messages.length} messages (expected the question and the answer)`);
  record(step, true, `conversation ${started.conversation_id}, lead ${started.lead_id}`);

  step = "visitor reads the conversation (GET /public/.../messages -> 200 VisitorConversation)";
  const visitorConversation: VisitorConversation = expectOk(step,
    await visitor.GET("/api/v1/public/bots/{bot_id}/conversations/{conversation_id}/messages", {
      params: {
        path: { bot_id: bot.id, conversation_id: started.conversation_id },
        header: { "X-Parley-Conversation-Token": started.token },
      },
    }), 200, "/api/v1/public/bots/{bot_id}/conversations/{conversation_id}/messages", "get");
  check(step, visitorConversation.messages.length === 2, `${visitorConversation.messages.length} messages`);
  record(step, true);

  // 8. List leads and find it.
  step = "list leads (GET /leads?bot_id -> 200 LeadList, contains the email)";
  const leads: LeadList = expectOk(step,
    await client.GET("/api/v1/leads", { params: { query: { bot_id: bot.id } } }), 200, "/api/v1/leads", "get");
  const lead = leads.items.find((l) => l.email === email);
  check(step, lead !== undefined, `no lead with ${email}`);
  check(step, lead.conversation_id === started.conversation_id, `lead conversation ${lead.conversation_id}`);
  record(step, true, `lead ${lead.id}`);

  // 9. An inactive webhook endpoint at an unreachable address, then list it.
  step = "create webhook active=false (POST /webhooks -> 201 CreatedWebhook)";
  const hook: CreatedWebhook = expectOk(step,
    await client.POST("/api/v1/webhooks", {
      body: { url: "http://127.0.0.1:9/hook", active: false, events: ["lead.captured"], description: `contract ${run}` },
    }), 201, "/api/v1/webhooks", "post");
  check(step, hook.active === false, `active ${hook.active}`);
  check(step, typeof hook.secret === "string" && hook.secret.startsWith("whsec_"), "no whsec_ secret");
  record(step, true, `webhook ${hook.id}`);

  step = "list webhooks (GET /webhooks -> 200 WebhookList, contains it inactive)";
  const hooks: WebhookList = expectOk(step, await client.GET("/api/v1/webhooks"), 200, "/api/v1/webhooks", "get");
  const mine = hooks.items.find((h) => h.id === hook.id);
  check(step, mine !== undefined && mine.active === false && mine.url === "http://127.0.0.1:9/hook",
    `webhook ${hook.id} not listed as inactive`);
  check(step, !("secret" in mine), "the list shows the secret");
  record(step, true, `${hooks.items.length} endpoints`);

  // 10. A field the spec marks nullable: null (which the generated types allow) clears it.
  step = "clear the webhook's note (PATCH /webhooks/{id} description=null -> 200 WebhookEndpoint)";
  const cleared: WebhookEndpoint = expectOk(step,
    await client.PATCH("/api/v1/webhooks/{webhook_id}", {
      params: { path: { webhook_id: hook.id } },
      body: { description: null },
    }), 200, "/api/v1/webhooks/{webhook_id}", "patch");
  check(step, cleared.description === undefined || cleared.description === null,
    `description still ${JSON.stringify(cleared.description)}`);
  check(step, cleared.url === "http://127.0.0.1:9/hook" && cleared.active === false, "other fields changed");
  record(step, true, "description removed");
}

async function main(): Promise<number> {
  if (!API_KEY) {
    console.error("PARLEY_API_KEY is not set");
    return 2;
  }
  console.log(`typescript scenario (openapi-fetch) against ${BASE_URL}`);
  try {
    await scenario();
  } catch (e) {
    if (!(e instanceof StepFailed)) {
      record("scenario aborted", false, e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      console.error(e);
    }
  }
  for (const w of warnings) console.log(`  [WARN] ${w}`);
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`typescript scenario: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
