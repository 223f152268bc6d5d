BASE = "https://api.example.com"


def headers(ctx):
    return {"Authorization": "Bearer " + (ctx.secrets.get("accessToken") or ""), "Accept": "application/json"}


def test_connection(ctx):
    r = ctx.http.get(BASE + "/me", headers=headers(ctx))
    if r.status == 401:
        raise Exception("{{ title }} rejected the token. Create a new one and save it as accessToken.")
    if r.status >= 400:
        raise Exception("{{ title }} answered HTTP " + str(r.status))
    return {"status": "ok"}


def execute(ctx):
    if ctx.operation == "list_items":
        r = ctx.http.get(BASE + "/items", params={"limit": ctx.params.get("limit", 10)}, headers=headers(ctx))
        if r.status >= 400:
            raise Exception("listing items failed: HTTP " + str(r.status))
        return {"items": r.json()}
    if ctx.operation == "create_item":
        r = ctx.http.post(BASE + "/items", json={"name": ctx.params["name"]}, headers=headers(ctx))
        if r.status >= 400:
            raise Exception("creating the item failed: HTTP " + str(r.status))
        return r.json()
    raise Exception("Unknown operation: " + ctx.operation)
