//! The JSON API's OpenAPI 3.1 document (issue 18), served at `GET /api/v1/openapi.json`.
//!
//! Operations come from the `#[utoipa::path]` attributes on the handlers, listed by hand in
//! `ApiDoc` (the route table stays actix's own); their types are the `ToSchema` views of
//! `api::views` and the handlers' request structs. What the derive cannot know is added by
//! `Contract`: the security schemes, the one error shape and its codes (from `api::codes`,
//! so a new code is in the document the day it is added), and the version. The server's
//! address is the configuration's `public_url`, so it is set per server in `document`.
//! `tests/server/openapi.rs` validates the document with an independent validator and
//! fails when a route of the table is neither in it nor on its allow-list.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Server};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::{ApiError, ApiResult};
use super::schemas::{ErrorBody, ErrorCode};
use crate::server::session::{CSRF_HEADER, SESSION_COOKIE};
use crate::state::AppState;

/// The security scheme names operations refer to in their `security(…)`.
pub const BEARER: &str = "bearer";
pub const SESSION: &str = "session";
pub const CSRF: &str = "csrf";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cinegate",
        description = "The JSON API of a cinegate server: sign-in, the catalogue, playback, \
                       payments, comments and the admin's operations. Every refusal is \
                       `{\"error\": {\"code\", \"message\"}}` with a stable `code`."
    ),
    paths(
        super::auth::link,
        super::auth::refresh,
        super::auth::logout,
        super::signin::providers,
        super::signin::exchange,
        super::signin::session_token,
        super::signin::session_end,
        super::signin::native,
        super::me::me,
        super::me::logout_all,
        super::me::delete,
        super::me::unlink,
        super::me::progress,
        super::films::list,
        super::films::detail,
        super::films::poster,
        super::films::playback,
        super::films::progress,
        super::payments::checkout,
        super::payments::order,
        super::payments::providers,
        super::payments::my_purchases,
        super::payments::paypal_webhook,
        super::comments::list,
        super::comments::create,
        super::comments::support,
        super::comments::counts,
        super::comments::edit,
        super::comments::delete,
        super::comments::report,
        super::devices::list,
        super::devices::register,
        super::devices::delete,
        super::notifications::prefs,
        super::notifications::set_prefs,
        super::admin::analytics::report,
        super::admin::analytics::retention,
        super::admin::films::list,
        super::admin::films::create,
        super::admin::films::get,
        super::admin::films::update,
        super::admin::films::delete,
        super::admin::films::publish,
        super::admin::films::unpublish,
        super::admin::films::put_source,
        super::admin::grants::grant,
        super::admin::grants::revoke,
        super::admin::jobs::list,
        super::admin::jobs::get,
        super::admin::jobs::cancel,
        super::admin::jobs::retry,
        super::admin::runners::create,
        super::admin::runners::list,
        super::admin::runners::revoke,
        super::admin::users::list,
        super::payments::admin_orders,
        super::payments::admin_refund,
        super::payments::admin_reconcile,
        super::comments::admin_queue,
        super::comments::admin_hide,
        super::comments::admin_restore,
        super::comments::admin_delete,
        super::comments::admin_supporters,
        super::notifications::dead,
        super::notifications::retry_dead,
        super::uploads::options,
        super::uploads::options_item,
        super::uploads::create,
        super::uploads::head,
        super::uploads::patch,
        super::uploads::terminate,
        document,
    ),
    // Schemas named only by a parameter's `value_type` (the derive collects bodies' and
    // fields' schemas, not these).
    components(schemas(
        super::views::analytics::ExportFormat,
        super::views::analytics::Granularity,
        super::views::admin::JobStateName,
        super::views::admin::FilmStatus,
    )),
    modifiers(&Contract)
)]
struct ApiDoc;

/// The parts of the document the derive cannot write.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The access token of `/auth/link`, `/auth/refresh` or `/auth/exchange`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The browser session; every request with it also sends the CSRF header",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                CSRF_HEADER,
                "`X-Requested-With: cinegate` beside the session cookie",
            ))),
        );
        components
            .schemas
            .insert(ErrorCode::name().into_owned(), ErrorCode::schema());
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        budgets(doc);
    }
}

/// Every `/api/v1` request counts against the general budgets (`api::limits`), which answer
/// 429 `rate_limited` before any handler runs: each operation lists that 429, beside its
/// handler's own (which already speak of `rate_limited`).
fn budgets(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Header, ResponseBuilder};
    let text = |description: &str| -> Header {
        let mut h = Header::new(ObjectBuilder::new().schema_type(Type::String));
        h.description = Some(description.to_string());
        h
    };
    // draft-ietf-httpapi-ratelimit-headers-09, on every answer the budgets counted.
    let budget_headers = [
        (
            "RateLimit-Policy",
            text("The budget this request counted against, e.g. `\"reads\";q=120;w=12`"),
        ),
        (
            "RateLimit",
            text("What is left of it, e.g. `\"reads\";r=117;t=0` (`t`: seconds until more)"),
        ),
    ];
    let refusal = ResponseBuilder::new()
        .header(
            "Retry-After",
            Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
        )
        .description(
            "`rate_limited`: past this client's or account's request budget; wait \
             `retry_after` seconds (also in `Retry-After`)",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            op.responses
                .responses
                .entry("429".to_string())
                .or_insert_with(|| RefOr::T(refusal.clone()));
            for answer in op.responses.responses.values_mut() {
                if let RefOr::T(answer) = answer {
                    for (name, header) in &budget_headers {
                        answer
                            .headers
                            .entry(name.to_string())
                            .or_insert_with(|| RefOr::T(header.clone()));
                    }
                }
            }
        }
    }
}

/// The document for a server at `public_url`.
pub fn openapi(public_url: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![Server::new(public_url.trim_end_matches('/'))]);
    doc
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    operation_id = "getOpenApiDocument",
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
    )
)]
pub async fn document(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // Rendered per request: tests run many servers (each its own public_url) in one process,
    // and the document is small; caches keep it for an hour.
    let body = openapi(&state.config.public_url)
        .to_json()
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .content_type("application/json")
        .body(body))
}
