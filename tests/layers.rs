//! The dependency rule of docs/ARCHITECTURE.md, checked on the source text:
//! `transcoder` ← `store` ← domain services (`auth`, `stream`, `payments`, `social`,
//! `ingest`, `jobs`, `catalogue`) ← surfaces (`api`, `control`, `cli`, later `web`), with `state`,
//! `server` and `startup` beside the surfaces. No arrow runs back up.
//!
//! Every `use` and path is found by a token scan with comments and string literals blanked
//! out: `crate::x`, `crate::{x, …}`, `super::…` resolved against the file's own module,
//! and names of the HTTP crates. Every violation is listed with file:line.
//!
//! `CINEGATE_LAYERS_ROOT` points the check at another checkout (to see it fail on a tree
//! from before the rule).

use std::path::{Path, PathBuf};

/// The HTTP crates: nothing below the surfaces speaks HTTP.
const HTTP_CRATES: &[&str] = &[
    "actix_web",
    "actix_http",
    "actix_server",
    "actix_service",
    "actix_cors",
    "actix_files",
];

/// The surfaces and what stands beside them (`state` holds the services for them,
/// `server` is the HTTP plumbing, `startup` assembles it all).
const ABOVE_DOMAIN: &[&str] = &[
    "api", "web", "control", "cli", "state", "server", "startup", "ops",
];

/// The domain services, above the store.
const DOMAIN: &[&str] = &[
    "auth",
    "stream",
    "payments",
    "social",
    "jobs",
    "ingest",
    "catalogue",
    "overview",
    "events",
    "notify",
    "analytics",
    "backup",
    "disk",
    "doctor",
    "runners",
];

/// The server's domain modules (directories under `src/`, or single files).
const DOMAIN_PATHS: &[&str] = &[
    "src/auth",
    "src/store",
    "src/payments",
    "src/stream",
    "src/social",
    "src/jobs.rs",
    "src/ingest.rs",
    "src/catalogue.rs",
    "src/overview.rs",
    "src/events.rs",
    "src/notify",
    "src/analytics",
    "src/backup",
    "src/disk.rs",
    "src/doctor",
    "src/runners",
];

#[derive(Debug, PartialEq, Eq)]
struct Mention {
    line: usize,
    /// `crate` module a path names (`api` for `crate::api::x`), or a crate name.
    name: String,
    /// Whether `name` is a module of this crate (else another crate's name).
    internal: bool,
}

