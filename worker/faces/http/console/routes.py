"""The operator console's pages and forms, under ``/ui/`` of ``mailpipe serve``.

Every page is rendered on the server and works without JavaScript; the one
small script (``static/console.js``) only shows local times on hover and
refreshes a list while it is open. Pages read with the key's limits
(``Caller.may_see``); every form is a POST carrying the session's CSRF token,
and every action checks the key (``Caller.check_profile``) and is recorded
with who did it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool

from worker.faces.check_runs import read_check, start_check
from worker.faces.http.console import views
from worker.faces.http.console.sessions import COOKIE, SESSION_SECONDS, Session, Sessions
from worker.faces.http.deps import intake
from worker.faces.http.keys import Caller
from worker.faces.http.problems import Problem
from worker.faces.profile_status import profile_status
from worker.faces.reports import delivered_by, event_dict, parse_since, recipient_states
from worker.intake import publish
from worker.store import STATES, Actor, Job, JobQuery, state_of

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
REFRESH_SECONDS = 15
_templates = Environment(
    loader=PackageLoader("worker.faces.http.console", "templates"), autoescape=True
)
_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
_HEADERS = {
    # Nothing from elsewhere: no CDN, no inline script, no framing, forms post only here.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# What a page says after an action redirected to it (a fixed set: nothing reflected).
_NOTES = {
    "retried": "Queued again: a worker will send it shortly.",
    "not-failed": "Not retried: the job is no longer failed.",
    "cancelled": "Cancelled: the job will not be sent.",
    "not-queued": "Not cancelled: the job is no longer queued (being sent, or done).",
    "unpublished": "Queued, but the broker could not be reached: the sweep will send it.",
}


# -- sessions -----------------------------------------------------------------


class _Visit:
    """This request's session; a new one is set as a cookie on the answer."""

    def __init__(self, request: Request) -> None:
        self.request = request
        sessions = _sessions(request)
        found = sessions.get(request.cookies.get(COOKIE))
        self.new = found is None
        if found is None:
            keys = intake(request).keys
            # Without keys there is no sign-in: everyone is the keyless caller.
            found = sessions.new(None if keys.required else keys.caller(None, None))
        self.session: Session = found

    @property
    def caller(self) -> Caller | None:
        return self.session.caller

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        keys = intake(self.request).keys
        body = _templates.get_template(template).render(
            csrf=self.session.csrf,
            signed_in=self.caller.name if self.caller else None,
            keys_required=keys.required,
            **values,
        )
        return self.answer(HTMLResponse(body, status_code=status))

    def redirect(self, url: str) -> Response:
        return self.answer(RedirectResponse(url, status_code=303))

    def answer(self, response: Response) -> Response:
        response.headers.update(_HEADERS)
        if self.new:
            self.set_cookie(response, self.session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=self.request.url.scheme == "https",
        )

    def to_login(self) -> Response:
        wanted = self.request.url.path
        if self.request.url.query:
            wanted += "?" + self.request.url.query
        return self.redirect("/ui/login?" + urlencode({"next": wanted}))

    def actor(self) -> Actor:
        client = self.request.client
        return Actor(self.caller.name if self.caller else None, client.host if client else None)


def _sessions(request: Request) -> Sessions:
    state = request.app.state
    if not hasattr(state, "console_sessions"):
        state.console_sessions = Sessions()
    sessions: Sessions = state.console_sessions
    return sessions


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (each field's first value)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


def _refused(visit: _Visit, form: dict[str, str]) -> Response | None:
    """403 unless the form carries this session's CSRF token; to the login if not signed in."""
    if visit.new or not visit.session.csrf_matches(form.get("csrf")):
        return visit.page(
            "error.html",
            403,
            title="Refused",
            detail="The form had no valid CSRF token. Go back, reload the page and try again.",
        )
    if visit.caller is None:
        return visit.to_login()
    return None


def _problem(visit: _Visit, problem: Problem) -> Response:
    return visit.page("error.html", problem.status, title=problem.title, detail=str(problem))


# -- pages --------------------------------------------------------------------


@router.get("/")
def home() -> Response:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(data, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})


