#!/usr/bin/env python3
"""Test peer: a fake of Kakao Pay online single payment (the open-api.kakaopay.com API) for
cinegate's tests.

Written from the contract summarised in shared/reference/payments.md §2 (ready, payer
redirect, approve, order, cancel; negative error codes). Python 3.11 stdlib only.

    python3 kakaopay_fake.py --secret-key KEY --cid TC0ONETIME [--exit-with-stdin]

Binds 127.0.0.1:0 and prints one line {"port": N}. State lives in memory.

API ("Authorization: SECRET_KEY KEY", or "DEV_SECRET_KEY KEY"; JSON bodies):
  POST /online/v1/payment/ready    -> {tid, next_redirect_{app,mobile,pc}_url, ..., created_at}
  GET  /pay/{tid}                  the payer's browser: 302 to approval_url?pg_token=.. |
                                   cancel_url | fail_url (behaviour "payer_action")
  POST /online/v1/payment/approve  -> {aid, tid, cid, ..., amount{...}, approved_at}
  POST /online/v1/payment/order    -> {tid, status, amount, canceled_amount, ...}
  POST /online/v1/payment/cancel   -> approve fields + status, *_amount, canceled_at
Errors: HTTP 4xx/5xx {"error_code": negative, "error_message", "extras": {"method_result_code",
"method_result_message"}}. Codes: -400 missing Authorization / bad request, -401 bad key,
-404 unknown path, -500 injected failure; from Kakao's error sheet as quoted (reference):
-702 approve of an approved tid, -731 bad cid, -780 approval failure (extras.method_result_code
e.g. USER_LOCKED), -781 cancel failure [?], -785 duplicate (a second approve while the first is
still being processed). Filled in from memory of the sheet (unconfirmed): -701 payer has not
authenticated / pg_token mismatch, -721 unknown tid, -722 amount mismatch, -723 tid expired,
-726 order info (partner ids) mismatch.
Times are KST without offset ("2024-01-01T12:34:56").

Control (JSON):
  POST /_control/behaviour  merged into the behaviour (keys in DEFAULT_BEHAVIOUR; an unknown
                            key or a bad value is a 400); GET reads it
  GET  /_control/state      {"tids": {tid: record}, "approve_calls", "cancel_calls", ...}
  POST /_control/reset      forget everything but the configuration
"""

import copy
import hmac
import re
import secrets
import string
import time
from urllib.parse import quote, urlsplit

import fakehttp
from fakehttp import add_query, is_int, public

KST = 9 * 3600
STRING_MAX = 100
URL_MAX = 255

DEFAULT_BEHAVIOUR = {
    "payer_action": "approve",   # /pay/{tid}: "approve" | "cancel" | "fail"
    "decline_capture": False,    # approve -> -780; true = USER_LOCKED, a string = that result code
    "amount_override": None,     # approve reports (and records) this amount.total
    "reject_key": False,         # every API call -> 401 -401, as with a revoked SECRET_KEY
    **fakehttp.FAILURE_BEHAVIOUR,
    "tid_ttl": 900,              # seconds a tid stays usable after ready (Kakao: 15 min)
}


BEHAVIOUR_CHECKS = {
    "payer_action": lambda v: v in ("approve", "cancel", "fail"),
    "decline_capture": lambda v: isinstance(v, bool) or (isinstance(v, str) and v != ""),
    "amount_override": lambda v: v is None or (is_int(v) and v >= 0),
    "reject_key": lambda v: isinstance(v, bool),
    **fakehttp.FAILURE_CHECKS,
    "tid_ttl": fakehttp.number,
}

DECLINE_MESSAGES = {
    "USER_LOCKED": "사용자 계정이 잠겨 있습니다.",
    "BANK_FIRM_UNKNOWN": "은행 점검 중이거나 알 수 없는 은행입니다.",
}

IN_PROGRESS = ("READY", "SEND_TMS", "OPEN_PAYMENT", "SELECT_METHOD", "ARS_WAITING", "AUTH_PASSWORD")


def kst(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t if t is not None else time.time()) + KST))


