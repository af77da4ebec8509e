//! The hand-written schemas the handlers' `#[utoipa::path]` attributes name beside the
//! derived views: the one error shape every refusal has (`ErrorBody`, with `ErrorCode`
//! listing every stable code of `api::codes`) and a JPEG body. Apart from `api::openapi`,
//! which assembles the document from the handlers, so handlers and document do not import
//! each other.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::codes::Code;

/// The stable codes of `api::codes` as a string enum.
pub struct ErrorCode;

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A stable error code: apps branch on it (docs/API.md)"))
            .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// `{"error": {"code", "message", …}}`, the one shape of every refusal; some codes carry
/// fields beside them (`retry_after`, `coverage`, …), so the detail stays open.
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        let detail = ObjectBuilder::new()
            .property("code", ErrorCode::schema_ref())
            .required("code")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        ObjectBuilder::new()
            .property("error", detail)
            .required("error")
            .into()
    }
}

impl ToSchema for ErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

impl ErrorCode {
    fn schema_ref() -> RefOr<Schema> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Self::name()))
    }
}

/// A JPEG file as a response body: bytes, not JSON (`contentMediaType`, OpenAPI 3.1).
pub struct Jpeg;

impl PartialSchema for Jpeg {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("image/jpeg")
            .into()
    }
}

impl ToSchema for Jpeg {}

// The refusals an operation answers before its handler runs, said once: an operation lists
// one of these in its `responses(…)`. Types for the document only, never constructed.

/// 401: no access token, or one that is not valid or has expired.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "`unauthenticated`, `invalid_token`, `token_expired`"
)]
pub struct Unauthenticated(#[allow(dead_code)] ErrorBody);

/// What a signed-in operation refuses: 401 as [`Unauthenticated`], 403 for a disabled account.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SignedInRefusals {
    #[response(
        status = 401,
        description = "`unauthenticated`, `invalid_token`, `token_expired`"
    )]
    Unauthenticated(ErrorBody),
    #[response(status = 403, description = "`account_disabled`")]
    Disabled(ErrorBody),
}

/// What an admin operation refuses: 401 as [`Unauthenticated`], 403 for anyone but an admin.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminRefusals {
    #[response(
        status = 401,
        description = "`unauthenticated`, `invalid_token`, `token_expired`"
    )]
    Unauthenticated(ErrorBody),
    #[response(
        status = 403,
        description = "`admin_only`: not an admin; `account_disabled`"
    )]
    NotAdmin(ErrorBody),
}
