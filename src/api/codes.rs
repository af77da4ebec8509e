//! The stable error codes of the JSON API: the `code` in `{"error": {"code", "message"}}`.
//! Apps branch on these strings, so a code is never renamed or reused for another meaning;
//! the status it is answered with is chosen where the error is mapped (`api::error`), and
//! docs/API.md ("Error codes") lists every code with its status (a test below keeps the two in step).

use serde::{Serialize, Serializer};

/// Declares `Code` from one table: each variant with its string and a one-line doc, so the
/// enum, `as_str` and `Code::ALL` cannot disagree.
macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $text:literal,)+) => {
        /// One stable error code; `as_str` is what clients see.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)+
                }
            }
        }
    };
}

codes! {
    // --- any endpoint ---
    /// A server fault; the cause is in the server log, never in the answer.
    Internal = "internal",
    /// A stored record could not be decoded; left as it is, the tree and key are in the log.
    RecordUnreadable = "record_unreadable",
    /// The resource (film, order, comment, job, route, …) does not exist or is not visible.
    NotFound = "not_found",
    /// A concurrent change won the write; retry.
    Conflict = "conflict",
    /// A field value was refused (422), or a token field is empty or too long (400).
    InvalidInput = "invalid_input",
    /// The JSON body does not parse or does not match the expected shape.
    InvalidJson = "invalid_json",
    /// The query string does not parse.
    InvalidQuery = "invalid_query",
    /// A form body or a sign-in request is malformed.
    InvalidRequest = "invalid_request",
    /// The request body is over the JSON size limit.
    BodyTooLarge = "body_too_large",
    /// The body's content type is not the one the endpoint reads.
    UnsupportedMediaType = "unsupported_media_type",
    /// Too many requests from this client, family or user; wait `retry_after` seconds.
    RateLimited = "rate_limited",
    /// The method is not served on this path (playback resources are read with GET).
    MethodNotAllowed = "method_not_allowed",

    // --- signing in and tokens ---
    /// No access token (or session) was sent.
    Unauthenticated = "unauthenticated",
    /// The access, refresh or playback token is not valid, its account is gone, or its
    /// sign-in was ended.
    InvalidToken = "invalid_token",
    /// The access or refresh token has expired.
    TokenExpired = "token_expired",
    /// A rotated refresh token was used again; its whole sign-in is ended.
    TokenReused = "token_reused",
    /// The account is disabled.
    AccountDisabled = "account_disabled",
    /// The endpoint is for admins.
    AdminOnly = "admin_only",
    /// A session request lacks `X-Requested-With: cinegate`.
    Csrf = "csrf",
    /// The sign-in provider is not configured on this server.
    UnknownProvider = "unknown_provider",
    /// The app's `redirect_uri` is not one of `auth.app_redirect_uris`.
    InvalidRedirectUri = "invalid_redirect_uri",
    /// The sign-in `state` is missing, unknown, used, or from another browser or provider.
    InvalidState = "invalid_state",
    /// The sign-in flow is older than 10 minutes.
    FlowExpired = "flow_expired",
    /// The viewer declined at the provider.
    SignInCancelled = "sign_in_cancelled",
    /// The provider refused the sign-in code; start again.
    ProviderRejected = "provider_rejected",
    /// A sign-in or payment provider failed or refused this server; try again later.
    ProviderUnavailable = "provider_unavailable",
    /// A payment provider refused the admin's request (refund, reconcile); the message says why.
    ProviderRefused = "provider_refused",
    /// The provider's ID token is not valid.
    InvalidIdToken = "invalid_id_token",
    /// The provider's access token (Facebook) is not valid.
    InvalidProviderToken = "invalid_provider_token",
    /// The app exchange code is unknown, used, expired, or its verifier does not match.
    InvalidCode = "invalid_code",
    /// The verified e-mail belongs to another account.
    AccountExists = "account_exists",
    /// The identity is linked to another account.
    IdentityInUse = "identity_in_use",
    /// Unlinking would leave the account with no way in.
    LastIdentity = "last_identity",

    // --- watching ---
    /// The playback token has expired; ask for a new one.
    PlaybackExpired = "playback_expired",
    /// The segment or key is past the preview and the viewer has not bought the film.
    PreviewEnded = "preview_ended",
    /// The playback token is already playing from `playback.max_addresses_per_token` other
    /// client addresses; start playback again on this device for a token of its own.
    TokenShared = "token_shared",
    /// The byte range is outside the segment.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// Comments and support open after watching more of the film (`coverage` says how much).
    WatchMore = "watch_more",

    // --- buying ---
    /// The webhook delivery's signature did not verify.
    InvalidSignature = "invalid_signature",
    /// The film has no price.
    NotForSale = "not_for_sale",
    /// The provider takes none of the film's (or the tip's) currencies.
    CurrencyUnsupported = "currency_unsupported",
    /// The viewer already owns the film.
    AlreadyOwned = "already_owned",
    /// The order is not in a state that allows this.
    OrderState = "order_state",
    /// The provider declined the payment.
    PaymentDeclined = "payment_declined",
    /// The payer cancelled at the provider.
    PaymentCancelled = "payment_cancelled",
    /// Too many unfinished orders for this viewer; wait `retry_after` seconds.
    TooManyOpenOrders = "too_many_open_orders",

    // --- comments ---
    /// The comment is someone else's.
    NotYours = "not_yours",
    /// The comment was deleted (`deleted_by` says by whom); it cannot change or return.
    CommentDeleted = "comment_deleted",
    /// `before` is not a comment id.
    InvalidCursor = "invalid_cursor",

    // --- push devices ---
    /// The device's `platform` is not `ios` or `android`.
    InvalidPlatform = "invalid_platform",
    /// The push token is not the shape of its platform's tokens (APNs: 64–200 hex digits;
    /// FCM: 32–4096 characters of `A-Za-z0-9_:-.`).
    InvalidDeviceToken = "invalid_device_token",

    // --- films, uploads and jobs (admin) ---
    /// The film has no finished package to publish yet.
    NotReady = "not_ready",
    /// A packaging job for the film is already queued or running.
    JobActive = "job_active",
    /// Only failed or cancelled jobs can be retried.
    JobNotRetryable = "job_not_retryable",
    /// The upload is over `upload.max_bytes` (`max_bytes` says the limit).
    UploadTooLarge = "upload_too_large",
    /// The media file system is (or would be, with this upload) below `disk.min_free_bytes`
    /// free (507, with `free_bytes`, `min_free_bytes`, `needed_bytes`); nothing was kept
    /// past what the server already acknowledged.
    InsufficientStorage = "insufficient_storage",
    /// The upload's body ended before its end.
    UploadInterrupted = "upload_interrupted",
    /// The upload is empty.
    EmptyUpload = "empty_upload",
    /// tus: more bytes than `Upload-Length`.
    UploadTooLong = "upload_too_long",
    /// tus: the request lacks `Tus-Resumable: 1.0.0`.
    TusVersion = "tus_version",
    /// tus: `Upload-Length` is missing (deferred lengths are not supported).
    LengthRequired = "length_required",
    /// tus: an `Upload-Metadata` value is not base64 UTF-8.
    InvalidMetadata = "invalid_metadata",
    /// tus: `Upload-Metadata` lacks `film_id`.
    FilmIdRequired = "film_id_required",
    /// tus: the PATCH lacks `Upload-Offset`.
    OffsetRequired = "offset_required",
    /// tus: `Upload-Offset` is not where the upload is (`offset` says where).
    OffsetMismatch = "offset_mismatch",
    /// The file is not media the prober can read.
    NotMedia = "not_media",
    /// The file has no video stream.
    NoVideo = "no_video",
    /// The file's duration is zero.
    ZeroDuration = "zero_duration",
    /// The file ends before its stated duration.
    Truncated = "truncated",
    /// The packaging options are wrong for this file.
    InvalidOptions = "invalid_options",

    // --- remote runners ---
    /// The runner no longer holds the job's lease: it lapsed, or the job was leased to
    /// another runner, cancelled, finished or its runner revoked. Stop and discard it.
    LeaseLost = "lease_lost",
    /// An upload path is not a plain relative package path (traversal, hidden names,
    /// characters outside `A-Za-z0-9._-`).
    InvalidPath = "invalid_path",
    /// A runner's package is not complete: a declared file missing, a size that differs,
    /// an undeclared file, or a file its manifest names absent. Nothing was published.
    PackageIncomplete = "package_incomplete",

    // --- analytics (admin) ---
    /// An analytics range is not two `YYYY-MM-DD` dates in order, or is too long.
    InvalidRange = "invalid_range",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} appears twice");
            let snake = !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && !s.ends_with('_')
                && !s.contains("__")
                && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(snake, "{s} is not snake_case");
        }
    }

    /// The codes of docs/API.md's error tables (the section "Error codes" to the end): the
    /// first cell of each row, in backticks.
    fn documented() -> Vec<String> {
        let guide = include_str!("../../docs/API.md");
        let tables = guide
            .split_once("\n## Error codes\n")
            .map_or("", |(_, rest)| rest);
        tables
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(code, _)| code.to_string())
            .collect()
    }

    #[test]
    fn every_code_is_documented_and_nothing_else() {
        let documented = documented();
        for code in Code::ALL {
            assert!(
                documented.iter().any(|d| d == code.as_str()),
                "`{code}` is not in docs/API.md"
            );
        }
        for d in &documented {
            assert!(
                Code::ALL.iter().any(|c| c.as_str() == d),
                "docs/API.md lists `{d}`, which is no code"
            );
        }
        assert_eq!(
            documented.len(),
            Code::ALL.len(),
            "a code is listed twice in docs/API.md"
        );
    }

    #[test]
    fn serialises_as_its_string() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Code::WatchMore)?, "\"watch_more\"");
        Ok(())
    }
}
