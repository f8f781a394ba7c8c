//! `prime serve`: a local HTTP server that keeps one model loaded and streams every step of
//! each generation as server-sent events (the trajectory records `prime generate --trajectory`
//! writes). Concurrent requests are batched into one network call per round.

mod engine;
mod http;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use clap::Args;
use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;
use tokio::sync::{Notify, Semaphore};

use engine::ModelInfo;
use http::{Limits, Server};

/// Arguments of `prime serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Address to listen on. Anything but a loopback address (127.0.0.1, ::1, localhost) needs
    /// --token.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the chosen one is printed). Not 8080, where
    /// `web/run.sh` serves the page that watches it.
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Every request must carry `Authorization: Bearer TOKEN`.
    #[arg(long)]
    token: Option<String>,
    /// A browser origin allowed to call the server (repeatable; `*` for any). Without it, only
    /// pages served from this machine (localhost, 127.0.0.1, ::1) are.
    #[arg(long)]
    allow_origin: Vec<String>,
    /// Most sequences per network call: the requests running at once are batched up to this.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Most requests running or waiting at once; more are refused with 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    queue: u32,
    /// Most sampling steps a request may ask for.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    max_steps: u32,
    /// Most samples one request may ask for.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_samples: u32,
    /// Most bytes of a request body.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(64..))]
    max_body: u32,
    /// Seconds a request may take, waiting and running; a request past it ends with an error.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    deadline: u64,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Whether `host` names this machine only.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Runs the server until Ctrl-C (then finishes the running requests; Ctrl-C again quits now).
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !is_loopback(&args.host) && args.token.is_none() {
        anyhow::bail!(
            "--host {} lets other machines in: give a --token that every request must carry (or listen on 127.0.0.1)",
            args.host
        );
    }
    if args.token.as_deref().is_some_and(|t| t.len() < 8 || t.chars().any(|c| !c.is_ascii_graphic())) {
        anyhow::bail!("--token must be at least 8 printable ASCII characters without spaces");
    }
    // The engine thread owns the model: it loads it, says what it is, then serves jobs.
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
    let (jobs, jobs_rx) = std::sync::mpsc::channel();
    let (model_arg, device_args, batch) = (args.model.clone(), args.device.clone(), args.batch as usize);
    let engine = std::thread::Builder::new().name("prime-engine".into()).spawn(move || {
        let loaded = device_args.open().and_then(|device| Ok((model_arg.load(&device)?, device)));
        match loaded {
            Ok((model, device)) => {
                let described = DeviceArgs::describe(&device);
                let info = ModelInfo {
                    id: model_arg.describe(),
                    model: prime_core::trajectory::ModelSummary::of(&model),
                    device: described.clone(),
                };
                if loaded_tx.send(Ok(info)).is_ok() {
                    engine::serve(&model, &described, &jobs_rx, batch);
                }
            }
            Err(e) => {
                let _ = loaded_tx.send(Err(e));
            }
        }
    })?;
    let info = loaded_rx.recv().context("the engine thread stopped while loading the model")??;
    let limits = Limits {
        max_steps: args.max_steps as usize,
        max_samples: args.max_samples as usize,
        max_body: args.max_body as usize,
        deadline_s: args.deadline,
    };
    let server = Server {
        jobs,
        queue: Arc::new(Semaphore::new(args.queue as usize)),
        queue_size: args.queue as usize,
        info: Arc::new(info),
        limits,
        token: args.token.as_deref().map(Arc::from),
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let stop = ctrl_c()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(listen(server, &args, stop))?;
    // Every sender is gone with the router: the engine finishes and returns.
    engine.join().map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    Ok(())
}

async fn listen(server: Server, args: &ServeArgs, stop: Arc<Notify>) -> anyhow::Result<()> {
    let info = server.info.clone();
    let app = http::router(server, &args.allow_origin)?;
    let listener = tokio::net::TcpListener::bind((args.host.trim_matches(['[', ']']), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    eprintln!(
        "prime serve: {} ({} M parameters) on {}; listening on http://{address} (Ctrl-C stops)",
        info.id,
        format_args!("{:.2}", info.model.parameters as f64 / 1e6),
        info.device
    );
    let shutdown = async move {
        stop.notified().await;
        eprintln!("prime serve: stopping after the running requests (Ctrl-C again to quit now)");
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("the server failed")?;
    eprintln!("prime serve: stopped");
    Ok(())
}

/// A Ctrl-C handler, installed before the server listens: the first Ctrl-C notifies the returned
/// `Notify`, the second quits at once.
fn ctrl_c() -> anyhow::Result<Arc<Notify>> {
    let stop = Arc::new(Notify::new());
    let pressed = AtomicBool::new(false);
    let notify = stop.clone();
    ctrlc::set_handler(move || {
        if pressed.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        notify.notify_one();
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}
