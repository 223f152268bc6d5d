// isolated-vm with one reused isolate (for bench/bench_table.py): the connector calls a
// host reference that performs the GET (applySyncPromise), like a sandboxed ctx.http.get.
// Usage: node isolated_vm.js BASE_URL N -> prints {"one": [ms...], "twenty": [ms...]}
"use strict";
const http = require("http");
const ivm = require("isolated-vm");

const [base, n] = [process.argv[2], Number(process.argv[3] || 300)];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { body += c; });
      res.on("end", () => resolve(JSON.stringify({ status: res.statusCode, body: JSON.parse(body) })));
    }).on("error", reject);
  });
}

const isolate = new ivm.Isolate({ memoryLimit: 64 });
const context = isolate.createContextSync();
context.global.setSync("_get", new ivm.Reference(get));
context.global.setSync("BASE", base);
const scripts = {};
for (const op of ["one", "twenty"]) {
  scripts[op] = isolate.compileScriptSync(`(function () {
    const ctx = { operation: ${JSON.stringify(op)},
      http: { get: (url) => JSON.parse(_get.applySyncPromise(undefined, [url])) } };
    if (ctx.operation === "one") return JSON.stringify(ctx.http.get(BASE + "/small").body);
    const out = [];
    for (let i = 0; i < 20; i++) out.push(ctx.http.get(BASE + "/small").status);
    return JSON.stringify(out);
  })()`);
}

async function timed(op, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    await scripts[op].run(context, { timeout: 10000 });
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

(async () => {
  await timed("one", 50);
  const one = await timed("one", n);
  const twenty = await timed("twenty", Math.max(20, Math.floor(n / 10)));
  process.stdout.write(JSON.stringify({ one, twenty }) + "\n");
  agent.destroy();
  isolate.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
