//! Kakao Pay online single payment (`open-api.kakaopay.com`, `SECRET_KEY` authorization,
//! JSON): ready → payer redirect (PC, mobile, app URLs) → approve with the `pg_token` the
//! approval URL brings back → cancel for refunds; `order` looks a payment up. Kakao Pay has
//! no idempotency header: an unclear approve is settled by looking the tid up.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{
    transport, Capture, Checkout, Lookup, PaymentError, PaymentProvider, ReturnParams, ReturnUrls,
};
use crate::config::KakaoPayConfig;
use crate::store::orders::Order;

pub struct KakaoPay {
    secret_key: String,
    cid: String,
    api: String,
    http: reqwest::Client,
}

impl KakaoPay {
    pub fn new(cfg: &KakaoPayConfig, http: reqwest::Client) -> Self {
        Self {
            secret_key: cfg.secret_key.0.clone(),
            cid: cfg.cid.clone(),
            api: cfg.api_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// One call; business errors come back as `Err(code, message)` inside `Ok`.
    async fn call(
        &self,
        op: &str,
        body: &Value,
    ) -> Result<Result<Value, (i64, String)>, PaymentError> {
        let response = self
            .http
            .post(format!("{}/online/v1/payment/{op}", self.api))
            .header("Authorization", format!("SECRET_KEY {}", self.secret_key))
            .json(body)
            .send()
            .await
            .map_err(|e| transport("Kakao Pay", e))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| transport("Kakao Pay", e))?;
        let value: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Ok(value));
        }
        let code = value["error_code"].as_i64().unwrap_or(0);
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || matches!(code, -500 | -503 | -429)
        {
            return Err(PaymentError::Unavailable(format!(
                "Kakao Pay answered HTTP {}",
                status.as_u16()
            )));
        }
        let message = value["error_message"].as_str().unwrap_or("").to_string();
        let detail = value["extras"]["method_result_message"]
            .as_str()
            .unwrap_or("");
        Ok(Err((
            code,
            format!("{message} {detail}").trim().to_string(),
        )))
    }

    fn tid<'a>(&self, order: &'a Order) -> Result<&'a str, PaymentError> {
        order
            .provider_ref
            .as_deref()
            .ok_or_else(|| PaymentError::Declined("the order never reached Kakao Pay".into()))
    }
}