#[test]
fn no_layer_names_one_above_it() {
    let root = std::env::var_os("CINEGATE_LAYERS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let mut violations = Vec::new();
    let mut checked = 0;

    for area in DOMAIN_PATHS {
        for file in rust_files(&root.join(area)) {
            checked += 1;
            let store = area.starts_with("src/store");
            for m in mentions(&root, &file) {
                let why = if !m.internal && HTTP_CRATES.contains(&m.name.as_str()) {
                    Some("the domain speaks no HTTP")
                } else if m.internal && ABOVE_DOMAIN.contains(&m.name.as_str()) {
                    Some("the domain is below the surfaces")
                } else if store && m.internal && DOMAIN.contains(&m.name.as_str()) {
                    Some("the store is below the domain services")
                } else {
                    None
                };
                if let Some(why) = why {
                    violations.push(format!(
                        "{}:{}: names `{}` ({why})",
                        rel(&root, &file),
                        m.line,
                        m.name
                    ));
                }
            }
        }
    }
    // The plumbing under the surfaces: the API uses it, so it must not use the API back.
    for file in rust_files(&root.join("src/server")) {
        checked += 1;
        for m in mentions(&root, &file) {
            if m.internal
                && ["api", "web", "control", "cli", "startup", "state"].contains(&m.name.as_str())
            {
                violations.push(format!(
                    "{}:{}: names `{}` (the server plumbing is below the surfaces)",
                    rel(&root, &file),
                    m.line,
                    m.name
                ));
            }
        }
    }
    // The metric families are at the bottom, like the clock: every layer counts into
    // them, so they name no module of the crate and speak no HTTP.
    for file in rust_files(&root.join("src/telemetry.rs")) {
        checked += 1;
        for m in mentions(&root, &file) {
            if m.internal || HTTP_CRATES.contains(&m.name.as_str()) {
                violations.push(format!(
                    "{}:{}: names `{}` (telemetry is below every layer)",
                    rel(&root, &file),
                    m.line,
                    m.name
                ));
            }
        }
    }
    for file in rust_files(&root.join("transcoder/src")) {
        checked += 1;
        for m in mentions(&root, &file) {
            if !m.internal && m.name == "cinegate" {
                violations.push(format!(
                    "{}:{}: names `cinegate` (the transcoder stands alone)",
                    rel(&root, &file),
                    m.line
                ));
            }
        }
    }

    assert!(
        checked > 40,
        "only {checked} files found under {}",
        root.display()
    );
    assert!(
        violations.is_empty(),
        "{} import(s) against the layer rule (docs/ARCHITECTURE.md, \"Dependency rule\"):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

fn rel(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// `path` itself if it is a `.rs` file, else every `.rs` file below it, sorted.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src/` (`src/auth/jwt.rs` → `[auth, jwt]`,
/// `src/auth/mod.rs` → `[auth]`); `super` is resolved against it.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    // Drop the crate's source root (`src`, `transcoder/src`).
    if let Some(i) = parts.iter().position(|p| p == "src") {
        parts.drain(..=i);
    }
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_string();
    }
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

fn mentions(root: &Path, file: &Path) -> Vec<Mention> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    scan(&text, &module_of(root, file))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other(char),
}

/// What `source` (a file of module `module`) names: the top module of every path into
/// this crate, and every identifier (for other crates' names).
fn scan(source: &str, module: &[String]) -> Vec<Mention> {
    let toks = tokens(&blank(source));
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) open inside the file's module: `super` from
    // there starts one level deeper. Each with the brace depth its body is at.
    let mut module = module.to_vec();
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let (line, tok) = &toks[i];
        let word = match tok {
            Tok::Open => {
                depth += 1;
                i += 1;
                continue;
            }
            Tok::Close => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                    module.pop();
                }
                depth -= 1;
                i += 1;
                continue;
            }
            Tok::Ident(word) => word,
            _ => {
                i += 1;
                continue;
            }
        };
        if word == "mod" {
            if let (Some((_, Tok::Ident(name))), Some((_, Tok::Open))) =
                (toks.get(i + 1), toks.get(i + 2))
            {
                module.push(name.clone());
                depth += 1;
                inline.push(depth);
                i += 3;
                continue;
            }
        }
        // A path segment after `::` is not a crate name (`x::actix_web` is not the crate),
        // but a leading `::` (`use ::actix_web`, `(::actix_web::…)`) is an extern path.
        let after_sep = i > 0
            && toks[i - 1].1 == Tok::PathSep
            && match toks.get(i.wrapping_sub(2)).map(|t| &t.1) {
                Some(Tok::Ident(w)) => w != "use",
                Some(Tok::Other(c)) => *c == '>',
                _ => false,
            };
        if !after_sep {
            if word == "crate" {
                i = crate_path(&toks, i + 1, &mut out);
                continue;
            }
            if word == "super" {
                let mut up = 1;
                let mut j = i + 1;
                while matches!(toks.get(j), Some((_, Tok::PathSep)))
                    && matches!(toks.get(j + 1), Some((_, Tok::Ident(w))) if w == "super")
                {
                    up += 1;
                    j += 2;
                }
                if up >= module.len() {
                    // `super` reaches the crate root: the next segment is a top module.
                    i = crate_path(&toks, j, &mut out);
                } else {
                    i = j;
                }
                continue;
            }
            out.push(Mention {
                line: *line,
                name: word.clone(),
                internal: false,
            });
        }
        i += 1;
    }
    out
}

/// After `crate` (or a `super` that reaches the root) at `i`: `::name` or `::{a, b::c}`.
/// Records the top modules named; returns where scanning resumes.
fn crate_path(toks: &[(usize, Tok)], i: usize, out: &mut Vec<Mention>) -> usize {
    if !matches!(toks.get(i), Some((_, Tok::PathSep))) {
        return i;
    }
    match toks.get(i + 1) {
        Some((line, Tok::Ident(name))) => {
            out.push(Mention {
                line: *line,
                name: name.clone(),
                internal: true,
            });
            i + 2
        }
        Some((_, Tok::Open)) => {
            let mut depth = 0;
            let mut j = i + 1;
            let mut expect_name = false;
            while let Some((line, tok)) = toks.get(j) {
                match tok {
                    Tok::Open => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    Tok::Close => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    Tok::Comma => expect_name = depth == 1,
                    Tok::Ident(name) if expect_name => {
                        out.push(Mention {
                            line: *line,
                            name: name.clone(),
                            internal: true,
                        });
                        expect_name = false;
                    }
                    _ => expect_name = false,
                }
                j += 1;
            }
            j
        }
        _ => i + 1,
    }
}

