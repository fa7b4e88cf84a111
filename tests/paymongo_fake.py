"""PayMongo, as far as the edge uses it, on 127.0.0.1 (this machine cannot reach the real one): the part of its
documented REST API for dynamic QR Ph (create a Payment Intent, create a `qrph` Payment Method, attach it,
cancel; HTTP Basic with the secret key; amounts in centavos, at least 2000; errors as `{"errors": [{"code",
"detail", "source"}]}`), and its webhooks (`payment.paid`, `payment.failed`, `qrph.expired` Event resources,
signed in the `Paymongo-Signature` header as documented: `t=<time>,te=<HMAC-SHA256 of t.body, hex>,li=`).

`pay(intent)` plays the driver paying with their bank app: the intent succeeds and the signed webhook goes to
the edge. `stop()` / `start()` take it off the network and back (same port)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time

import httpx
import segno
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge.billing.paymongo import signature_header

SECRET_KEY = "sk_test_sitekeeper0000000000000000"
WEBHOOK_SECRET = "whsk_test_sitekeeper000000000000000"


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                            for _ in range(24))


def _error(status: int, code: str, detail: str, attribute: str | None = None) -> JSONResponse:
    error: dict = {"code": code, "detail": detail}
    if attribute:
        error["source"] = {"pointer": attribute, "attribute": attribute}
    return JSONResponse({"errors": [error]}, status_code=status)


class FakePayMongo:
    def __init__(self, port: int):
        self.port = port
        self.intents: dict[str, dict] = {}
        self.methods: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, JSON body)
        self.webhook_url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self.app = Starlette(routes=[
            Route("/v1/payment_intents", self._create_intent, methods=["POST"]),
            Route("/v1/payment_intents/{id}", self._get_intent, methods=["GET"]),
            Route("/v1/payment_intents/{id}/attach", self._attach, methods=["POST"]),
            Route("/v1/payment_intents/{id}/cancel", self._cancel, methods=["POST"]),
            Route("/v1/payment_methods", self._create_method, methods=["POST"]),
        ])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakePayMongo:
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task
            self._server = None

    # -- the API -------------------------------------------------------------------------------------------
    async def _body(self, request: Request) -> tuple[dict | None, JSONResponse | None]:
        auth = request.headers.get("authorization", "")
        want = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
        if auth != want:
            return None, _error(401, "authentication_failed", "The API key is invalid.")
        try:
            body = await request.json() if request.method == "POST" else {}
        except ValueError:
            return None, _error(400, "parameter_invalid", "The request body is not valid JSON.")
        self.requests.append((request.method, request.url.path, body))
        if request.method == "POST" and not isinstance((body.get("data") or {}).get("attributes"), dict):
            return None, _error(400, "parameter_required", "data.attributes is required.", "data.attributes")
        return body, None

    async def _intent(self, request: Request) -> tuple[dict | None, dict | None, JSONResponse | None]:
        """(the request's body, the payment intent in its path, or the refusal)."""
        body, refused = await self._body(request)
        if refused:
            return None, None, refused
        intent = self.intents.get(request.path_params["id"])
        if intent is None:
            return None, None, _error(404, "resource_not_found", "No such payment intent.")
        return body, intent, None

    def _resource(self, kind: str, item: dict) -> dict:
        return {"data": {"id": item["id"], "type": kind, "attributes": {k: v for k, v in item.items() if k != "id"}}}

    async def _create_intent(self, request: Request) -> JSONResponse:
        body, refused = await self._body(request)
        if refused:
            return refused
        a = body["data"]["attributes"]
        amount = a.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            return _error(400, "parameter_invalid", "amount must be an integer (centavos).", "amount")
        if amount < 2000:
            return _error(400, "parameter_below_minimum", "amount cannot be less than 2000.", "amount")
        if a.get("currency") != "PHP":
            return _error(400, "parameter_invalid", "currency must be PHP.", "currency")
        if "qrph" not in (a.get("payment_method_allowed") or []):
            return _error(400, "parameter_invalid", "payment_method_allowed must include qrph here.",
                          "payment_method_allowed")
        intent = {"id": _id("pi_"), "amount": amount, "currency": "PHP", "description": a.get("description"),
                  "statement_descriptor": a.get("statement_descriptor"), "status": "awaiting_payment_method",
                  "livemode": False, "client_key": _id("pi_") + "_client_" + _id(""), "next_action": None,
                  "payment_method_allowed": a["payment_method_allowed"], "payments": [],
                  "metadata": a.get("metadata"), "created_at": int(time.time())}
        self.intents[intent["id"]] = intent
        return JSONResponse(self._resource("payment_intent", intent))

    async def _get_intent(self, request: Request) -> JSONResponse:
        _, intent, refused = await self._intent(request)
        if refused:
            return refused
        return JSONResponse(self._resource("payment_intent", intent))

    async def _create_method(self, request: Request) -> JSONResponse:
        body, refused = await self._body(request)
        if refused:
            return refused
        if body["data"]["attributes"].get("type") != "qrph":
            return _error(400, "parameter_invalid", "type is not supported here.", "type")
        method = {"id": _id("pm_"), "type": "qrph", "livemode": False, "metadata": body["data"]["attributes"].get(
            "metadata")}
        self.methods[method["id"]] = method
        return JSONResponse(self._resource("payment_method", method))

    async def _attach(self, request: Request) -> JSONResponse:
        body, intent, refused = await self._intent(request)
        if refused:
            return refused
        if body["data"]["attributes"].get("payment_method") not in self.methods:
            return _error(400, "resource_not_found", "No such payment method.", "payment_method")
        if intent["status"] != "awaiting_payment_method":
            return _error(400, "payment_intent_not_attachable", f"The payment intent is {intent['status']}.")
        payload = f"00020101021228{intent['id']}5303608540{len(str(intent['amount'] / 100))}{intent['amount'] / 100}"
        intent["status"] = "awaiting_next_action"
        intent["next_action"] = {"type": "consume_qr", "code": {
            "id": _id("qr_"), "amount": intent["amount"], "label": intent["description"],
            "image_url": segno.make(payload, error="m").png_data_uri(scale=6, border=2)}}
        return JSONResponse(self._resource("payment_intent", intent))

    async def _cancel(self, request: Request) -> JSONResponse:
        _, intent, refused = await self._intent(request)
        if refused:
            return refused
        if intent["status"] == "succeeded":
            return _error(400, "payment_intent_not_cancellable", "A succeeded payment intent cannot be cancelled.")
        intent["status"] = "cancelled"
        return JSONResponse(self._resource("payment_intent", intent))

    # -- the driver's bank app, and the webhooks -------------------------------------------------------------
    def event(self, kind: str, intent_id: str, amount: int | None = None) -> bytes:
        """The Event resource PayMongo would send (raw JSON bytes)."""
        intent = self.intents[intent_id]
        if kind == "qrph.expired":
            resource = self._resource("payment_intent", intent)["data"]
        else:
            resource = {"id": _id("pay_"), "type": "payment", "attributes": {
                "amount": intent["amount"] if amount is None else amount, "currency": "PHP",
                "description": intent["description"], "status": "paid" if kind == "payment.paid" else "failed",
                "payment_intent_id": intent_id, "fee": 0, "livemode": False, "source": {"type": "qrph"},
                "paid_at": int(time.time()) if kind == "payment.paid" else None}}
        now = int(time.time())
        return json.dumps({"data": {"id": _id("evt_"), "type": "event", "attributes": {
            "type": kind, "livemode": False, "data": resource, "previous_data": {}, "created_at": now,
            "updated_at": now}}}).encode()

    async def send(self, body: bytes, *, t: int | None = None, secret: str = WEBHOOK_SECRET,
                   header: str | None = None) -> httpx.Response:
        """POST `body` to the edge's webhook, signed as PayMongo signs (or with `header` as given)."""
        sig = header if header is not None else signature_header(secret, body, int(time.time()) if t is None else t)
        async with httpx.AsyncClient() as client:
            return await client.post(self.webhook_url, content=body, timeout=10,
                                     headers={"Content-Type": "application/json", "Paymongo-Signature": sig})

    async def pay(self, intent_id: str, amount: int | None = None) -> tuple[httpx.Response, bytes]:
        """The driver pays: the intent succeeds and `payment.paid` goes to the edge. Returns its answer and the
        raw event (to send again)."""
        intent = self.intents[intent_id]
        intent["status"] = "succeeded"
        body = self.event("payment.paid", intent_id, amount)
        return await self.send(body), body
