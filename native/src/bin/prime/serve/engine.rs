//! The engine of `prime serve`: one thread that owns the model and drives every admitted
//! request's runs together, so that their network calls are one batch (B sequences per call).
//! Requests join and leave between rounds; a request whose client went away, or that ran past
//! its deadline, is dropped there and frees its slot.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use prime_core::sampler::{Run, step_round};
use prime_core::trajectory::{Ending, Header, ModelSummary, Recorder};
use prime_core::{GenerationRequest, Model};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Records a client may leave unread before its run sits out the rounds (a slow reader holds
/// its own run back, not the others, and the server's memory stays bounded).
const MAX_BACKLOG: usize = 256;

/// How long the engine waits without a request before it gives its free memory back (a busy
/// server, whose clients send their next request as soon as they read an answer, keeps it).
const IDLE_BEFORE_RELEASE: Duration = Duration::from_millis(500);

/// What the engine sends a request's handler: the trajectory's lines, or why it failed.
#[derive(Debug)]
pub enum Message {
    /// One trajectory record, as the line `prime generate --trajectory` writes.
    Line {
        /// `header`, `step` or `ending`.
        kind: &'static str,
        /// The record's JSON.
        json: String,
    },
    /// The request cannot run on this model (a bad prompt, an id out of range): nothing ran.
    Refused(String),
    /// The request failed after it started (the deadline, a device error).
    Failed(String),
}

/// One admitted request.
pub struct Job {
    /// The request's number, for the log.
    pub id: u64,
    /// What to generate.
    pub request: GenerationRequest,
    /// Samples (seed, seed + 1, …).
    pub samples: usize,
    /// Send every record (header, steps, ending) rather than the endings only.
    pub stream: bool,
    /// When the request is dropped with an error, running or not.
    pub deadline: Instant,
    /// Where its records go; closed when the client went away.
    pub out: mpsc::UnboundedSender<Message>,
    /// Records sent and not yet taken by the client (the handler counts down).
    pub backlog: Arc<AtomicUsize>,
    /// Its place in the server's bounded queue, given back before its last record is sent
    /// (a client may send its next request as soon as it has read it).
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What the engine tells the server about its model once it is loaded.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Where the model came from.
    pub id: String,
    /// The trajectory header's model summary.
    pub model: ModelSummary,
    /// The device it runs on, in words.
    pub device: String,
}

/// A running job and its runs (taken out into one slice for each round).
struct Active {
    job: Job,
    runs: Vec<Run>,
    recorder: Recorder,
    started: Instant,
    /// The client went away (a record could not be sent).
    gone: bool,
    /// The job failed (its client was told).
    failed: bool,
}

impl Active {
    fn send(&mut self, kind: &'static str, value: &impl Serialize) {
        let sent = serde_json::to_string(value)
            .map_err(|e| e.to_string())
            .and_then(|json| self.job.out.send(Message::Line { kind, json }).map_err(|e| e.to_string()));
        match sent {
            Ok(()) => {
                self.job.backlog.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => self.gone = true,
        }
    }

    /// Whether the client has fallen behind: the run waits for it to read.
    fn sits_out(&self) -> bool {
        self.job.backlog.load(Ordering::Relaxed) >= MAX_BACKLOG
    }

    fn fail(&mut self, message: String) {
        // A client that went away reads nothing: nothing to do if the send fails.
        let _ = self.job.out.send(Message::Failed(message));
        self.failed = true;
    }
}

/// Serves jobs from `jobs` until every sender is dropped, at most `max_batch` sequences per
/// network call (a job larger than that runs alone).
pub fn serve(model: &Model, device: &str, jobs: &Receiver<Job>, max_batch: usize) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        if active.is_empty() {
            let job = match jobs.recv_timeout(IDLE_BEFORE_RELEASE) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: what the runs used goes back to the system until the next request.
                    prime_native::release_free_memory();
                    let Ok(job) = jobs.recv() else { return };
                    job
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            admit(model, device, job, &mut active);
        }
        while active.iter().map(|a| a.runs.len()).sum::<usize>() < max_batch {
            match jobs.try_recv() {
                Ok(job) => admit(model, device, job, &mut active),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if active.iter().all(Active::sits_out) {
            // Every client is behind (or none is left): wait for them to read.
            std::thread::sleep(Duration::from_millis(2));
        } else {
            round(model, &mut active);
        }
        active.retain_mut(|a| !finish(model, a));
    }
}

/// Starts a job's runs and sends its header, or refuses it.
fn admit(model: &Model, device: &str, job: Job, active: &mut Vec<Active>) {
    if job.out.is_closed() {
        tracing::info!(id = job.id, "client went away while queued");
        return;
    }
    if Instant::now() >= job.deadline {
        let _ = job.out.send(Message::Failed("the request waited past the server's deadline (--deadline)".into()));
        return;
    }
    let mut request = job.request.clone();
    request.settings.record_guesses = job.stream;
    let started = request
        .resolve_executor(model)
        .and_then(|executor| Ok((executor, request.start_seeds(model, 0..job.samples)?)));
    let (executor, runs) = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::info!(id = job.id, "refused: {e}");
            let _ = job.out.send(Message::Refused(e.to_string()));
            return;
        }
    };
    let mut entry =
        Active { job, runs, recorder: Recorder::default(), started: Instant::now(), gone: false, failed: false };
    if entry.job.stream {
        let header = Header::new(model, &request, &entry.runs[0], executor.name(), device);
        entry.send("header", &header);
    }
    active.push(entry);
}

