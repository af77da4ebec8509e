#!/usr/bin/env python3
"""Test peer: a fake of PayPal REST (Orders v2, Payments v2, Webhooks v1) for cinegate's tests.

Written from PayPal's published contract as summarised in shared/reference/payments.md
(OAuth client credentials, Orders v2 create/get/capture, Payments v2 refund, webhook
delivery and /v1/notifications/verify-webhook-signature). Python 3.11 stdlib only.

    python3 paypal_fake.py --client-id ID --client-secret S --webhook-id WH [--exit-with-stdin]

Binds 127.0.0.1:0 and prints one line {"port": N}. State lives in memory.

API (everything but /checkoutnow needs "Authorization: Bearer <token issued here>"):
  POST /v1/oauth2/token                      Basic id:secret, grant_type=client_credentials
  POST /v2/checkout/orders                   PayPal-Request-Id replays (200, same order)
  GET  /v2/checkout/orders/{id}
  POST /v2/checkout/orders/{id}/capture      PayPal-Request-Id; Prefer: return=representation
  POST /v2/payments/captures/{id}/refund     PayPal-Request-Id
  GET  /v2/payments/captures/{id}, /v2/payments/refunds/{id}
  POST /v1/notifications/verify-webhook-signature
  GET  /checkoutnow?token=ORDER              the payer's browser (behaviour "payer_action")
Errors: {"name","message","debug_id","details":[{"field","location","issue","description"}],
"links"}; the token endpoint answers {"error","error_description"}.
A replayed PayPal-Request-Id (create, capture: per order; refund: per capture) answers 200 with
the resource's *current* state, whatever the new body says. Capture without
"Prefer: return=representation" answers id, status, payment_source, purchase_units[].payments,
payer, links; refunds always answer the full refund.

Control (JSON):
  POST /_control/behaviour  merged into the behaviour (keys in DEFAULT_BEHAVIOUR; an
                            unknown key or a bad value is a 400); GET reads it
  POST /_control/webhook    {"url","event_type","order_id","event_id"?,"tamper"?,"apply"?,
                            "without_custom_id"?}
                            builds an event (PAYMENT.CAPTURE.COMPLETED|PENDING|DECLINED|DENIED:
                            the capture + supplementary_data.related_ids.order_id;
                            PAYMENT.CAPTURE.REFUNDED|REVERSED: a refund, links up -> capture;
                            CHECKOUT.ORDER.*: the order), moves the fake's state to match
                            unless "apply": false (REFUNDED refunds the remainder, as from the
                            dashboard; "without_custom_id": true leaves custom_id out of the
                            resource, as such a refund may come), POSTs it with the PAYPAL-* headers and answers
                            {"status","body" (ours),"event_id","transmission_id","event" (as
                            signed),"delivered"? (what went out when "tamper": true)}. A known
                            event_id re-sends the same bytes in a new transmission (a replay).
                            verify-webhook-signature says SUCCESS only for a transmission it
                            sent, our --webhook-id, the same sig/time/cert_url/auth_algo and
                            webhook_event embedding verbatim the bytes it signed (as PayPal
                            checks them: key order, spacing and escapes kept); state's
                            "verifications" lists each check.
  POST /_control/expire_tokens  every issued access token is refused from now on
  GET  /_control/state      orders, counters, request ids, behaviour, webhooks sent
  POST /_control/reset      forget orders/captures/refunds/webhooks/counters, default
                            behaviour (issued tokens stay valid)
"""

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
import urllib.error
import urllib.request
import uuid
import zlib
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlsplit

import fakehttp
from fakehttp import add_query

TOKEN_LIFETIME = 32400
REQUEST_ID_MAX = 108
STRING_MAX = 127
WEBHOOK_POST_TIMEOUT = 20
APP_ID = "APP-80W284485P519543T"
SCOPE = ("https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund "
         "https://uri.paypal.com/services/payments/realtimepayment openid "
         "https://uri.paypal.com/services/applications/webhooks")
PAYER_ID = "PAYER1"
MERCHANT_ID = "MERCHANT0001"
# PayPal's REST currency list (reference §1 "Currency"); KRW is not on it.
CURRENCIES = set("AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD NOK PHP PLN GBP RUB SGD SEK "
                 "CHF THB USD".split())
ZERO_DECIMAL = {"JPY", "HUF", "TWD"}
VALUE_RE = re.compile(r"^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$")
NUMERIC_RE = re.compile(r"^[0-9]+([.][0-9]+)?$")

DEFAULT_BEHAVIOUR = {
    "payer_action": "approve",   # /checkoutnow: "approve" | "cancel"
    "decline_capture": False,    # capture -> 422 INSTRUMENT_DECLINED (order stays APPROVED)
    "capture_status": "COMPLETED",  # or "PENDING" (status_details.reason PENDING_REVIEW)
    "amount_override": None,     # capture reports this value instead of the order's
    "currency_override": None,   # capture reports this currency instead of the order's
    **fakehttp.FAILURE_BEHAVIOUR,
}

BEHAVIOUR_CHECKS = {
    "payer_action": lambda v: v in ("approve", "cancel"),
    "decline_capture": lambda v: isinstance(v, bool),
    "capture_status": lambda v: v in ("COMPLETED", "PENDING"),
    "amount_override": lambda v: v is None or (isinstance(v, str) and NUMERIC_RE.match(v) is not None),
    "currency_override": lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[A-Z]{3}", v) is not None),
    **fakehttp.FAILURE_CHECKS,
}


