//! Naver Pay, payment type (결제형): reserve → payer at `{payment_url}/{reserveId}` → the
//! return brings `resultCode` and `paymentId` → apply (with an idempotency key) → cancel for
//! refunds; history by `paymentId` settles anything unclear. Outcomes are judged by the
//! body's `code`, not the HTTP status.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{
    transport, Capture, Checkout, Lookup, PaymentError, PaymentProvider, ReturnParams, ReturnUrls,
};
use crate::config::NaverPayConfig;
use crate::store::orders::Order;

pub struct NaverPay {
    client_id: String,
    client_secret: String,
    chain_id: String,
    base: String,
    payment_url: String,
    http: reqwest::Client,
}

enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, String)]),
}

impl NaverPay {
    pub fn new(cfg: &NaverPayConfig, http: reqwest::Client) -> Self {
        Self {
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.0.clone(),
            chain_id: cfg.chain_id.clone(),
            base: format!(
                "{}/{}/naverpay/payments",
                cfg.api_url.trim_end_matches('/'),
                cfg.partner_id
            ),
            payment_url: cfg.payment_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn call(
        &self,
        path: &str,
        body: Body<'_>,
        idempotency: Option<&str>,
    ) -> Result<Value, PaymentError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-Naver-Client-Id", &self.client_id)
            .header("X-Naver-Client-Secret", &self.client_secret)
            .header("X-NaverPay-Chain-Id", &self.chain_id);
        if let Some(key) = idempotency {
            req = req.header("X-NaverPay-Idempotency-Key", key);
        }
        req = match body {
            Body::Json(v) => req.json(v),
            Body::Form(f) => req.form(f),
        };
        let response = req.send().await.map_err(|e| transport("Naver Pay", e))?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(PaymentError::Unavailable(format!(
                "Naver Pay answered HTTP {}",
                status.as_u16()
            )));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| transport("Naver Pay", e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(PaymentError::Refused(format!(
                "Naver Pay refused the credentials (HTTP {}): check payments.naverpay.*",
                status.as_u16()
            )));
        }
        Ok(value)
    }

    fn capture_of(detail: &Value, order: &Order) -> Option<Capture> {
        // The security guide: the merchant key must be ours for this order.
        if detail["merchantPayKey"].as_str() != Some(order.id.to_string().as_str()) {
            return None;
        }
        Some(Capture {
            payment_id: detail["paymentId"].as_str()?.to_string(),
            amount: detail["totalPayAmount"].as_u64()?,
            currency: "KRW".into(),
        })
    }

    async fn history(&self, order: &Order, payment_id: &str) -> Result<Lookup, PaymentError> {
        let answer = self
            .call(
                "/v2.2/list/history",
                Body::Json(&json!({ "paymentId": payment_id })),
                None,
            )
            .await?;
        if answer["code"] != "Success" {
            return Err(PaymentError::Unavailable(format!(
                "Naver Pay history: {}",
                answer["code"].as_str().unwrap_or("?")
            )));
        }
        let rows: Vec<&Value> = answer["body"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        // A row's kind is its admissionTypeCode: 01 approval, 03 full cancel, 04 partial
        // cancel (admissionState stays SUCCESS on cancel rows). cinegate refunds in full.
        let kind = |r: &Value| r["admissionTypeCode"].as_str().map(str::to_string);
        if rows
            .iter()
            .any(|r| matches!(kind(r).as_deref(), Some("03" | "04")))
        {
            return Ok(Lookup::Refunded);
        }
        let approval = |r: &&&Value| match kind(r).as_deref() {
            Some(code) => code == "01",
            None => r["admissionState"] == "SUCCESS",
        };
        match rows
            .iter()
            .filter(approval)
            .find_map(|r| Self::capture_of(r, order))
        {
            Some(c) => Ok(Lookup::Captured(c)),
            // The paymentId came with the payer's successful return, so the payer approved;
            // nothing was applied yet.
            None if rows.is_empty() => Ok(Lookup::Approved),
            None => Ok(Lookup::Pending),
        }
    }
}

impl PaymentProvider for NaverPay {
    fn id(&self) -> &'static str {
        "naverpay"
    }

    fn payment_id_on_return(&self, params: &ReturnParams) -> Option<String> {
        params.get("paymentId").filter(|p| p.len() <= 50).cloned()
    }

    fn retry_params(&self, order: &Order) -> Option<ReturnParams> {
        // apply needs only the paymentId (kept from the return) and carries the same
        // idempotency key (`apply-{id}`) as the payer's return did.
        let payment_id = order.payment_id.clone()?;
        Some(ReturnParams::from([
            ("resultCode".to_string(), "Success".to_string()),
            ("paymentId".to_string(), payment_id),
        ]))
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "KRW"
    }

    fn accepted(&self) -> String {
        "KRW".into()
    }

    fn link_lifetime(&self) -> std::time::Duration {
        // Not published for 결제형; Kakao Pay's 15 minutes is the cautious guess.
        std::time::Duration::from_secs(15 * 60)
    }

    fn check_return(&self, _order: &Order, params: &ReturnParams) -> Result<(), PaymentError> {
        match params.get("resultCode").map(String::as_str) {
            Some("Success") => {}
            // Naver Pay has no cancel URL: a payer who gives up comes back through the return.
            Some("UserCancel") => {
                return Err(PaymentError::Cancelled(
                    "cancelled by the payer at Naver Pay".into(),
                ))
            }
            Some(code) => {
                return Err(PaymentError::Declined(format!(
                    "Naver Pay: {code} {}",
                    params
                        .get("resultMessage")
                        .map(String::as_str)
                        .unwrap_or("")
                )))
            }
            None => {
                return Err(PaymentError::Declined(
                    "the return has no resultCode".into(),
                ))
            }
        }
        match params.get("paymentId") {
            Some(p) if !p.is_empty() && p.len() <= 50 => Ok(()),
            _ => Err(PaymentError::Declined("the return has no paymentId".into())),
        }
    }

    fn create<'a>(
        &'a self,
        order: &'a Order,
        item: &'a str,
        urls: &'a ReturnUrls,
    ) -> BoxFuture<'a, Result<Checkout, PaymentError>> {
        Box::pin(async move {
            let body = json!({
                "merchantPayKey": order.id.to_string(),
                "merchantUserKey": order.user_id.to_string(),
                "productName": item.chars().take(128).collect::<String>(),
                "productCount": 1,
                "totalPayAmount": order.amount,
                "taxScopeAmount": order.amount,
                "taxExScopeAmount": 0,
                "returnUrl": urls.approve,
            });
            let answer = self.call("/v2/reserve", Body::Json(&body), None).await?;
            if answer["code"] != "Success" {
                return Err(PaymentError::Refused(format!(
                    "Naver Pay reserve: {} {}",
                    answer["code"].as_str().unwrap_or("?"),
                    answer["message"].as_str().unwrap_or("")
                )));
            }
            let reserve = answer["body"]["reserveId"].as_str().ok_or_else(|| {
                PaymentError::Unavailable("Naver Pay returned no reserveId".into())
            })?;
            Ok(Checkout {
                provider_ref: reserve.to_string(),
                redirect_url: format!("{}/{reserve}", self.payment_url),
                mobile_url: None,
                app_url: None,
            })
        })
    }

    fn capture<'a>(
        &'a self,
        order: &'a Order,
        params: &'a ReturnParams,
    ) -> BoxFuture<'a, Result<Capture, PaymentError>> {
        Box::pin(async move {
            self.check_return(order, params)?;
            let payment_id = params
                .get("paymentId")
                .filter(|p| !p.is_empty() && p.len() <= 50)
                .ok_or_else(|| PaymentError::Declined("the return has no paymentId".into()))?;
            let form = [("paymentId", payment_id.clone())];
            let answer = match self
                .call(
                    "/v2.2/apply/payment",
                    Body::Form(&form),
                    Some(&format!("apply-{}", order.id)),
                )
                .await
            {
                Ok(v) => v,
                // Unknown outcome: history says whether it went through.
                Err(e) => {
                    return match self.history(order, payment_id).await {
                        Ok(Lookup::Captured(c)) => Ok(c),
                        _ => Err(e),
                    }
                }
            };
            match answer["code"].as_str().unwrap_or("") {
                "Success" => Self::capture_of(&answer["body"]["detail"], order).ok_or_else(|| {
                    PaymentError::Declined(
                        "Naver Pay approved a payment that is not this order's".into(),
                    )
                }),
                "AlreadyComplete" | "AlreadyOnGoing" => {
                    match self.history(order, payment_id).await? {
                        Lookup::Captured(c) => Ok(c),
                        _ => Err(PaymentError::Unavailable(
                            "Naver Pay: payment still in progress".into(),
                        )),
                    }
                }
                // The payment itself refused, or the payer's window closed.
                code @ ("Fail" | "OwnerAuthFail" | "NotEnoughAccountBalance" | "TimeExpired") => {
                    Err(PaymentError::Declined(format!(
                        "Naver Pay: {code} {}",
                        answer["message"].as_str().unwrap_or("")
                    )))
                }
                // Maintenance at Naver Pay or the bank: not now, rather than no.
                code @ ("BankMaintenance" | "MaintenanceOngoing" | "FaultCheckOngoing") => {
                    Err(PaymentError::Unavailable(format!("Naver Pay: {code}")))
                }
                // Our request refused (InvalidMerchant: the partner or chain id; anything new):
                // the order stays approved for a retry once it is fixed.
                code => Err(PaymentError::Refused(format!(
                    "Naver Pay apply: {code} {}",
                    answer["message"].as_str().unwrap_or("")
                ))),
            }
        })
    }

    fn lookup<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>> {
        Box::pin(async move {
            match order.payment_id.as_deref() {
                Some(payment_id) => self.history(order, payment_id).await,
                // Without a paymentId the payer never came back from Naver Pay.
                None => Ok(Lookup::Pending),
            }
        })
    }

    fn refund<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move {
            let payment_id = order.payment_id.clone().ok_or_else(|| {
                PaymentError::Refused("the order has no Naver Pay paymentId".into())
            })?;
            let form = [
                ("paymentId", payment_id.clone()),
                ("cancelAmount", order.amount.to_string()),
                ("cancelReason", "refund".to_string()),
                ("cancelRequester", "2".to_string()),
                ("taxScopeAmount", order.amount.to_string()),
                ("taxExScopeAmount", "0".to_string()),
            ];
            let answer = self.call("/v1/cancel", Body::Form(&form), None).await?;
            match answer["code"].as_str().unwrap_or("") {
                "Success" => Ok(()),
                // Accepted but not finished; history confirms it.
                "CancelNotComplete" => match self.history(order, &payment_id).await? {
                    Lookup::Refunded => Ok(()),
                    _ => Err(PaymentError::Unavailable(
                        "Naver Pay has not finished the cancel yet".into(),
                    )),
                },
                code => Err(PaymentError::Refused(format!(
                    "Naver Pay cancel: {code} {}",
                    answer["message"].as_str().unwrap_or("")
                ))),
            }
        })
    }
}