/// One round of the active jobs' runs together, but for those whose client is behind (a job
/// that went away is dropped after it); a failed round fails every job in it.
fn round(model: &Model, active: &mut [Active]) {
    let mut owners = Vec::new();
    let mut runs = Vec::new();
    for (j, a) in active.iter_mut().enumerate().filter(|(_, a)| !a.sits_out()) {
        owners.extend(std::iter::repeat_n(j, a.runs.len()));
        runs.append(&mut a.runs);
    }
    let result = step_round(&mut runs, model, |i, run, event| {
        let a = &mut active[owners[i]];
        if a.job.stream && !a.gone && !a.failed {
            match a.recorder.record(model, event, run.stats().last_step_bytes) {
                Ok(record) => a.send("step", &record),
                Err(e) => a.fail(e.to_string()),
            }
        }
        ControlFlow::Continue(())
    });
    // Each job takes its runs back, in order.
    for (run, &j) in runs.into_iter().zip(&owners) {
        active[j].runs.push(run);
    }
    if let Err(e) = result {
        tracing::error!("a batch of {} sequences failed: {e}", owners.len());
        for a in active.iter_mut().filter(|a| !a.sits_out()) {
            a.fail(format!("the generation failed: {e}"));
        }
    }
}

/// Sends a finished job's endings, or drops a job that is gone or late. Returns whether the job
/// leaves the engine.
fn finish(model: &Model, a: &mut Active) -> bool {
    let ms = a.started.elapsed().as_millis();
    if a.failed {
        return true;
    }
    if a.gone || a.job.out.is_closed() {
        tracing::info!(id = a.job.id, ms, "client went away: run dropped");
        return true;
    }
    if a.runs.iter().all(Run::is_done) {
        let endings: prime_core::Result<Vec<Ending>> = a.runs.iter().map(|run| Ending::of(model, run)).collect();
        match endings {
            Ok(endings) => {
                let (steps, nfe) = endings.first().map_or((0, 0), |e| (e.outcome.steps, e.outcome.nfe));
                a.job.permit = None;
                for ending in &endings {
                    a.send("ending", ending);
                }
                tracing::info!(id = a.job.id, samples = a.runs.len(), steps, nfe, ms, "done");
            }
            Err(e) => a.fail(e.to_string()),
        }
        return true;
    }
    if Instant::now() >= a.job.deadline {
        tracing::info!(id = a.job.id, ms, "past the deadline: run dropped");
        a.fail("the request ran past the server's deadline (--deadline)".into());
        return true;
    }
    false
}