def now_iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def rand_id(n=17, alphabet=string.ascii_uppercase + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def debug_id():
    return secrets.token_hex(7)


def decimals_of(value):
    return len(value.split(".", 1)[1]) if "." in value else 0


def fmt_amount(d, currency):
    if currency in ZERO_DECIMAL:
        return str(int(d.quantize(Decimal("1"))))
    return str(d.quantize(Decimal("0.01")))


def money(currency, value):
    return {"currency_code": currency, "value": value}


class State(fakehttp.FakeState):
    DEFAULTS = DEFAULT_BEHAVIOUR
    CHECKS = BEHAVIOUR_CHECKS

    def __init__(self, client_id, client_secret, webhook_id):
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.tokens = {}  # access_token -> expires_at (unix)
        self.sig_key = secrets.token_bytes(32)
        super().__init__()

    def reset(self):
        super().reset()
        self.orders = {}     # id -> order dict (keys starting "_" are private)
        self.captures = {}   # id -> {"capture": dict (shared with the order), "order_id", "refunds": [ids]}
        self.refunds = {}    # id -> {"refund": dict, "capture_id"}
        self.idem = {}       # (operation, resource, request id) -> resource id
        self.events = {}     # event id -> the exact body bytes first sent
        self.transmissions = {}  # transmission id -> {raw, sha256, event, time, sig, cert_url}
        self.verifications = []  # [{transmission_id, verbatim, status}] per verify call
        self.webhooks = []   # [{event_id, event_type, transmission_id, url, status}]
        self.request_ids = []
        self.counts = {"token_calls": 0, "create_calls": 0, "get_calls": 0, "capture_calls": 0,
                       "refund_calls": 0, "verify_calls": 0, "injected_failures": 0}


STATE: State


class ApiError(Exception):
    def __init__(self, status, body, headers=()):
        super().__init__(body.get("message") or body.get("error"))
        self.status = status
        self.body = body
        self.headers = headers


NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: ("AUTHENTICATION_FAILURE",
          "Authentication failed due to invalid authentication credentials or a missing Authorization header."),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    405: ("METHOD_NOT_SUPPORTED", "The server does not implement the requested HTTP method."),
    409: ("RESOURCE_CONFLICT", "The server has detected a conflict while processing this request."),
    422: ("UNPROCESSABLE_ENTITY",
          "The requested action could not be performed, semantically incorrect, or failed business validation."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
}


def pp_error(status, issue=None, description=None, field=None, value=None, location="body", links=None):
    name, message = NAMES[status]
    details = []
    if issue:
        d = {}
        if field is not None:
            d["field"] = field
        if value is not None:
            d["value"] = value
        if field is not None:
            d["location"] = location
        d["issue"] = issue
        d["description"] = description or issue
        details.append(d)
    body = {"name": name, "message": message, "debug_id": debug_id(), "details": details,
            "links": links or [{"href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue or name}",
                                "rel": "information_link", "method": "GET"}]}
    return ApiError(status, body)


def invalid(issue, field, description, value=None):
    return pp_error(400, issue, description, field=field, value=value)


def unprocessable(issue, description, field=None, value=None, links=None):
    return pp_error(422, issue, description, field=field, value=value, links=links)


def not_found(what="resource"):
    return pp_error(404, "INVALID_RESOURCE_ID",
                    f"Specified {what} ID does not exist. Please check the resource ID and try again.")


# -- amounts ------------------------------------------------------------------------------


def check_amount(amount, field, zero_decimal_issue="DECIMAL_PRECISION"):
    """Validates an {currency_code, value} object; returns (currency, Decimal value)."""
    if not isinstance(amount, dict):
        raise invalid("MISSING_REQUIRED_PARAMETER", field, "A required field / parameter is missing.")
    cc, value = amount.get("currency_code"), amount.get("value")
    if cc is None:
        raise invalid("MISSING_REQUIRED_PARAMETER", f"{field}/currency_code", "A required field / parameter is missing.")
    if value is None:
        raise invalid("MISSING_REQUIRED_PARAMETER", f"{field}/value", "A required field / parameter is missing.")
    if not isinstance(cc, str) or not re.fullmatch(r"[A-Za-z]{3}", cc):
        raise invalid("INVALID_PARAMETER_SYNTAX", f"{field}/currency_code",
                      "The value of a field does not conform to the expected format.", value=str(cc))
    if not isinstance(value, str) or len(value) > 32 or not VALUE_RE.match(value):
        raise invalid("INVALID_PARAMETER_SYNTAX", f"{field}/value",
                      "The value of a field does not conform to the expected format.", value=str(value))
    if cc not in CURRENCIES:
        raise unprocessable("INVALID_CURRENCY_CODE", "Currency code is invalid or is not currently supported. "
                            "Please refer https://developer.paypal.com/docs/api/reference/currency-codes/ "
                            "for list of supported currency codes.", field=f"{field}/currency_code", value=cc)
    places = decimals_of(value)
    if places > 2 or (cc in ZERO_DECIMAL and places > 0):
        raise unprocessable(zero_decimal_issue if cc in ZERO_DECIMAL and places <= 2 else "DECIMAL_PRECISION",
                            "If the currency supports decimals, only two decimal place precision is supported; "
                            f"{cc} supports {0 if cc in ZERO_DECIMAL else 2}.",
                            field=f"{field}/value", value=value)
    d = Decimal(value)
    if d <= 0:
        raise unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", "Must be greater than zero.",
                            field=f"{field}/value", value=value)
    return cc, d


