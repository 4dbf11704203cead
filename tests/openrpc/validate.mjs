// Validates crates/hero_aibroker_sdk/openrpc.json with the OpenRPC project's own tooling,
// independently of the Rust drift test: the document against the OpenRPC meta-schema, every
// $ref resolved, and every example's params against the method's param schemas.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";
import schemaUtils from "@open-rpc/schema-utils-js";

const { validateOpenRPCDocument, dereferenceDocument, MethodCallValidator } = schemaUtils;

const here = path.dirname(fileURLToPath(import.meta.url));
// An optional argument validates another file (used to check that this script fails when it should).
const file = path.resolve(process.argv[2] ?? path.join(here, "../../crates/hero_aibroker_sdk/openrpc.json"));

function fail(what, detail) {
  console.error(`openrpc.json: ${what}`);
  if (detail !== undefined) console.error(detail);
  process.exit(1);
}

let doc;
try {
  doc = JSON.parse(await readFile(file, "utf8"));
} catch (e) {
  fail(`cannot read ${file}`, String(e));
}

const valid = validateOpenRPCDocument(doc);
if (valid !== true) fail("does not match the OpenRPC meta-schema", valid.message);

let deref;
try {
  // Dereferencing works on a copy: it replaces $refs in place.
  deref = await dereferenceDocument(structuredClone(doc));
} catch (e) {
  fail("has a $ref that does not resolve", e && e.message ? e.message : String(e));
}

const names = new Set();
const problems = [];
const validator = new MethodCallValidator(deref);
for (const method of deref.methods) {
  if (names.has(method.name)) problems.push(`method ${method.name} is declared twice`);
  names.add(method.name);
  for (const example of method.examples ?? []) {
    const byName = Object.fromEntries(example.params.map((p) => [p.name, p.value]));
    const errors = validator.validate(method.name, byName);
    if (!Array.isArray(errors)) {
      problems.push(`${method.name}: ${errors.message}`);
    } else {
      for (const e of errors) problems.push(`${method.name} example "${example.name}": ${e.message}`);
    }
  }
}
if (problems.length > 0) fail("has invalid examples", problems.join("\n"));

console.log(`openrpc.json is a valid OpenRPC document (${deref.methods.length} methods)`);
