//! Playback sessions: the answer to `POST /films/{id}/playback` and the `/hls/{token}`
//! paths under it, progress, and the preview length computed independently.

use serde_json::{json, Value};

use super::server::Server;
use super::users::User;

impl Server {
    /// `POST /films/{id}/playback`; returns the answer and the `/hls/{token}` prefix.
    pub fn playback(&self, user: &User, film: &str) -> Playback {
        let answer = self
            .post(
                &format!("/api/v1/films/{film}/playback"),
                Some(&user.access),
                json!({}),
            )
            .expect(200, "playback")
            .json();
        let master_url = answer["master_url"].as_str().expect("master_url");
        let path = master_url
            .find("/hls/")
            .map(|i| &master_url[i..])
            .unwrap_or_else(|| panic!("master_url without /hls/: {master_url}"));
        let prefix = path
            .strip_suffix("/master.m3u8")
            .unwrap_or_else(|| panic!("master_url not …/master.m3u8: {master_url}"))
            .to_string();
        let token = prefix.trim_start_matches("/hls/").to_string();
        Playback {
            master: self.url(path),
            prefix,
            token,
            answer,
        }
    }

    pub fn progress(&self, user: &User, film: &str) -> Value {
        self.get(
            &format!("/api/v1/films/{film}/progress"),
            Some(&user.access),
        )
        .expect(200, "progress")
        .json()
    }
}

pub struct Playback {
    /// Absolute master playlist URL on the real port.
    pub master: String,
    /// `/hls/{token}`.
    pub prefix: String,
    pub token: String,
    pub answer: Value,
}

impl Playback {
    pub fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }
}

/// `P = ceil(0.10 × N)`, computed here independently of the server.
pub fn preview_of(n: usize) -> usize {
    (n as f64 * 0.10 - 1e-9).ceil().max(1.0) as usize
}
