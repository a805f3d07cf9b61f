// Validates Kubernetes objects against the Kubernetes 1.30 API types.
//
//   node validate.mjs OBJECTS.json [NAME]
//
// OBJECTS.json holds a JSON array of objects (a rendered overlay). Each one is
// written as a typed constant of its kind from kubernetes-types@1.30.0 (the
// 1.30 OpenAPI definitions as TypeScript types) and the TypeScript compiler
// checks them: an unknown field, a wrong type, a missing required field or a
// kind/apiVersion that 1.30 does not serve is an error. Prints one line per
// error ("Kind/name: message") and a summary; exits 1 on any error.
// Runs from its install folder (npm ci there), where node_modules is.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));

// "apps/v1" -> kubernetes-types/apps/v1; "v1" -> core/v1;
// "rbac.authorization.k8s.io/v1" -> rbac/v1.
function modulePath(apiVersion) {
  const parts = String(apiVersion).split("/");
  const [group, version] = parts.length === 1 ? ["core", parts[0]] : parts;
  return `kubernetes-types/${group.split(".")[0]}/${version}`;
}

function label(o) {
  return `${o.kind}/${o.metadata?.name ?? "?"}`;
}

function writeSource(objects, file) {
  const lines = [];
  const owner = [];  // line number -> object index
  objects.forEach((o, i) => {
    const body = JSON.stringify(o, null, 2).split("\n");
    const decl = [`import type { ${o.kind} as T${i} } from ${JSON.stringify(modulePath(o.apiVersion))};`,
                  `export const o${i}: T${i} = ${body[0]}`, ...body.slice(1)];
    decl[decl.length - 1] += ";";
    for (const l of decl) { lines.push(l); owner.push(i); }
  });
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return owner;
}

function check(objects, name) {
  const file = path.join(here, `objects-${name}.ts`);
  const owner = writeSource(objects, file);
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, types: [], skipLibCheck: true,
    module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
  });
  const errors = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (d.file && d.start !== undefined && d.file.fileName === file) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const src = d.file.text.split("\n")[line].trim();
      errors.push(`${label(objects[owner[line]])}: line "${src}": ${text}`);
    } else {
      errors.push(text);
    }
  }
  fs.rmSync(file, { force: true });
  return errors;
}

const [input, name = "objects"] = process.argv.slice(2);
if (!input) {
  console.error("usage: node validate.mjs OBJECTS.json [NAME]");
  process.exit(2);
}
const objects = JSON.parse(fs.readFileSync(input, "utf8"));
const errors = check(objects, name.replace(/[^\w-]/g, "_"));
for (const e of errors) console.log(`INVALID ${name}: ${e}`);
const kinds = new Set(objects.map((o) => `${o.apiVersion} ${o.kind}`));
console.log(`${name}: ${objects.length} objects (${kinds.size} kinds) against the Kubernetes 1.30 API types: ` +
            (errors.length ? `${errors.length} errors` : "valid"));
process.exit(errors.length ? 1 : 0);
