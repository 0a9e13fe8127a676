// The typed packages: protocol.d.ts is what scripts/gen-types.mjs makes of Protocol/schemas (a schema changed
// without regenerating fails here), and tsc (Debian's node-typescript) checks the .d.ts files of collabhub and
// @collabhub/react and their consumer examples with --strict, and refuses a consumer that misuses them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, writeFileSync, readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate, OUTPUT, ROOT } from "../../scripts/gen-types.mjs";

const JS = join(ROOT, "Sources", "Clients", "js");
const REACT = join(ROOT, "Sources", "Clients", "react");
const DEBIAN = "/usr/share/nodejs";   // Debian's node packages (node-react ships @types/react)
const REACT_TYPES = join(DEBIAN, "@types", "react");

test("protocol.d.ts is generated from the current schemas", () => {
  const committed = readFileSync(OUTPUT, "utf8");
  assert.ok(committed === generate(), "Sources/Clients/js/protocol.d.ts is out of date: run node scripts/gen-types.mjs");
});

test("the generator follows a schema change", () => {
  // A copy of the schemas with one field added must give other types, with that field in them.
  const dir = mkdtempSync(join(tmpdir(), "gen-types-"));
  spawnSync("cp", ["-r", join(ROOT, "Protocol"), join(dir, "Protocol")]);
  const chat = join(dir, "Protocol", "schemas", "client", "chat.json");
  const schema = JSON.parse(readFileSync(chat, "utf8"));
  schema.properties.mood = { enum: ["happy", "sad"], description: "a new field" };
  writeFileSync(chat, JSON.stringify(schema));
  const changed = generate(dir);
  assert.notEqual(changed, generate());
  assert.match(changed, /\/\*\* a new field \*\/\n  mood\?: "happy" \| "sad";/);
});

function tsc(files, extraPaths = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tsc-"));
  const config = {
    compilerOptions: {
      strict: true, noEmit: true, target: "ES2022", module: "ES2022", moduleResolution: "node",
      lib: ["ES2020", "DOM", "DOM.Iterable"], types: [], jsx: "react-jsx", allowSyntheticDefaultImports: true,
      baseUrl: dir,
      paths: {
        collabhub: [join(JS, "index.d.ts")], "collabhub/server": [join(JS, "server.d.ts")],
        "@collabhub/react": [join(REACT, "index.d.ts")], react: [join(REACT_TYPES, "index.d.ts")],
        // What @types/react imports (csstype, prop-types, scheduler/tracing): Debian's packages.
        "*": [join(DEBIAN, "@types", "*"), join(DEBIAN, "*")], ...extraPaths,
      },
    },
    files,
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config));
  const r = spawnSync("tsc", ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  if (r.error) throw new Error("tsc not found: install Debian's node-typescript (scripts/deps.sh test)");
  return { status: r.status, out: r.stdout + r.stderr, dir };
}

const examples = (pkg) => readdirSync(join(pkg, "examples")).filter((f) => /\.tsx?$/.test(f)).map((f) => join(pkg, "examples", f));

test("tsc --strict passes on the packages' .d.ts files and their consumer examples", () => {
  const files = [join(JS, "index.d.ts"), join(JS, "server.d.ts"), join(JS, "protocol.d.ts"), join(REACT, "index.d.ts"),
    ...examples(JS), ...examples(REACT)];
  const r = tsc(files);
  assert.equal(r.status, 0, r.out);
});

test("tsc refuses a consumer that misuses the types", () => {
  const { dir } = tsc([]);
  const bad = join(dir, "bad.ts");
  writeFileSync(bad, [
    'import { CollabClient, MessageStore } from "collabhub";',
    'import { memberToken } from "collabhub/server";',
    'const c = new CollabClient({ session: "ABCDEFGH" });',
    "c.sendChat(42);",                                           // not a body
    'c.addEventListener("chat", (e) => e.detail.seq.toUpperCase());', // seq is a number
    'memberToken({ secret: "x".repeat(16), sub: "u", session: "ABCDEFGH", role: "owner" });', // no such role
    "new MessageStore().messages[0].pending.trim();",
    'import { CollabHub } from "collabhub/server";',
    'new CollabHub({ url: "http://h" }).createKey({ name: "k", scopes: ["root"] });',           // no such scope
    'new CollabHub({ url: "http://h" }).webhookDeliveries("w", { status: "lost" });',          // no such status
    'new CollabHub({ url: "http://h" }).keyUsage("k").then((u) => u.minute.trim());',          // counts are numbers
  ].join("\n"));
  const r = tsc([bad]);
  assert.notEqual(r.status, 0);
  for (const line of [4, 5, 6, 7, 9, 10, 11]) assert.match(r.out, new RegExp(`bad\\.ts\\(${line},`), r.out);
});

test("the READMEs' five-minute examples type-check", () => {
  const { dir } = tsc([]);
  // Node's `process` is all a backend example uses of @types/node, which Debian does not ship with node-typescript.
  const globals = join(dir, "globals.d.ts");
  writeFileSync(globals, "declare const process: { env: Record<string, string | undefined> };\n");
  const files = [globals];
  for (const [pkg, name] of [[JS, "js"], [REACT, "react"]]) {
    const readme = readFileSync(join(pkg, "README.md"), "utf8");
    const blocks = [...readme.matchAll(/```(tsx?)\n([\s\S]*?)```/g)];
    assert.ok(blocks.length >= 1, `${name}/README.md has a TypeScript example`);
    blocks.forEach(([, lang, code], i) => {
      const file = join(dir, `readme-${name}-${i}.${lang}`);
      writeFileSync(file, code);
      files.push(file);
    });
  }
  // The project README's browser and React examples (its SDK-EXAMPLE blocks), with what they leave to the app.
  const root = readFileSync(join(ROOT, "README.md"), "utf8");
  const prelude = "declare const code: string, token: string;\n"
    + "declare function render(x: unknown): void;\ndeclare function drawAvatars(x: unknown): void;\n";
  for (const which of ["browser", "react"]) {
    const m = new RegExp(`<!-- SDK-EXAMPLE: ${which} -->\\n\`\`\`(tsx?)\\n([\\s\\S]*?)\`\`\``).exec(root);
    assert.ok(m, `README.md has the ${which} example as a ts/tsx block`);
    const file = join(dir, `root-${which}.${m[1]}`);
    writeFileSync(file, prelude + m[2]);
    files.push(file);
  }
  const r = tsc(files);
  assert.equal(r.status, 0, r.out);
});
