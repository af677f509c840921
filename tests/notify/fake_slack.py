"""A strict local stand-in for Slack's Web API and incoming webhooks.

Why a fake: Slack cannot run on this machine and tests may only reach 127.0.0.1. To keep
it honest it is strict where Slack is documented to be: the bearer token, the method's
known parameters (unknown ones are refused, so a typo cannot pass; the known ones are
checked against slack-sdk's own method signatures by tests/notify/test_fake_slack.py),
channel IDs where the API needs them (chat.update, conversations.*,
files.completeUploadExternal), Block Kit's published limits (block types, 50 blocks,
header 150 chars, section text 3000, 10 fields of 2000, button text 75, unique action ids)
and every block and the message metadata round-tripped through slack-sdk's models
(``slack_sdk.models``), so a shape the official client cannot express is refused.

Scopes work as Slack's do: the token has a set of OAuth scopes (``scopes=``), every Web API
answer carries them in ``X-OAuth-Scopes`` (and the method's in ``X-Accepted-OAuth-Scopes``),
and a method whose scope the token lacks answers ``missing_scope`` with ``needed`` and
``provided``. A method the fake was told to forget (``forget=``) answers
``unknown_method`` with ``req_method``, as Slack does for a method it does not know.

It records every accepted message in order and can fail on demand: HTTP 500, 429 with
Retry-After, a timeout (no answer), ``invalid_auth``, ``channel_not_found``,
``not_in_channel``, ``account_inactive``, and "lost response" (the message is stored but
the answer never arrives).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.metadata import Metadata

TOKEN = "xoxb-test-0123456789"
CHANNELS = {"ml-alerts": "C0ALERTS01", "ml-oncall": "C0ONCALL01", "fallback": "C0FALLBK01"}
# every scope the agent can use; a token with all of them can do everything
ALL_SCOPES = frozenset({"chat:write", "files:write", "channels:history", "groups:history",
                        "channels:read", "groups:read"})
# the scopes the documented app manifest has always listed: no conversations.list
DOCUMENTED_BEFORE = frozenset({"chat:write", "files:write", "channels:history", "groups:history"})
# Slack's scope per method (public channels; the fake's channels are all public): one of them
SCOPES = {
    "auth.test": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "conversations.history": frozenset({"channels:history"}),
    "conversations.replies": frozenset({"channels:history"}),
    "conversations.list": frozenset({"channels:read"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
}

ALLOWED = {
    "auth.test": set(),
    "chat.postMessage": {
        "channel",
        "text",
        "blocks",
        "thread_ts",
        "unfurl_links",
        "unfurl_media",
        "metadata",
        "attachments",
        "mrkdwn",
    },
    "chat.update": {"channel", "ts", "text", "blocks", "attachments"},
    "conversations.history": {
        "channel",
        "include_all_metadata",
        "limit",
        "oldest",
        "latest",
        "cursor",
    },
    "conversations.replies": {"channel", "ts", "include_all_metadata", "limit", "cursor"},
    "conversations.list": {"types", "exclude_archived", "limit", "cursor"},
    "files.getUploadURLExternal": {"filename", "length", "alt_txt", "snippet_type"},
    "files.completeUploadExternal": {
        "files",
        "channel_id",
        "initial_comment",
        "thread_ts",
        "channels",
    },
}
BLOCK_TYPES = {"header", "section", "divider", "context", "actions", "image"}


class BlockError(ValueError):
    pass


def validate_with_sdk(blocks: list[Any]) -> None:
    """Each block must parse into slack-sdk's model, pass its validation and come back equal:
    a key the official model does not know would be dropped, so it is refused here."""
    for i, block in enumerate(blocks):
        parsed = Block.parse(block)
        if parsed is None:
            raise BlockError(f"blocks[{i}]: slack-sdk cannot parse a block of type "
                             f"{block.get('type')!r}")
        try:
            parsed.validate_json()
            again = parsed.to_dict()  # validates the nested elements too
        except Exception as exc:  # noqa: BLE001 - SlackObjectFormationError and friends
            raise BlockError(f"blocks[{i}]: slack-sdk refuses it: {exc}") from None
        if again != block:
            raise BlockError(f"blocks[{i}]: slack-sdk's model reads it differently: "
                             f"{again} != {block}")


def _text_obj(
    obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        raise BlockError(f"{where}: expected a text object of type {kinds}")
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        raise BlockError(
            f"{where}: text must be 1..{limit} characters, got {len(text) if isinstance(text, str) else text!r}"
        )
    extra = set(obj) - {"type", "text", "emoji", "verbatim"}
    if extra:
        raise BlockError(f"{where}: unknown keys {sorted(extra)}")


def validate_blocks(blocks: Any) -> None:
    """Block Kit's published limits; raises BlockError naming the first violation."""
    if not isinstance(blocks, list) or not blocks:
        raise BlockError("blocks must be a non-empty list")
    if len(blocks) > 50:
        raise BlockError(f"at most 50 blocks, got {len(blocks)}")
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            raise BlockError(f"{where}: unknown block type {kind!r}")
        if kind == "header":
            _text_obj(block.get("text"), f"{where}.text", 150, ("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                raise BlockError(f"{where}: a section needs text or fields")
            if "text" in block:
                _text_obj(block["text"], f"{where}.text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                raise BlockError(f"{where}.fields: at most 10, got {len(fields)}")
            for j, f in enumerate(fields):
                _text_obj(f, f"{where}.fields[{j}]", 2000)
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                raise BlockError(f"{where}.elements: 1..10, got {len(elements)}")
            for j, e in enumerate(elements):
                _text_obj(e, f"{where}.elements[{j}]", 3000)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                raise BlockError(f"{where}.elements: 1..25, got {len(elements)}")
            ids = [e.get("action_id") for e in elements]
            if len(set(ids)) != len(ids):
                raise BlockError(f"{where}: action_id values must be unique")
            for j, e in enumerate(elements):
                if e.get("type") != "button":
                    raise BlockError(f"{where}.elements[{j}]: only buttons are expected here")
                _text_obj(e.get("text"), f"{where}.elements[{j}].text", 75, ("plain_text",))
                # a link button has a url; an app's button (Slack actions) an action_id and
                # a value of at most 2000 characters, sent back to the app when pressed
                if "url" not in e:
                    if not e.get("action_id") or len(str(e.get("value", ""))) > 2000:
                        raise BlockError(f"{where}.elements[{j}]: a button without a url "
                                         "needs an action_id (value: at most 2000 chars)")
                    continue
                url = e.get("url", "")
                if (
                    not isinstance(url, str)
                    or len(url) > 3000
                    or not url.startswith(("http://", "https://"))
                ):
                    raise BlockError(f"{where}.elements[{j}].url: invalid URL")
        extra = set(block) - {"type", "text", "fields", "elements", "block_id", "accessory"}
        if extra:
            raise BlockError(f"{where}: unknown keys {sorted(extra)}")
    validate_with_sdk(blocks)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    metadata: dict[str, Any] | None
    updates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Failure:
    mode: str  # "500" | "429" | "timeout" | "lost_response" | or one of _ERROR_MODES
    methods: set[str] | None = None  # None: every method
    retry_after: int = 1
    remaining: int | None = None  # None: until cleared


# answers Slack gives with HTTP 200 and ok=false
_ERROR_MODES = ("invalid_auth", "channel_not_found", "not_in_channel", "account_inactive",
                "token_revoked", "is_archived", "invalid_blocks", "cant_update_message")


class FakeSlack:
    def __init__(self, *, scopes: frozenset[str] = ALL_SCOPES,
                 forget: set[str] | None = None) -> None:
        self.scopes = frozenset(scopes)
        self.forget = set(forget or ())  # methods answered with unknown_method
        self.messages: list[Message] = []
        self.webhook_posts: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refused: list[tuple[str, str]] = []
        self.failure: Failure | None = None
        self.hang_seconds = 30.0
        self._ts = itertools.count(1)
        # Slack's ts is the epoch second of posting; tests on a real clock set time.time()
        self.ts_base = 1790000000
        self._uploads: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control --------------------------------------------------------------------------
    def fail(
        self,
        mode: str,
        methods: set[str] | None = None,
        retry_after: int = 1,
        times: int | None = None,
    ) -> None:
        self.failure = Failure(mode, methods, retry_after, times)

    def recover(self) -> None:
        self.failure = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXX"

    def delete(self, ts: str) -> None:
        """A person deletes a message (and with it, its thread)."""
        self.messages = [m for m in self.messages if m.ts != ts and m.thread_ts != ts]

    def top_level(self) -> list[Message]:
        return [m for m in self.messages if m.thread_ts is None]

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == ts]

    # -- server ---------------------------------------------------------------------------
    async def start(self) -> "FakeSlack":
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/services/{a}/{b}/{c}", self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _failure_for(self, method: str) -> web.Response | None:
        f = self.failure
        if f is None or (f.methods is not None and method not in f.methods):
            return None
        if f.remaining is not None:
            if f.remaining <= 0:
                return None
            f.remaining -= 1
        if f.mode == "500":
            return web.Response(status=500, text="internal server error")
        if f.mode == "429":
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(f.retry_after)},
            )
        if f.mode == "timeout":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=504)
        if f.mode in _ERROR_MODES:
            return web.json_response({"ok": False, "error": f.mode})
        return None

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        return params

    def _channel_id(self, value: str, *, need_id: bool) -> str | None:
        if value in CHANNELS.values():
            return value
        if need_id:
            return None
        return CHANNELS.get(value.lstrip("#"))

    async def _api(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        method = request.match_info["method"]
        # Slack names the token's scopes on every Web API answer, and the method's own
        response.headers["X-OAuth-Scopes"] = ",".join(sorted(self.scopes))
        if method in SCOPES:
            response.headers["X-Accepted-OAuth-Scopes"] = ",".join(sorted(SCOPES[method]))
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method not in ALLOWED or method in self.forget:
            self.calls.append((method, {}))
            return web.json_response(
                {"ok": False, "error": "unknown_method", "req_method": method}, status=404
            )
        if request.headers.get("Authorization", "") == "":
            return web.json_response({"ok": False, "error": "not_authed"})
        if request.headers["Authorization"] != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        params = await self._params(request)
        self.calls.append((method, params))
        needed = SCOPES[method]
        if needed and not needed & self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope",
                                      "needed": ",".join(sorted(needed)),
                                      "provided": ",".join(sorted(self.scopes))})
        unknown = set(params) - ALLOWED[method] - {"token"}
        if unknown:
            self.refused.append((method, f"unknown parameters {sorted(unknown)}"))
            return web.json_response(
                {"ok": False, "error": "invalid_arguments", "unknown": sorted(unknown)}
            )
        lost = (
            self.failure is not None
            and self.failure.mode == "lost_response"
            and (self.failure.methods is None or method in self.failure.methods)
            and self.failure.remaining != 0
        )
        if not lost:
            failed = await self._failure_for(method)
            if failed is not None:
                return failed
        handler = getattr(self, "_m_" + method.replace(".", "_"))
        try:
            doc = handler(params)
        except BlockError as exc:
            self.refused.append((method, str(exc)))
            return web.json_response({"ok": False, "error": "invalid_blocks", "detail": str(exc)})
        except KeyError as exc:
            self.refused.append((method, f"missing {exc}"))
            return web.json_response({"ok": False, "error": f"missing_{exc.args[0]}"})
        if lost:
            assert self.failure is not None
            if self.failure.remaining is not None:
                self.failure.remaining -= 1
            await asyncio.sleep(
                self.hang_seconds
            )  # processed, but the answer never arrives in time
        return web.json_response(doc)

    def _err(self, error: str) -> dict[str, Any]:
        return {"ok": False, "error": error}

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://mlwarden-test.slack.com/", "team": "mlwarden test",
                "user": "mlwarden", "team_id": "T0TEST0001", "user_id": "U0MLWARDEN",
                "bot_id": "B0MLWARDEN", "is_enterprise_install": False}

    @staticmethod
    def _blocks(p: dict[str, Any]) -> Any:
        """The call's Block Kit blocks (sent as JSON text or a list), validated; None if absent."""
        blocks = p.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is not None:
            validate_blocks(blocks)
        return blocks

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(p["channel"]), need_id=False)
        if channel is None:
            return self._err("channel_not_found")
        blocks = self._blocks(p)
        text = p.get("text") or ""
        if not text and not blocks:
            return self._err("no_text")
        if len(text) > 40000:
            return self._err("msg_too_long")
        thread_ts = p.get("thread_ts")
        if thread_ts and not any(m.ts == thread_ts and m.channel == channel for m in self.messages):
            return self._err("thread_not_found")
        metadata = p.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata is not None:
            # what slack-sdk's Metadata model would send, and nothing else
            if not isinstance(metadata, dict) or set(metadata) != {"event_type", "event_payload"}:
                return self._err("invalid_metadata_format")
            if Metadata(**metadata).to_dict() != metadata:
                return self._err("invalid_metadata_format")
        ts = f"{self.ts_base}.{next(self._ts):06d}"
        self.messages.append(Message(channel, ts, text, blocks, thread_ts, metadata))
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(p["channel"]), need_id=True)
        if channel is None:
            return self._err("channel_not_found")
        blocks = self._blocks(p)
        for m in self.messages:
            if m.channel == channel and m.ts == p["ts"]:
                m.updates.append({"text": p.get("text"), "blocks": blocks})
                return {"ok": True, "channel": channel, "ts": m.ts, "text": p.get("text")}
        return self._err("message_not_found")

    def _history(self, msgs: list[Message], include_meta: bool) -> list[dict[str, Any]]:
        out = []
        for m in msgs:
            doc: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if m.thread_ts:
                doc["thread_ts"] = m.thread_ts
            if include_meta and m.metadata:
                doc["metadata"] = m.metadata
            out.append(doc)
        return out

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(p["channel"]), need_id=True)
        if channel is None:
            return self._err("channel_not_found")
        meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        oldest = float(p.get("oldest") or 0)
        msgs = [
            m
            for m in reversed(self.messages)
            if m.channel == channel and m.thread_ts is None and float(m.ts) >= oldest
        ]
        return {
            "ok": True,
            "messages": self._history(msgs[: int(p.get("limit", 100))], meta),
            "has_more": False,
        }

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(str(p["channel"]), need_id=True)
        if channel is None:
            return self._err("channel_not_found")
        meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        msgs = [
            m
            for m in self.messages
            if m.channel == channel and (m.ts == p["ts"] or m.thread_ts == p["ts"])
        ]
        if not msgs:
            return self._err("thread_not_found")
        return {"ok": True, "messages": self._history(msgs, meta), "has_more": False}

    def _m_conversations_list(self, p: dict[str, Any]) -> dict[str, Any]:
        types = set(str(p.get("types") or "public_channel").split(","))
        if "private_channel" in types and "groups:read" not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "groups:read",
                    "provided": ",".join(sorted(self.scopes))}
        return {
            "ok": True,
            "channels": [{"id": cid, "name": name} for name, cid in CHANNELS.items()],
            "response_metadata": {"next_cursor": ""},
        }

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        length = int(p["length"])
        file_id = f"F{len(self._uploads) + 1:08d}"
        self._uploads[file_id] = {"filename": p["filename"], "length": length, "data": None}
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            "file_id": file_id,
        }

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(p["files"]) if isinstance(p["files"], str) else p["files"]
        channel_id = p.get("channel_id")
        if channel_id and channel_id not in CHANNELS.values():
            return self._err("invalid_channel")
        for f in files:
            up = self._uploads.get(f["id"])
            if up is None or up["data"] is None:
                return self._err("file_not_found")
            self.files.append(
                {
                    **up,
                    "title": f.get("title"),
                    "channel": channel_id,
                    "thread_ts": p.get("thread_ts"),
                }
            )
        return {"ok": True, "files": [{"id": f["id"]} for f in files]}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        up = self._uploads.get(file_id)
        data = await request.read()
        if up is None:
            return web.Response(status=404)
        if len(data) != up["length"]:
            return web.Response(status=400, text=f"length {len(data)} != declared {up['length']}")
        up["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _webhook(self, request: web.Request) -> web.Response:
        failed = await self._failure_for("webhook")
        if failed is not None:
            if self.failure and self.failure.mode == "invalid_auth":
                return web.Response(status=403, text="invalid_token")
            return failed
        if request.match_info["c"] != "XXXX":
            return web.Response(status=404, text="no_service")
        body = await request.json()
        unknown = set(body) - {
            "text",
            "blocks",
            "unfurl_links",
            "unfurl_media",
            "attachments",
            "response_type",
        }
        if unknown:
            return web.Response(status=400, text="invalid_payload")
        try:
            if body.get("blocks") is not None:
                validate_blocks(body["blocks"])
        except BlockError as exc:
            self.refused.append(("webhook", str(exc)))
            return web.Response(status=400, text="invalid_blocks")
        if not body.get("text") and not body.get("blocks"):
            return web.Response(status=400, text="no_text")
        self.webhook_posts.append(body)
        return web.Response(text="ok")
