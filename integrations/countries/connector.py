"""Countries: facts about the world's countries from REST Countries (restcountries.com).

A public API: no key, no account. Results are shaped into compact records (name, codes,
capital, population, region, currencies, languages, flag) instead of the raw payload.
"""

from urllib.parse import quote

BASE = "https://restcountries.com/v3.1"

# REST Countries allows at most 10 fields per request; these are all we return.
FIELDS = "name,cca2,cca3,capital,population,region,subregion,currencies,languages,flag"
HEADERS = {"Accept": "application/json", "User-Agent": "Bollard-Countries/1.0"}
REGIONS = ["africa", "americas", "asia", "europe", "oceania", "antarctic"]


def fetch(ctx, path, full_text=False):
    """GET BASE + path with the field filter; None when REST Countries answers 404."""
    params = {"fields": FIELDS}
    if full_text:
        params["fullText"] = "true"
    r = ctx.http.get(BASE + path, params=params, headers=HEADERS)
    if r.status == 404:
        return None
    if r.status == 400:
        raise Exception("REST Countries did not understand the request (HTTP 400): check the parameters")
    if r.status >= 500:
        raise Exception("REST Countries is not answering right now (HTTP " + str(r.status) + "); try again in a minute")
    if r.status >= 400:
        raise Exception("REST Countries answered HTTP " + str(r.status) + " for " + path)
    return r.json()


def as_list(data):
    if data is None:
        return []
    if isinstance(data, list):
        return data
    return [data]


def shape(raw):
    """One compact country record."""
    names = raw.get("name") or {}
    capitals = raw.get("capital") or []
    currencies = []
    for code, info in sorted((raw.get("currencies") or {}).items()):
        info = info or {}
        currencies.append({"code": code, "name": info.get("name"), "symbol": info.get("symbol")})
    languages = sorted((raw.get("languages") or {}).values())
    return {
        "name": names.get("common"),
        "official_name": names.get("official"),
        "code": raw.get("cca2"),
        "code3": raw.get("cca3"),
        "capital": capitals[0] if capitals else None,
        "population": raw.get("population"),
        "region": raw.get("region"),
        "subregion": raw.get("subregion") or None,
        "currencies": currencies,
        "languages": languages,
        "flag": raw.get("flag"),
    }


def population_of(country):
    return country.get("population") or 0


def name_of(country):
    return (country.get("name") or "").lower()


def limited(countries, limit):
    return countries[: int(limit)]


def search_countries(ctx):
    name = (ctx.params.get("name") or "").strip()
    if not name:
        raise Exception("name must not be empty")
    path = "/name/" + quote(name, safe="")
    found = fetch(ctx, path, full_text=bool(ctx.params.get("fullText")))
    countries = [shape(c) for c in as_list(found)]
    countries = sorted(countries, key=population_of, reverse=True)
    return limited(countries, ctx.params.get("limit", 25))


def get_country(ctx):
    code = (ctx.params.get("code") or "").strip()
    data = as_list(fetch(ctx, "/alpha/" + quote(code, safe="")))
    if not data:
        raise Exception("No country has the code '" + code + "'. Use an ISO 3166-1 code such as CH, CHE or 756.")
    return shape(data[0])


def list_by_region(ctx):
    region = (ctx.params.get("region") or "").lower()
    if region not in REGIONS:
        raise Exception("region must be one of: " + ", ".join(REGIONS))
    countries = [shape(c) for c in as_list(fetch(ctx, "/region/" + region))]
    if ctx.params.get("sortBy", "population") == "name":
        countries = sorted(countries, key=name_of)
    else:
        countries = sorted(countries, key=population_of, reverse=True)
    return limited(countries, ctx.params.get("limit", 50))


def test_connection(ctx):
    data = as_list(fetch(ctx, "/alpha/ch"))
    if not data:
        raise Exception("REST Countries answered, but not with the expected data for CH")
    return {"status": "ok", "message": "REST Countries is reachable (" + (shape(data[0]).get("name") or "?") + ")"}


def execute(ctx):
    if ctx.operation == "search_countries":
        return search_countries(ctx)
    if ctx.operation == "get_country":
        return get_country(ctx)
    if ctx.operation == "list_by_region":
        return list_by_region(ctx)
    raise Exception("Unknown operation: " + ctx.operation)
