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
