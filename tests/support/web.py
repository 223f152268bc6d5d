"""Helpers for the web page's tests: log in through the form and read the CSRF token a
page carries (plain tests); :class:`Site`, the served page the browser tests drive."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx

GOOD = "good-token-123456"  # the stand-in upstream's valid bearer token


@dataclass
class Site:
    """``bollard serve`` for the browser tests: its URL, the admin token, the integrations
    folder it watches, and a scratch folder."""

    url: str
    admin_token: str
    integrations: Path
    tmp: Path


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def web_login(client: httpx.AsyncClient, token: str) -> str:
    """Log ``client`` in with ``token`` through the login form; return the session's CSRF
    token (the one every form of the logged-in page carries)."""
    page = await client.get("/login")
    r = await client.post("/login", data={"csrf": csrf_of(page.text), "token": token, "next": "/"})
    assert r.status_code == 303, r.text[:500]
    return csrf_of((await client.get("/")).text)
