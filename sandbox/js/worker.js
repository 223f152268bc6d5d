// The Deno sandbox worker (DESIGN §3, §4): runs one Tale connector (connector.ts or
// connector.js) for many executions, speaking the frame protocol of
// bollard/sandbox/frames.py and protocol.py over stdin/stdout.
//
// Started by bollard.sandbox.js.launcher, which applied the OS layers (network namespace,
// rlimits, uid, no-new-privs, Landlock, seccomp) and then exec'd
// `deno run --no-prompt --no-remote --no-npm --no-config --cached-only ...` with no
// --allow-* flag: every Deno permission is denied. argv[0] is the JSON of the layers.
//
// Before it reads any connector source, this script keeps private references to the few
// host functions it needs (synchronous pipe reads and writes), then deletes every host
// API from the global object (Deno, fetch, timers, Worker, WebAssembly, SharedArrayBuffer,
// Atomics...), freezes the remaining ECMAScript intrinsics (so no execution can pollute
// a prototype for the next) and replaces console. Connector code then runs with Tale's
// sandbox globals only. V8 runs with --disallow-code-generation-from-strings, so eval and
// Function('...') throw. One execution is one run of the connector's code: the module is
// wrapped in a factory function that re-runs its top level each time.

// --- private references, taken before the lockdown -------------------------------------
const stdin = Deno.stdin;
const stdout = Deno.stdout;
const readSync = (buffer) => stdin.readSync(buffer);
const writeSync = (bytes) => stdout.writeSync(bytes);
const workerPid = Deno.pid;
const exit = Deno.exit;
const globalThis_ = globalThis;
const layersJson = Deno.args[0] || "{}";
// "check": answer any number of `load` messages (Deno's parse of sources at load time,
// bollard/sandbox/js/check.py) and never execute anything.
const checkOnly = Deno.args[1] === "check";
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const scheduleMacrotask = globalThis.setTimeout;
// A connector's rejected promise that nobody handles is its own business (Tale ignores
// them too); by default Deno would end the process at the next macrotask.
globalThis.addEventListener("unhandledrejection", (event) => event.preventDefault());
const { freeze, getOwnPropertyNames, getOwnPropertySymbols, getOwnPropertyDescriptor,
  getPrototypeOf, isFrozen, entries } = Object;
const jsonStringify = JSON.stringify;
const jsonParse = JSON.parse;
const MathMin = Math.min;
const StringFn = String;
const ArrayIsArray = Array.isArray;

// Protocol constants: checked against bollard/sandbox/frames.py and protocol.py by
// tests/sandbox/test_js_protocol.py.
const HEADER_BYTES = 8; // two big-endian uint32: JSON part, body part
const MAX_HOST_MESSAGE_BYTES = 64 * 1024 * 1024;
const MAX_URL_CHARS = 8192;
const MAX_HEADERS = 100;
const MAX_HEADER_CHARS = 8192;
const MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024;
const MAX_LOG_LINES = 10000;
const MAX_MESSAGE_CHARS = 2000;
const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const MAX_FORM_FIELDS = 100;

// --- the Tale globals -----------------------------------------------------------------
// Tale's sandbox globals, plus the ECMAScript built-ins every JavaScript realm has (a
// Node vm context, Tale's sandbox, has them too). Host APIs, SharedArrayBuffer/Atomics
// (blocking waits), WebAssembly, WeakRef/FinalizationRegistry (code after the execution),
// eval and globalThis are removed.
const KEEP = new Set([
  "console", "JSON", "Object", "Array", "String", "Number", "Boolean", "Date", "Math",
  "parseInt", "parseFloat", "isNaN", "isFinite", "encodeURI", "encodeURIComponent",
  "decodeURI", "decodeURIComponent", "Error", "RegExp", "Promise",
  // ECMAScript intrinsics of every realm
  "undefined", "NaN", "Infinity", "Function", "Symbol", "BigInt", "Map", "Set", "WeakMap",
  "WeakSet", "Proxy", "Reflect", "ArrayBuffer", "DataView", "Int8Array", "Uint8Array",
  "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
  "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
  "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError",
  "AggregateError", "Intl", "Iterator", "escape", "unescape",
]);

