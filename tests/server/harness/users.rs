//! Users: created with the operator CLI and signed in with a login link.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::server::Server;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

static EMAILS: AtomicU32 = AtomicU32::new(0);

pub fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}-{}@test.example",
        std::process::id(),
        EMAILS.fetch_add(1, Ordering::SeqCst)
    )
}

impl Server {
    /// The sign-in token from `cinegate user login-link` (the last line ends with the URL).
    pub fn login_link_token(&self, email: &str) -> String {
        let out = self.cli(&["user", "login-link", email]);
        let last = out.lines().last().unwrap_or("").trim().to_string();
        let token = last
            .rsplit_once("token=")
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| panic!("no token= in login-link output {out:?}"));
        assert!(last.contains("/sign-in?token="), "login link: {last:?}");
        token
    }

    /// Creates a user with the CLI and signs in with a login link.
    pub fn user(&self, tag: &str, admin: bool) -> User {
        let email = unique_email(tag);
        let mut args = vec!["user", "create", email.as_str()];
        if admin {
            args.push("--admin");
        }
        let out = self.cli(&args);
        assert!(out.starts_with("created"), "user create printed {out:?}");
        let link = self.login_link_token(&email);
        let pair = self
            .post("/api/v1/auth/link", None, json!({ "token": link }))
            .expect(200, "auth/link")
            .json();
        let access = pair["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let refresh = pair["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string();
        let me = self
            .get("/api/v1/me", Some(&access))
            .expect(200, "GET /me")
            .json();
        User {
            id: me["id"].as_str().expect("me.id").to_string(),
            email,
            access,
            refresh,
        }
    }
}
