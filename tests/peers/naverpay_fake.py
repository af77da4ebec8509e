#!/usr/bin/env python3
"""Test peer: a fake of Naver Pay, payment type (결제형), for cinegate's tests.

Written from the contract summarised in shared/reference/payments.md §3 (reserve, payer
redirect, apply, cancel, list/history; results judged by "code", HTTP 200 even for business
failures). Python 3.11 stdlib only.

    python3 naverpay_fake.py --client-id ID --client-secret S --chain-id C --partner-id P \
        [--exit-with-stdin]

Binds 127.0.0.1:0 and prints one line {"port": N}. State lives in memory.

API (headers X-Naver-Client-Id, X-Naver-Client-Secret, X-NaverPay-Chain-Id on every call, else
HTTP 401 {"code":"Unauthorized","message"}; {partner} is the --partner-id or the literal
"naverpay-partner", another value answers code InvalidMerchant):
  POST /{partner}/naverpay/payments/v2/reserve       JSON -> {code, message, body:{reserveId}}
  GET  /payments/{reserveId}                         the payer's browser: 302 to returnUrl with
                                                     resultCode=Success&paymentId=.. |
                                                     resultCode=UserCancel|Fail&resultMessage=..
  POST /{partner}/naverpay/payments/v2.2/apply/payment  form paymentId; header
                                                     X-NaverPay-Idempotency-Key (same key -> the
                                                     same answer) -> {code, message, body:{paymentId, detail}}
  POST /{partner}/naverpay/payments/v1/cancel        form paymentId, cancelAmount, cancelReason,
                                                     cancelRequester, taxScopeAmount,
                                                     taxExScopeAmount[, doCompareRest, expectedRestAmount]
  POST /{partner}/naverpay/payments/v2.2/list/history   JSON {paymentId} or {startTime, endTime}
                                                     [approvalType, pageNumber, rowsPerPage]
Codes used: Success, Fail, InvalidMerchant, AlreadyOnGoing (a second apply while the first is
still being processed), AlreadyComplete, OwnerAuthFail (or the code set by decline_capture),
CancelNotComplete (behaviour cancel_pending). Times are KST "YYYYMMDDHHMMSS".

Control (JSON):
  POST /_control/behaviour  merged into the behaviour (keys in DEFAULT_BEHAVIOUR; an unknown
                            key or a bad value is a 400); GET reads it
  GET  /_control/state      {"reserves", "payments", "apply_calls", "cancel_calls", ...}
  POST /_control/reset      forget everything but the configuration
"""

import copy
import hmac
import re
import secrets
import time
from urllib.parse import urlsplit

import fakehttp
from fakehttp import add_query, is_int, public

KST = 9 * 3600
LITERAL_PARTNER = "naverpay-partner"
MAX_SPAN = 31 * 86400

DEFAULT_BEHAVIOUR = {
    "payer_action": "approve",   # /payments/{reserveId}: "approve" | "cancel" | "fail"
    "decline_capture": False,    # apply -> OwnerAuthFail; a string = that code instead
    "amount_override": None,     # apply reports (and records) this totalPayAmount
    "cancel_pending": False,     # cancel -> CancelNotComplete (the cancel still lands in history)
    **fakehttp.FAILURE_BEHAVIOUR,
}


BEHAVIOUR_CHECKS = {
    "payer_action": lambda v: v in ("approve", "cancel", "fail"),
    "decline_capture": lambda v: isinstance(v, bool) or (isinstance(v, str) and v != ""),
    "amount_override": lambda v: v is None or (is_int(v) and v >= 0),
    "cancel_pending": lambda v: isinstance(v, bool),
    **fakehttp.FAILURE_CHECKS,
}


def ymdt(t=None):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime((t if t is not None else time.time()) + KST))


def parse_ymdt(s):
    if not isinstance(s, str) or not re.fullmatch(r"\d{14}", s):
        raise ValueError(s)
    return time.mktime(time.strptime(s, "%Y%m%d%H%M%S"))  # only differences are used