// --- logs -----------------------------------------------------------------------------
let currentLog = null;

class ConnectorOutput {
  constructor(maxBytes) {
    this.lines = [];
    this.size = 0;
    this.maxBytes = maxBytes;
    this.full = false;
  }
  add(line) {
    if (this.full) return;
    const size = encoder.encode(line).length + 1;
    if (this.size + size > this.maxBytes) {
      this.full = true;
      this.lines.push(`[log truncated at ${this.maxBytes} bytes]`);
      return;
    }
    if (this.lines.length >= MAX_LOG_LINES - 1) {
      this.full = true;
      this.lines.push(`[log truncated at ${MAX_LOG_LINES - 1} lines]`);
      return;
    }
    this.size += size;
    this.lines.push(line);
  }
}

function formatValue(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === "object" && value !== null) {
    try {
      return jsonStringify(value) ?? StringFn(value);
    } catch {
      return "[object]";
    }
  }
  try {
    return StringFn(value);
  } catch {
    return "[value]";
  }
}

function logLine(...args) {
  const log = currentLog;
  if (log === null || log.full) return;
  let text = "";
  for (let i = 0; i < args.length; i++) {
    text += (i ? " " : "") + formatValue(args[i]);
    if (text.length > log.maxBytes) break;
  }
  for (const line of text.split("\n")) log.add(line);
}

const sandboxConsole = freeze({
  log: logLine, info: logLine, warn: logLine, error: logLine, debug: logLine, trace: logLine,
});

// --- the lockdown ---------------------------------------------------------------------
function hardenAll(roots) {
  const seen = new Set();
  const stack = [...roots];
  while (stack.length) {
    const value = stack.pop();
    if ((typeof value !== "object" && typeof value !== "function") || value === null) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    freeze(value);
    stack.push(getPrototypeOf(value));
    for (const key of [...getOwnPropertyNames(value), ...getOwnPropertySymbols(value)]) {
      const desc = getOwnPropertyDescriptor(value, key);
      if (desc === undefined) continue;
      if ("value" in desc) stack.push(desc.value);
      if (desc.get) stack.push(desc.get);
      if (desc.set) stack.push(desc.set);
    }
  }
}

// Assigning to a property that a frozen prototype holds fails ("the override mistake"):
// `err.name = 'MyError'` or `obj.toString = …` must still work on the connector's own
// objects, so these become accessors that define the property on the object assigned to.
const OVERRIDABLE = [
  [Object.prototype, ["constructor", "toString", "valueOf", "toLocaleString", "hasOwnProperty",
    "isPrototypeOf", "propertyIsEnumerable"]],
  [Error.prototype, ["name", "message", "toString", "constructor"]],
  [Array.prototype, ["toString", "push", "constructor"]],
  [Function.prototype, ["toString", "constructor"]],
  [Promise.prototype, ["then", "constructor"]],
];

function enableOverrides() {
  const defineProperty = Object.defineProperty;
  for (const [proto, keys] of OVERRIDABLE) {
    for (const key of keys) {
      const desc = getOwnPropertyDescriptor(proto, key);
      if (!desc || !("value" in desc)) continue;
      const value = desc.value;
      defineProperty(proto, key, {
        get() {
          return value;
        },
        set(newValue) {
          if (this === proto) throw new TypeError(`Cannot assign to read only property '${StringFn(key)}'`);
          defineProperty(this, key, { value: newValue, writable: true, enumerable: true, configurable: true });
        },
        enumerable: desc.enumerable,
        configurable: false,
      });
    }
  }
}

