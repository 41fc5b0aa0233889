"""A small AMI client on panoramisk: call events in, a few actions out.

panoramisk keeps the connection; this wrapper adds what AGI mode needs: an event
filter set on every login so that Asterisk sends only the events we use, a hook
run after each login (reconciliation), the live channel list, and a clean close
that stops the reconnecting.

Reconnecting: panoramisk tries again every ``reconnect_timeout`` seconds and logs
each failure (170 lines in 3 minutes of AMI down). Here the attempts back off
exponentially (``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``, reset by a login, not
by a TCP connect: a server that accepts and drops backs off too), and only changes
of state are logged: connected, lost, unreachable (once per outage), back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ctm_pbx.adapters.ari_client import Backoff
from ctm_pbx.core.model import AmiSettings

log = logging.getLogger(__name__)
# panoramisk's own lines (one per failed attempt): warnings and worse only
_PANORAMISK_LOG = logging.getLogger(f"{__name__}.panoramisk")
_PANORAMISK_LOG.setLevel(logging.WARNING)
_SECRET = re.compile(r"(?i)(['\"]?secret['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+")


class _NoSecret(logging.Filter):
    """panoramisk logs an action it failed to send with its fields: a Login's secret too."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _SECRET.sub(r"\1***", text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_PANORAMISK_LOG.addFilter(_NoSecret())
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 5.0  # AMI back within this of answering again

CALL_EVENTS = ("DialBegin", "DialEnd", "Hangup")


_EOL = "\r\n"
_FAST_PREFIXES = tuple(f"Event: {name}{_EOL}" for name in CALL_EVENTS)
_UNIQUEID = f"{_EOL}Uniqueid: "  # not DestUniqueid


class _FastEventProtocol(AMIProtocol):
    """panoramisk's protocol, with a short path for the call events we follow.

    A busy PBX sends several of them per call; panoramisk builds a case-insensitive
    ``Message`` and matches every registered pattern for each (about 0.1 ms).
    Here those events become plain dicts handed straight to the client, and only
    for the channels it follows (``wants``: the hangup of every phone leg, and
    every event of calls ctm-pbx does not track, are dropped unparsed); all else
    (responses, other events) goes through panoramisk as usual.
    """

    def data_received(self, data: bytes) -> None:
        if self.version is None:  # the banner: panoramisk's own path
            return super().data_received(data)
        text = data.decode(getattr(self, "encoding", "utf-8"), "ignore")
        if self.queue:
            text = self.queue.popleft() + text
        blocks = text.split(_EOL + _EOL)
        self.queue.append(blocks.pop())  # an incomplete message waits for more data
        for block in blocks:
            block = block.strip()
            if block.startswith("Asterisk Call Manager/"):  # the banner has one EOL only
                block = block.partition(_EOL)[2]
            if block.startswith(_FAST_PREFIXES) and "ActionID: " not in block:
                at = block.find(_UNIQUEID)
                if at >= 0:
                    end = block.find(_EOL, at + len(_UNIQUEID))
                    uniqueid = block[at + len(_UNIQUEID) : end if end >= 0 else None]
                    if not self.factory.wants(uniqueid):
                        continue
                self.factory.fast_event(
                    dict(line.split(": ", 1) for line in block.split(_EOL) if ": " in line)
                )
                continue
            message = Message.from_line(block)
            if message is not None:
                self.handle_message(message)


