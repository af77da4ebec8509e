//! `/login?token=…`, the address that viewers' one-time links used before the viewer app:
//! it now sends the browser to the app's sign-in page with the same query, which redeems
//! the token for the session cookie (the token never reaches a log: the access log leaves
//! out query strings).

use actix_web::{HttpRequest, HttpResponse};

pub async fn login(req: HttpRequest) -> HttpResponse {
    let query = req.query_string();
    let to = if query.is_empty() {
        "/sign-in".to_string()
    } else {
        format!("/sign-in?{query}")
    };
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}