function lockdown() {
  const global = globalThis;
  for (const key of getOwnPropertyNames(global)) {
    if (!KEEP.has(key)) {
      try {
        delete global[key];
      } catch { /* non-configurable: NaN, Infinity, undefined */ }
    }
  }
  // Symbol-keyed properties stay: they are Deno's brand and event state for the global
  // object, which connector code cannot reach (no globalThis, strict code only, no eval).
  for (const key of getOwnPropertyNames(global)) {
    // not configurable (Deno defines queueMicrotask so): emptied instead of deleted
    if (!KEEP.has(key)) Object.defineProperty(global, key, { value: undefined, writable: false });
  }
  global.console = sandboxConsole;
  enableOverrides();
  // Intrinsics reachable only from instances (generators, iterators, async functions).
  const hidden = [
    getPrototypeOf(function* () {}), getPrototypeOf(async function () {}),
    getPrototypeOf(async function* () {}), getPrototypeOf((function* () {})()),
    getPrototypeOf((async function* () {})()), getPrototypeOf([][Symbol.iterator]()),
    getPrototypeOf(new Map().entries()), getPrototypeOf(new Set().values()),
    getPrototypeOf(""[Symbol.iterator]()), getPrototypeOf(/x/[Symbol.matchAll]("x")),
    getPrototypeOf(Int8Array), getPrototypeOf(Uint8Array.prototype),
  ];
  // The global object itself stays extensible (connector code cannot reach it, and strict
  // code cannot create globals) so that exit() can give Deno back its globalThis.
  const values = getOwnPropertyNames(global).map((key) => global[key]);
  hardenAll([...values, getPrototypeOf(global), ...hidden]);
}

function restoreForExit() {
  Object.defineProperty(globalThis_, "globalThis", { value: globalThis_, configurable: true, writable: true });
}

// --- base64 (Tale's base64Encode/Decode work on UTF-8 text) ----------------------------
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
B64_INDEX["-".charCodeAt(0)] = 62; // base64url, as Tale's Buffer.from(…, 'base64') accepts
B64_INDEX["_".charCodeAt(0)] = 63;

function bytesToBase64(bytes) {
  const parts = [];
  let chunk = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    chunk += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
    if (chunk.length >= 8192) {
      parts.push(chunk);
      chunk = "";
    }
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    chunk += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    chunk += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  parts.push(chunk);
  return parts.join("");
}

function base64ToBytes(text, what) {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4) + 3);
  let bits = 0;
  let count = 0;
  let size = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 61) break; // '=' padding ends the data
    if (code === 32 || code === 10 || code === 13 || code === 9) continue;
    const value = code < 256 ? B64_INDEX[code] : -1;
    if (value < 0) throw new TypeError(`${what}: invalid base64`);
    bits = (bits << 6) | value;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out[size++] = (bits >> count) & 255;
    }
  }
  return out.subarray(0, size);
}

// --- frames ---------------------------------------------------------------------------
let inBuffer = new Uint8Array(1 << 16);
let inStart = 0;
let inEnd = 0;

function fill(size) {
  while (inEnd - inStart < size) {
    if (inBuffer.length - inStart < size) {
      const bigger = new Uint8Array(Math.max(inBuffer.length * 2, size));
      bigger.set(inBuffer.subarray(inStart, inEnd));
      inEnd -= inStart;
      inStart = 0;
      inBuffer = bigger;
    } else if (inBuffer.length - inEnd < 1 << 12 && inStart > 0) {
      inBuffer.copyWithin(0, inStart, inEnd);
      inEnd -= inStart;
      inStart = 0;
    }
    const n = readSync(inBuffer.subarray(inEnd, MathMin(inBuffer.length, inEnd + (1 << 20))));
    if (n === null || n === 0) throw new EndOfInput();
    inEnd += n;
  }
}

class EndOfInput extends Error {}

