//! Playback tokens: arbitrary text never decodes unless it is a token this key issued, and
//! an issued token decodes to itself (or `Expired`) and is redacted to its id in logs.
#![no_main]

use cinegate::stream::token::{redact_path, PlaybackToken, PlaybackTokenError};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = data.split_first_chunk::<N>()?;
    *data = tail;
    Some(*head)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let (Some(key), Some(id), Some(user), Some(film), Some(epoch), Some(exp), Some(now)) = (
        take::<32>(&mut data),
        take::<8>(&mut data),
        take::<16>(&mut data),
        take::<16>(&mut data),
        take::<4>(&mut data),
        take::<8>(&mut data),
        take::<8>(&mut data),
    ) else {
        return;
    };
    let now = i64::from_le_bytes(now);
    let token = PlaybackToken {
        id,
        user: Uuid::from_bytes(user),
        film: Uuid::from_bytes(film),
        epoch: u32::from_le_bytes(epoch),
        expires_at: i64::from_le_bytes(exp),
    };
    let text = token.encode(&key);
    let decoded = PlaybackToken::decode(&key, &text, now);
    if token.expires_at > now {
        assert_eq!(decoded, Ok(token.clone()));
    } else {
        assert_eq!(decoded, Err(PlaybackTokenError::Expired));
    }
    assert_eq!(
        redact_path(&format!("/hls/{text}/720/00001.ts")),
        format!("/hls/~{}/720/00001.ts", token.id_hex())
    );

    // The rest as a token someone sent: refused unless it is exactly an issued one.
    let Ok(sent) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = PlaybackToken::decode(&key, sent, now) {
        assert!(t.expires_at > now);
        assert_eq!(t.encode(&key), sent);
    }
    let logged = redact_path(&format!("/hls/{sent}"));
    assert!(logged.starts_with("/hls/~"));
});