def rand_hex(n):
    return "".join(secrets.choice("0123456789abcdef") for _ in range(n))


def vat_of(total, tax_free):
    return (2 * (total - tax_free) + 11) // 22  # (total - tax_free) / 11, rounded half up


def amounts(total=0, tax_free=0, vat=0, point=0, discount=0, green_deposit=0):
    return {"total": total, "tax_free": tax_free, "vat": vat, "point": point, "discount": discount,
            "green_deposit": green_deposit}


class State(fakehttp.FakeState):
    DEFAULTS = DEFAULT_BEHAVIOUR
    CHECKS = BEHAVIOUR_CHECKS

    def __init__(self, secret_key, cid):
        self.secret_key = secret_key
        self.cid = cid
        super().__init__()

    def reset(self):
        super().reset()
        self.tids = {}  # tid -> record (see ready())
        self.counts = {"ready_calls": 0, "approve_calls": 0, "order_calls": 0, "cancel_calls": 0,
                       "injected_failures": 0}


STATE: State


class KakaoError(Exception):
    def __init__(self, status, code, message, result_code=None, result_message=None):
        super().__init__(message)
        self.status = status
        self.body = {"error_code": code, "error_message": message,
                     "extras": {"method_result_code": result_code or str(code),
                                "method_result_message": result_message or message}}


def bad_request(message):
    return KakaoError(400, -400, message)


# -- records (the lock is held) ----------------------------------------------------------------


def expire_if_due(rec):
    if rec["status"] in IN_PROGRESS and time.time() > rec["_created"] + STATE.behaviour["tid_ttl"]:
        rec["status"] = "FAIL_PAYMENT"
        rec["_expired"] = True


def lookup(body):
    """Checks cid + tid of a request; returns the tid record."""
    cid, tid = body.get("cid"), body.get("tid")
    if not isinstance(cid, str) or not cid:
        raise bad_request("cid is required")
    if not isinstance(tid, str) or not tid:
        raise bad_request("tid is required")
    if cid != STATE.cid:
        raise KakaoError(400, -731, "invalid cid")
    rec = STATE.tids.get(tid)
    if rec is None or rec["cid"] != cid:
        raise KakaoError(400, -721, "tid does not exist")
    expire_if_due(rec)
    return rec


def approved_amount(rec):
    return rec["approved"] or amounts(rec["total_amount"], rec["tax_free_amount"], rec["vat_amount"])


def remaining(rec):
    a, c = approved_amount(rec), rec["canceled"]
    return {k: a[k] - c[k] for k in a}


def base_fields(rec):
    out = {"aid": rec["aid"], "tid": rec["tid"], "cid": rec["cid"], "partner_order_id": rec["partner_order_id"],
           "partner_user_id": rec["partner_user_id"], "payment_method_type": rec["method"],
           "item_name": rec["item_name"], "quantity": rec["quantity"]}
    if rec.get("item_code") is not None:
        out["item_code"] = rec["item_code"]
    return out


def card_info():
    return {"kakaopay_purchase_corp": "비씨카드", "kakaopay_purchase_corp_code": "104",
            "kakaopay_issuer_corp": "수협은행", "kakaopay_issuer_corp_code": "212", "bin": "515594",
            "card_type": "CHECK", "install_month": "00", "approved_id": rand_hex(8).upper(),
            "card_mid": "123456789", "interest_free_install": "N", "installment_type": "CARD_INSTALLMENT",
            "card_item_code": ""}