@router.get("/login")
def login_form(request: Request, next: str = "/ui/jobs") -> Response:
    visit = _Visit(request)
    if visit.caller is not None:
        return visit.redirect(_safe_next(next))
    return visit.page("login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    visit = _Visit(request)
    form = await _form(request)
    if visit.new or not visit.session.csrf_matches(form.get("csrf")):
        return _refused(visit, form) or visit.to_login()
    keys = intake(request).keys
    target = _safe_next(form.get("next", ""))
    try:
        caller = keys.caller(f"Bearer {form.get('key', '').strip()}", None)
    except Problem:
        return visit.page("login.html", 401, next=target, error="That API key is not valid.")
    sessions = _sessions(request)
    sessions.drop(visit.session.id)
    signed_in = sessions.new(caller)
    response = visit.redirect(target)
    visit.set_cookie(response, signed_in)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    visit = _Visit(request)
    form = await _form(request)
    refused = _refused(visit, form)
    if refused is not None:
        return refused
    _sessions(request).drop(visit.session.id)
    response = visit.redirect("/ui/login" if intake(request).keys.required else "/ui/jobs")
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/jobs")
def jobs(
    request: Request,
    q: str = "",
    profile: str = "",
    state: str = "",
    priority: str = "",
    since: str = "",
    page: int = 1,
) -> Response:
    visit = _Visit(request)
    who = visit.caller
    if who is None:
        return visit.to_login()
    runtime = intake(request).runtime
    profiles = _visible_profiles(request, who)
    page = max(page, 1)
    query = JobQuery(
        made_by=None if who.admin else who.name,
        every_key=who.admin,
        text=q[:200],
        profile=profile if profile in profiles else None,
        state=state if state in STATES else None,
        priority=priority if priority in views.PRIORITIES else None,
        since=_since(since),
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    found = runtime.store.find_jobs(query)
    filters = {"q": q, "profile": profile, "state": state, "priority": priority, "since": since}
    kept = {k: v for k, v in filters.items() if v}
    return visit.page(
        "jobs.html",
        rows=[views.job_row(job) for job in found[:PAGE_SIZE]],
        filters=filters,
        profiles=profiles,
        states=STATES,
        priorities=views.PRIORITIES,
        since_choices=views.SINCE_CHOICES,
        page=page,
        previous=urlencode(kept | {"page": page - 1}) if page > 1 else None,
        next=urlencode(kept | {"page": page + 1}) if len(found) > PAGE_SIZE else None,
        refresh_seconds=REFRESH_SECONDS,
        now=views.utc(datetime.now(UTC)),
    )


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, note: str = "") -> Response:
    visit = _Visit(request)
    who = visit.caller
    if who is None:
        return visit.to_login()
    runtime = intake(request).runtime
    job = runtime.store.get_job(job_id)
    if job is None or not who.may_see(job.api_key_name):
        return visit.page("error.html", 404, title="Not found", detail=f"No job {job_id}.")
    state = state_of(job)
    return visit.page(
        "job.html",
        job=job,
        state=state,
        note=_NOTES.get(note),
        created=views.utc(job.created_at),
        finished=views.utc(job.finished_at),
        next_attempt=views.utc(job.next_attempt_at),
        delivered_by=delivered_by(job) if job.status == "delivered" else None,
        recipients=views.recipient_rows(job, recipient_states(job)),
        headers=views.message_headers(job),
        # The page is the key's to see only if it made the job (or is admin): so is the body.
        body=_body(job),
        attempts=[(a, views.utc(a.started_at)) for a in job.attempts],
        actions=[(a, views.utc(a.at)) for a in runtime.store.actions_for(job.id)],
        # Delivered, failed, bounced, delayed: as GET /v1/notifications/{id} lists them.
        events=[event_dict(e) for e in runtime.store.events_of(job.id)],
        refresh_seconds=REFRESH_SECONDS if state in ("queued", "retrying", "sending") else None,
    )


@router.post("/jobs/{job_id}/retry")
async def retry(request: Request, job_id: str) -> Response:
    return await _job_action(request, job_id, "retry")


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str) -> Response:
    return await _job_action(request, job_id, "cancel")


async def _job_action(request: Request, job_id: str, action: str) -> Response:
    visit = _Visit(request)
    refused = _refused(visit, await _form(request))
    if refused is not None:
        return refused
    return await run_in_threadpool(_act_on_job, visit, job_id, action)


