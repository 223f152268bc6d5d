// {{ title }}: a connector in Tale's format. It runs in Bollard's Deno sandbox: no
// imports, no fetch, no timers; everything goes through ctx (ctx.http is synchronous).

interface HttpResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: unknown;
  text(): string;
  json(): unknown;
}

interface ConnectorContext {
  operation: string;
  params: Record<string, unknown>;
  http: {
    get(url: string, options?: { headers?: Record<string, string> }): HttpResponse;
    post(url: string, options?: { headers?: Record<string, string>; body?: string }): HttpResponse;
  };
  secrets: { get(key: string): string | undefined };
}

const API_BASE = 'https://api.example.com';

function headers(ctx: ConnectorContext): Record<string, string> {
  return {
    Authorization: 'Bearer ' + (ctx.secrets.get('accessToken') || ''),
    Accept: 'application/json',
    'Content-Type': 'application/json',
  };
}

const connector = {
  operations: ['list_items', 'create_item'],

  testConnection: function (ctx: ConnectorContext) {
    const r = ctx.http.get(API_BASE + '/me', { headers: headers(ctx) });
    if (r.status === 401) {
      throw new Error('{{ title }} rejected the token. Create a new one and save it as accessToken.');
    }
    if (r.status >= 400) throw new Error('{{ title }} answered HTTP ' + r.status);
    return { status: 'ok' };
  },

  execute: function (ctx: ConnectorContext) {
    if (ctx.operation === 'list_items') {
      const limit = String(ctx.params.limit ?? 10);
      const r = ctx.http.get(API_BASE + '/items?limit=' + encodeURIComponent(limit), { headers: headers(ctx) });
      if (r.status >= 400) throw new Error('listing items failed: HTTP ' + r.status);
      return { items: r.json() };
    }
    if (ctx.operation === 'create_item') {
      const r = ctx.http.post(API_BASE + '/items', {
        headers: headers(ctx),
        body: JSON.stringify({ name: ctx.params.name }),
      });
      if (r.status >= 400) throw new Error('creating the item failed: HTTP ' + r.status);
      return r.json();
    }
    throw new Error('Unknown operation: ' + ctx.operation);
  },
};