class Handler(fakehttp.Handler):
    server_version = "FakeKakaoPay/1.0"
    html_title = "kakaopay (fake)"

    def api(self, path, url):
        m = re.fullmatch(r"/pay/([^/]+)", path)
        if m and self.command == "GET":
            return self.payer_page(m.group(1))
        m = re.fullmatch(r"/online/v1/payment/(ready|approve|order|cancel)", path)
        if not m:
            raise KakaoError(404, -404, "not found")
        if self.command != "POST":
            raise KakaoError(405, -405, "method not allowed")
        api = m.group(1)
        if self.count_call(f"{api}_calls"):
            return
        self.check_auth()
        body = self.json_object(bad_request)
        getattr(self, api)(body)

    def error_answer(self, e):
        if isinstance(e, KakaoError):
            return e.status, e.body
        return super().error_answer(e)

    def bug_body(self, e):
        return {"error_code": -500, "error_message": f"FAKE_BUG {e!r}", "extras": {}}

    def failure_body(self):
        return KakaoError(500, -500, "internal server error").body

    def check_auth(self):
        auth = self.headers.get("Authorization")
        if not auth:
            raise KakaoError(400, -400, "Authorization header is required")
        scheme, _, key = auth.strip().partition(" ")
        if (scheme not in ("SECRET_KEY", "DEV_SECRET_KEY") or not hmac.compare_digest(key.strip(), STATE.secret_key)
                or STATE.behaviour["reject_key"]):
            raise KakaoError(401, -401, "invalid secret key")

    # -- ready ----------------------------------------------------------------------------

    def ready(self, b):
        for k in ("cid", "partner_order_id", "partner_user_id", "item_name"):
            v = b.get(k)
            if not isinstance(v, str) or not v:
                raise bad_request(f"{k} is required")
            if len(v) > STRING_MAX:
                raise bad_request(f"{k} is longer than {STRING_MAX}")
        for k in ("quantity", "total_amount", "tax_free_amount"):
            if not is_int(b.get(k)):
                raise bad_request(f"{k} is required (integer)")
        for k in ("approval_url", "cancel_url", "fail_url"):
            v = b.get(k)
            if not isinstance(v, str) or not v:
                raise bad_request(f"{k} is required")
            if len(v) > URL_MAX or urlsplit(v).scheme not in ("http", "https"):
                raise bad_request(f"{k} is not a valid URL (max {URL_MAX})")
        if b["cid"] != STATE.cid:
            raise KakaoError(400, -731, "invalid cid")
        total, tax_free, qty = b["total_amount"], b["tax_free_amount"], b["quantity"]
        if qty < 1 or total <= 0 or not 0 <= tax_free <= total:
            raise KakaoError(400, -722, "invalid amount (quantity >= 1, total_amount > 0, "
                                        "0 <= tax_free_amount <= total_amount)")
        vat = b.get("vat_amount")
        if vat is None:
            vat = vat_of(total, tax_free)
        elif not is_int(vat) or vat < 0 or vat > total - tax_free:
            raise KakaoError(400, -722, "invalid vat_amount")
        method = b.get("payment_method_type")
        if method is not None and method not in ("CARD", "MONEY"):
            raise bad_request("payment_method_type must be CARD or MONEY")
        now = time.time()
        with STATE.lock:
            tid = "T" + rand_hex(19)
            rec = {
                "tid": tid, "cid": b["cid"], "status": "READY",
                "partner_order_id": b["partner_order_id"], "partner_user_id": b["partner_user_id"],
                "item_name": b["item_name"], "item_code": b.get("item_code"), "quantity": qty,
                "total_amount": total, "tax_free_amount": tax_free, "vat_amount": vat,
                "approval_url": b["approval_url"], "cancel_url": b["cancel_url"], "fail_url": b["fail_url"],
                "method": method or "MONEY", "pg_token": None, "aid": "A" + rand_hex(19),
                "approved": None, "canceled": amounts(), "created_at": kst(now), "approved_at": None,
                "canceled_at": None, "actions": [], "payload": None,
                "_created": now, "_approving": False, "_expired": False,
            }
            STATE.tids[tid] = rec
        pc = f"{STATE.base}/pay/{tid}"
        scheme = "kakaotalk://kakaopay/pg?url=" + quote(f"{pc}?device=app", safe="")
        self.send_json(200, {
            "tid": tid,
            "tms_result": False,
            "created_at": rec["created_at"],
            "next_redirect_app_url": f"{pc}?device=app",
            "next_redirect_mobile_url": f"{pc}?device=mobile",
            "next_redirect_pc_url": pc,
            "android_app_scheme": scheme,
            "ios_app_scheme": scheme,
        })

    # -- the payer ------------------------------------------------------------------------

    def payer_page(self, tid):
        with STATE.lock:
            rec = STATE.tids.get(tid)
            if rec is None:
                return self.send_html(404, "결제 정보를 찾을 수 없습니다.")
            expire_if_due(rec)
            if rec["status"] not in ("READY", "OPEN_PAYMENT"):
                target = rec["fail_url"]  # expired, finished or used: the window gives up
            else:
                action = STATE.behaviour["payer_action"]
                if action == "approve":
                    rec["status"] = "AUTH_PASSWORD"
                    rec["pg_token"] = "".join(secrets.choice(string.ascii_letters + string.digits)
                                              for _ in range(20))
                    target = add_query(rec["approval_url"], {"pg_token": rec["pg_token"]})
                elif action == "cancel":
                    rec["status"] = "QUIT_PAYMENT"
                    target = rec["cancel_url"]
                else:
                    rec["status"] = "FAIL_PAYMENT"
                    target = rec["fail_url"]
        self.send_html(302, "redirecting", location=target)

    # -- approve --------------------------------------------------------------------------

    def approve(self, b):
        for k in ("partner_order_id", "partner_user_id", "pg_token"):
            if not isinstance(b.get(k), str) or not b.get(k):
                raise bad_request(f"{k} is required")
        with STATE.lock:
            rec = lookup(b)
            if rec["_approving"]:
                raise KakaoError(400, -785, "duplicate request: this payment is being approved")
            if rec["status"] in ("SUCCESS_PAYMENT", "PART_CANCEL_PAYMENT", "CANCEL_PAYMENT"):
                raise KakaoError(400, -702, "payment already approved for this tid")
            if rec["_expired"]:
                raise KakaoError(400, -723, "payment time expired")
            if b["partner_order_id"] != rec["partner_order_id"] or b["partner_user_id"] != rec["partner_user_id"]:
                raise KakaoError(400, -726, "partner_order_id / partner_user_id do not match ready")
            if rec["status"] != "AUTH_PASSWORD" or rec["pg_token"] is None:
                raise KakaoError(400, -701, f"payer has not authenticated (status {rec['status']})")
            if not hmac.compare_digest(b["pg_token"], rec["pg_token"]):
                raise KakaoError(400, -701, "pg_token does not match")
            if "total_amount" in b and b["total_amount"] != rec["total_amount"]:
                raise KakaoError(400, -722, "total_amount does not match ready")
            beh = STATE.behaviour
            if beh["decline_capture"]:
                code = beh["decline_capture"] if isinstance(beh["decline_capture"], str) else "USER_LOCKED"
                rec["status"] = "FAIL_PAYMENT"
                raise KakaoError(400, -780, "approval failure", code,
                                 DECLINE_MESSAGES.get(code, "결제 승인에 실패했습니다."))
            total = beh["amount_override"] if beh["amount_override"] is not None else rec["total_amount"]
            tax_free = min(rec["tax_free_amount"], total)
            vat = rec["vat_amount"] if total == rec["total_amount"] else vat_of(total, tax_free)
            now = time.time()
            rec["approved"] = amounts(total, tax_free, vat)
            rec["status"] = "SUCCESS_PAYMENT"
            rec["approved_at"] = kst(now)
            if isinstance(b.get("payload"), str):
                rec["payload"] = b["payload"][:200]
            rec["actions"].append({"aid": rec["aid"], "approved_at": rec["approved_at"], "amount": total,
                                   "point_amount": 0, "discount_amount": 0, "green_deposit": 0,
                                   "payment_action_type": "PAYMENT", "payload": rec["payload"]})
            out = base_fields(rec)
            out.update({"amount": dict(rec["approved"]), "created_at": rec["created_at"],
                        "approved_at": rec["approved_at"]})
            if rec["method"] == "CARD":
                out["card_info"] = card_info()
            if rec["payload"] is not None:
                out["payload"] = rec["payload"]
            delay = beh["capture_delay"]
            rec["_approving"] = bool(delay)
        self.send_json_late(200, out, delay, rec, "_approving")

    # -- order ----------------------------------------------------------------------------

    def order(self, b):
        with STATE.lock:
            rec = lookup(b)
            out = base_fields(rec)
            if rec["approved"] is None:
                out.pop("aid")
            out.update({
                "status": rec["status"],
                "amount": approved_amount(rec),
                "canceled_amount": dict(rec["canceled"]),
                "cancel_available_amount": remaining(rec) if rec["approved"] else amounts(),
                "created_at": rec["created_at"],
                "approved_at": rec["approved_at"],
                "canceled_at": rec["canceled_at"],
                "payment_action_details": copy.deepcopy(rec["actions"]),
            })
            if rec["approved"] and rec["method"] == "CARD":
                out["selected_card_info"] = {"card_bin": "515594", "install_month": 0,
                                             "interest_free_install": "N", "card_corp_name": "비씨카드"}
        self.send_json(200, out)

    # -- cancel ---------------------------------------------------------------------------

    def cancel(self, b):
        for k in ("cancel_amount", "cancel_tax_free_amount"):
            if not is_int(b.get(k)):
                raise bad_request(f"{k} is required (integer)")
        with STATE.lock:
            rec = lookup(b)
            if rec["status"] not in ("SUCCESS_PAYMENT", "PART_CANCEL_PAYMENT"):
                raise KakaoError(400, -781, f"cannot cancel a payment in status {rec['status']}")
            rest = remaining(rec)
            amount, tax_free = b["cancel_amount"], b["cancel_tax_free_amount"]
            if amount <= 0 or not 0 <= tax_free <= amount:
                raise bad_request("cancel_amount must be > 0 and cancel_tax_free_amount within it")
            if amount > rest["total"] or tax_free > rest["tax_free"]:
                raise KakaoError(400, -781, "cancel amount exceeds the cancellable amount")
            guard = b.get("cancel_available_amount")
            if guard is not None and guard != rest["total"]:
                raise KakaoError(400, -781, "cancel_available_amount does not match the cancellable amount")
            vat = b.get("cancel_vat_amount")
            if vat is None:
                vat = rest["vat"] if amount == rest["total"] else min(rest["vat"], vat_of(amount, tax_free))
            elif not is_int(vat) or vat < 0 or vat > rest["vat"]:
                raise bad_request("invalid cancel_vat_amount")
            now = time.time()
            this = amounts(amount, tax_free, vat)
            for k in rec["canceled"]:
                rec["canceled"][k] += this[k]
            rec["canceled_at"] = kst(now)
            rec["status"] = "CANCEL_PAYMENT" if remaining(rec)["total"] == 0 else "PART_CANCEL_PAYMENT"
            payload = b.get("payload") if isinstance(b.get("payload"), str) else None
            rec["actions"].append({"aid": "A" + rand_hex(19), "approved_at": rec["canceled_at"], "amount": amount,
                                   "point_amount": 0, "discount_amount": 0, "green_deposit": 0,
                                   "payment_action_type": "CANCEL", "payload": payload})
            out = base_fields(rec)
            out.update({
                "status": rec["status"],
                "amount": approved_amount(rec),
                "approved_cancel_amount": this,
                "canceled_amount": dict(rec["canceled"]),
                "cancel_available_amount": remaining(rec),
                "created_at": rec["created_at"],
                "approved_at": rec["approved_at"],
                "canceled_at": rec["canceled_at"],
            })
            if payload is not None:
                out["payload"] = payload
        self.send_json(200, out)

    # -- control --------------------------------------------------------------------------

    def state_view(self):
        for rec in STATE.tids.values():
            expire_if_due(rec)
        return {"tids": {t: public(r) for t, r in STATE.tids.items()}, "behaviour": dict(STATE.behaviour)}


def main():
    global STATE
    args = fakehttp.arguments(__doc__, "--secret-key", "--cid")
    STATE = State(args.secret_key, args.cid)
    fakehttp.serve(Handler, STATE, args)


if __name__ == "__main__":
    main()