function recv() {
  fill(HEADER_BYTES);
  const view = new DataView(inBuffer.buffer, inBuffer.byteOffset + inStart, HEADER_BYTES);
  const size = view.getUint32(0);
  const bodySize = view.getUint32(4);
  if (size + bodySize > MAX_HOST_MESSAGE_BYTES) throw new Error("host message too large");
  fill(HEADER_BYTES + size + bodySize);
  const start = inStart + HEADER_BYTES;
  const message = jsonParse(decoder.decode(inBuffer.subarray(start, start + size)));
  const body = inBuffer.slice(start + size, start + size + bodySize);
  inStart += HEADER_BYTES + size + bodySize;
  if (inStart === inEnd) inStart = inEnd = 0;
  if (typeof message !== "object" || message === null || typeof message.type !== "string") {
    throw new Error("invalid host message");
  }
  return [message, body];
}

function writeAll(bytes) {
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(bytes.subarray(offset));
}

function sendRaw(jsonText, body) {
  const payload = encoder.encode(jsonText);
  const bodyBytes = body || new Uint8Array(0);
  const frame = new Uint8Array(HEADER_BYTES + payload.length + bodyBytes.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, bodyBytes.length);
  frame.set(payload, HEADER_BYTES);
  frame.set(bodyBytes, HEADER_BYTES + payload.length);
  writeAll(frame);
}

function send(message, body) {
  sendRaw(jsonStringify(message), body);
}

