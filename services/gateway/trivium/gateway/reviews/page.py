"""The reviewers' page: `/reviews` (the queue) and `/reviews/{id}` (one case, its passages
highlighted, and the decision form). Server-rendered HTML, no JavaScript, no external asset.

Sign-in: `/reviews/login` posts a key with the `review` scope once; the gateway checks it
and keeps it in an HttpOnly, SameSite=Strict cookie scoped to `/reviews` (8 hours; `Secure`
behind https), never in a URL. Every page re-checks the key as an `Authorization` header
would (a revoked key is refused at once); a decision form is accepted only from this origin
(SameSite=Strict, and the `Origin` header when the browser sends one). A strict
Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect

from trivium.common.errors import TriviumError
from trivium.gateway.callers.auth import Authenticator, Caller
from trivium.gateway.invoke.groundedness import _STOPWORDS
from trivium.gateway.policy.document import NAME_PATTERN as FEATURE_PATTERN
from trivium.gateway.reviews.routes import decide
from trivium.gateway.reviews.schemas import (
    REVIEW_ID_PATTERN,
    DecisionKind,
    DecisionRequest,
    ReviewCase,
    ReviewStatus,
)
from trivium.gateway.reviews.store import ReviewStore, StoredReview

__all__ = ("COOKIE", "ReviewPages")

COOKIE = "trivium_review_key"
COOKIE_MAX_AGE_S = 8 * 3600
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # with no-referrer, a form's Origin is "null"
}
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff}main{padding:16px 24px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #dde1e6;padding:6px 10px;text-align:left}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;background:#e8eef6}
.flagged,.held{background:#fde8c8}.withheld{background:#f9d3d3}.sampled{background:#dff0df}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:12px 0}
mark{background:#fff1a8}.unsupported{background:#f9d3d3;text-decoration:underline wavy #b3261e}
.passage{border-left:4px solid #1f3a5f;padding:4px 12px;margin:8px 0;white-space:pre-wrap}
.meta{color:#57606a;font-size:13px}textarea{width:100%;min-height:70px}
pre{white-space:pre-wrap;margin:0}
"""


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        '<header><strong>Trivium reviews</strong><a href="/reviews">queue</a>'
        '<form method="post" action="/reviews/logout" style="margin-left:auto">'
        '<button type="submit">sign out</button></form></header>'
        f"<main>{body}</main></body></html>"
    )
    return Response(document, status_code=status, media_type="text/html", headers=HEADERS)


def _login_page(message: str = "", status: int = 200) -> Response[str]:
    note = f'<p class="unsupported">{html.escape(message)}</p>' if message else ""
    return _page(
        "Sign in",
        "<h1>Sign in to review</h1>"
        "<p>Paste an API key with the <code>review</code> scope. It is kept in an HttpOnly "
        "cookie for this page only, for 8 hours.</p>"
        f'{note}<form method="post" action="/reviews/login">'
        '<input type="password" name="key" autocomplete="off" size="60" required> '
        '<button type="submit">sign in</button></form>',
        status,
    )


async def _reviewer(request: Request[Any, Any, Any]) -> Caller | None:
    auth: Authenticator = request.app.state.authenticator
    key = request.cookies.get(COOKIE)
    try:
        return await auth.for_route(f"Bearer {key}" if key else None, "review", "")
    except TriviumError:
        return None


def _store(request: Request[Any, Any, Any]) -> ReviewStore:
    store: ReviewStore = request.app.state.review_store
    return store


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _content(text: str) -> set[str]:
    words = (word.lower() for word in _WORD.findall(re.sub(r"\[\d+\]", " ", text)))
    return {word for word in words if word not in _STOPWORDS}


def _marked(text: str, words: set[str], *, inside: bool) -> str:
    """`text` escaped, each content word in `words` (inside) or not in it (outside) marked."""
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        word = match.group()
        lower = word.lower()
        if lower in _STOPWORDS or (lower in words) != inside:
            out.append(html.escape(word))
        elif inside:
            out.append(f"<mark>{html.escape(word)}</mark>")
        else:
            out.append(f'<span class="unsupported">{html.escape(word)}</span>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _case_html(stored: StoredReview) -> str:
    case: ReviewCase = stored.case
    answer = case.output or ""
    said = _content(answer)
    given: set[str] = set()
    for passage in case.passages:
        given |= _content(passage.text)
    score = "n/a" if case.groundedness is None else f"{case.groundedness:.2f}"
    request = html.escape(
        "\n".join(f"{m.role}: {m.content}" for m in case.messages)
        if case.messages
        else "\n".join(f"{k}: {v}" for k, v in (case.input or {}).items())
    )
    passages = "".join(
        f'<div class="passage" id="p{p.index}"><div class="meta">[{p.index}] '
        f"{html.escape(p.title or p.doc_id)} · {html.escape(p.source or '')} · score "
        f"{p.score:.3f}</div>{_marked(p.text, said, inside=True)}</div>"
        for p in case.passages
    )
    lineage = case.lineage
    lineage_rows = "".join(
        f"<tr><th>{name}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in (
            ("policy", f"{lineage.policy_hash} (v{lineage.policy_version})"),
            ("route", case.route),
            ("variant", case.variant or "-"),
            ("template", lineage.template or "-"),
            ("adapter", lineage.adapter or "-"),
            ("index", lineage.retriever_index or "-"),
            ("upstream", lineage.upstream or "-"),
            ("answer id", case.answer_id),
            ("caller", case.caller),
        )
    )
    decision = stored.decision
    if decision is None:
        decide_form = (
            f'<form method="post" action="/reviews/{case.id}/decide">'
            "<p><label><input type='radio' name='decision' value='approve' checked> approve"
            "</label> <label><input type='radio' name='decision' value='correct'> correct"
            "</label> <label><input type='radio' name='decision' value='reject'> reject"
            "</label></p><p>correction<br><textarea name='correction'></textarea></p>"
            "<p>note<br><textarea name='note'></textarea></p>"
            "<button type='submit'>decide</button></form>"
        )
    else:
        decide_form = (
            f"<p><strong>{html.escape(decision.decision)}</strong> by "
            f"{html.escape(decision.reviewer)} at {_when(decision.decided_ms)}</p>"
            + (f"<pre>{html.escape(decision.correction)}</pre>" if decision.correction else "")
            + (f'<p class="meta">{html.escape(decision.note)}</p>' if decision.note else "")
        )
    return (
        f"<h1>Review {html.escape(case.id)}</h1>"
        f'<p><span class="badge {case.reason}">{case.reason}</span> '
        f'<span class="badge">{stored.status}</span> feature <strong>'
        f"{html.escape(case.feature)}</strong> · groundedness <strong>{score}</strong> · "
        f"{_when(case.created_ms)}</p>"
        f"<section><h2>Request</h2><pre>{request}</pre></section>"
        "<section><h2>Answer</h2><p class='meta'>words found in no passage are underlined"
        f"</p><pre>{_marked(answer, given, inside=False)}</pre></section>"
        "<section><h2>Passages</h2><p class='meta'>words the answer uses are highlighted"
        f"</p>{passages}</section>"
        f"<section><h2>Lineage</h2><table>{lineage_rows}</table></section>"
        f"<section><h2>Decision</h2>{decide_form}</section>"
    )


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