def np_id(t=None):
    return ymdt(t)[:8] + "NP" + "".join(secrets.choice("0123456789") for _ in range(10))


def as_int(v):
    """A form/JSON integer field (form values arrive as strings); None when not one."""
    if is_int(v):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    return None


class State(fakehttp.FakeState):
    DEFAULTS = DEFAULT_BEHAVIOUR
    CHECKS = BEHAVIOUR_CHECKS

    def __init__(self, client_id, client_secret, chain_id, partner_id):
        self.client_id = client_id
        self.client_secret = client_secret
        self.chain_id = chain_id
        self.partner_id = partner_id
        super().__init__()

    def reset(self):
        super().reset()
        self.reserves = {}  # reserveId -> record
        self.payments = {}  # paymentId -> record
        self.idem = {}      # idempotency key -> answer body
        self.idempotency_keys = []
        self.counts = {"reserve_calls": 0, "apply_calls": 0, "cancel_calls": 0, "history_calls": 0,
                       "injected_failures": 0}


STATE: State


class Answer(Exception):
    """A complete answer: HTTP status + body (business failures are HTTP 200)."""

    def __init__(self, body, status=200):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def fail(message, code="Fail"):
    return Answer({"code": code, "message": message})


def card_fields():
    return {"cardCorpCode": "C0", "cardNo": "465887******1234", "cardAuthNo": "".join(
        secrets.choice("0123456789") for _ in range(8)), "cardInstCount": 0, "usedCardPoint": False,
        "bankCorpCode": "", "bankAccountNo": ""}