// --- ctx ------------------------------------------------------------------------------
class HttpError extends Error {
  name = "HttpError"; // class fields define own properties: no clash with the frozen prototype
  code;
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function truncate(text, limit = MAX_MESSAGE_CHARS) {
  return text.length <= limit ? text : text.slice(0, limit - 1) + "…";
}

function checkHeaders(headers) {
  const out = {};
  if (headers === undefined || headers === null) return out;
  if (typeof headers !== "object" || ArrayIsArray(headers)) {
    throw new TypeError("headers must be an object of strings");
  }
  const pairs = entries(headers);
  if (pairs.length > MAX_HEADERS) throw new RangeError(`at most ${MAX_HEADERS} headers are allowed`);
  for (const [name, value] of pairs) {
    if (value === undefined || value === null) continue;
    const text = typeof value === "string" ? value : StringFn(value);
    if (name.length > MAX_HEADER_CHARS || text.length > MAX_HEADER_CHARS) {
      throw new RangeError(`header names and values are limited to ${MAX_HEADER_CHARS} characters`);
    }
    out[name] = text;
  }
  return out;
}

function checkFormFields(fields) {
  if (!ArrayIsArray(fields)) throw new TypeError("formFields must be an array");
  if (fields.length > MAX_FORM_FIELDS) throw new RangeError(`at most ${MAX_FORM_FIELDS} formFields`);
  return fields.map((field, i) => {
    if (typeof field !== "object" || field === null) throw new TypeError(`formFields[${i}] must be an object`);
    return {
      name: StringFn(field.name),
      value: StringFn(field.value ?? ""),
      file_name: field.fileName === undefined || field.fileName === null ? null : StringFn(field.fileName),
      content_type: field.contentType === undefined || field.contentType === null
        ? null
        : StringFn(field.contentType),
      is_base64: field.isBase64 === true,
    };
  });
}

function mediaType(headers) {
  const contentType = headers["content-type"] || "";
  const [main] = contentType.split(";");
  return main.trim().toLowerCase();
}

function makeResponse(reply, raw, responseType) {
  const headers = freeze({ ...reply.headers });
  let textCache = null;
  const text = () => (textCache === null ? (textCache = decoder.decode(raw)) : textCache);
  const json = () => jsonParse(text());
  let body;
  const type = mediaType(headers);
  if (responseType === "base64") {
    body = bytesToBase64(raw);
  } else if ((type === "application/json" || type === "text/json" || type.endsWith("+json")) &&
    text().trim()) {
    try {
      body = json();
    } catch {
      body = text();
    }
  } else {
    body = text();
  }
  return freeze({
    status: reply.status,
    statusText: reply.status_text,
    headers,
    body,
    url: reply.url,
    text,
    json,
  });
}

function makeHttp(execution) {
  function request(method, url, options) {
    if (typeof url !== "string") throw new TypeError("url must be a string");
    if (url.length > MAX_URL_CHARS) throw new RangeError(`urls are limited to ${MAX_URL_CHARS} characters`);
    const opts = options === undefined || options === null ? {} : options;
    if (typeof opts !== "object") throw new TypeError("the options must be an object");
    const responseType = opts.responseType ?? null;
    if (responseType !== null && responseType !== "base64" && responseType !== "text") {
      throw new TypeError("responseType must be 'base64' or 'text'");
    }
    const message = {
      type: "http",
      method,
      url,
      headers: checkHeaders(opts.headers),
      params: null,
      body: null,
      binary_body: false,
      response_type: responseType,
    };
    let raw = null;
    const given = [opts.body, opts.binaryBody, opts.formFields].filter((v) => v !== undefined && v !== null);
    if (given.length > 1) throw new TypeError("pass at most one of body, binaryBody and formFields");
    if (opts.body !== undefined && opts.body !== null) {
      const body = typeof opts.body === "string" ? opts.body : jsonStringify(opts.body);
      if (body.length > MAX_REQUEST_BODY_BYTES) {
        throw new RangeError(`request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes`);
      }
      message.body = body;
    } else if (opts.binaryBody !== undefined && opts.binaryBody !== null) {
      if (typeof opts.binaryBody !== "string") throw new TypeError("binaryBody must be base64 text");
      raw = base64ToBytes(opts.binaryBody, "binaryBody");
      if (raw.length > MAX_REQUEST_BODY_BYTES) {
        throw new RangeError(`request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes`);
      }
      message.binary_body = true;
    } else if (opts.formFields !== undefined && opts.formFields !== null) {
      message.form_fields = checkFormFields(opts.formFields);
    }
    const [reply, body] = execution.transport(message, raw);
    return makeResponse(reply, body, responseType);
  }
  return freeze({
    get: (url, options) => request("GET", url, options),
    post: (url, options) => request("POST", url, options),
    put: (url, options) => request("PUT", url, options),
    patch: (url, options) => request("PATCH", url, options),
    delete: (url, options) => request("DELETE", url, options),
  });
}

function makeFiles(execution) {
  function call(message, body) {
    const [reply] = execution.transport(message, body);
    if (reply.type !== "file_reference" || typeof reply.file !== "object") {
      throw new Error("unexpected answer to a ctx.files call");
    }
    return freeze({ ...reply.file });
  }
  return freeze({
    store(data, options) {
      const opts = options || {};
      if (typeof data !== "string") throw new TypeError("ctx.files.store() takes a string");
      const encoding = opts.encoding ?? "utf-8";
      if (encoding !== "utf-8" && encoding !== "base64") {
        throw new TypeError("encoding must be 'utf-8' or 'base64'");
      }
      const bytes = encoding === "base64" ? base64ToBytes(data, "ctx.files.store") : encoder.encode(data);
      return call({
        type: "file_store",
        content_type: opts.contentType === undefined || opts.contentType === null
          ? null
          : StringFn(opts.contentType),
        file_name: opts.fileName === undefined || opts.fileName === null ? null : StringFn(opts.fileName),
      }, bytes);
    },
    download(url, options) {
      const opts = options || {};
      if (typeof url !== "string") throw new TypeError("url must be a string");
      return call({
        type: "file_download",
        url,
        headers: checkHeaders(opts.headers),
        file_name: opts.fileName === undefined || opts.fileName === null ? null : StringFn(opts.fileName),
      }, null);
    },
  });
}

function makeCtx(message, execution) {
  const secrets = new Map(entries(message.secrets));
  const ctx = {
    operation: message.operation,
    params: message.params,
    http: makeHttp(execution),
    secrets: freeze({ get: (key) => (typeof key === "string" ? secrets.get(key) : undefined) }),
    base64Encode: (text) => bytesToBase64(encoder.encode(StringFn(text))),
    base64Decode: (data) => decoder.decode(base64ToBytes(StringFn(data), "base64Decode")),
    log: (...args) => logLine(...args),
  };
  if (message.files === true) ctx.files = makeFiles(execution);
  execution.secrets = secrets;
  return freeze(ctx);
}

// --- load and execute -----------------------------------------------------------------
let factory = null;

function sourceLine(text) {
  // "...:LINE:COL" at the end of a location; the wrapper keeps the source's line numbers.
  const match = /:(\d+):(\d+)\)?\s*$/m.exec(text);
  return match ? Number(match[1]) : null;
}

