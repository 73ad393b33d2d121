// The package's TypeScript types against the protocol's sources of truth:
// - types with a JSON schema in proto/schemas: keys == schema `properties`, required keys ==
//   schema `required` (key lists from test/types-fixtures.ts, which tsc only compiles when they
//   match the TS types exactly), and typed samples validate against the schema;
// - the six stream payloads, which have no schema: keys and optionality == the Rust structs in
//   libs/protocol/src/streams.rs (serde renames and flatten applied).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { rustTypes, samples, schemaTypes, streamSchemaTypes } from '../build/test/types-fixtures.js';
import { CONTROL_TYPES } from '../dist/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const schemaDir = path.join(repo, 'proto/schemas');
const common = JSON.parse(fs.readFileSync(path.join(schemaDir, 'common.schema.json'), 'utf8'));

/** `name` (a file), `common#def`, or `file#/json/pointer`; returns [schema, its document]. */
function loadSchemaWithDoc(name) {
  if (name.startsWith('common#')) return [common.$defs[name.slice('common#'.length)], common];
  const [file, pointer = ''] = name.split('#');
  const doc = JSON.parse(fs.readFileSync(path.join(schemaDir, `${file}.schema.json`), 'utf8'));
  return [pointer.split('/').filter(Boolean).reduce((node, key) => node?.[key], doc), doc];
}

function loadSchema(name) {
  return loadSchemaWithDoc(name)[0];
}

/** Follows `$ref`s; returns the schema and the document its own relative refs resolve in. */
function resolve(schema, doc) {
  if (!schema || !schema.$ref) return [schema, doc];
  const [file, pointer] = schema.$ref.split('#');
  const base = file ? JSON.parse(fs.readFileSync(path.join(schemaDir, file), 'utf8')) : doc;
  const target = pointer.split('/').filter(Boolean).reduce((node, key) => node[key], base);
  const [resolved, resolvedDoc] = resolve(target, base);
  const rest = Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$ref'));
  return [{ ...resolved, ...rest }, resolvedDoc];
}

/** A small validator for the subset of JSON Schema the protocol's schemas use. */
function validate(value, schema, root, where = '$') {
  const [s, doc] = resolve(schema, root);
  root = doc;
  const errors = [];
  const types = s.type === undefined ? [] : [].concat(s.type);
  const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
  if (types.length && !types.some((t) => t === typeOf(value) || (t === 'number' && typeof value === 'number'))) {
    return [`${where}: ${typeOf(value)} is not ${types.join('|')}`];
  }
  if (s.const !== undefined && value !== s.const) errors.push(`${where}: not ${s.const}`);
  if (s.enum && !s.enum.includes(value)) errors.push(`${where}: ${value} not in enum`);
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${where}: below ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${where}: above ${s.maximum}`);
  }
  if (typeof value === 'string' && s.minLength !== undefined && value.length < s.minLength) errors.push(`${where}: too short`);
  if (Array.isArray(value) && s.items) value.forEach((item, i) => errors.push(...validate(item, s.items, root, `${where}[${i}]`)));
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const key of s.required ?? []) if (!(key in value)) errors.push(`${where}: missing ${key}`);
    for (const [key, item] of Object.entries(value)) {
      if (s.properties?.[key]) errors.push(...validate(item, s.properties[key], root, `${where}.${key}`));
      else if (s.additionalProperties === false) errors.push(`${where}: unexpected ${key}`);
      else if (typeof s.additionalProperties === 'object') errors.push(...validate(item, s.additionalProperties, root, `${where}.${key}`));
    }
  }
  return errors;
}

const sorted = (list) => [...list].sort();

for (const [name, entry] of Object.entries(schemaTypes)) {
  test(`TS type of ${name} matches proto/schemas`, () => {
    const schema = loadSchema(name);
    assert.ok(schema?.properties, `${name}: schema with properties`);
    assert.deepEqual(sorted(entry.all), sorted(Object.keys(schema.properties)), `${name}: the type's keys are the schema's properties`);
    assert.deepEqual(sorted(entry.required), sorted(schema.required ?? []), `${name}: the type's required keys are the schema's required`);
    if (samples[name] !== undefined) {
      assert.deepEqual(validate(samples[name], schema, name.startsWith('common#') ? common : schema), [], `${name}: the typed sample validates`);
    }
    for (const example of schema.examples ?? []) {
      // The validator itself must accept the schema's own examples (guards the validator).
      assert.deepEqual(validate(example, schema, name.startsWith('common#') ? common : schema), [], `${name}: schema example`);
    }
  });
}

for (const [name, entry] of Object.entries(streamSchemaTypes)) {
  test(`TS type of ${name} matches proto/schemas`, (t) => {
    const [schema] = loadSchemaWithDoc(name);
    assert.ok(schema?.properties, `${name}: schema with properties`);
    const properties = Object.keys(schema.properties);
    const required = schema.required ?? [];
    assert.deepEqual(entry.all.filter((key) => !properties.includes(key)), [], `${name}: keys the schema does not have`);
    const shared = entry.all.filter((key) => properties.includes(key));
    assert.deepEqual(sorted(shared.filter((key) => entry.required.includes(key))), sorted(shared.filter((key) => required.includes(key))), `${name}: required keys`);
    const missing = properties.filter((key) => !entry.all.includes(key));
    if (missing.length) t.diagnostic(`${name}: the TS type lacks the schema's newer properties ${missing.join(', ')}`);
    if (samples[name] !== undefined) {
      const [, doc] = loadSchemaWithDoc(name);
      assert.deepEqual(validate(samples[name], schema, doc), [], `${name}: the typed sample validates`);
    }
  });
}

