"""The delivery worker: sends the outbox's events (adapters/store/outbox.py) to their
destinations, webhooks and GA4, in the daemon beside the call path.

Per destination, one task sends the events in order: the oldest open one first,
and a failed one holds the ones behind it until it is delivered or given up
(``dead``: too many attempts or too old), so that a receiver sees a call's
``call.started`` before its ``call.completed``. After a failure the pause doubles
from ``outbox.backoff_first_seconds`` up to ``outbox.backoff_max_seconds``, with
jitter. 2xx is delivered; 410 (Gone) disables the destination until
``ctm-pbx webhooks retry`` enables it again; anything else (another status, a
redirect, which is not followed, a timeout, a refused or closed connection, a TLS
certificate that does not verify) is tried again.

The call path never waits for it: the events are read on a read-only connection
off the loop (``StoreReader``), and what was done is written through the writer
in one job per batch. It is at least once: a crash between a send and the commit
of its result sends the event again after the restart; receivers deduplicate on
the event id (``X-CTM-Event-Id``, and ``id`` in the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from ctm_pbx import __version__
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import outbox
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.integrations import SIGNATURE_HEADER, backoff_seconds, ga4_event, signature
from ctm_pbx.core.integrations import webhook_body as make_webhook_body
from ctm_pbx.core.model import Config, Ga4Settings, Webhook

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a destination looks for events when nothing woke it
SETTLE_S = 0.03  # after a wake-up: the writer commits what it wrote within DEFER_S
LOOKS = 5  # after a wake-up that found nothing: look again this many times, SETTLE_S apart
BATCH = 64  # events read at once; their results are written in one job
RENDER = 16  # calls read per round for the bodies of events not sent yet
MAX_ERROR = 300  # characters of an error kept in last_error
STOP_S = 2.0  # at the daemon's stop, how long sends in flight may go on


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Dest:
    name: str
    hook: Webhook | None = None
    ga4: Ga4Settings | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    disabled: str | None = None
    delivered: int = 0
    failed: int = 0  # failed attempts
    dead: int = 0
    last_error: str | None = None

    @property
    def timeout(self) -> float:
        return (self.hook or self.ga4).timeout_seconds  # type: ignore[union-attr]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    gone: bool = False  # 410: the destination is disabled


def _wanted(config: Config) -> dict[str, tuple[Webhook | None, Ga4Settings | None]]:
    """The configured destinations: each webhook, and GA4."""
    wanted: dict[str, tuple[Webhook | None, Ga4Settings | None]] = {
        name: (hook, None) for name, hook in config.webhooks.items()
    }
    if config.ga4 is not None:
        wanted[outbox.GA4] = (None, config.ga4)
    return wanted


class OutboxDelivery:
    """Runs one sending task per configured destination."""

    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        *,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.writer = writer
        self.clock = clock
        self.rand = rand
        self.dests = {
            name: _Dest(name, hook=hook, ga4=ga4) for name, (hook, ga4) in _wanted(config).items()
        }
        self._reader: StoreReader | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake_pending = False
        self._stopping = False
        self._stop = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.dests)

    def routing(self) -> outbox.Routing:
        """What the writer's connection is given (``outbox.attach``): the events to write
        and this worker's wake-up."""
        return outbox.routing_for(self.config, notify=self.wake)

    async def start(self) -> None:
        self._started = True
        if not self.dests:
            return
        await self.writer.run(outbox.attach, self.routing())
        self._start_sending(list(self.dests.values()))
        log.info("outbox: delivering to %s", ", ".join(self.dests))

    def _start_sending(self, dests: list[_Dest]) -> None:
        if self._reader is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._reader = StoreReader(self.config.database.path, threads=1)
            self._session = client_session()
        for dest in dests:
            self._tasks[dest.name] = asyncio.create_task(
                self._run(dest), name=f"outbox-{dest.name}"
            )

    def reconfigure(self, config: Config) -> None:
        """A config reload (on the loop, synchronous): a destination added starts
        sending, one removed stops (its events stay in the outbox, sent if it comes
        back), one changed sends with its new settings from its next try. The writer's
        connection is given the new routing, in order: the events of changes asked for
        after this go to the new destinations."""
        self.config = config
        wanted = _wanted(config)
        for name in [n for n in self.dests if n not in wanted]:
            del self.dests[name]
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()  # a send in flight is sent again if the destination returns
            log.info("outbox: %s removed from the config: no longer sending", name)
        added = []
        for name, (hook, ga4) in wanted.items():
            dest = self.dests.get(name)
            if dest is None:
                dest = self.dests[name] = _Dest(name, hook=hook, ga4=ga4)
                added.append(dest)
            else:
                dest.hook, dest.ga4 = hook, ga4
                dest.wake.set()  # a destination waiting to retry tries with the new settings
        if not self._started:
            return
        self.writer.defer(outbox.attach, self.routing(), what="outbox routing")
        if added:
            self._start_sending(added)
            log.info("outbox: now also delivering to %s", ", ".join(d.name for d in added))

    async def close(self) -> None:
        self._stopping = True
        self._stop.set()
        for dest in self.dests.values():
            dest.wake.set()
        tasks = list(self._tasks.values())
        if tasks:
            # a send in flight may take up to its timeout: past a moment it is cut off
            # (its event is sent again after the restart: at least once)
            _done, slow = await asyncio.wait(tasks, timeout=STOP_S)
            for task in slow:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = {}
        with contextlib.suppress(Exception):
            await self.writer.run(outbox.detach)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def wake(self) -> None:
        """An event was written (on the writer's thread or the loop): look soon."""
        loop = self._loop
        if loop is None or self._wake_pending:
            return
        self._wake_pending = True
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(self._wake_all)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        self._wake_pending = False
        for dest in self.dests.values():
            dest.wake.set()

    def health(self) -> dict:
        """For ``/healthz``: per destination, what this run delivered, failed, gave up
        (no URLs or errors: ``ctm-pbx webhooks show`` has those)."""
        return {
            name: {
                "disabled": d.disabled is not None,
                "delivered": d.delivered,
                "failed_attempts": d.failed,
                "dead": d.dead,
            }
            for name, d in self.dests.items()
        }

    # -- one destination -------------------------------------------------------------

    async def _sleep(self, dest: _Dest, seconds: float, wakeable: bool) -> bool:
        """Sleep up to ``seconds``; True if woken by a new event. Not ``wakeable`` (the
        destination's next event waits for its retry time, or the round was cut short):
        a new event would queue behind it, so only the time or the stop ends the sleep."""
        if self._stopping:
            return False
        if not wakeable:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, seconds))
            dest.wake.clear()
            return False
        try:
            await asyncio.wait_for(dest.wake.wait(), max(0.0, seconds))
        except TimeoutError:
            return False
        dest.wake.clear()
        return True

    async def _run(self, dest: _Dest) -> None:
        assert self._reader is not None
        pause, wakeable, looks = 0.0, True, 0
        while not self._stopping:
            if pause and await self._sleep(dest, pause, wakeable):
                await asyncio.sleep(SETTLE_S)
                looks = LOOKS  # woken: the event may not be committed yet, look again soon
            if self._stopping:
                return
            try:
                pause, wakeable = await self._round(dest)
            except Exception as exc:  # the store or a bug: never the end of the worker
                log.exception("outbox %s: delivery round failed", dest.name)
                dest.last_error = _short(exc)
                pause, wakeable = POLL_S, False
            if pause == POLL_S and wakeable and looks:
                looks -= 1
                pause = SETTLE_S
            elif pause != POLL_S:
                looks = 0

    async def _round(self, dest: _Dest) -> tuple[float, bool]:
        """Send what is due, in order; returns how long to wait before the next round,
        and whether a new event may end that wait (only when all was sent)."""
        assert self._reader is not None
        dest.disabled, batch, calls = await self._reader.run(
            _load, dest.name, dest.ga4 is not None, iso(self.clock())
        )
        if dest.disabled:
            return POLL_S, False
        if not batch:
            return POLL_S, True
        done: list[outbox.Delivery] = []
        wait = 0.0
        s = self.config.outbox
        gone = None
        for d in batch:
            now = self.clock()
            if now - parse_iso(d.queued_at) > timedelta(hours=s.max_age_hours):
                self._give_up(dest, d, f"older than {s.max_age_hours} h; last: {d.last_error}")
                done.append(d)
                continue
            ahead = (parse_iso(d.next_attempt_at) - now).total_seconds()
            if ahead > 0:
                wait = min(ahead, POLL_S * 60)
                break
            if d.payload is None and d.call_id is not None and d.call_id not in calls:
                break  # its call was not read this round: the next round reads it
            outcome = await self._attempt(dest, d, now, calls.get(d.call_id or 0))
            done.append(d)
            if outcome.gone:
                gone = outcome.error
                break
            if d.state == "failed":
                ahead = (parse_iso(d.next_attempt_at) - self.clock()).total_seconds()
                wait = max(0.0, ahead)
                break
            if self._stopping:
                break
        if done:
            await self.writer.run(outbox.save, done)
        if gone is not None:
            await self.writer.run(outbox.disable, dest.name, iso(self.clock()), gone)
            dest.disabled = gone
            log.warning("outbox %s: disabled: %s", dest.name, gone)
            return POLL_S, False
        return wait, False

    def _give_up(self, dest: _Dest, d: outbox.Delivery, why: str) -> None:
        d.state, d.last_error = "dead", why[:MAX_ERROR]
        dest.dead += 1
        log.warning("outbox %s: event %s (%s) dead: %s", dest.name, d.event_id, d.event_type, why)

    async def _attempt(
        self, dest: _Dest, d: outbox.Delivery, now: datetime, call: dict | None
    ) -> Outcome:
        """Make the body if it is the first try, send it, and set the row's new state."""
        if d.payload is None:
            body, why = self._render(dest, d, now, call)
            if body is None:
                d.state, d.last_error = "skipped", why
                log.info("outbox %s: event %s skipped: %s", dest.name, d.event_id, why)
                return Outcome(True, None, why)
            d.payload = body
        outcome = await self._send(dest, d)
        d.attempts += 1
        d.last_status, d.last_error = outcome.status, outcome.error
        after = self.clock()
        if outcome.ok:
            d.state, d.delivered_at = "delivered", iso(after)
            dest.delivered += 1
            return outcome
        dest.failed += 1
        dest.last_error = outcome.error
        s = self.config.outbox
        if d.attempts >= s.max_attempts and not outcome.gone:
            self._give_up(dest, d, f"{d.attempts} attempts; last: {outcome.error}")
            return outcome
        delay = backoff_seconds(
            d.attempts, s.backoff_first_seconds, s.backoff_max_seconds, self.rand()
        )
        d.state, d.next_attempt_at = "failed", iso(after + timedelta(seconds=delay))
        log.info(
            "outbox %s: event %s attempt %d failed (%s): again in %.1f s",
            dest.name,
            d.event_id,
            d.attempts,
            outcome.error,
            delay,
        )
        return outcome

    def _render(
        self, dest: _Dest, d: outbox.Delivery, now: datetime, call: dict | None
    ) -> tuple[bytes | None, str]:
        if call is None:
            return None, f"call {d.call_id} is not in the call log"
        if dest.ga4 is not None:
            g = dest.ga4
            event, why = ga4_event(
                call, call.get("visit"), name=g.event_name, value=g.value, currency=g.currency,
                now=now, values=g.values,
            )  # fmt: skip
            if event is None:
                return None, why
            return json.dumps(event.payload(), separators=(",", ":")).encode(), ""
        return make_webhook_body(d.event_id, d.event_type, d.created_at, call), ""

    async def _send(self, dest: _Dest, d: outbox.Delivery) -> Outcome:
        assert self._session is not None and d.payload is not None
        if dest.hook is not None:
            return await send_webhook(
                self._session, dest.hook, d.payload, d.event_id, d.event_type, d.attempts + 1
            )
        assert dest.ga4 is not None
        g = dest.ga4
        params = {"measurement_id": g.measurement_id, "api_secret": g.api_secret}
        headers = {"Content-Type": "application/json"}
        return await post(self._session, g.endpoint, d.payload, headers, g.timeout_seconds, params)