def _act_on_job(visit: _Visit, job_id: str, action: str) -> Response:
    who = visit.caller
    assert who is not None
    runtime = intake(visit.request).runtime
    job = runtime.store.get_job(job_id)
    if job is None or not who.may_see(job.api_key_name):
        return visit.page("error.html", 404, title="Not found", detail=f"No job {job_id}.")
    try:
        _check_reachable(visit, who, job.profile)
    except Problem as problem:
        return _problem(visit, problem)
    if action == "retry":
        if not runtime.store.retry_failed(job.id, visit.actor()):
            return visit.redirect(f"/ui/jobs/{job.id}?note=not-failed")
        sent = publish(runtime, job.id, job.priority)
        return visit.redirect(f"/ui/jobs/{job.id}?note={'retried' if sent else 'unpublished'}")
    done = runtime.store.cancel_queued(job.id, visit.actor())
    return visit.redirect(f"/ui/jobs/{job.id}?note={'cancelled' if done else 'not-queued'}")


@router.get("/profiles")
def profiles_page(request: Request) -> Response:
    visit = _Visit(request)
    who = visit.caller
    if who is None:
        return visit.to_login()
    runtime = intake(request).runtime
    allowed = set(_visible_profiles(visit.request, who))
    statuses = [profile_status(runtime, p) for p in runtime.profiles if p.name in allowed]
    return visit.page(
        "profiles.html",
        profiles=[(s, *views.status_word(s)) for s in statuses],
        now=views.utc(datetime.now(UTC)),
    )


@router.post("/profiles/{name}/check")
async def check(request: Request, name: str) -> Response:
    """Check now (no address) or send a test (an address): a worker runs it."""
    visit = _Visit(request)
    form = await _form(request)
    refused = _refused(visit, form)
    if refused is not None:
        return refused
    send_to = form.get("send_to", "").strip() or None
    return await run_in_threadpool(_start_check, visit, name, send_to)


def _start_check(visit: _Visit, name: str, send_to: str | None) -> Response:
    who = visit.caller
    assert who is not None
    runtime = intake(visit.request).runtime
    if name not in _visible_profiles(visit.request, who):
        return visit.page("error.html", 404, title="Not found", detail=f"No profile {name}.")
    try:
        _check_reachable(visit, who, name)
    except Problem as problem:
        return _problem(visit, problem)
    if send_to is not None and ("@" not in send_to or len(send_to) > 320 or " " in send_to):
        return visit.page(
            "error.html", 422, title="Not an address", detail="Give one email address to send to."
        )
    run = start_check(runtime, name, send_to=send_to, by=who.name)
    if run is None:
        return visit.page(
            "error.html", 503, title="Unavailable", detail="The broker could not be reached."
        )
    action, detail = ("send-test", send_to) if send_to else ("check", "")
    runtime.store.record_action(visit.actor(), action, name, detail=f"check {run.id} {detail}")
    return visit.redirect(f"/ui/checks/{run.id}")


@router.get("/checks/{check_id}")
def check_page(request: Request, check_id: str) -> Response:
    visit = _Visit(request)
    who = visit.caller
    if who is None:
        return visit.to_login()
    run = read_check(intake(request).runtime, check_id)
    if run is None or run.profile not in _visible_profiles(request, who):
        return visit.page("error.html", 404, title="Not found", detail="No such check.")
    return visit.page("check.html", run=run, refresh_seconds=None if run.done else 1)


# -- helpers ------------------------------------------------------------------


def _visible_profiles(request: Request, who: Caller) -> list[str]:
    """Profiles the key may send through (directly or by its routes; all for an admin key):
    of those in the file and those jobs were queued for."""
    state = intake(request)
    names = set(state.runtime.profiles.by_name) | set(state.runtime.store.job_profiles())
    return who.reachable(names, {name: route.profile for name, route in state.routes.items()})


def _check_reachable(visit: _Visit, who: Caller, profile: str) -> None:
    """An action goes through ``profile``: the key must be able to send through it."""
    if profile not in _visible_profiles(visit.request, who):
        raise Problem(403, "Forbidden", f"this API key may not send as profile '{profile}'")


def _since(text: str) -> datetime | None:
    try:
        return datetime.now(UTC) - parse_since(text) if text else None
    except ValueError:
        return None


def _safe_next(target: str) -> str:
    """Only a console page: never another site after signing in."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/jobs"


def _body(job: Job) -> dict[str, Any]:
    n = job.notification
    return {"text": n.get("text") or "", "html": bool(n.get("html")), "files": n.get("attachments")}