function wrap(source, filename) {
  // One line of prefix, joined to the source's first line, so line numbers stay.
  return "export default function __bollard_connector__() {" + source +
    "\n;return { connector: typeof connector === 'undefined' ? undefined : connector," +
    " execute: typeof execute === 'undefined' ? undefined : execute," +
    " testConnection: typeof testConnection === 'undefined' ? undefined : testConnection };\n}\n" +
    `//# sourceURL=${filename}\n`;
}

async function load(message) {
  const source = StringFn(message.source);
  const filename = StringFn(message.filename || "connector.ts");
  const mime = filename.endsWith(".js") ? "application/javascript" : "application/typescript";
  try {
    const module = await import(`data:${mime},` + encodeURIComponent(wrap(source, filename)));
    factory = module.default;
    send({ type: "loaded", ok: true, errors: [] });
  } catch (error) {
    const text = StringFn(error && error.message);
    const first = text.split("\n")[0].replace(/^SyntaxError: /, "").replace(/\s+at data:\S*$/, "");
    const line = sourceLine(text);
    const where = line === null ? filename : `${filename} line ${line}`;
    send({ type: "loaded", ok: false, errors: [truncate(`${where}: ${first}`)] });
  }
}

function describe(error) {
  if (error instanceof Error) {
    let text;
    try {
      text = StringFn(error.message);
    } catch {
      text = "";
    }
    return truncate(text || error.name || "Error");
  }
  try {
    return truncate(StringFn(error));
  } catch {
    return "the connector threw a value that is not an Error";
  }
}

function errorLine(error, filename) {
  let stack = "";
  try {
    stack = error instanceof Error ? StringFn(error.stack) : "";
  } catch {
    return null;
  }
  for (const frame of stack.split("\n")) {
    if (frame.includes("data:application/")) return sourceLine(frame);
  }
  return null;
}

function pickEntrypoint(exports, entrypoint) {
  const names = entrypoint === "test_connection" ? ["testConnection", "test_connection"] : ["execute"];
  const object = exports.connector;
  for (const name of names) {
    if (object !== undefined && object !== null && typeof object[name] === "function") {
      return [object[name], object];
    }
    if (name !== "test_connection" && typeof exports[name] === "function") return [exports[name], undefined];
  }
  return [null, undefined];
}

const NEVER = {};

async function settle(value) {
  // A Promise result settles through microtasks only (no timers, no async I/O exist for
  // the connector); if one macrotask later it has not settled, it never will.
  if (value === null || (typeof value !== "object" && typeof value !== "function") ||
    typeof value.then !== "function") return value;
  const timer = new Promise((resolve) => scheduleMacrotask(() => resolve(NEVER), 0));
  const result = await Promise.race([value, timer]);
  if (result === NEVER) throw new Error("execute returned a Promise that never settles");
  return result;
}

