// Tale's way of running a connector (for bench/bench_table.py): Node's `vm` module, the
// connector re-run from the top after every HTTP round trip, earlier responses replayed.
// Usage: node tale_vm.js BASE_URL N -> prints {"one": [ms...], "twenty": [ms...]}
"use strict";
const vm = require("vm");
const http = require("http");

const [base, n] = [process.argv[2], Number(process.argv[3] || 300)];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const source = `
function execute(ctx) {
  if (ctx.operation === "one") return ctx.http.get(BASE + "/small").body;
  const out = [];
  for (let i = 0; i < 20; i++) out.push(ctx.http.get(BASE + "/small").status);
  return out;
}
result = execute(ctx);`;
const script = new vm.Script(source);

class Pending {
  constructor(url) { this.url = url; }
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { body += c; });
      res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    }).on("error", reject);
  });
}

async function run(operation) {
  const replies = [];
  for (;;) {
    let next = 0;
    const ctx = {
      operation,
      http: { get: (url) => { if (next < replies.length) return replies[next++]; throw new Pending(url); } },
    };
    const sandbox = { ctx, BASE: base, result: undefined };
    try {
      script.runInNewContext(sandbox, { timeout: 10000 });
      return sandbox.result;
    } catch (e) {
      if (!(e instanceof Pending)) throw e;
      replies.push(await get(e.url));
    }
  }
}

async function timed(operation, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    await run(operation);
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
})().catch((e) => { console.error(e); process.exit(1); });