class ReviewPages(Controller):
    path = "/reviews"
    include_in_schema = False

    @get("/login", media_type="text/html")
    async def login_form(self) -> Response[str]:
        return _login_page()

    @post("/login", media_type="text/html", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        key = data.get("key", "").strip()
        auth: Authenticator = request.app.state.authenticator
        try:
            await auth.for_route(f"Bearer {key}", "review", "")
        except TriviumError as exc:
            return _login_page(f"not signed in: {exc.message}", exc.status_code)
        cookie = Cookie(
            key=COOKIE,
            value=key,
            path="/reviews",
            max_age=COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return Redirect("/reviews", cookies=[cookie], headers=HEADERS, status_code=303)

    @post("/logout", status_code=303)
    async def logout(self) -> Response[Any]:
        cookie = Cookie(key=COOKIE, value="", path="/reviews", max_age=0, httponly=True)
        return Redirect("/reviews/login", cookies=[cookie], headers=HEADERS, status_code=303)

    @get("/", media_type="text/html")
    async def queue(
        self,
        request: Request[Any, Any, Any],
        feature: Annotated[str | None, Parameter(pattern=FEATURE_PATTERN)] = None,
        status: ReviewStatus | None = "pending",
    ) -> Response[Any]:
        if await _reviewer(request) is None:
            return Redirect("/reviews/login", status_code=303)
        reviews = await _store(request).summaries(feature, status, 200)
        rows = "".join(
            f'<tr><td><a href="/reviews/{r.id}">{r.id}</a></td><td>{html.escape(r.feature)}'
            f'</td><td><span class="badge {r.reason}">{r.reason}</span></td><td>{r.status}'
            f"</td><td>{'n/a' if r.groundedness is None else f'{r.groundedness:.2f}'}</td>"
            f"<td>{_when(r.created_ms)}</td></tr>"
            for r in reviews
        )
        scope = {"feature": feature} if feature else {}
        filters = " · ".join(
            f'<a href="/reviews?{urlencode({"status": s, **scope})}">{s}</a>'
            for s in ("pending", "approved", "corrected", "rejected")
        )
        return _page(
            "Review queue",
            f"<h1>Review queue</h1><p>{filters}</p><table><tr><th>review</th><th>feature</th>"
            f"<th>why</th><th>status</th><th>groundedness</th><th>created</th></tr>{rows}"
            f"</table><p class='meta'>{len(reviews)} shown</p>",
        )

    @get("/{review_id:str}", media_type="text/html")
    async def case(
        self,
        request: Request[Any, Any, Any],
        review_id: Annotated[str, Parameter(pattern=REVIEW_ID_PATTERN)],
    ) -> Response[Any]:
        if await _reviewer(request) is None:
            return Redirect("/reviews/login", status_code=303)
        stored = await _store(request).get(review_id)
        if stored is None:
            return _page("Not found", "<h1>No such review</h1>", 404)
        return _page(f"Review {review_id}", _case_html(stored))

    @post("/{review_id:str}/decide", media_type="text/html", status_code=303)
    async def decide_form(
        self,
        request: Request[Any, Any, Any],
        review_id: Annotated[str, Parameter(pattern=REVIEW_ID_PATTERN)],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        reviewer = await _reviewer(request)
        if reviewer is None:
            return Redirect("/reviews/login", status_code=303)
        if not _same_origin(request):
            return _page("Refused", "<h1>Refused: not from this page's origin</h1>", 403)
        choice = data.get("decision", "")
        if choice not in ("approve", "correct", "reject"):
            return _page("Bad decision", "<h1>Choose approve, correct or reject</h1>", 400)
        kind: DecisionKind = choice  # type: ignore[assignment]
        body = DecisionRequest(
            kind,
            (data.get("correction") or "").strip() or None,
            (data.get("note") or "").strip() or None,
        )
        try:
            await decide(_store(request), review_id, body, reviewer.name)
        except TriviumError as exc:
            return _page(
                "Not decided",
                f"<h1>Not decided</h1><p>{html.escape(exc.message)}</p>",
                exc.status_code,
            )
        return Redirect(f"/reviews/{review_id}", headers=HEADERS, status_code=303)
