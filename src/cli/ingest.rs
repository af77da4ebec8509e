//! `cinegate ingest FILE --title T [--price N --currency C] [--publish]`.
//! With a server running, the server queues and packages it; without one, it is packaged
//! here with a progress bar. Either way the film ends up in the same state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::clock::Clock;
use crate::ops::{self, Request};
use crate::store::jobs::JobState;

#[derive(Debug, Args)]
pub struct IngestArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub title: String,
    /// Price in minor units (cents, won).
    #[arg(long)]
    pub price: Option<u64>,
    /// ISO 4217 currency of --price.
    #[arg(long)]
    pub currency: Option<String>,
    /// Publish as soon as the package is ready.
    #[arg(long)]
    pub publish: bool,
}

pub fn run(config_path: Option<&Path>, args: IngestArgs) -> anyhow::Result<()> {
    let config = super::load_config(config_path)?;
    super::init_logging("warn");
    let file = std::fs::canonicalize(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let request = Request::Ingest {
        file: file.clone(),
        title: args.title.clone(),
        price: args.price,
        currency: args.currency.clone(),
        publish: args.publish,
    };
    if let Some(response) = crate::control::send(&config.control_socket(), &request)? {
        return super::user::finish(response);
    }

    // No server: package here.
    crate::startup::prepare_data_root(&config)?;
    let store = crate::store::Store::open(&config.store_dir())?;
    let (film, job) = ops::ingest(
        &config,
        &store,
        &file,
        &args.title,
        args.price,
        args.currency.as_deref(),
        args.publish,
        crate::clock::SystemClock.now(),
    )
    // The operator reads the same words as through the socket (no cause chain).
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "film {} created; packaging here (no server is running)",
        film.id
    );
    let config = Arc::new(config);
    let queue = crate::jobs::JobQueue::new(
        store.clone(),
        config.clone(),
        Default::default(),
        Arc::new(crate::clock::SystemClock),
        // Nothing scrapes a one-off packaging run.
        Default::default(),
        Arc::new(
            crate::storage::Storage::from_config(&config.storage).map_err(anyhow::Error::msg)?,
        ),
    );
    let claimed = queue
        .claim_next()?
        .ok_or_else(|| anyhow::anyhow!("the job disappeared from the queue"))?;
    // A runtime for the job's blocking thread: publishing to a bucket (`[storage]`) is
    // async and its client's connections belong to one runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let worker = {
        let queue = queue.clone();
        runtime.spawn_blocking(move || queue.run(claimed))
    };
    let bar = super::packaging_bar(true);
    while !worker.is_finished() {
        if let Ok(Some(j)) = store.job(&job.id) {
            bar.set_position((j.progress * 1000.0) as u64);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    bar.finish_and_clear();
    runtime
        .block_on(worker)
        .map_err(|_| anyhow::anyhow!("the packager crashed"))?;
    store.flush()?;
    let job = store
        .job(&job.id)?
        .ok_or_else(|| anyhow::anyhow!("the job disappeared"))?;
    match job.state {
        JobState::Ready => {
            let film = store.film(&film.id)?.unwrap_or(film);
            println!(
                "film {} ready ({} segments){}",
                film.id,
                film.package.as_ref().map_or(0, |p| p.segments),
                if film.published { ", published" } else { "" }
            );
            Ok(())
        }
        other => {
            let why = job
                .error
                .map(|e| format!("{} ({})", e.message, e.code))
                .unwrap_or_default();
            anyhow::bail!("packaging ended {other:?}: {why}")
        }
    }
}
