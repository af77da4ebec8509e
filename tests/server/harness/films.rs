//! Films and their packaging jobs, as an admin drives them (API and `cinegate ingest`), and
//! access to them: an admin's grant or a viewer's purchase with the `dev` provider.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::http::Resp;
use super::server::Server;
use super::users::User;

impl Server {
    pub fn create_film(&self, admin: &User, title: &str) -> String {
        let film = self
            .post(
                "/api/v1/admin/films",
                Some(&admin.access),
                json!({ "title": title, "description": "made by the tests" }),
            )
            .expect(201, "create film")
            .json();
        film["id"].as_str().expect("film id").to_string()
    }

    pub fn put_source(&self, admin: &User, film: &str, body: Vec<u8>) -> Resp {
        self.exec(
            self.req(Method::PUT, &format!("/api/v1/admin/films/{film}/source"))
                .bearer_auth(&admin.access)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    pub fn jobs(&self, admin: &User) -> Vec<Value> {
        self.get("/api/v1/admin/jobs", Some(&admin.access))
            .expect(200, "jobs")
            .json()["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn job(&self, admin: &User, id: &str) -> Value {
        self.get(&format!("/api/v1/admin/jobs/{id}"), Some(&admin.access))
            .expect(200, "job")
            .json()
    }

    /// Polls until the job is finished; panics unless it ends `ready`.
    pub fn wait_job_ready(&self, admin: &User, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(admin, id);
            match job["state"].as_str() {
                Some("ready") => return job,
                Some("failed") | Some("cancelled") => {
                    panic!("job {id} ended {job}; log:\n{}", self.log_tail(30))
                }
                _ if Instant::now() > deadline => {
                    panic!("job {id} not ready after {timeout:?}: {job}")
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// `cinegate ingest FILE --title T --publish` → (film id, job id).
    pub fn ingest(&self, file: &Path, title: &str, publish: bool) -> (String, String) {
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["ingest", file.as_str(), "--title", title];
        if publish {
            args.push("--publish");
        }
        let out = self.cli(&args);
        // "film {id} created; packaging job {id} queued …"
        let words: Vec<&str> = out.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.trim_end_matches(';').to_string())
                .unwrap_or_else(|| panic!("no {w:?} in ingest output {out:?}"))
        };
        (after("film"), after("job"))
    }

    /// A published film packaged from `file` and priced at `cents` USD: where every test
    /// about buying starts. Returns its id.
    pub fn priced_film(&self, admin: &User, file: &Path, title: &str, cents: i64) -> String {
        let (film, job) = self.ingest(file, title, true);
        self.wait_job_ready(admin, &job, Duration::from_secs(180));
        self.call(
            Method::PATCH,
            &format!("/api/v1/admin/films/{film}"),
            Some(&admin.access),
            Some(json!({ "prices": [{ "amount": cents, "currency": "USD" }] })),
        )
        .expect(200, "price the film");
        film
    }

    pub fn grant(&self, admin: &User, film: &str, user: &User) {
        let r = self.call(
            Method::PUT,
            &format!("/api/v1/admin/films/{film}/grants/{}", user.id),
            Some(&admin.access),
            None,
        );
        assert!(
            (200..300).contains(&r.status),
            "grant {film} to {}: {}",
            user.id,
            r.brief()
        );
    }

    /// A checkout of `film` with the `dev` provider, the payer not yet back.
    pub fn checkout_with_dev(&self, viewer: &User, film: &str) -> DevCheckout {
        let co = self
            .post(
                &format!("/api/v1/films/{film}/checkout"),
                Some(&viewer.access),
                json!({ "provider": "dev" }),
            )
            .expect(201, "checkout with dev")
            .json();
        let redirect = co["redirect_url"].as_str().unwrap_or_default();
        // Dev's "provider page" is our own return page under the public URL, which differs
        // from the loopback address the tests talk to: keep its path and query.
        let url = reqwest::Url::parse(redirect)
            .unwrap_or_else(|e| panic!("dev's redirect_url {redirect:?}: {e}; checkout {co}"));
        let back = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        assert!(
            back.starts_with("/pay/"),
            "dev's redirect is our return page: {co}"
        );
        let order = co["order_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no order_id in checkout {co}"))
            .to_string();
        DevCheckout { order, back }
    }

    /// `viewer` buys `film` with the `dev` provider (checkout, then the payer's return) and
    /// the order is captured. Returns the order id.
    pub fn buy_with_dev(&self, viewer: &User, film: &str) -> String {
        let co = self.checkout_with_dev(viewer, film);
        self.get(&co.back, None).expect(200, "dev return");
        let state = self
            .get(
                &format!("/api/v1/orders/{}", co.order),
                Some(&viewer.access),
            )
            .expect(200, "order")
            .json();
        assert_eq!(
            state["state"], "captured",
            "order after the dev return: {state}"
        );
        co.order
    }
}

/// A `dev` checkout: its order and the return page the payer is sent to.
pub struct DevCheckout {
    pub order: String,
    /// Path and query of the return page on this server.
    pub back: String,
}

pub struct FilmInfo {
    pub id: String,
    pub segments: usize,
    pub preview: usize,
    pub duration: f64,
    pub renditions: Vec<String>,
    /// The package directory on disk (media/films/{id}/{dir}).
    pub package_dir: PathBuf,
}

pub fn film_info(server: &Server, admin: &User, id: &str) -> FilmInfo {
    let view = server
        .get(&format!("/api/v1/films/{id}"), None)
        .expect(200, "film detail")
        .json();
    let adminv = server
        .get(&format!("/api/v1/admin/films/{id}"), Some(&admin.access))
        .expect(200, "admin film")
        .json();
    let pkg = &adminv["package"];
    FilmInfo {
        id: id.to_string(),
        segments: view["total_segments"].as_u64().expect("total_segments") as usize,
        preview: view["preview_segments"].as_u64().expect("preview_segments") as usize,
        duration: view["duration_seconds"].as_f64().expect("duration_seconds"),
        renditions: pkg["renditions"]
            .as_array()
            .expect("renditions")
            .iter()
            .map(|r| r.as_str().unwrap_or("").to_string())
            .collect(),
        package_dir: server
            .root
            .join("media/films")
            .join(id)
            .join(pkg["dir"].as_str().expect("package dir")),
    }
}
