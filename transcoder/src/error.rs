//! The transcoder's error type. Variants a caller must tell apart (bad input, cancellation)
//! are separate; faults (I/O, FFmpeg) carry what was being done so a log line explains them.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// FFmpeg could not open or understand the file at all.
    #[error("the file is not a film FFmpeg can read: {reason}")]
    NotMedia { reason: String },
    #[error("the file has no video stream")]
    NoVideo,
    #[error("the file's video has no duration (no frames, or a single still image)")]
    ZeroDuration,
    /// The container promises more than the file holds (an upload cut short).
    #[error(
        "the file is truncated: it declares {declared:.1} s but its data ends at {found:.1} s"
    )]
    Truncated { declared: f64, found: f64 },
    #[error("packaging was cancelled")]
    Cancelled,
    #[error("the output directory {0} already exists")]
    OutputExists(PathBuf),
    /// The caller's options (ladder, preset, segment length, secret, …) are wrong.
    #[error("invalid packaging options: {0}")]
    InvalidOptions(String),
    /// This FFmpeg build lacks something packaging needs (an encoder): the server's fault,
    /// not the film's.
    #[error("this FFmpeg cannot package: {0}")]
    Unsupported(String),
    /// A broken invariant inside the packager (a bug): never the input's fault.
    #[error("internal packaging error: {0}")]
    Internal(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Ffmpeg {
        context: String,
        #[source]
        source: ffmpeg_next::Error,
    },
}

impl TranscodeError {
    /// A stable snake_case code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotMedia { .. } => "not_media",
            Self::NoVideo => "no_video",
            Self::ZeroDuration => "zero_duration",
            Self::Truncated { .. } => "truncated",
            Self::Cancelled => "cancelled",
            Self::OutputExists(_) => "output_exists",
            Self::InvalidOptions(_) => "invalid_options",
            Self::Unsupported(_) => "ffmpeg_unsupported",
            Self::Internal(_) => "internal",
            Self::Io { .. } => "io",
            Self::Ffmpeg { .. } => "ffmpeg",
        }
    }

    /// True when the input or the request is at fault rather than the machine: the
    /// server answers these with 4xx/`failed` and does not retry them.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Self::NotMedia { .. }
                | Self::NoVideo
                | Self::ZeroDuration
                | Self::Truncated { .. }
                | Self::InvalidOptions(_)
        )
    }
}

/// Attaches "what we were doing" to I/O and FFmpeg errors.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, TranscodeError>;
}

impl<T> Context<T> for Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, TranscodeError> {
        self.map_err(|source| TranscodeError::Io {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, ffmpeg_next::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, TranscodeError> {
        self.map_err(|source| TranscodeError::Ffmpeg {
            context: what(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_input_is_the_users_fault() {
        assert!(TranscodeError::InvalidOptions("ladder".into()).is_input_error());
        assert!(TranscodeError::NoVideo.is_input_error());
        // A missing encoder or a broken invariant is the server's: a 500 and a log line,
        // never a 422 telling an admin to fix their file.
        assert!(!TranscodeError::Unsupported("no libx264 encoder".into()).is_input_error());
        assert!(!TranscodeError::Internal("segment 3 has no video".into()).is_input_error());
        assert_eq!(TranscodeError::Internal(String::new()).code(), "internal");
        assert_eq!(
            TranscodeError::Unsupported(String::new()).code(),
            "ffmpeg_unsupported"
        );
    }
}