class Handler(fakehttp.Handler):
    server_version = "FakeNaverPay/1.0"
    html_title = "NAVER Pay (fake)"

    def api(self, path, url):
        m = re.fullmatch(r"/payments/([^/]+)", path)
        if m and self.command == "GET":
            return self.payer_page(m.group(1))
        m = re.fullmatch(r"/([^/]+)/naverpay/payments/(v2/reserve|v2\.2/apply/payment|v1/cancel|"
                         r"v2\.2/list/history)", path)
        if not m:
            raise Answer({"code": "NotFound", "message": f"no such API: {path}"}, 404)
        if self.command != "POST":
            raise Answer({"code": "MethodNotAllowed", "message": "POST only"}, 405)
        api = {"v2/reserve": "reserve", "v2.2/apply/payment": "apply", "v1/cancel": "cancel",
               "v2.2/list/history": "history"}[m.group(2)]
        if self.count_call(f"{api}_calls"):
            return
        self.check_auth()
        if m.group(1) not in (STATE.partner_id, LITERAL_PARTNER):
            raise fail(f"unknown partner {m.group(1)}", "InvalidMerchant")
        getattr(self, api)()

    def error_answer(self, e):
        if isinstance(e, Answer):
            return e.status, e.body
        return super().error_answer(e)

    def bug_body(self, e):
        return {"code": "FakeBug", "message": repr(e)}

    def failure_body(self):
        return {"code": "InternalServerError", "message": "일시적인 오류가 발생했습니다."}

    def check_auth(self):
        h = self.headers
        ok = (hmac.compare_digest(h.get("X-Naver-Client-Id", ""), STATE.client_id)
              and hmac.compare_digest(h.get("X-Naver-Client-Secret", ""), STATE.client_secret)
              and hmac.compare_digest(h.get("X-NaverPay-Chain-Id", ""), STATE.chain_id))
        if not ok:
            raise Answer({"code": "Unauthorized",
                          "message": "X-Naver-Client-Id / X-Naver-Client-Secret / X-NaverPay-Chain-Id "
                                     "missing or invalid"}, 401)

    def form(self):
        ctype = self.headers.get("Content-Type", "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            return {}
        return fakehttp.form_fields(self.body)

    def json_obj(self):
        return self.json_object(fail)

    # -- reserve --------------------------------------------------------------------------

    def reserve(self):
        b = self.json_obj()
        for k in ("merchantPayKey", "merchantUserKey", "productName", "returnUrl"):
            if not isinstance(b.get(k), str) or not b[k]:
                raise fail(f"{k} is required")
        if len(b["merchantPayKey"].encode()) > 64:
            raise fail("merchantPayKey is longer than 64 bytes")
        ints = {}
        for k in ("productCount", "totalPayAmount", "taxScopeAmount", "taxExScopeAmount"):
            v = b.get(k)
            if not is_int(v) or v < 0:
                raise fail(f"{k} is required (non-negative integer)")
            ints[k] = v
        if ints["productCount"] < 1 or ints["totalPayAmount"] < 1:
            raise fail("productCount and totalPayAmount must be at least 1")
        if ints["taxScopeAmount"] + ints["taxExScopeAmount"] != ints["totalPayAmount"]:
            raise fail("totalPayAmount must equal taxScopeAmount + taxExScopeAmount")
        if urlsplit(b["returnUrl"]).scheme not in ("http", "https"):
            raise fail("returnUrl must be an absolute http(s) URL")
        with STATE.lock:
            rid = ymdt()[:8] + "NR" + "".join(secrets.choice("0123456789") for _ in range(10))
            STATE.reserves[rid] = {
                "reserveId": rid, "merchantPayKey": b["merchantPayKey"], "merchantUserKey": b["merchantUserKey"],
                "productName": b["productName"], "returnUrl": b["returnUrl"], "state": "RESERVED",
                "paymentId": None, "reservedYmdt": ymdt(), **ints,
            }
        self.send_json(200, {"code": "Success", "message": "detail message", "body": {"reserveId": rid}})

    # -- the payer ------------------------------------------------------------------------

    def payer_page(self, rid):
        with STATE.lock:
            r = STATE.reserves.get(rid)
            if r is None:
                return self.send_html(404, "결제 정보를 찾을 수 없습니다.")
            if r["state"] != "RESERVED":
                params = {"resultCode": "Fail", "resultMessage": "이미 처리된 결제입니다."}
            else:
                action = STATE.behaviour["payer_action"]
                if action == "approve":
                    pid = np_id()
                    r["state"], r["paymentId"] = "AUTHORIZED", pid
                    STATE.payments[pid] = {
                        "paymentId": pid, "reserveId": rid, "state": "AUTHORIZED", "detail": None, "rows": [],
                        "rest": None, "_applying": False,
                    }
                    params = {"resultCode": "Success", "paymentId": pid}
                elif action == "cancel":
                    r["state"] = "USER_CANCEL"
                    params = {"resultCode": "UserCancel", "resultMessage": "사용자가 결제를 취소하였습니다."}
                else:
                    r["state"] = "FAILED"
                    params = {"resultCode": "Fail", "resultMessage": "결제 인증에 실패하였습니다."}
            target = r["returnUrl"]
        self.send_html(302, "redirecting", location=add_query(target, params))

    # -- apply ----------------------------------------------------------------------------

    def apply(self):
        key = self.headers.get("X-NaverPay-Idempotency-Key")
        pid = self.form().get("paymentId", "")
        with STATE.lock:
            if key:
                STATE.idempotency_keys.append(key)
                if key in STATE.idem:
                    return self.send_json(200, copy.deepcopy(STATE.idem[key]))
            answer, delay, p = self.apply_locked(pid)
            if key and answer["code"] != "AlreadyOnGoing":  # a transient answer is not kept
                STATE.idem[key] = copy.deepcopy(answer)
        self.send_json_late(200, answer, delay, p, "_applying")

    def apply_locked(self, pid):
        if not pid:
            return {"code": "Fail", "message": "paymentId is required"}, 0, None
        if len(pid.encode()) > 50:
            return {"code": "Fail", "message": "paymentId is longer than 50 bytes"}, 0, None
        p = STATE.payments.get(pid)
        if p is None:
            return {"code": "Fail", "message": "존재하지 않는 결제번호입니다."}, 0, None
        if p["_applying"]:
            return {"code": "AlreadyOnGoing", "message": "결제 승인이 진행 중입니다."}, 0, None
        if p["state"] == "APPLIED":
            return {"code": "AlreadyComplete", "message": "이미 승인된 결제입니다."}, 0, None
        if p["state"] == "FAILED":
            return {"code": "Fail", "message": "실패한 결제입니다."}, 0, None
        b = STATE.behaviour
        if b["decline_capture"]:
            p["state"] = "FAILED"
            code = b["decline_capture"] if isinstance(b["decline_capture"], str) else "OwnerAuthFail"
            return {"code": code, "message": "본인 인증에 실패하였습니다." if code == "OwnerAuthFail"
                    else f"결제 승인에 실패하였습니다 ({code})."}, 0, None
        r = STATE.reserves[p["reserveId"]]
        total = b["amount_override"] if b["amount_override"] is not None else r["totalPayAmount"]
        tax_ex = min(r["taxExScopeAmount"], total)
        now = time.time()
        detail = {
            "paymentId": pid,
            "payHistId": np_id(now),
            "merchantId": STATE.partner_id,
            "merchantName": "cinegate test merchant",
            "merchantPayKey": r["merchantPayKey"],
            "merchantUserKey": r["merchantUserKey"],
            "admissionTypeCode": "01",
            "admissionYmdt": ymdt(now),
            "tradeConfirmYmdt": "",
            "admissionState": "SUCCESS",
            "totalPayAmount": total,
            "applyPayAmount": total,
            "primaryPayAmount": total,
            "npointPayAmount": 0,
            "giftCardAmount": 0,
            "discountPayAmount": 0,
            "taxScopeAmount": total - tax_ex,
            "taxExScopeAmount": tax_ex,
            "environmentDepositAmount": 0,
            "primaryPayMeans": "CARD",
            **card_fields(),
            "productName": r["productName"],
            "settleExpected": False,
            "extraDeduction": False,
            "useCfmYmdt": "",
        }
        p.update(state="APPLIED", detail=detail, rows=[copy.deepcopy(detail)],
                 rest={"total": total, "taxScope": total - tax_ex, "taxExScope": tax_ex})
        delay = b["capture_delay"]
        p["_applying"] = bool(delay)
        answer = {"code": "Success", "message": "detail message",
                  "body": {"paymentId": pid, "detail": copy.deepcopy(detail)}}
        return answer, delay, p

    # -- cancel ---------------------------------------------------------------------------

    def cancel(self):
        f = self.form()
        pid = f.get("paymentId", "")
        amount, scope, ex_scope = (as_int(f.get(k)) for k in ("cancelAmount", "taxScopeAmount", "taxExScopeAmount"))
        if not pid:
            raise fail("paymentId is required")
        if amount is None or amount < 1:
            raise fail("cancelAmount is required (positive integer)")
        if scope is None or ex_scope is None or scope < 0 or ex_scope < 0:
            raise fail("taxScopeAmount and taxExScopeAmount are required (non-negative integers)")
        if scope + ex_scope != amount:
            raise fail("cancelAmount must equal taxScopeAmount + taxExScopeAmount")
        if not f.get("cancelReason"):
            raise fail("cancelReason is required")
        if f.get("cancelRequester") not in ("1", "2"):
            raise fail("cancelRequester must be 1 (buyer) or 2 (merchant)")
        with STATE.lock:
            p = STATE.payments.get(pid)
            if p is None:
                raise fail("존재하지 않는 결제번호입니다.")
            if p["state"] != "APPLIED" or p["_applying"]:
                raise fail(f"취소할 수 없는 결제입니다 (state {p['state']}).")
            rest = p["rest"]
            if rest["total"] == 0:
                raise fail("이미 전액 취소된 결제입니다.")
            if amount > rest["total"] or scope > rest["taxScope"] or ex_scope > rest["taxExScope"]:
                raise fail("취소 금액이 남은 금액을 초과합니다.")
            if f.get("doCompareRest") == "1":
                expected = as_int(f.get("expectedRestAmount"))
                if expected is None or expected != rest["total"] - amount:
                    raise fail("expectedRestAmount does not match the amount left after this cancel")
            now = time.time()
            rest["total"] -= amount
            rest["taxScope"] -= scope
            rest["taxExScope"] -= ex_scope
            hist = np_id(now)
            row = copy.deepcopy(p["detail"])
            row.update({"payHistId": hist, "admissionTypeCode": "03" if rest["total"] == 0 else "04",
                        "admissionYmdt": ymdt(now), "totalPayAmount": amount, "applyPayAmount": amount,
                        "primaryPayAmount": amount, "taxScopeAmount": scope, "taxExScopeAmount": ex_scope})
            p["rows"].append(row)
            pending = STATE.behaviour["cancel_pending"]
            body = {
                "paymentId": pid,
                "payHistId": "" if pending else hist,
                "primaryPayMeans": p["detail"]["primaryPayMeans"],
                "primaryPayCancelAmount": amount,
                "primaryPayRestAmount": rest["total"],
                "npointCancelAmount": 0,
                "npointRestAmount": 0,
                "giftCardCancelAmount": 0,
                "giftCardRestAmount": 0,
                "taxScopeAmount": scope,
                "taxExScopeAmount": ex_scope,
                "taxScopeRestAmount": rest["taxScope"],
                "taxExScopeRestAmount": rest["taxExScope"],
                "discountCancelAmount": 0,
                "discountRestAmount": 0,
                "cancelYmdt": ymdt(now),
                "totalRestAmount": rest["total"],
            }
        if pending:
            return self.send_json(200, {"code": "CancelNotComplete", "message": "취소 처리가 완료되지 않았습니다.",
                                        "body": body})
        self.send_json(200, {"code": "Success", "message": "detail message", "body": body})

    # -- history --------------------------------------------------------------------------

    def history(self):
        b = self.json_obj()
        kind = b.get("approvalType", "ALL")
        if kind not in ("ALL", "APPROVAL", "CANCEL", "CANCEL_FAIL"):
            raise fail("approvalType must be ALL, APPROVAL, CANCEL or CANCEL_FAIL")
        page = as_int(b.get("pageNumber", 1))
        per = as_int(b.get("rowsPerPage", 20))
        if page is None or page < 1 or per is None or not 1 <= per <= 100:
            raise fail("pageNumber >= 1, 1 <= rowsPerPage <= 100")
        with STATE.lock:
            if b.get("paymentId"):
                p = STATE.payments.get(b["paymentId"])
                rows = copy.deepcopy(p["rows"]) if p else []
            else:
                try:
                    start, end = parse_ymdt(b.get("startTime")), parse_ymdt(b.get("endTime"))
                except ValueError:
                    raise fail("paymentId, or startTime and endTime (YYYYMMDDHH24MISS), are required")
                if end < start or end - start > MAX_SPAN:
                    raise fail("startTime..endTime must be at most 31 days")
                rows = [copy.deepcopy(r) for p in STATE.payments.values() for r in p["rows"]
                        if b["startTime"] <= r["admissionYmdt"] <= b["endTime"]]
        want = {"ALL": ("01", "03", "04"), "APPROVAL": ("01",), "CANCEL": ("03", "04"), "CANCEL_FAIL": ()}[kind]
        rows = sorted((r for r in rows if r["admissionTypeCode"] in want), key=lambda r: r["admissionYmdt"])
        total = len(rows)
        chunk = rows[(page - 1) * per: page * per]
        self.send_json(200, {"code": "Success", "message": "detail message", "body": {
            "responseCount": len(chunk), "totalCount": total, "totalPageCount": (total + per - 1) // per,
            "currentPageNumber": page, "list": chunk}})

    # -- control --------------------------------------------------------------------------

    def state_view(self):
        return {"reserves": {k: public(v) for k, v in STATE.reserves.items()},
                "payments": {k: public(v) for k, v in STATE.payments.items()},
                "idempotency_keys": list(STATE.idempotency_keys),
                "behaviour": dict(STATE.behaviour)}


def main():
    global STATE
    args = fakehttp.arguments(__doc__, "--client-id", "--client-secret", "--chain-id", "--partner-id")
    STATE = State(args.client_id, args.client_secret, args.chain_id, args.partner_id)
    fakehttp.serve(Handler, STATE, args)


if __name__ == "__main__":
    main()
