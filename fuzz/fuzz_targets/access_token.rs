//! Access tokens (HS256 JWTs): an issued token verifies to its claims, and arbitrary text
//! never panics the verifier and never verifies to an expired claim set.
#![no_main]

use cinegate::auth::jwt::{issue, verify, TokenError};
use cinegate::store::users::{Role, User};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = data.split_first_chunk::<N>()?;
    *data = tail;
    Some(*head)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let (Some(key), Some(id), Some(flags), Some(epoch), Some(now), Some(ttl)) = (
        take::<32>(&mut data),
        take::<16>(&mut data),
        take::<1>(&mut data),
        take::<4>(&mut data),
        take::<4>(&mut data),
        take::<4>(&mut data),
    ) else {
        return;
    };
    // `now` is the server clock and `ttl` the configured lifetime: realistic ranges only
    // (both come from the operator, not from a request).
    let now = i64::from(u32::from_le_bytes(now));
    let ttl = i64::from(u32::from_le_bytes(ttl) % (10 * 366 * 86_400));
    let account = User {
        id: Uuid::from_bytes(id),
        email: None,
        email_verified: false,
        name: None,
        role: if flags[0] & 1 == 0 {
            Role::Viewer
        } else {
            Role::Admin
        },
        created_at: 0,
        disabled: false,
        session_epoch: u32::from_le_bytes(epoch),
    };
    let token = issue(&key, &account, now, ttl);
    match verify(&key, &token, now) {
        Ok(claims) => {
            assert!(ttl > 0);
            assert_eq!(
                (claims.sub, claims.role, claims.sep, claims.iat, claims.exp),
                (
                    account.id,
                    account.role,
                    account.session_epoch,
                    now,
                    now + ttl
                )
            );
        }
        Err(e) => {
            assert_eq!(ttl, 0);
            assert_eq!(e, TokenError::Expired);
        }
    }

    let Ok(sent) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = verify(&key, sent, now) {
        assert!(claims.exp > now);
    }
});
