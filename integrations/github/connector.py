"""GitHub: repositories and issues through the GitHub REST API, with a personal access token.

Results are compact records (the fields an agent needs), not GitHub's full payloads.
Creating an issue is a write: Bollard holds it for a person's approval first.
"""

import datetime
from urllib.parse import quote

BASE = "https://api.github.com"
API_VERSION = "2022-11-28"


def headers(ctx):
    token = ctx.secrets.get("accessToken")
    if not token:
        raise Exception("No GitHub token is set. Save a personal access token as accessToken, then try again.")
    return {
        "Authorization": "Bearer " + token,
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "Bollard-GitHub-Integration",
    }


def repo_path(ctx):
    owner = ctx.params.get("owner") or ""
    repo = ctx.params.get("repo") or ""
    return "/repos/" + quote(owner, safe="") + "/" + quote(repo, safe="")


def repo_label(ctx):
    return (ctx.params.get("owner") or "") + "/" + (ctx.params.get("repo") or "")


def github_message(r):
    body = r.body
    if isinstance(body, dict) and body.get("message"):
        return str(body.get("message"))
    return r.status_text or ("HTTP " + str(r.status))


def rate_limit_reset(r):
    reset = r.headers.get("x-ratelimit-reset")
    if not reset or not reset.isdigit():
        return "later"
    when = datetime.datetime.fromtimestamp(int(reset), datetime.timezone.utc)
    return "at " + when.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def check(ctx, r, what, not_found=None):
    """Raise an actionable error for a non-2xx answer; ``what`` names the attempted action."""
    if r.status < 400:
        return
    if r.status == 401:
        raise Exception(
            "GitHub rejected the token (HTTP 401: " + github_message(r) + "). "
            "It may be mistyped, expired or revoked: create a new one at "
            "https://github.com/settings/tokens and save it as accessToken."
        )
    if r.status == 403 or r.status == 429:
        if r.headers.get("x-ratelimit-remaining") == "0":
            raise Exception(
                "GitHub's rate limit is used up for this token; it resets " + rate_limit_reset(r) + "."
            )
        if r.status == 429 or r.headers.get("retry-after"):
            raise Exception(
                "GitHub asks to slow down (secondary rate limit); retry in "
                + (r.headers.get("retry-after") or "60") + " seconds."
            )
        raise Exception(
            "GitHub refused to " + what + " (HTTP 403: " + github_message(r) + "). "
            "The token lacks a permission: a fine-grained token needs access to the repository "
            "with Issues read (and write, to create issues); a classic token needs the repo scope."
        )
    if r.status == 404:
        raise Exception(not_found or ("GitHub found nothing to " + what + " (HTTP 404)"))
    if r.status == 410:
        raise Exception("Issues are disabled for the repository " + repo_label(ctx) + " (HTTP 410).")
    if r.status == 422:
        details = []
        body = r.body
        if isinstance(body, dict):
            for err in body.get("errors") or []:
                if isinstance(err, dict):
                    details.append(
                        str(err.get("message") or ((err.get("field") or "?") + " " + (err.get("code") or "invalid")))
                    )
                else:
                    details.append(str(err))
        suffix = ": " + "; ".join(details) if details else ""
        raise Exception("GitHub could not " + what + " (HTTP 422: " + github_message(r) + suffix + ")")
    if r.status >= 500:
        raise Exception("GitHub is having trouble (HTTP " + str(r.status) + "); try again in a minute.")
    raise Exception("GitHub could not " + what + " (HTTP " + str(r.status) + ": " + github_message(r) + ")")


def repo_not_found(ctx):
    return (
        "repository not found or the token cannot see it: " + repo_label(ctx) + ". "
        "Check the owner and name; for a private repository the token needs access to it."
    )


def login_of(user):
    if isinstance(user, dict):
        return user.get("login")
    return None


def shape_repo(raw):
    return {
        "full_name": raw.get("full_name"),
        "description": raw.get("description"),
        "private": raw.get("private"),
        "fork": raw.get("fork"),
        "archived": raw.get("archived"),
        "default_branch": raw.get("default_branch"),
        "language": raw.get("language"),
        "stars": raw.get("stargazers_count"),
        "open_issues": raw.get("open_issues_count"),
        "updated_at": raw.get("updated_at"),
        "pushed_at": raw.get("pushed_at"),
        "html_url": raw.get("html_url"),
    }


