//! The few HTML pages the server itself serves. `/login` redeems a one-time sign-in link
//! in the browser (the token never reaches a log: the access log leaves out query strings).

use actix_web::HttpResponse;

const LOGIN: &str = include_str!("../web/login.html");

pub async fn login() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ))
        .body(LOGIN)
}