def check_breakdown(amount, field):
    bd = amount.get("breakdown")
    if bd is None:
        return
    if not isinstance(bd, dict):
        raise invalid("INVALID_PARAMETER_SYNTAX", f"{field}/breakdown", "breakdown must be an object")
    total = Decimal(0)
    for key, sign in (("item_total", 1), ("tax_total", 1), ("shipping", 1), ("handling", 1), ("insurance", 1),
                      ("shipping_discount", -1), ("discount", -1)):
        if key in bd:
            cc, d = check_amount(bd[key], f"{field}/breakdown/{key}")
            if cc != amount["currency_code"]:
                raise unprocessable("CURRENCY_MISMATCH", "Currency code should be same for all amounts.",
                                    field=f"{field}/breakdown/{key}/currency_code", value=cc)
            total += sign * d
    if total != Decimal(amount["value"]):
        raise unprocessable("AMOUNT_MISMATCH", "Should equal item_total + tax_total + shipping + handling + "
                            "insurance - shipping_discount - discount.", field=f"{field}/value",
                            value=amount["value"])


def fee_for(currency, value):
    try:
        gross = Decimal(value)
    except InvalidOperation:
        return Decimal(0)
    fixed = Decimal(40) if currency in ZERO_DECIMAL else Decimal("0.49")
    return min(gross, gross * Decimal("0.0349") + fixed)


def check_string(pu, key, field, limit=STRING_MAX):
    if key in pu:
        v = pu[key]
        if not isinstance(v, str) or not v:
            raise invalid("INVALID_PARAMETER_SYNTAX", f"{field}/{key}",
                          "The value of a field does not conform to the expected format.")
        if len(v) > limit:
            raise invalid("INVALID_STRING_MAX_LENGTH", f"{field}/{key}",
                          f"The value of a field is too long (maximum {limit}).", value=v)


def check_url(v, field):
    if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).netloc:
        raise invalid("INVALID_PARAMETER_SYNTAX", field,
                      "The value of a field does not conform to the expected format.", value=str(v))


# -- webhook verification ----------------------------------------------------------------------

JSON_SPACE = re.compile(r"[ \t\n\r]*")


def member_text(text, name):
    """The exact text of member `name` of the JSON object `text` (None when it has none);
    ValueError when `text` is not a JSON object."""
    decoder = json.JSONDecoder()
    i = JSON_SPACE.match(text, 0).end()
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    i = JSON_SPACE.match(text, i + 1).end()
    if text[i:i + 1] == "}":
        return None
    found = None
    while True:
        key, i = decoder.raw_decode(text, i)
        if not isinstance(key, str):
            raise ValueError("a member name is not a string")
        i = JSON_SPACE.match(text, i).end()
        if text[i:i + 1] != ":":
            raise ValueError("':' expected")
        start = JSON_SPACE.match(text, i + 1).end()
        _, i = decoder.raw_decode(text, start)
        if key == name:
            found = text[start:i]
        i = JSON_SPACE.match(text, i).end()
        if text[i:i + 1] == ",":
            i = JSON_SPACE.match(text, i + 1).end()
            continue
        if text[i:i + 1] == "}" and not text[i + 1:].strip(" \t\n\r"):
            return found
        raise ValueError("',' or '}' expected")


# -- rendering (call with the lock held) -----------------------------------------------------


def link(href, rel, method="GET"):
    return {"href": href, "rel": rel, "method": method}


def order_links(o):
    base = STATE.base
    self_href = f"{base}/v2/checkout/orders/{o['id']}"
    links = [link(self_href, "self")]
    if o["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
        rel = "payer-action" if o["_style"] == "experience" else "approve"
        links.append(link(f"{base}/checkoutnow?token={o['id']}", rel))
    if o["status"] in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
        links.append(link(self_href, "update", "PATCH"))
        links.append(link(f"{self_href}/capture", "capture", "POST"))
    return links


def render_order(o, minimal=False):
    full = {k: copy.deepcopy(v) for k, v in o.items() if not k.startswith("_")}
    full["links"] = order_links(o)
    if not minimal:
        return full
    out = {"id": full["id"], "status": full["status"]}
    if "payment_source" in full:
        out["payment_source"] = full["payment_source"]
    out["links"] = full["links"]
    return out


def render_capture_result(o, representation):
    full = render_order(o)
    if representation:
        return full
    out = {"id": full["id"], "status": full["status"]}
    for k in ("payment_source",):
        if k in full:
            out[k] = full[k]
    out["purchase_units"] = [{"reference_id": pu.get("reference_id"), "payments": pu.get("payments", {})}
                             for pu in full["purchase_units"]]
    if "payer" in full:
        out["payer"] = full["payer"]
    out["links"] = full["links"]
    return out


def make_capture(o, status):
    """A capture of order `o` as PayPal would report it now (behaviour overrides applied)."""
    pu = o["purchase_units"][0]
    b = STATE.behaviour
    cc = b["currency_override"] or pu["amount"]["currency_code"]
    value = b["amount_override"] if b["amount_override"] is not None else pu["amount"]["value"]
    cap_id = "CAP-" + rand_id(13)
    t = now_iso()
    gross = money(cc, value)
    fee = fee_for(cc, value)
    try:
        net = Decimal(value) - fee
    except InvalidOperation:
        net = Decimal(0)
    cap = {
        "id": cap_id,
        "status": status,
        "amount": gross,
        "final_capture": True,
        "seller_protection": {"status": "ELIGIBLE",
                              "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"]},
        "seller_receivable_breakdown": {"gross_amount": dict(gross), "paypal_fee": money(cc, fmt_amount(fee, cc)),
                                        "net_amount": money(cc, fmt_amount(net, cc))},
        "links": [link(f"{STATE.base}/v2/payments/captures/{cap_id}", "self"),
                  link(f"{STATE.base}/v2/payments/captures/{cap_id}/refund", "refund", "POST"),
                  link(f"{STATE.base}/v2/checkout/orders/{o['id']}", "up")],
        "create_time": t,
        "update_time": t,
    }
    set_status_details(cap)
    for k in ("custom_id", "invoice_id"):
        if k in pu:
            cap[k] = pu[k]
    return cap