def shape_issue(raw, with_body=False):
    issue = {
        "number": raw.get("number"),
        "title": raw.get("title"),
        "state": raw.get("state"),
        "state_reason": raw.get("state_reason"),
        "author": login_of(raw.get("user")),
        "labels": [
            (label.get("name") if isinstance(label, dict) else label) for label in raw.get("labels") or []
        ],
        "assignees": [login_of(a) for a in raw.get("assignees") or []],
        "comments": raw.get("comments"),
        "created_at": raw.get("created_at"),
        "updated_at": raw.get("updated_at"),
        "closed_at": raw.get("closed_at"),
        "html_url": raw.get("html_url"),
    }
    if with_body:
        issue["body"] = raw.get("body")
    return issue


def per_page(ctx, default):
    return max(1, min(100, int(ctx.params.get("per_page", default))))


def list_repositories(ctx):
    params = {
        "sort": ctx.params.get("sort", "updated"),
        "direction": ctx.params.get("direction"),
        "visibility": ctx.params.get("visibility"),
        "per_page": per_page(ctx, 30),
        "page": int(ctx.params.get("page", 1)),
    }
    r = ctx.http.get(BASE + "/user/repos", params=params, headers=headers(ctx))
    check(ctx, r, "list your repositories")
    return [shape_repo(repo) for repo in r.json()]


def list_issues(ctx):
    labels = ctx.params.get("labels")
    if isinstance(labels, list):
        labels = ",".join(labels)
    params = {
        "state": ctx.params.get("state", "open"),
        "labels": labels or None,
        "sort": ctx.params.get("sort"),
        "direction": ctx.params.get("direction"),
        "per_page": per_page(ctx, 30),
        "page": int(ctx.params.get("page", 1)),
    }
    r = ctx.http.get(BASE + repo_path(ctx) + "/issues", params=params, headers=headers(ctx))
    check(ctx, r, "list the issues of " + repo_label(ctx), repo_not_found(ctx))
    # GitHub's issues endpoint also returns pull requests; keep issues only.
    return [shape_issue(item) for item in r.json() if "pull_request" not in item]


def get_issue(ctx):
    number = int(ctx.params.get("issue_number"))
    r = ctx.http.get(BASE + repo_path(ctx) + "/issues/" + str(number), headers=headers(ctx))
    check(
        ctx,
        r,
        "read issue #" + str(number) + " of " + repo_label(ctx),
        "issue #" + str(number) + " not found in " + repo_label(ctx)
        + " (or repository not found or the token cannot see it)",
    )
    issue = r.json()
    if "pull_request" in issue:
        raise Exception("#" + str(number) + " in " + repo_label(ctx) + " is a pull request, not an issue")
    return shape_issue(issue, with_body=True)


def create_issue(ctx):
    payload = {"title": ctx.params.get("title")}
    if ctx.params.get("body"):
        payload["body"] = ctx.params.get("body")
    if ctx.params.get("labels"):
        payload["labels"] = ctx.params.get("labels")
    if ctx.params.get("assignees"):
        payload["assignees"] = ctx.params.get("assignees")
    r = ctx.http.post(BASE + repo_path(ctx) + "/issues", json=payload, headers=headers(ctx))
    check(ctx, r, "create an issue in " + repo_label(ctx), repo_not_found(ctx))
    return shape_issue(r.json(), with_body=True)


def test_connection(ctx):
    r = ctx.http.get(BASE + "/user", headers=headers(ctx))
    check(ctx, r, "read the token's user")
    user = r.json()
    login = user.get("login")
    result = {"status": "ok", "login": login, "message": "Connected to GitHub as " + str(login)}
    scopes = r.headers.get("x-oauth-scopes")
    if scopes is not None:
        result["scopes"] = [s.strip() for s in scopes.split(",") if s.strip()]
    return result


def execute(ctx):
    if ctx.operation == "list_repositories":
        return list_repositories(ctx)
    if ctx.operation == "list_issues":
        return list_issues(ctx)
    if ctx.operation == "get_issue":
        return get_issue(ctx)
    if ctx.operation == "create_issue":
        return create_issue(ctx)
    raise Exception("Unknown operation: " + ctx.operation)
