#!/usr/bin/env node
// Generates Sources/Clients/js/protocol.d.ts (TypeScript types of every protocol message and HTTP body) from
// the JSON Schemas in Protocol/schemas/{client,server,http}. Plain node, no dependencies.
//   node scripts/gen-types.mjs          writes the file
//   node scripts/gen-types.mjs --check  exits 1 when the committed file differs from what the schemas give
// Tests/client/types.test.mjs regenerates in memory and compares, so a schema change without the types fails.
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OUTPUT = join(ROOT, "Sources", "Clients", "js", "protocol.d.ts");

/** The groups of schemas: folder, type-name prefix, and the union of all of them (null: none). */
const GROUPS = [
  { dir: "client", prefix: "Client", union: "ClientMessage", what: "Client -> hub messages (WebSocket)" },
  { dir: "server", prefix: "Server", union: "ServerMessage", what: "Hub -> client messages (WebSocket, /watch)" },
  { dir: "http", prefix: "Http", union: null, what: "HTTP API bodies" },
];

const pascal = (s) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join("");
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (k) => (IDENT.test(k) ? k : JSON.stringify(k));

/** A JSDoc comment from a schema's description (and title), indented; "" when it has none. */
function doc(schema, indent) {
  const parts = [];
  if (typeof schema.description === "string") parts.push(schema.description);
  const limits = [];
  for (const [k, label] of [["minLength", "min length"], ["maxLength", "max length"], ["minimum", "minimum"],
    ["maximum", "maximum"], ["minItems", "min items"], ["maxItems", "max items"], ["pattern", "pattern"]]) {
    if (schema[k] !== undefined) limits.push(`${label} ${k === "pattern" ? "`" + schema[k] + "`" : schema[k]}`);
  }
  if (limits.length) parts.push(`(${limits.join(", ")})`);
  if (!parts.length) return "";
  const text = parts.join(" ").replace(/\*\//g, "*\\/");
  return `${indent}/** ${text} */\n`;
}

/** The TypeScript type of `schema`; `indent` is the current indentation; `defs` resolves local `$ref`s. */
function typeOf(schema, indent, ctx) {
  if (schema === true || schema === undefined || (typeof schema === "object" && Object.keys(schema).every(
    (k) => ["description", "title", "$comment", "examples", "default"].includes(k)))) return "unknown";
  if (schema === false) return "never";
  if (schema.$ref) {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(schema.$ref);
    if (!m) throw new Error(`${ctx.file}: unsupported $ref ${schema.$ref}`);
    return ctx.defName(m[2]);
  }
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const [k, op] of [["oneOf", " | "], ["anyOf", " | "], ["allOf", " & "]]) {
    if (Array.isArray(schema[k])) {
      const base = { ...schema }; delete base[k];
      const parts = schema[k].map((s) => typeOf(s, indent, ctx)).map((t) => (/[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t));
      const own = Object.keys(base).some((x) => ["type", "properties", "items"].includes(x)) ? typeOf(base, indent, ctx) : null;
      const joined = parts.join(op);
      return own ? `${own} & (${joined})` : joined;
    }
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : schema.properties ? ["object"] : [];
  if (!types.length) return "unknown";
  return types.map((t) => {
    switch (t) {
      case "string": return "string";
      case "integer": case "number": return "number";
      case "boolean": return "boolean";
      case "null": return "null";
      case "array": {
        const item = typeOf(schema.items, indent, ctx);
        return /[|& ]/.test(item) && !item.startsWith("{") ? `Array<${item}>` : `${item}[]`;
      }
      case "object": return objectType(schema, indent, ctx);
      default: throw new Error(`${ctx.file}: unsupported type ${t}`);
    }
  }).join(" | ");
}

function objectType(schema, indent, ctx) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const inner = indent + "  ";
  let out = "{\n";
  for (const [name, sub] of Object.entries(props)) {
    out += doc(sub, inner);
    out += `${inner}${key(name)}${required.has(name) ? "" : "?"}: ${typeOf(sub, inner, ctx)};\n`;
  }
  const extra = schema.additionalProperties;
  if (extra === undefined || extra === true) {
    if (!Object.keys(props).length) return "{ [key: string]: unknown }";
    out += `${inner}[key: string]: unknown;\n`;
  } else if (extra && typeof extra === "object") {
    out += `${inner}[key: string]: ${typeOf(extra, inner, ctx)}${Object.keys(props).length ? " | undefined" : ""};\n`;
  }
  return out + indent + "}";
}

/** The whole protocol.d.ts for the schemas under `root`/Protocol/schemas, as a string. */
export function generate(root = ROOT) {
  let out = "// Generated by scripts/gen-types.mjs from Protocol/schemas: do not edit; run `node scripts/gen-types.mjs`.\n";
  out += "// A test (Tests/client/types.test.mjs) fails when a schema changes and this file does not.\n";
  for (const group of GROUPS) {
    const dir = join(root, "Protocol", "schemas", group.dir);
    if (!existsSync(dir)) continue;
    const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
    out += `\n// ---- ${group.what}: Protocol/schemas/${group.dir}/\n`;
    const names = [];
    for (const f of files) {
      const schema = JSON.parse(readFileSync(join(dir, f), "utf8"));
      const name = group.prefix + pascal(f.replace(/\.json$/, ""));
      const defs = schema.$defs || schema.definitions || {};
      const ctx = { file: `${group.dir}/${f}`, defName: (d) => name + pascal(d) };
      for (const [d, sub] of Object.entries(defs)) {
        out += `\n${doc(sub, "")}export type ${ctx.defName(d)} = ${typeOf(sub, "", ctx)};\n`;
      }
      const header = doc({ description: [schema.title && schema.title !== f.replace(/\.json$/, "") ? schema.title + ":" : "",
        schema.description || ""].join(" ").trim() || undefined }, "");
      out += `\n${header}export type ${name} = ${typeOf(schema, "", ctx)};\n`;
      names.push(name);
    }
    if (group.union && names.length) out += `\nexport type ${group.union} =\n  | ${names.join("\n  | ")};\n`;
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = generate();
  if (process.argv.includes("--check")) {
    const now = existsSync(OUTPUT) ? readFileSync(OUTPUT, "utf8") : "";
    if (now !== text) { console.error(`${OUTPUT} is out of date: run node scripts/gen-types.mjs`); process.exit(1); }
    console.log("protocol.d.ts is up to date");
  } else {
    writeFileSync(OUTPUT, text);
    console.log(`wrote ${OUTPUT}`);
  }
}