def set_status_details(cap):
    cap.pop("status_details", None)
    if cap["status"] == "PENDING":
        cap["status_details"] = {"reason": "PENDING_REVIEW"}
    elif cap["status"] == "DECLINED":
        cap["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}


def new_capture(o, status):
    """Records a capture on order `o` (the lock is held) and returns it."""
    cap = make_capture(o, status)
    o["purchase_units"][0]["payments"] = {"captures": [cap]}
    STATE.captures[cap["id"]] = {"capture": cap, "order_id": o["id"], "refunds": []}
    o["status"] = "COMPLETED"
    o["update_time"] = cap["create_time"]
    set_payer(o)
    return cap


def set_payer(o):
    if "payer" in o:
        return
    payer = {"name": {"given_name": "John", "surname": "Doe"}, "email_address": "buyer@example.com",
             "payer_id": PAYER_ID, "address": {"country_code": "US"}}
    o["payer"] = payer
    o["payment_source"] = {"paypal": {"email_address": payer["email_address"], "account_id": PAYER_ID,
                                      "account_status": "VERIFIED", "name": dict(payer["name"]),
                                      "address": {"country_code": "US"}}}


def refunded_total(c):
    total = Decimal(0)
    for rid in c["refunds"]:
        r = STATE.refunds[rid]["refund"]
        if r["status"] in ("COMPLETED", "PENDING"):
            total += Decimal(r["amount"]["value"])
    return total


def new_refund(cap_id, amount_value=None, extra=None):
    """Records a refund of `amount_value` (None = the remainder) on a capture; lock held."""
    c = STATE.captures[cap_id]
    cap = c["capture"]
    cc = cap["amount"]["currency_code"]
    try:
        captured = Decimal(cap["amount"]["value"])
    except InvalidOperation:
        captured = Decimal(0)
    remaining = captured - refunded_total(c)
    amount = Decimal(amount_value) if amount_value is not None else remaining
    ref_id = "REF-" + rand_id(13)
    t = now_iso()
    value = fmt_amount(amount, cc)
    refund = {
        "id": ref_id,
        "status": "COMPLETED",
        "amount": money(cc, value),
        "seller_payable_breakdown": {
            "gross_amount": money(cc, value),
            "paypal_fee": money(cc, fmt_amount(Decimal(0), cc)),
            "net_amount": money(cc, value),
            "total_refunded_amount": money(cc, fmt_amount(refunded_total(c) + amount, cc)),
        },
        "create_time": t,
        "update_time": t,
        "links": [link(f"{STATE.base}/v2/payments/refunds/{ref_id}", "self"),
                  link(f"{STATE.base}/v2/payments/captures/{cap_id}", "up")],
    }
    for k in ("invoice_id", "custom_id"):
        if k in cap:
            refund[k] = cap[k]
    refund.update(extra or {})
    STATE.refunds[ref_id] = {"refund": refund, "capture_id": cap_id}
    c["refunds"].append(ref_id)
    cap["status"] = "REFUNDED" if remaining - amount <= 0 else "PARTIALLY_REFUNDED"
    cap["update_time"] = t
    return refund


# -- HTTP ------------------------------------------------------------------------------------


class Handler(fakehttp.Handler):
    server_version = "FakePayPal/1.0"
    json_type = "application/json"
    json_ascii = True
    html_title = "PayPal (fake)"

    def json_headers(self, body):
        return (("Paypal-Debug-Id", body.get("debug_id", debug_id()) if isinstance(body, dict) else debug_id()),)

    def json_body(self, required=True):
        raw = self.body
        if not raw.strip():
            if required:
                raise invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not well formed.")
            return {}
        try:
            v = json.loads(raw)
        except ValueError:
            raise invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not well formed.")
        if not isinstance(v, dict):
            raise invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not well formed.")
        return v

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def api(self, path, url):
        if path == "/checkoutnow":
            if self.command != "GET":
                raise pp_error(405)
            return self.checkoutnow(dict(parse_qsl(url.query)))
        route, args, counter = self.route(path)
        with STATE.lock:
            if counter:
                STATE.counts[counter] += 1
            rid = self.headers.get("PayPal-Request-Id")
            if rid is not None:
                STATE.request_ids.append(rid)
        if self.inject_failure(counter):
            return
        route(*args)

    def error_answer(self, e):
        if isinstance(e, ApiError):
            return e.status, e.body, e.headers
        return super().error_answer(e)

    def bug_body(self, e):
        return {"name": "FAKE_BUG", "message": repr(e), "debug_id": debug_id(), "details": []}

    def route(self, path):
        m = self.command
        table = [
            (r"/v1/oauth2/token", "POST", self.token, "token_calls"),
            (r"/v2/checkout/orders", "POST", self.create_order, "create_calls"),
            (r"/v2/checkout/orders/([^/]+)", "GET", self.get_order, "get_calls"),
            (r"/v2/checkout/orders/([^/]+)/capture", "POST", self.capture, "capture_calls"),
            (r"/v2/payments/captures/([^/]+)/refund", "POST", self.refund, "refund_calls"),
            (r"/v2/payments/captures/([^/]+)", "GET", self.get_capture, None),
            (r"/v2/payments/refunds/([^/]+)", "GET", self.get_refund, None),
            (r"/v1/notifications/verify-webhook-signature", "POST", self.verify, "verify_calls"),
        ]
        for pattern, method, fn, counter in table:
            hit = re.fullmatch(pattern, path)
            if hit:
                if method != m:
                    continue
                return fn, hit.groups(), counter
        if any(re.fullmatch(p, path) for p, *_ in table):
            raise pp_error(405)
        raise pp_error(404)

    def failure_body(self):
        return pp_error(500).body

    def rate_limit_body(self):
        return {"name": "RATE_LIMIT_REACHED", "message": "Too many requests. Blocked due to rate limiting.",
                "debug_id": debug_id(), "details": [],
                "links": [{"href": "https://developer.paypal.com/api/rest/reference/rate-limiting/",
                           "rel": "information_link"}]}

    def require_bearer(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        with STATE.lock:
            exp = STATE.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if exp is None or exp <= time.time():
            e = pp_error(401)
            e.body["details"] = []
            e.body["links"] = [link("https://developer.paypal.com/docs/api/overview/#error", "information_link")]
            raise e

    def request_id(self):
        rid = self.headers.get("PayPal-Request-Id")
        if rid is not None and not 1 <= len(rid) <= REQUEST_ID_MAX:
            raise invalid("INVALID_STRING_MAX_LENGTH", "PayPal-Request-Id",
                          f"The value of a field is too long (1 to {REQUEST_ID_MAX} characters).", value=rid)
        return rid or None

    def prefers_representation(self):
        return "return=representation" in self.headers.get("Prefer", "").replace(" ", "")

    # -- token ----------------------------------------------------------------------------

    def token(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, cred = auth.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                user, _, pw = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
                ok = hmac.compare_digest(user, STATE.client_id) and hmac.compare_digest(pw, STATE.client_secret)
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            raise ApiError(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        form = fakehttp.form_fields(self.body)
        grant = form.get("grant_type")
        if grant != "client_credentials":
            raise ApiError(400, {"error": "unsupported_grant_type",
                                 "error_description": "Grant Type is NULL" if not grant else f"{grant} is not supported"})
        token = "A21AA" + secrets.token_urlsafe(60)
        with STATE.lock:
            STATE.tokens[token] = time.time() + TOKEN_LIFETIME
        self.send_json(200, {"scope": SCOPE, "access_token": token, "token_type": "Bearer", "app_id": APP_ID,
                             "expires_in": TOKEN_LIFETIME, "nonce": now_iso() + secrets.token_urlsafe(32)})

    # -- orders ---------------------------------------------------------------------------

    def create_order(self):
        self.require_bearer()
        rid = self.request_id()
        body = self.json_body()
        with STATE.lock:
            if rid and ("create", "", rid) in STATE.idem:
                o = STATE.orders[STATE.idem[("create", "", rid)]]
                return self.send_json(200, render_order(o, minimal=not self.prefers_representation()))
        intent = body.get("intent")
        if intent is None:
            raise invalid("MISSING_REQUIRED_PARAMETER", "/intent", "A required field / parameter is missing.")
        if intent != "CAPTURE":
            raise invalid("INVALID_PARAMETER_VALUE", "/intent",
                          "The value of a field is invalid (this fake supports intent CAPTURE only).", value=str(intent))
        pus = body.get("purchase_units")
        if not isinstance(pus, list) or not pus:
            raise invalid("MISSING_REQUIRED_PARAMETER", "/purchase_units", "A required field / parameter is missing.")
        if len(pus) != 1:
            raise invalid("INVALID_PARAMETER_VALUE", "/purchase_units",
                          "This fake supports exactly one purchase unit.")
        pu = pus[0]
        if not isinstance(pu, dict):
            raise invalid("INVALID_PARAMETER_SYNTAX", "/purchase_units/@reference_id=='default'",
                          "purchase unit must be an object")
        field = f"/purchase_units/@reference_id=='{pu.get('reference_id', 'default')}'"
        if "amount" not in pu:
            raise invalid("MISSING_REQUIRED_PARAMETER", f"{field}/amount", "A required field / parameter is missing.")
        check_amount(pu["amount"], f"{field}/amount")
        check_breakdown(pu["amount"], f"{field}/amount")
        for key, limit in (("custom_id", STRING_MAX), ("invoice_id", STRING_MAX), ("description", STRING_MAX),
                           ("reference_id", 256)):
            check_string(pu, key, field, limit)
        ec = (((body.get("payment_source") or {}).get("paypal") or {}).get("experience_context")
              if isinstance(body.get("payment_source"), dict) else None)
        ac = body.get("application_context")
        if isinstance(ec, dict):
            style, ctx, where = "experience", ec, "/payment_source/paypal/experience_context"
        elif isinstance(ac, dict):
            style, ctx, where = "application", ac, "/application_context"
        else:
            style, ctx, where = "application", {}, ""
        for k in ("return_url", "cancel_url"):
            if k in ctx:
                check_url(ctx[k], f"{where}/{k}")
        t = now_iso()
        unit = {"reference_id": pu.get("reference_id", "default"), "amount": copy.deepcopy(pu["amount"]),
                "payee": {"email_address": "merchant@example.com", "merchant_id": MERCHANT_ID}}
        for k in ("custom_id", "invoice_id", "description", "soft_descriptor", "items"):
            if k in pu:
                unit[k] = copy.deepcopy(pu[k])
        with STATE.lock:
            if rid and ("create", "", rid) in STATE.idem:  # a concurrent twin won the race
                o = STATE.orders[STATE.idem[("create", "", rid)]]
                return self.send_json(200, render_order(o, minimal=not self.prefers_representation()))
            oid = rand_id()
            o = {"id": oid, "intent": "CAPTURE",
                 "status": "PAYER_ACTION_REQUIRED" if style == "experience" else "CREATED",
                 "purchase_units": [unit], "create_time": t, "update_time": t,
                 "_style": style, "_return_url": ctx.get("return_url"), "_cancel_url": ctx.get("cancel_url")}
            if style == "experience":
                o["payment_source"] = {"paypal": {}}
            STATE.orders[oid] = o
            if rid:
                STATE.idem[("create", "", rid)] = oid
            out = render_order(o, minimal=not self.prefers_representation())
        self.send_json(201, out)

    def get_order(self, oid):
        self.require_bearer()
        with STATE.lock:
            o = STATE.orders.get(oid)
            if o is None:
                raise not_found("order")
            out = render_order(o)
        self.send_json(200, out)

    def checkoutnow(self, q):
        oid = q.get("token", "")
        with STATE.lock:
            o = STATE.orders.get(oid)
            if o is None:
                return self.send_html(404, "Sorry, this order does not exist.")
            action = STATE.behaviour["payer_action"]
            if action == "approve":
                if o["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
                    o["status"] = "APPROVED"
                    o["update_time"] = now_iso()
                    set_payer(o)
                target = o["_return_url"]
                params = {"token": oid, "PayerID": PAYER_ID}
            else:
                target = o["_cancel_url"]
                params = {"token": oid}
        if not target:
            return self.send_html(200, f"Order {oid}: payer chose {action}; the order gave no URL to return to.")
        self.send_html(302, "Redirecting", location=add_query(target, params))

    def capture(self, oid):
        self.require_bearer()
        rid = self.request_id()
        self.json_body(required=False)
        rep = self.prefers_representation()
        with STATE.lock:
            o = STATE.orders.get(oid)
            if o is None:
                raise not_found("order")
            if rid and ("capture", oid, rid) in STATE.idem:
                return self.send_json(200, render_capture_result(o, rep))
            if o["status"] == "COMPLETED":
                raise unprocessable("ORDER_ALREADY_CAPTURED",
                                    "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.")
            if o["status"] != "APPROVED":
                raise unprocessable("ORDER_NOT_APPROVED",
                                    "Payer has not yet approved the Order for payment. Please redirect the payer to "
                                    "the 'rel':'approve' url returned as part of the HATEOAS links within the Create "
                                    "Order call or provide a valid payment_source in the request.")
            b = STATE.behaviour
            if b["decline_capture"]:
                raise unprocessable("INSTRUMENT_DECLINED",
                                    "The instrument presented  was either declined by the processor or bank, or it "
                                    "can't be used for this payment.",
                                    links=[link(f"{STATE.base}/checkoutnow?token={oid}", "redirect"),
                                           link("https://developer.paypal.com/docs/api/orders/v2/"
                                                "#error-INSTRUMENT_DECLINED", "information_link")])
            new_capture(o, b["capture_status"])
            if rid:
                STATE.idem[("capture", oid, rid)] = oid
            delay = b["capture_delay"]
            out = render_capture_result(o, rep)
        self.send_json_late(201, out, delay)

    # -- payments -------------------------------------------------------------------------

    def refund(self, cap_id):
        self.require_bearer()
        rid = self.request_id()
        body = self.json_body(required=False)
        with STATE.lock:
            c = STATE.captures.get(cap_id)
            if c is None:
                raise not_found("capture")
            if rid and ("refund", cap_id, rid) in STATE.idem:
                return self.send_json(200, copy.deepcopy(STATE.refunds[STATE.idem[("refund", cap_id, rid)]]["refund"]))
            cap = c["capture"]
            if cap["status"] == "PENDING":
                raise unprocessable("PENDING_CAPTURE", "Cannot initiate a refund as the capture is pending.")
            if cap["status"] in ("DECLINED", "FAILED"):
                raise unprocessable("TRANSACTION_REFUSED", "The capture was not completed; nothing to refund.")
            try:
                remaining = Decimal(cap["amount"]["value"]) - refunded_total(c)
            except InvalidOperation:
                remaining = Decimal(0)
            if cap["status"] == "REFUNDED" or remaining <= 0:
                raise unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded")
            value = None
            if body.get("amount") is not None:
                cc, d = check_amount(body["amount"], "/amount", zero_decimal_issue="DECIMALS_NOT_SUPPORTED")
                if cc != cap["amount"]["currency_code"]:
                    raise unprocessable("CURRENCY_MISMATCH", "Refund must be in the currency of the capture.",
                                        field="/amount/currency_code", value=cc)
                if d > remaining:
                    raise unprocessable("REFUND_AMOUNT_EXCEEDED",
                                        "The refund amount must be less than or equal to the capture amount that has "
                                        "not yet been refunded.")
                value = body["amount"]["value"]
            extra = {}
            for k in ("invoice_id", "custom_id", "note_to_payer"):
                if isinstance(body.get(k), str):
                    extra[k] = body[k]
            refund = new_refund(cap_id, value, extra)
            if rid:
                STATE.idem[("refund", cap_id, rid)] = refund["id"]
            out = copy.deepcopy(refund)
        self.send_json(201, out)

    def get_capture(self, cap_id):
        self.require_bearer()
        with STATE.lock:
            c = STATE.captures.get(cap_id)
            if c is None:
                raise not_found("capture")
            out = copy.deepcopy(c["capture"])
            out["supplementary_data"] = {"related_ids": {"order_id": c["order_id"]}}
        self.send_json(200, out)

    def get_refund(self, ref_id):
        self.require_bearer()
        with STATE.lock:
            r = STATE.refunds.get(ref_id)
            if r is None:
                raise not_found("refund")
            out = copy.deepcopy(r["refund"])
        self.send_json(200, out)

    # -- webhooks -------------------------------------------------------------------------

    def verify(self):
        self.require_bearer()
        body = self.json_body()
        fields = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time",
                  "webhook_id", "webhook_event")
        for f in fields:
            if body.get(f) in (None, ""):
                raise invalid("MISSING_REQUIRED_PARAMETER", f"/{f}", "A required field / parameter is missing.")
        # PayPal checks the signature over the event's bytes as it delivered them, so the
        # event must be embedded verbatim: same key order, spacing and escapes.
        try:
            embedded = member_text(self.body.decode("utf-8"), "webhook_event")
        except (UnicodeDecodeError, ValueError):
            embedded = None
        with STATE.lock:
            rec = STATE.transmissions.get(body["transmission_id"])
            verbatim = rec is not None and embedded is not None and embedded.encode() == rec["raw"]
            ok = (rec is not None
                  and hmac.compare_digest(str(body["webhook_id"]), STATE.webhook_id)
                  and body["auth_algo"] == "SHA256withRSA"
                  and body["cert_url"] == rec["cert_url"]
                  and body["transmission_sig"] == rec["sig"]
                  and body["transmission_time"] == rec["time"]
                  and verbatim)
            status = "SUCCESS" if ok else "FAILURE"
            STATE.verifications.append({"transmission_id": body["transmission_id"], "verbatim": verbatim,
                                        "status": status})
        self.send_json(200, {"verification_status": status})

    # -- control --------------------------------------------------------------------------

    def state_view(self):
        return {"orders": {oid: render_order(o) for oid, o in STATE.orders.items()},
                "request_ids": list(STATE.request_ids),
                "behaviour": dict(STATE.behaviour),
                "webhooks": copy.deepcopy(STATE.webhooks),
                "verifications": copy.deepcopy(STATE.verifications)}

    def control_more(self, path, body):
        if self.command != "POST":
            return self.send_json(405, {"error": "control endpoints take POST (GET for state/behaviour)"})
        if path == "/_control/expire_tokens":
            with STATE.lock:
                n = len(STATE.tokens)
                for t in STATE.tokens:
                    STATE.tokens[t] = 0
            return self.send_json(200, {"expired": n})
        if path == "/_control/webhook":
            return self.send_webhook(body)
        self.send_json(404, {"error": f"no such control endpoint: {path}"})

    def send_webhook(self, req):
        url, event_type, oid = req.get("url"), req.get("event_type"), req.get("order_id")
        event_id = req.get("event_id")
        if not isinstance(url, str) or not isinstance(event_type, str):
            return self.send_json(400, {"error": "webhook needs url and event_type"})
        with STATE.lock:
            if event_id is not None and event_id in STATE.events:
                raw = STATE.events[event_id]  # a redelivery: the same bytes, a new transmission
            else:
                o = STATE.orders.get(oid)
                if o is None:
                    return self.send_json(400, {"error": f"unknown order_id {oid!r}"})
                try:
                    event = build_event(o, event_type, event_id, bool(req.get("apply", True)))
                except ValueError as e:
                    return self.send_json(400, {"error": str(e)})
                if req.get("without_custom_id"):
                    event["resource"].pop("custom_id", None)
                raw = json.dumps(event, separators=(",", ":")).encode()
                STATE.events[event["id"]] = raw
            event = json.loads(raw)
            tid = str(uuid.uuid4())
            ttime = now_iso()
            cert_url = f"{STATE.base}/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
            signed = f"{tid}|{ttime}|{STATE.webhook_id}|{zlib.crc32(raw)}".encode()
            sig = base64.b64encode(hmac.new(STATE.sig_key, signed, hashlib.sha256).digest() * 8).decode()
            STATE.transmissions[tid] = {"raw": raw, "sha256": hashlib.sha256(raw).hexdigest(), "event": event,
                                        "time": ttime, "sig": sig, "cert_url": cert_url}
        delivered = raw
        if req.get("tamper"):
            forged = json.loads(raw)
            res = forged.get("resource", {})
            if isinstance(res.get("amount"), dict):
                res["amount"]["value"] = "1000" if res["amount"].get("value") != "1000" else "1"
            else:
                forged["summary"] = (forged.get("summary") or "") + " (tampered)"
            delivered = json.dumps(forged, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PayPal/AUHD-214.0-58385713",
            "PAYPAL-TRANSMISSION-ID": tid,
            "PAYPAL-TRANSMISSION-TIME": ttime,
            "PAYPAL-TRANSMISSION-SIG": sig,
            "PAYPAL-CERT-URL": cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-AUTH-VERSION": "v2",
            "Correlation-Id": debug_id(),
        }
        status, text, error = None, "", None
        try:
            r = urllib.request.Request(url, data=delivered, headers=headers, method="POST")
            with urllib.request.urlopen(r, timeout=WEBHOOK_POST_TIMEOUT) as resp:
                status, text = resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as e:
            error = str(e)
        with STATE.lock:
            STATE.webhooks.append({"event_id": event["id"], "event_type": event["event_type"],
                                   "transmission_id": tid, "url": url, "status": status,
                                   "tampered": bool(req.get("tamper"))})
        out = {"status": status, "body": text, "event_id": event["id"], "transmission_id": tid, "event": event}
        if delivered is not raw:
            out["delivered"] = json.loads(delivered)
        if error:
            out["error"] = error
        self.send_json(200, out)


def build_event(o, event_type, event_id, apply):
    """A webhook event about order `o` (the lock is held); with `apply`, the fake's own state
    moves the way the event says (a capture created/updated, a refund recorded)."""
    t = now_iso()
    pu = o["purchase_units"][0]
    caps = pu.get("payments", {}).get("captures", [])
    if event_type.startswith("PAYMENT.CAPTURE."):
        kind = event_type.rsplit(".", 1)[1]
        if kind in ("COMPLETED", "PENDING", "DECLINED", "DENIED"):
            status = {"DENIED": "DECLINED"}.get(kind, kind)
            if caps:
                cap = caps[0]
                if apply:
                    cap["status"] = status
                    cap["update_time"] = t
                    set_status_details(cap)
                resource = copy.deepcopy(cap)
                resource["status"] = status
                set_status_details(resource)
            elif apply:
                resource = copy.deepcopy(new_capture(o, status))
            else:
                resource = make_capture(o, status)
            resource["supplementary_data"] = {"related_ids": {"order_id": o["id"]}}
            words = {"COMPLETED": "completed", "PENDING": "pending", "DECLINED": "declined", "DENIED": "denied"}
            summary = f"Payment {words[kind]} for {resource['amount']['value']} {resource['amount']['currency_code']}"
            rtype = "capture"
        elif kind in ("REFUNDED", "REVERSED"):
            if not caps:
                raise ValueError(f"order {o['id']} has no capture to refund")
            c = STATE.captures[caps[0]["id"]]
            if caps[0]["status"] in ("COMPLETED", "PARTIALLY_REFUNDED") and apply:
                refund = new_refund(caps[0]["id"])
            elif c["refunds"]:
                refund = STATE.refunds[c["refunds"][-1]]["refund"]
            else:
                raise ValueError(f"capture {caps[0]['id']} has no refund (and apply is false)")
            resource = copy.deepcopy(refund)
            summary = (f"A {resource['amount']['value']} {resource['amount']['currency_code']} capture payment was "
                       f"{'refunded' if kind == 'REFUNDED' else 'reversed'}")
            rtype = "refund"
        else:
            resource = copy.deepcopy(caps[0]) if caps else render_order(o)
            summary = event_type
            rtype = "capture" if caps else "checkout-order"
    else:
        if event_type == "CHECKOUT.ORDER.APPROVED" and apply and o["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
            o["status"] = "APPROVED"
            o["update_time"] = t
            set_payer(o)
        resource = render_order(o)
        summary = {"CHECKOUT.ORDER.APPROVED": "An order has been approved by buyer",
                   "CHECKOUT.ORDER.COMPLETED": "Checkout Order Completed"}.get(event_type, event_type)
        rtype = "checkout-order"
    eid = event_id or f"WH-{rand_id(17)}-{rand_id(17)}"
    return {
        "id": eid,
        "event_version": "1.0",
        "create_time": t,
        "resource_type": rtype,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
        "links": [link(f"{STATE.base}/v1/notifications/webhooks-events/{eid}", "self"),
                  link(f"{STATE.base}/v1/notifications/webhooks-events/{eid}/resend", "resend", "POST")],
    }


def main():
    global STATE
    args = fakehttp.arguments(__doc__, "--client-id", "--client-secret", "--webhook-id")
    STATE = State(args.client_id, args.client_secret, args.webhook_id)
    fakehttp.serve(Handler, STATE, args)


if __name__ == "__main__":
    main()
