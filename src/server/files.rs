//! A whole small file as an answer (posters): `actix_files` for the conditional and range
//! handling, with the content type and caching the caller names.

use std::path::Path;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::{HttpRequest, HttpResponse};

/// The JPEG at `path`, or `None` when it cannot be opened. `cache` is its
/// `Cache-Control`, if any.
pub async fn jpeg(
    req: &HttpRequest,
    path: &Path,
    cache: Option<&'static str>,
) -> Option<HttpResponse> {
    let file = actix_files::NamedFile::open_async(path)
        .await
        .ok()?
        .set_content_type(mime::IMAGE_JPEG);
    let mut response = file.into_response(req);
    if let Some(cache) = cache {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    Some(response)
}

/// `len` bytes of `file` from `offset` as an ordinary streamed body, in 256 KiB reads:
/// for connections sendfile(2) cannot write to (TLS), where [`super::sendfile::FileBody`]
/// does not apply.
pub fn range_stream(
    mut file: std::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<actix_web::body::BoxBody> {
    use std::io::Seek;
    use tokio::io::AsyncReadExt;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let reader = tokio::fs::File::from_std(file).take(len);
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = bytes::BytesMut::with_capacity(256 << 10);
        match reader.read_buf(&mut buf).await {
            Ok(0) if reader.limit() > 0 => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than its Content-Length",
                )),
                None,
            )),
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(actix_web::body::BoxBody::new(
        actix_web::body::SizedStream::new(len, Box::pin(stream)),
    ))
}