async function run(message, execution) {
  const exports = factory();
  const [fn, self] = pickEntrypoint(exports, message.entrypoint);
  if (fn === null) {
    const wanted = message.entrypoint === "test_connection" ? "testConnection" : "execute";
    return ["error", { kind: "missing_entrypoint", message: `the connector does not define ${wanted}(ctx)` }];
  }
  const ctx = makeCtx(message, execution);
  let value = await settle(fn.call(self, ctx));
  if (value === undefined) value = null;
  let text;
  try {
    text = jsonStringify(value);
  } catch (error) {
    return ["error", { kind: "not_json", message: truncate(`the result is not JSON: ${describe(error)}`) }];
  }
  if (text === undefined) {
    return ["error", { kind: "not_json", message: `the result is not JSON (a ${typeof value})` }];
  }
  if (text.length > message.max_result_bytes || encoder.encode(text).length > message.max_result_bytes) {
    return ["error", {
      kind: "result_too_large",
      message: `the result is larger than ${message.max_result_bytes} bytes`,
    }];
  }
  return ["result", text];
}

async function execute(message, filename) {
  const log = new ConnectorOutput(message.max_log_bytes);
  currentLog = log;
  const execution = { broken: false, secrets: null, transport: null, closed: false };
  execution.transport = (request, body) => {
    if (execution.closed) throw new Error("this execution has ended; ctx cannot be used any more");
    try {
      send(request, body);
      const [reply, replyBody] = recv();
      if (reply.type === "http_error") throw new HttpError(StringFn(reply.code), StringFn(reply.message));
      if (reply.type === "http_response" || reply.type === "file_reference") return [reply, replyBody];
      throw new Error(`unexpected ${reply.type} message during a request`);
    } catch (error) {
      if (!(error instanceof HttpError)) execution.broken = true;
      throw error;
    }
  };
  let kind;
  let payload;
  try {
    [kind, payload] = await run(message, execution);
  } catch (error) {
    if (error instanceof EndOfInput) throw error;
    kind = "error";
    payload = error instanceof HttpError
      ? { kind: "http", code: error.code, message: describe(error), line: errorLine(error, filename) }
      : error instanceof RangeError && /allocation failed|Invalid array length|Invalid string length/.test(
          StringFn(error.message),
        )
      ? { kind: "memory", message: "memory limit exceeded" }
      : { kind: "connector", message: describe(error), line: errorLine(error, filename) };
  }
  // Everything the execution set off (promise callbacks, microtask chains) runs now, inside
  // its CPU and wall time, before the answer: one macrotask comes only once the microtask
  // queue is empty, and nothing else can ever wake this execution's code (no timers, no
  // I/O). Then its ctx stops working and its log closes.
  try {
    await new Promise((resolve) => scheduleMacrotask(resolve, 0));
  } finally {
    execution.closed = true;
    currentLog = null;
    if (execution.secrets !== null) execution.secrets.clear();
  }
  const discard = execution.broken;
  if (kind === "result") {
    sendRaw(`{"type":"result","discard":${discard},"logs":${jsonStringify(log.lines)},"value":${payload}}`);
  } else {
    if (payload.line === undefined) payload.line = null;
    send({ type: "error", discard, logs: log.lines, ...payload });
  }
  return discard;
}

async function main() {
  send({ type: "ready", layers: jsonParse(layersJson), pid: workerPid });
  const [loadMessage] = recv();
  if (loadMessage.type !== "load") return 2;
  lockdown();
  if (checkOnly) {
    for (let message = loadMessage; message.type === "load"; [message] = recv()) {
      await load(message);
      factory = null;
    }
    return 2;
  }
  await load(loadMessage);
  if (factory === null) return 0;
  const filename = StringFn(loadMessage.filename || "connector.ts");
  for (;;) {
    const [message] = recv();
    if (message.type !== "execute") return 2;
    if (await execute(message, filename)) return 0;
  }
}

// Exit here: Deno's own end-of-module work (its load event) expects the host APIs that
// the lockdown removed.
let status = 0;
try {
  status = await main();
} catch (error) {
  status = error instanceof EndOfInput ? 0 : 1;
}
restoreForExit();
exit(status);