/// Identifiers, `::`, braces and commas, each with its line.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, Tok::Ident(chars[start..i].iter().collect())));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, Tok::PathSep));
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            let tok = match c {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                _ => Tok::Other(c),
            };
            out.push((line, tok));
            i += 1;
        }
    }
    out
}

/// `source` with comments, string and char literals replaced by spaces (newlines kept,
/// so lines still count). Lifetimes (`'a`) are left alone.
fn blank(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out: Vec<char> = c.clone();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let wipe = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in out.iter_mut().take(to.min(c.len())).skip(from) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&ch| ch == '\n')
                .map_or(c.len(), |p| i + p);
            wipe(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            let mut j = i;
            while j < c.len() {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) && !prev_ident {
            // A raw string: r"…", r#"…"#, br"…"; otherwise an identifier starting with r.
            let mut j = if c[i] == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                i += 1;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                continue;
            }
            j += 1;
            loop {
                match c.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            wipe(&mut out, i, j + 1);
            i = j + 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{1F600}', '\''), or a lifetime ('a) left as is.
            if c.get(i + 1) == Some(&'\\') {
                // Past the escaped character, which may itself be a quote.
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                wipe(&mut out, i, j + 1);
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                wipe(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else if ident(c[i]) {
            while i < c.len() && ident(c[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod scanner {
    use super::*;

    fn names(source: &str, module: &[&str]) -> Vec<(usize, String, bool)> {
        let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
        scan(source, &module)
            .into_iter()
            .filter(|m| m.internal || m.name.starts_with("actix") || m.name == "cinegate")
            .map(|m| (m.line, m.name, m.internal))
            .collect()
    }

    #[test]
    fn paths_and_groups_are_found_with_their_lines() {
        let src = "use crate::api::AppState;\nuse crate::{store::Store, web};\nfn f() { actix_web::web::Data::new(1); }\n";
        assert_eq!(
            names(src, &["auth", "jwt"]),
            vec![
                (1, "api".into(), true),
                (2, "store".into(), true),
                (2, "web".into(), true),
                (3, "actix_web".into(), false),
            ]
        );
    }

    #[test]
    fn comments_strings_and_chars_are_not_code() {
        let src = "// use crate::api;\n/* crate::cli /* nested */ actix_web */\nlet s = \"crate::api\";\nlet r = r#\"actix_http \"quoted\"\"#;\nlet c = '\"'; let l: &'static str = \"\";\nuse crate::store;\n";
        assert_eq!(names(src, &["stream"]), vec![(6, "store".into(), true)]);
    }

    #[test]
    fn super_is_resolved_against_the_module() {
        // From `auth::jwt`, `super::x` is `auth::x`; `super::super::api` is `crate::api`.
        let src = "use super::session;\nuse super::super::api::error;\n";
        assert_eq!(names(src, &["auth", "jwt"]), vec![(2, "api".into(), true)]);
        // From `auth` itself, one `super` reaches the crate root.
        assert_eq!(
            names("use super::api;", &["auth"]),
            vec![(1, "api".into(), true)]
        );
    }

    #[test]
    fn super_in_an_inline_module_starts_one_level_deeper() {
        // In `store`'s `mod tests`, `super::jobs` is `store::jobs`, not `crate::jobs`;
        // after the block, `super::jobs` from `store` is `crate::jobs` again.
        let src = "mod tests {\n    use super::jobs::Job;\n    fn f() { super::super::api::x(); }\n}\nuse super::jobs;\n";
        assert_eq!(
            names(src, &["store"]),
            vec![(3, "api".into(), true), (5, "jobs".into(), true)]
        );
    }

    #[test]
    fn a_segment_after_a_path_separator_is_not_a_crate() {
        assert!(names("use foo::actix_web;", &["auth"]).is_empty());
        assert!(names("Vec::<u8>::actix_web();", &["auth"]).is_empty());
        assert_eq!(
            names(
                "use ::actix_web::web;\nlet b = (::actix_http::x);",
                &["auth"]
            ),
            vec![
                (1, "actix_web".into(), false),
                (2, "actix_http".into(), false)
            ]
        );
    }
}
