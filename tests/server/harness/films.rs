//! Films and their packaging jobs, as an admin drives them (API and `cinegate ingest`).

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
