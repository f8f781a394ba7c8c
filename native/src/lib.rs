//! `prime-native`: the two command-line programs of the runtime, and what they share.
//!
//! - `prime` (`src/bin/prime/`): the runtime — `generate`, `convert`, `init`, `forward`, `bench`, `info`.
//! - `prime-train` (`src/bin/prime-train/`): the demo-model pipeline — `corpus`, `tokenizer`,
//!   `train`, `snapshot`, `words`, `images`, `judge`, `bench`.
//!
//! This library holds their shared command-line pieces: which device, which model, which
//! sampler.

pub mod device_args;
pub mod model_arg;
pub mod sampling_args;

/// Sets up the process before anything else runs: quiet GPU probing, then logging.
pub fn init() {
    quiet_headless_vulkan();
    keep_freed_memory();
    init_logging();
}

/// glibc serves every allocation above its mmap threshold (32 MiB at most) with a fresh
/// mapping and unmaps it when freed, so each CPU network call page-faults its large temporaries
/// (the logits, L × V floats) in anew: 11 % of a forward's time. With mmap off and trimming
/// raised, freed blocks stay in the heap and the next call reuses them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called first in `main`.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Gives the heap's free memory back to the system: a long-running process (the server) calls
/// this when it goes idle, since [`init`] keeps freed blocks for reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only returns unused heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives the heap's free memory back to the system (a no-op where the allocator does it).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Without a display, Mesa's Vulkan device-selection layer tries to reach one and prints
/// "XDG_RUNTIME_DIR is invalid" to stderr at every start. It only orders GPUs by the display
/// they drive, which a compute program has no use for; where no display exists (and the user
/// has not set it either way), it is switched off with its own `NODEVICE_SELECT` variable.
fn quiet_headless_vulkan() {
    let headless = ["DISPLAY", "WAYLAND_DISPLAY"].iter().all(|v| std::env::var_os(v).is_none());
    if headless && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first in `main`, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Sets up logging (`PRIME_LOG`; by default warnings, and the server's request lines) to
/// stderr, coloured only on a terminal.
fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRIME_LOG")
                .unwrap_or_else(|_| "warn,prime::serve=info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Prints a line to standard output like `println!`, but returns a failed write (a full disk,
/// a closed pipe) as an error instead of panicking.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::stdout_line(format_args!($($arg)*)) };
}

/// A fingerprint of a file's bytes (FNV-1a, 64 bits) that tells two tokenizers or two weight
/// files apart.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("fnv1a64:{hash:016x}")
}

/// One line to standard output, flushed; see [`say!`].
pub fn stdout_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}

/// The exit code of a command's result, printing the error as one line.
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