class _Manager(Manager):
    """panoramisk's Manager that stops reconnecting once closed, says why a login
    failed, and reconnects with a backoff (``on_retry`` hears of each failed attempt)."""

    closing = False
    fast_event: Callable[[dict], None] = staticmethod(lambda event: None)
    wants: Callable[[str], bool] = staticmethod(lambda uniqueid: True)
    on_retry: Callable[[BaseException | None, float], None] = staticmethod(lambda exc, s: None)
    backoff: Backoff | None = None

    def connect(self, *args, **kwargs):  # type: ignore[override]
        if self.closing:
            return None
        return super().connect(*args, **kwargs)

    def _again(self, exc: BaseException | None, *, failed: bool = True) -> None:
        """Connect again after the next backoff delay (``failed``: this attempt failed,
        rather than a logged-in connection ending)."""
        if self.closing:
            return
        if self.backoff is None:
            self.backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        delay = self.backoff.delay()
        if failed:
            self.on_retry(exc, delay)
        self.loop.call_later(delay, self.connect)

    def connection_made(self, f):  # type: ignore[override]
        if f.cancelled():
            return
        exc = f.exception()
        if not isinstance(exc, OSError):
            return super().connection_made(f)
        # panoramisk would log this attempt and try again in reconnect_timeout
        if getattr(self, "protocol", None):
            self.protocol.close()
        self._connected = False
        self._again(exc)
        return None

    def connection_lost(self, exc):  # type: ignore[override]
        # panoramisk's, without its two lines per loss and with the backoff
        self._connected = False
        was_in, self.authenticated = self.authenticated, False
        self.loop.call_soon(self.on_disconnect, self, exc)
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self._again(exc if isinstance(exc, BaseException) else None, failed=not was_in)

    def login(self, future):  # type: ignore[override]
        ok = super().login(future)
        if ok:
            if self.backoff is not None:
                self.backoff.reset()
        else:
            resp = future.result()
            log.error("AMI login refused: %s", getattr(resp, "message", resp))
        return ok


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        on_event: Callable[[Message], None],
        on_login: Callable[[], Awaitable[None]] | None = None,
        wants: Callable[[str], bool] | None = None,
    ) -> None:
        """``wants(uniqueid)``: whether the call events of that channel are worth parsing."""
        self.settings = settings
        self.on_event = on_event
        self.wants = wants
        self.on_login = on_login
        self.connected = asyncio.Event()
        self.events_received = 0
        self.logins = 0  # successful logins (all but the first are reconnections)
        self.failed_attempts = 0  # connection attempts that failed, or were dropped
        self._unreachable_since: float | None = None  # loop time of the outage's start
        self._manager: _Manager | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        s = self.settings
        self._manager = _Manager(
            loop=asyncio.get_running_loop(),
            host=s.host,
            port=s.port,
            username=s.username,
            secret=s.secret,
            events="call",
            ping_delay=10,
            reconnect_timeout=1,
            on_login=self._logged_in,
            on_disconnect=self._disconnected,
            protocol_factory=_FastEventProtocol,
            log=_PANORAMISK_LOG,
        )
        self._manager.backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        self._manager.on_retry = self._retrying
        self._manager.fast_event = self._dispatch_fast
        if self.wants is not None:
            self._manager.wants = self.wants
        for name in CALL_EVENTS:  # events that miss the short path (e.g. split oddly)
            self._manager.register_event(name, self._dispatch)
        self._manager.connect()

    def _dispatch(self, manager: Manager, event: Message) -> None:
        self._dispatch_fast(event)  # a Message reads like the dict of the short path

    def _dispatch_fast(self, event: dict | Message) -> None:
        self.events_received += 1
        try:
            self.on_event(event)
        except Exception:
            log.exception("AMI event %s: handler failed", event.get("Event"))

    def _logged_in(self, manager: Manager) -> None:
        task = asyncio.ensure_future(self._after_login())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_login(self) -> None:
        assert self._manager is not None
        # Only the events we use: the rest of a busy PBX's event stream costs CPU on both sides.
        pattern = "|".join(CALL_EVENTS)
        try:
            await self._manager.send_action(
                {"Action": "Filter", "Operation": "Add", "Filter": f"Event: ({pattern})\r"}
            )
        except Exception as exc:  # an unfiltered stream still works
            log.warning("AMI event filter not set: %s", exc)
        self.connected.set()
        self.logins += 1
        since, self._unreachable_since = self._unreachable_since, None
        if since is None:
            log.info("AMI connected to %s:%d", self.settings.host, self.settings.port)
        else:
            log.warning(
                "AMI connected to %s:%d again after %.1f s (%d failed attempts)",
                self.settings.host,
                self.settings.port,
                asyncio.get_running_loop().time() - since,
                self.failed_attempts,
            )
        if self.on_login is not None:
            try:
                await self.on_login()
            except Exception:
                log.exception("AMI login hook failed")

    def _disconnected(self, manager: Manager, exc: Exception | None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and self._manager is not None and not self._manager.closing:
            log.warning("AMI connection lost; reconnecting")

    def _retrying(self, exc: BaseException | None, delay: float) -> None:
        """A connection attempt failed (or was dropped before its login): the first of
        an outage is logged, the rest counted."""
        self.failed_attempts += 1
        if self._unreachable_since is None:
            self._unreachable_since = asyncio.get_running_loop().time()
            why = f"{type(exc).__name__}: {exc}" if exc else "closed before login"
            log.warning(
                "AMI at %s:%d not reachable (%s); retrying with backoff up to %.0f s"
                " (logged again when it is back)",
                self.settings.host,
                self.settings.port,
                why,
                RETRY_MAX_S,
            )
        else:
            log.debug("AMI still not reachable; again in %.2f s", delay)

    async def live_channels(self) -> set[str] | None:
        """Unique ids of the channels Asterisk has now; ``None`` when AMI is not connected."""
        if self._manager is None or not self.connected.is_set():
            return None
        resp = await asyncio.wait_for(
            self._manager.send_action({"Action": "CoreShowChannels"}), timeout=10
        )
        messages = resp if isinstance(resp, list) else [resp]
        return {
            m["Uniqueid"]
            for m in messages
            if m.get("Event") == "CoreShowChannel" and m.get("Uniqueid")
        }

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.closing = True
            self._manager.close()
        self.connected.clear()
        for task in list(self._tasks):
            task.cancel()
