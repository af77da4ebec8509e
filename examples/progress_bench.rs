//! Progress recording throughput in isolation: how many segment events per second the
//! recorder absorbs on the request path (target ≥ 100 000/s), with a flush running
//! alongside as in the server. Run: `cargo run --release --example progress_bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinegate::store::Store;
use cinegate::stream::progress::{Event, ProgressRecorder, Signal};
use uuid::Uuid;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    // The default pace: the bench's viewers go far faster, so most events are over the pace
    // and owed, counted only as the last position — the check itself is what is measured.
    let recorder = Arc::new(ProgressRecorder::new(
        store,
        &cinegate::config::Config::default().playback,
    ));
    // A two-hour film in 6 s segments.
    let segments: Arc<[f64]> = vec![6.0; 1200].into();
    // 2 000 viewers watching 50 films of 1 200 segments (a two-hour film).
    let viewers: Vec<Uuid> = (0..2000).map(|_| Uuid::now_v7()).collect();
    let films: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = 500_000usize;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let (recorder, stop) = (recorder.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = recorder.flush();
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (recorder, viewers, films) = (recorder.clone(), viewers.clone(), films.clone());
            let segments = segments.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let v = (i * 7 + t * 13) % viewers.len();
                    recorder.record(Event {
                        user: viewers[v],
                        film: films[v % films.len()],
                        index: ((i / viewers.len()) % 1200) as u32,
                        segments: &segments,
                        signal: if i % 2 == 0 {
                            Signal::Segment
                        } else {
                            Signal::Key
                        },
                        now: 0,
                        at: Instant::now(),
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "worker panicked")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flusher.join().map_err(|_| "flusher panicked")?;
    let flush_started = Instant::now();
    let written = recorder.flush()?;
    let events = (threads * per_thread) as f64;
    println!("threads: {threads}");
    println!("events: {events}");
    println!("events/s: {:.0}", events / elapsed);
    println!(
        "final flush: {written} records in {:.3} s",
        flush_started.elapsed().as_secs_f64()
    );
    Ok(())
}
