//! The shared server: one server for the whole test process, with two packaged, published
//! films, built once (a failure to build it fails every test that asks for it).

use std::sync::OnceLock;
use std::time::Duration;

use super::films::{film_info, FilmInfo};
use super::media::{src_main, src_other};
use super::server::{Server, FAST_PACE};
use super::users::User;

/// Upload limit of the shared server (the oversize test sends more).
pub const SHARED_MAX_BYTES: u64 = 16 * 1024 * 1024;

pub struct Shared {
    pub server: Server,
    pub admin: User,
    /// 66 s: N = 11, P = 2.
    pub main: FilmInfo,
    /// 12 s, different content.
    pub other: FilmInfo,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

pub fn shared() -> &'static Shared {
    let result = SHARED.get_or_init(|| {
        std::panic::catch_unwind(build_shared).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
    });
    match result {
        Ok(s) => s,
        Err(e) => panic!("the shared server could not be set up: {e}"),
    }
}

fn build_shared() -> Shared {
    let main_src = src_main();
    let other_src = src_other();
    let max = SHARED_MAX_BYTES.to_string();
    let server = Server::start_leaked(&[
        ("CINEGATE_UPLOAD__MAX_BYTES", max.as_str()),
        // The comment hold list the social tests exercise.
        ("CINEGATE_SOCIAL__HELD_WORDS", "[\"spoiler\"]"),
        FAST_PACE,
    ]);
    let admin = server.user("admin", true);
    let (main_id, main_job) = server.ingest(&main_src, "Main film", true);
    let (other_id, other_job) = server.ingest(&other_src, "Other film", true);
    server.wait_job_ready(&admin, &main_job, Duration::from_secs(240));
    server.wait_job_ready(&admin, &other_job, Duration::from_secs(120));
    let main = film_info(&server, &admin, &main_id);
    let other = film_info(&server, &admin, &other_id);
    Shared {
        server,
        admin,
        main,
        other,
    }
}