impl PaymentProvider for KakaoPay {
    fn id(&self) -> &'static str {
        "kakaopay"
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "KRW"
    }

    fn accepted(&self) -> String {
        "KRW".into()
    }

    fn link_lifetime(&self) -> std::time::Duration {
        // A tid can be paid for 15 minutes after `ready`.
        std::time::Duration::from_secs(15 * 60)
    }

    fn check_return(&self, _order: &Order, params: &ReturnParams) -> Result<(), PaymentError> {
        match params.get("pg_token") {
            Some(t) if !t.is_empty() && t.len() <= 256 => Ok(()),
            _ => Err(PaymentError::Declined(
                "the approval came back without pg_token".into(),
            )),
        }
    }

    fn token_on_return(&self, params: &ReturnParams) -> Option<String> {
        // approve needs the return's pg_token, and Kakao Pay gives it nowhere else.
        params
            .get("pg_token")
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .cloned()
    }

    fn retry_params(&self, order: &Order) -> Option<ReturnParams> {
        // No idempotency header, but a second approve of an approved tid answers -702,
        // which `capture` settles by looking the tid up: never a second charge.
        let token = order.capture_token.clone()?;
        Some(ReturnParams::from([("pg_token".to_string(), token)]))
    }

    fn create<'a>(
        &'a self,
        order: &'a Order,
        item: &'a str,
        urls: &'a ReturnUrls,
    ) -> BoxFuture<'a, Result<Checkout, PaymentError>> {
        Box::pin(async move {
            let body = json!({
                "cid": self.cid,
                "partner_order_id": order.id.to_string(),
                "partner_user_id": order.user_id.to_string(),
                "item_name": item.chars().take(100).collect::<String>(),
                "quantity": 1,
                "total_amount": order.amount,
                "tax_free_amount": 0,
                "approval_url": urls.approve,
                "cancel_url": urls.cancel,
                "fail_url": urls.fail,
            });
            let answer = self.call("ready", &body).await?.map_err(|(code, m)| {
                PaymentError::Refused(format!("Kakao Pay ready: {m} ({code})"))
            })?;
            let field = |k: &str| answer[k].as_str().map(str::to_string);
            let tid = field("tid")
                .ok_or_else(|| PaymentError::Unavailable("Kakao Pay returned no tid".into()))?;
            let redirect = field("next_redirect_pc_url")
                .or_else(|| field("next_redirect_mobile_url"))
                .ok_or_else(|| {
                    PaymentError::Unavailable("Kakao Pay returned no redirect URL".into())
                })?;
            Ok(Checkout {
                provider_ref: tid,
                redirect_url: redirect,
                mobile_url: field("next_redirect_mobile_url"),
                app_url: field("next_redirect_app_url"),
            })
        })
    }

    fn capture<'a>(
        &'a self,
        order: &'a Order,
        params: &'a ReturnParams,
    ) -> BoxFuture<'a, Result<Capture, PaymentError>> {
        Box::pin(async move {
            let tid = self.tid(order)?;
            let pg_token = params
                .get("pg_token")
                .filter(|t| !t.is_empty() && t.len() <= 256)
                .ok_or_else(|| {
                    PaymentError::Declined("the approval came back without pg_token".into())
                })?;
            let body = json!({
                "cid": self.cid,
                "tid": tid,
                "partner_order_id": order.id.to_string(),
                "partner_user_id": order.user_id.to_string(),
                "pg_token": pg_token,
                "total_amount": order.amount,
            });
            match self.call("approve", &body).await {
                Ok(Ok(answer)) => {
                    let amount = answer["amount"]["total"].as_u64().ok_or_else(|| {
                        PaymentError::Unavailable("Kakao Pay returned no amount".into())
                    })?;
                    let aid = answer["aid"].as_str().unwrap_or(tid).to_string();
                    Ok(Capture {
                        payment_id: aid,
                        amount,
                        currency: "KRW".into(),
                    })
                }
                // Approved already (a duplicate return): the lookup says what was taken.
                Ok(Err((-702, _))) => match self.lookup(order).await? {
                    Lookup::Captured(c) => Ok(c),
                    other => Err(PaymentError::Unavailable(format!(
                        "Kakao Pay: approved, lookup says {other:?}"
                    ))),
                },
                // Still being approved (a second approve raced the first): the outcome is not
                // known yet.
                Ok(Err((-785, message))) => Err(PaymentError::Unavailable(format!(
                    "Kakao Pay: {message} (-785)"
                ))),
                // The payment itself refused (-780: the payer's bank or card, extras say why) or
                // the payer's window closed (-723): nothing was taken and nothing will be.
                Ok(Err((code @ (-780 | -723), message))) => Err(PaymentError::Declined(format!(
                    "Kakao Pay: {message} ({code})"
                ))),
                // Anything else refuses our request, not the payment: a bad SECRET_KEY (-401),
                // an API not enabled (-403), a bad cid (-731), parameters (-400, -722, -726), a
                // pg_token Kakao Pay does not take (-701, anyone can send a return). The order
                // stays approved; the payer reads provider_unavailable, the log has the detail.
                Ok(Err((code, message))) => Err(PaymentError::Refused(format!(
                    "Kakao Pay approve: {message} ({code})"
                ))),
                // A 4xx can hide a success and a timeout says nothing: ask.
                Err(e) => match self.lookup(order).await {
                    Ok(Lookup::Captured(c)) => Ok(c),
                    _ => Err(e),
                },
            }
        })
    }

    fn lookup<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>> {
        Box::pin(async move {
            let Some(tid) = order.provider_ref.as_deref() else {
                return Ok(Lookup::Abandoned("never reached Kakao Pay".into()));
            };
            let answer = match self
                .call("order", &json!({ "cid": self.cid, "tid": tid }))
                .await?
            {
                Ok(v) => v,
                Err((code, m)) => {
                    return Err(PaymentError::Unavailable(format!(
                        "Kakao Pay order: {m} ({code})"
                    )))
                }
            };
            Ok(match answer["status"].as_str().unwrap_or("") {
                "SUCCESS_PAYMENT" | "PART_CANCEL_PAYMENT" => {
                    let aid = answer["payment_action_details"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|d| d["payment_action_type"] == "PAYMENT")
                        .and_then(|d| d["aid"].as_str())
                        .unwrap_or(tid)
                        .to_string();
                    match answer["amount"]["total"].as_u64() {
                        Some(amount) => Lookup::Captured(Capture {
                            payment_id: aid,
                            amount,
                            currency: "KRW".into(),
                        }),
                        None => Lookup::Pending,
                    }
                }
                // The payer authenticated at Kakao Pay; the money moves only on approve.
                "AUTH_PASSWORD" => Lookup::Approved,
                "CANCEL_PAYMENT" => Lookup::Refunded,
                "QUIT_PAYMENT" => Lookup::Abandoned("the payer quit".into()),
                "FAIL_PAYMENT" | "FAIL_AUTH_PASSWORD" => {
                    Lookup::Abandoned("Kakao Pay failed the payment".into())
                }
                _ => Lookup::Pending,
            })
        })
    }

    fn refund<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move {
            let body = json!({
                "cid": self.cid,
                "tid": self.tid(order)?,
                "cancel_amount": order.amount,
                "cancel_tax_free_amount": 0,
            });
            match self.call("cancel", &body).await? {
                Ok(_) => Ok(()),
                Err((code, m)) => match self.lookup(order).await? {
                    Lookup::Refunded => Ok(()),
                    _ => Err(PaymentError::Refused(format!(
                        "Kakao Pay cancel: {m} ({code})"
                    ))),
                },
            }
        })
    }
}
