// A Node backend using collabhub/server, type-checked with `tsc --noEmit --strict` (Tests/client/types.test.mjs).
import { CollabHub, CollabHubError, memberToken, verifyWebhook, watcherToken } from "collabhub/server";

async function main(): Promise<void> {
  const hub = new CollabHub({ url: "http://127.0.0.1:8080", apiKey: "ck_..." });
  const session = await hub.createSession({ title: "Bug bash" });
  const token: string = memberToken({ secret: "a-secret-of-16+bytes", sub: "user-42", session: session.code, role: "editor", name: "Ann" });
  const watcher: string = watcherToken({ secret: "a-secret-of-16+bytes", sub: "svc", channels: ["dashboard:team-a"] });
  const posted = await hub.postMessage(session.code, { kind: "system", text: "Deploy 41 started" });
  console.log(token, watcher, posted.seq);

  const runs = hub.publisher({ maxBatch: 50 });
  await runs.publish("deploy-41", { type: "started", owner: "team-a", name: "Deploy 41" });
  await runs.publish("deploy-41", { type: "progress", percent: 50 });
  await runs.close();

  for await (const event of hub.transcript(session.code)) console.log(event.seq, event.type);
  try {
    await hub.endSession(session.code, { reason: "done" });
  } catch (e) {
    if (e instanceof CollabHubError && e.retryable) console.log("try again in", e.retryAfter ?? 1, "s:", e.code, e.field);
  }
  const payload = verifyWebhook({ secret: "whsec_...", headers: { "webhook-id": "x" }, body: "{}" });
  console.log(payload.type);

  // Share links, webhooks and API keys.
  const link = await hub.share(session.code, { ttl_s: 3600 });
  await hub.revokeShare(session.code, link.id);
  const hook = await hub.createWebhook({ url: "https://example.com/hook", events: ["chat.created", "run.completed"] });
  const secret: string = hook.secret;
  await hub.updateWebhook(hook.id, { active: false });
  for await (const d of hub.webhookDeliveries(hook.id, { status: "failed", limit: 50 })) {
    if (d.attempts > 3) await hub.retryDelivery(hook.id, d.id);
  }
  const made = await hub.createKey({ name: "ci", scopes: ["runs:publish"], per_minute: 600 });
  const usage = await hub.keyUsage(made.key);
  console.log(secret, usage.minute + usage.hour + usage.month);
  for await (const k of hub.keys()) if (!k.active) console.log("revoked", k.id);
  await hub.revokeKey(made.id);
  try {
    await new CollabHub({ url: "http://127.0.0.1:8080", token }).getSession(session.code);
  } catch (e) {
    if (e instanceof CollabHubError && e.expired) console.log("mint a fresh token");
  }
}
main();