async def send_webhook(
    session: aiohttp.ClientSession,
    hook: Webhook,
    payload: bytes,
    event_id: str,
    event_type: str,
    attempt: int,
) -> Outcome:
    """POST a webhook body, signed now, with the destination's own headers."""
    headers = {"Content-Type": "application/json", **dict(hook.headers)}
    headers |= {
        "X-CTM-Event": event_type,
        "X-CTM-Event-Id": event_id,
        "X-CTM-Attempt": str(attempt),
        SIGNATURE_HEADER: signature(hook.secret, int(time.time()), payload),
    }
    return await post(session, hook.url, payload, headers, hook.timeout_seconds)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    payload: bytes,
    headers: dict[str, str],
    timeout: float,
    params: dict[str, str] | None = None,
) -> Outcome:
    """One POST: redirects not followed, TLS verified (aiohttp's default), bounded by
    ``timeout``; what came of it."""
    try:
        async with session.post(
            url,
            data=payload,
            headers=headers,
            params=params,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            await resp.read()
            status = resp.status
    except TimeoutError:
        return Outcome(False, None, f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return Outcome(False, None, _short(exc))
    if 200 <= status < 300:
        return Outcome(True, status, None)
    if status == 410:
        return Outcome(False, status, "HTTP 410 Gone: the receiver asked to stop", gone=True)
    if 300 <= status < 400:
        return Outcome(False, status, f"HTTP {status}: a redirect (not followed)")
    return Outcome(False, status, f"HTTP {status}")


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"User-Agent": f"ctm-pbx/{__version__}"},
        connector=aiohttp.TCPConnector(limit_per_host=4),
    )


def _load(
    db,  # noqa: ANN001 - the reader's connection
    destination: str,
    with_visits: bool,
    now: str,
) -> tuple[str | None, list[outbox.Delivery], dict[int, dict | None]]:
    """One read per round: whether the destination is disabled, its next events, and
    the calls (as ``calls show --json``, None: not in the call log) of the first
    ``RENDER`` of them due now and not sent yet; for GA4 with the visit each call is
    attributed to, under ``"visit"`` (not part of the body)."""
    reason = outbox.disabled(db, destination)
    if reason:
        return reason, [], {}
    batch = outbox.due(db, destination, BATCH)
    calls: dict[int, dict | None] = {}
    for d in batch:
        if d.next_attempt_at > now or len(calls) >= RENDER:
            break  # the round stops there
        if d.payload is None and d.call_id is not None and d.call_id not in calls:
            call = calls[d.call_id] = call_store.get_call(db, d.call_id)
            if call is not None and with_visits:
                visit_id = call.get("visit_id")
                call["visit"] = visitor_store.get_visit(db, visit_id) if visit_id else None
    return None, batch, calls


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR]