test('the validator rejects what it should (it is not a no-op)', () => {
  const schema = loadSchema('device_reading');
  const bad = { ...samples.device_reading, module: 65, extra: 1 };
  delete bad.unit;
  const errors = validate(bad, schema, schema);
  assert.equal(errors.length, 3, errors.join('; '));
});

test('CONTROL_TYPES equals the event names the schema forbids for room messages', () => {
  const forbidden = common.$defs.event_name.not.enum;
  assert.deepEqual(sorted([...CONTROL_TYPES]), sorted(forbidden));
});

test('error codes in the TS union are the schema enum', (t) => {
  const source = fs.readFileSync(path.join(here, '../src/protocol.ts'), 'utf8');
  const union = source.match(/export type ErrorCode =([^;]+);/)[1];
  const codes = [...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]);
  const schema = common.$defs.error_code.enum;
  assert.deepEqual(codes.filter((code) => !schema.includes(code)), [], 'no code the gateway does not have');
  // A code added to the schema after this package is only a diagnostic: the client passes
  // codes through as strings, so it still works; the type is just less complete.
  const missing = schema.filter((code) => !codes.includes(code));
  if (missing.length) t.diagnostic(`ErrorCode lacks the schema's newer codes: ${missing.join(', ')}`);
});

/** Fields of `pub struct name` in streams.rs: [{json name, optional, flatten type}] */
function rustStruct(source, name) {
  const match = source.match(new RegExp(`pub struct ${name} \\{([\\s\\S]*?)\\n\\}`));
  assert.ok(match, `struct ${name} in streams.rs`);
  const fields = [];
  let attributes = [];
  for (const raw of match[1].split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#[')) attributes.push(line);
    const field = line.match(/^pub (\w+): (.+),$/);
    if (!field) continue;
    const attrs = attributes.join(' ');
    attributes = [];
    const rename = attrs.match(/rename = "([^"]+)"/);
    const type = field[2];
    fields.push({
      name: rename ? rename[1] : field[1],
      // Absent from the JSON only with skip_serializing_if; an Option without it is null.
      optional: attrs.includes('skip_serializing_if'),
      flatten: attrs.includes('flatten') ? type : null,
    });
  }
  return fields;
}

function rustKeys(source, name) {
  const all = [];
  const required = [];
  for (const field of rustStruct(source, name)) {
    if (field.flatten) {
      const inner = rustKeys(source, field.flatten);
      all.push(...inner.all);
      required.push(...inner.required);
      continue;
    }
    all.push(field.name);
    if (!field.optional) required.push(field.name);
  }
  return { all, required };
}

const streamsSource = fs.readFileSync(path.join(repo, 'libs/protocol/src/streams.rs'), 'utf8');
for (const [name, entry] of Object.entries(rustTypes)) {
  test(`TS type ${name} matches the Rust struct in libs/protocol/src/streams.rs`, (t) => {
    const rust = rustKeys(streamsSource, name);
    // What the TS type claims must hold: every key exists on the Rust side, and a key the type
    // requires is always sent (and the other way round for the keys both have).
    assert.deepEqual(entry.all.filter((key) => !rust.all.includes(key)), [], `${name}: keys the server does not send`);
    const shared = entry.all.filter((key) => rust.all.includes(key));
    assert.deepEqual(
      sorted(shared.filter((key) => entry.required.includes(key))),
      sorted(shared.filter((key) => rust.required.includes(key))),
      `${name}: required (non-skipped) fields`,
    );
    // A field the server added after this package is a diagnostic: the client still works
    // (receivers ignore unknown fields, proto/README.md), the type is just less complete.
    const missing = rust.all.filter((key) => !entry.all.includes(key));
    if (missing.length) t.diagnostic(`${name} lacks the server's newer fields: ${missing.join(', ')}`);
  });
}

test('the six streams\' payload structs all have a TS type', (t) => {
  const structs = [...streamsSource.matchAll(/pub struct (\w+) \{/g)].map((m) => m[1]).filter((n) => n !== 'StreamSpec');
  for (const top of ['NodeStatusUpdate', 'TaskProgressUpdate', 'MetricsUpdate', 'ResourceUpdate', 'TopologyChange', 'Alert']) {
    assert.ok(structs.includes(top), `${top} in streams.rs`);
    assert.ok(rustTypes[top], `${top} has a TS type`);
  }
  const untyped = structs.filter((name) => !rustTypes[name]);
  if (untyped.length) t.diagnostic(`structs without a TS type: ${untyped.join(', ')}`);
});
