//! Registering a device for push: what a platform's token looks like, the language its
//! notifications are written in, and how many devices one account keeps.

use uuid::Uuid;

use crate::store::devices::Device;
use crate::store::outbox::Platform;
use crate::store::{Store, StoreError};

/// Devices one account keeps; registering another drops the oldest (phones are replaced,
/// apps reinstalled, and a token that no longer works is only found at the next push).
pub const MAX_DEVICES_PER_USER: usize = 20;

/// APNs device tokens are 32 bytes today (64 hex digits); Apple says they may grow.
const APNS_HEX: std::ops::RangeInclusive<usize> = 64..=200;
/// FCM registration tokens are about 150–170 characters of `[A-Za-z0-9_:-]`.
const FCM_CHARS: std::ops::RangeInclusive<usize> = 32..=4096;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("platform must be \"ios\" or \"android\"")]
    Platform,
    #[error("{0}")]
    Token(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn parse_platform(text: &str) -> Result<Platform, DeviceError> {
    match text {
        "ios" => Ok(Platform::Ios),
        "android" => Ok(Platform::Android),
        _ => Err(DeviceError::Platform),
    }
}

/// The token as stored: an APNs token in lower-case hex, an FCM token as given.
pub fn checked_token(platform: Platform, token: &str) -> Result<String, DeviceError> {
    let token = token.trim();
    match platform {
        Platform::Ios => {
            if !APNS_HEX.contains(&token.len())
                || !token.len().is_multiple_of(2)
                || !token.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(DeviceError::Token(
                    "an APNs device token is 64 to 200 hexadecimal digits",
                ));
            }
            Ok(token.to_ascii_lowercase())
        }
        Platform::Android => {
            if !FCM_CHARS.contains(&token.len())
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_:-.".contains(&b))
            {
                return Err(DeviceError::Token(
                    "an FCM registration token is 32 to 4096 characters of A-Z a-z 0-9 _ : - .",
                ));
            }
            Ok(token.to_string())
        }
    }
}

/// The language of a device's notifications: Korean for `ko…`, else English.
pub fn language(lang: Option<&str>) -> &'static str {
    match lang {
        Some(l) if l.trim().to_ascii_lowercase().starts_with("ko") => "ko",
        _ => "en",
    }
}

/// Registers (or refreshes) `user`'s device; `true` with it when it is new.
pub fn register(
    store: &Store,
    user: &Uuid,
    platform: &str,
    token: &str,
    lang: Option<&str>,
    now: i64,
) -> Result<(Device, bool), DeviceError> {
    let platform = parse_platform(platform)?;
    let token = checked_token(platform, token)?;
    Ok(store.register_device(
        user,
        platform,
        &token,
        language(lang),
        now,
        MAX_DEVICES_PER_USER,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_platform() {
        let hex = "AB".repeat(32);
        assert_eq!(
            checked_token(Platform::Ios, &hex).ok(),
            Some("ab".repeat(32))
        );
        assert!(checked_token(Platform::Ios, &"ab".repeat(16)).is_err());
        assert!(checked_token(Platform::Ios, &format!("{hex}a")).is_err());
        assert!(checked_token(Platform::Ios, &"zz".repeat(32)).is_err());
        let fcm = "dGVzdA:APA91bH-x_y".to_string() + &"k".repeat(100);
        assert_eq!(checked_token(Platform::Android, &fcm).ok(), Some(fcm));
        assert!(checked_token(Platform::Android, "short").is_err());
        assert!(checked_token(Platform::Android, &"a b".repeat(20)).is_err());
        assert!(checked_token(Platform::Android, &"a".repeat(4097)).is_err());
        assert!(parse_platform("web").is_err());
        assert_eq!(language(Some("ko-KR")), "ko");
        assert_eq!(language(Some("en")), "en");
        assert_eq!(language(None), "en");
    }
}
