//! The `prime` binary end to end: JSON output, forward parity, clean errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn golden(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden").join(case)
}

fn prime(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prime")).args(args).output().expect("prime runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The f32 `logits` tensor of a safetensors file.
fn read_logits(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = file.tensor("logits").unwrap();
    v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn generate_json_reports_the_run() {
    let model = golden("prime_l2_tiny");
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "32",
        "--seed",
        "4",
        "--json",
        "--device",
        "cpu",
        "--prompt-ids",
        "7,8,9",
    ];
    let v = json_of(&prime(&args));
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 16);
    assert_eq!(tokens[..3].iter().map(|t| t.as_u64().unwrap()).collect::<Vec<_>>(), vec![7, 8, 9]);
    assert!(tokens.iter().all(|t| t.as_u64().unwrap() < 300));
    assert_eq!(v["steps"], 32);
    let (nfe, idle) = (v["nfe"].as_u64().unwrap(), v["idle_steps"].as_u64().unwrap());
    // Official caching: NFE = 2 + (non-idle steps among the first T−1), so NFE + idle = T + 2 − [last step changed].
    assert!(nfe + idle == 33 || nfe + idle == 34, "nfe {nfe}, idle {idle}");
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["text"].as_str().unwrap().split(' ').count(), 16, "ids as text without a tokenizer");
    let again = json_of(&prime(&args));
    assert_eq!(again["tokens"], v["tokens"], "same seed, same tokens");
}

#[test]
fn forward_writes_official_logits() {
    let model = golden("prime_l4_small");
    let output = std::env::temp_dir().join(format!("prime-cli-forward-{}.safetensors", std::process::id()));
    let out = prime(&[
        "forward",
        "--model",
        model.to_str().unwrap(),
        "--input",
        model.join("cases.safetensors").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (got, want) = (read_logits(&output), read_logits(&model.join("cases.safetensors")));
    let _ = std::fs::remove_file(&output);
    assert_eq!(got.len(), 3 * 32 * 1000);
    let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(d <= 5e-5, "max |Δ| {d}");
}

#[test]
fn errors_are_one_line_and_never_panics() {
    let model = golden("prime_l2_tiny");
    let m = model.to_str().unwrap();
    let config = model.join("config.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["generate", "--model", "/nonexistent", "--device", "cpu"], "/nonexistent"),
        (
            vec![
                "generate",
                "--model",
                m,
                "--device",
                "cpu",
                "--prompt-ids",
                "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
            ],
            "do not fit",
        ),
        (vec!["generate", "--model", m, "--device", "cpu", "--prompt-ids", "300"], "token id 300"),
        (vec!["generate", "--model", m, "--device", "cpu", "--prompt", "hello"], "tokenizer.json"),
        (vec!["generate", "--model", m, "--device", "cpu", "--top-p", "0"], "top-p"),
        (vec!["generate", "--model", m, "--device", "cpu", "--temperature", "0"], "temperature"),
        (
            vec![
                "forward",
                "--model",
                m,
                "--device",
                "cpu",
                "--input",
                "/nonexistent.safetensors",
                "--output",
                "/tmp/x",
            ],
            "cannot read",
        ),
        (
            vec!["forward", "--model", m, "--device", "cpu", "--input", config.to_str().unwrap(), "--output", "/tmp/x"],
            "safetensors",
        ),
        (vec!["generate", "--model", config.to_str().unwrap(), "--device", "cpu"], "is a file"),
        (vec!["generate", "--model", m, "--device", "cpu", "--steps", "1000000000"], "got 1000000000"),
        (
            vec!["generate", "--model", m, "--device", "cpu", "--steps", "1000000000", "--mode", "event-driven"],
            "got 1000000000",
        ),
        (vec!["bench", "--random", "--length", "0", "--device", "cpu"], "length must be positive"),
        (vec!["bench", "--random", "--length", "1000000000", "--device", "cpu"], "length = 1000000000"),
        (vec!["bench", "--model", m, "--length", "8", "--device", "cpu"], "--length applies only to --random"),
        (vec!["generate", "--model", m, "--device", "cpu", "--require-gpu"], "--require-gpu"),
        (vec!["generate", "--model", m, "--device", "cpu", "--samples", "0"], "--samples"),
        (vec!["generate", "--model", m, "--device", "cpu", "--batch", "0"], "--batch"),
        (vec!["generate", "--model", m, "--device", "cpu", "--samples", "2", "--trajectory", "/tmp/x"], "one sample"),
        (vec!["bench", "--model", m, "--device", "cpu", "--batch", "0"], "--batch"),
        (vec!["init", "--preset", "owt-l2", "--out", config.to_str().unwrap()], "is a file"),
        (
            vec!["init", "--preset", "owt-l2", "--out", "/tmp/x", "--tokenizer", "/nonexistent.json"],
            "/nonexistent.json",
        ),
        (vec!["init", "--preset", "owt-l2", "--out", "/tmp/x", "--hidden", "100", "--heads", "3"], "n_heads = 3"),
    ];
    for (args, needle) in cases {
        let out = prime(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

/// An OS error is printed once (it was repeated by the error chain), with the file's path.
#[test]
fn os_errors_are_printed_once() {
    let dir = std::env::temp_dir().join(format!("prime-cli-no-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = prime(&["generate", "--model", dir.to_str().unwrap(), "--device", "cpu"]);
    let _ = std::fs::remove_dir_all(&dir);
    let err = stderr(&out);
    assert!(err.contains("config.json") && err.matches("os error 2").count() == 1, "{err}");
}

/// On a machine without a display, stderr at the default log level carries nothing the user
/// did not ask for (wgpu's EGL probe and Mesa's device-selection layer printed errors).
#[test]
fn default_stderr_is_clean_without_a_display() {
    let model = golden("prime_l2_tiny");
    let out = Command::new(env!("CARGO_BIN_EXE_prime"))
        .args(["generate", "--model", model.to_str().unwrap(), "--steps", "4", "--json"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("PRIME_LOG")
        .output()
        .expect("prime runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let noise: Vec<&str> = err.lines().filter(|l| !l.starts_with("notice: no usable GPU adapter")).collect();
    assert!(noise.is_empty(), "stderr: {err}");
}

#[test]
fn bench_reports_its_figures() {
    let model = golden("prime_l2_tiny");
    let args = [
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "16",
        "--runs",
        "2",
        "--paths",
        "host,twin,event-driven",
        "--json",
        "--device",
        "cpu",
    ];
    let v = json_of(&prime(&args));
    assert!(v["ms_per_network_call"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    // ℓL = 32 masked sub-tokens, T = 16: (1 − (1 − 1e-5)/16)^32.
    let want = (1.0 - (1.0 - 1e-5) / 16.0f64).powi(32);
    assert!((v["expected_idle_step_ratio"].as_f64().unwrap() - want).abs() < 1e-9, "{v}");
    let rows = v["rows"].as_array().expect("rows");
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap_or("")).collect();
    assert_eq!(paths, ["host", "twin", "event-driven"], "{v}");
    for r in rows {
        for key in ["ms_per_step", "sampler_ms_per_step", "sampler_share_of_step", "nfe", "idle_step_ratio"] {
            assert!(r[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {r}");
        }
        assert!((2.0..=17.0).contains(&r["nfe"].as_f64().unwrap()), "{r}");
    }
    // The twin takes the host loop's steps (same seeds, same stream): same NFE and idle steps.
    assert_eq!(rows[0]["nfe"], rows[1]["nfe"], "{v}");
    assert_eq!(rows[0]["idle_step_ratio"], rows[1]["idle_step_ratio"], "{v}");
    // The host executor reads logits at every network call, of the rows still masked only (at
    // least one, fewer than L = 16 once tokens are known); the twin reads the state once at
    // the end: 1 readback of ℓL = 32 ids over 17 steps.
    let nfe = rows[0]["nfe"].as_f64().unwrap();
    assert_eq!(rows[0]["readbacks_per_step"].as_f64(), Some(nfe / 17.0), "{v}");
    let row = 300.0 * 4.0; // prime_l2_tiny: V = 300, L = 16, ℓ = 2
    let read = rows[0]["bytes_read_per_step"].as_f64().unwrap();
    assert!(read >= nfe * row / 17.0 && read < nfe * 16.0 * row / 17.0, "{v}");
    assert_eq!(rows[1]["readbacks_per_step"].as_f64(), Some(1.0 / 17.0), "{v}");
    assert_eq!(rows[1]["bytes_read_per_step"].as_f64(), Some(32.0 * 4.0 / 17.0), "{v}");
}

/// `--samples N --batch B`: sample i is the single run with seed s + i, whatever B is.
#[test]
fn batched_samples_are_the_single_runs_with_consecutive_seeds() {
    let model = golden("prime_l4_small");
    let m = model.to_str().unwrap();
    let base = ["generate", "--model", m, "--steps", "24", "--json", "--device", "cpu", "--prompt-ids", "5"];
    let lines = |out: &Output| -> Vec<serde_json::Value> {
        assert!(out.status.success(), "{}", stderr(out));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    };
    let batched = lines(&prime(&[&base[..], &["--seed", "7", "--samples", "5", "--batch", "2"]].concat()));
    assert_eq!(batched.len(), 5);
    for (i, sample) in batched.iter().enumerate() {
        let seed = (7 + i).to_string();
        let alone = lines(&prime(&[&base[..], &["--seed", &seed]].concat()));
        assert_eq!(alone.len(), 1);
        assert_eq!(sample["seed"].as_u64(), Some(7 + i as u64));
        assert_eq!(sample["batch"].as_u64(), Some(if i < 4 { 2 } else { 1 }), "{sample}");
        for key in ["tokens", "nfe", "idle_steps"] {
            assert_eq!(sample[key], alone[0][key], "sample {i}: {key}");
        }
    }
    assert_ne!(batched[0]["tokens"], batched[1]["tokens"]);
}

#[test]
fn bench_reports_samples_per_second_per_batch_size() {
    let model = golden("prime_l2_tiny");
    let m = model.to_str().unwrap();
    let args = ["bench", "--model", m, "--steps", "8", "--runs", "1", "--paths", "host", "--batch", "1,3", "--json"];
    let v = json_of(&prime(&[&args[..], &["--device", "cpu"]].concat()));
    let batches = v["batches"].as_array().expect("batches");
    assert_eq!(batches.iter().map(|b| b["batch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3], "{v}");
    for b in batches {
        for key in ["ms_per_network_call", "ms_per_sequence", "samples_per_second"] {
            assert!(b[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {b}");
        }
        assert!((2.0..=9.0).contains(&b["nfe"].as_f64().unwrap()), "{b}");
    }
    assert!(v["rows"][0]["samples_per_second"].as_f64().is_some_and(|x| x > 0.0), "{v}");
}

#[test]
fn info_names_the_chosen_backend() {
    let v = json_of(&prime(&["info", "--json", "--device", "cpu"]));
    assert_eq!(v["backend"], "flex");
    assert!(v["adapters"].is_array());
    // The graphics APIs this platform's build carries (tests/cross.sh checks Windows' DX12).
    let compiled: Vec<&str> = v["compiled_backends"].as_array().unwrap().iter().filter_map(|b| b.as_str()).collect();
    let expected = if cfg!(target_os = "linux") || cfg!(windows) { "VULKAN" } else { "METAL" };
    assert!(compiled.contains(&expected), "{compiled:?}");
}

#[test]
fn default_model_writes_dictionary_english() {
    // Needs a word list (Debian: wamerican; `.ci/run` installs it).
    let out = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(["words", "--samples", "4", "--steps", "128", "--device", "cpu", "--json"])
        .output()
        .expect("prime-train runs");
    let v = json_of(&out);
    let fraction = v["fraction"].as_f64().expect("fraction");
    assert!(v["words"].as_u64().expect("words") > 200, "{v}");
    assert!(fraction >= 0.9, "only {:.1} % dictionary words: {}", 100.0 * fraction, v["first_sample"]);
}

/// The word-pair figures: against a corpus whose held-out text is its training text, every
/// held-out pair occurs in training (share 1), and the samples' share is a share.
#[test]
fn words_reports_word_pairs_beside_real_text() {
    let dir = std::env::temp_dir().join(format!("prime-cli-words-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = "It was a truth universally acknowledged, that a single man in possession of a good fortune, \
                must be in want of a wife. Emma Woodhouse, handsome, clever, and rich, seemed to unite some \
                of the best blessings of existence.\n"
        .repeat(60);
    std::fs::write(dir.join("train.txt"), &text).unwrap();
    std::fs::write(dir.join("valid.txt"), &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(["words", "--samples", "2", "--steps", "64", "--device", "cpu", "--json", "--corpus"])
        .arg(&dir)
        .output()
        .expect("prime-train runs");
    let v = json_of(&out);
    let pairs = &v["pairs"];
    assert_eq!(pairs["real_share"].as_f64(), Some(1.0), "{v}");
    assert!(pairs["real_windows"].as_u64().is_some_and(|n| n >= 2), "{v}");
    let share = pairs["sample_share"].as_f64().expect("sample_share");
    assert!((0.0..=1.0).contains(&share) && pairs["sample_pairs"].as_u64() > Some(50), "{v}");
    // A corpus folder without its files is an error.
    std::fs::remove_file(dir.join("valid.txt")).unwrap();
    let missing = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(["words", "--samples", "1", "--device", "cpu", "--corpus"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!missing.status.success() && stderr(&missing).contains("valid.txt"), "{}", stderr(&missing));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_generate_uses_the_built_in_model_and_its_tokenizer() {
    let out = prime(&["generate", "--prompt", "It was", "--steps", "64", "--seed", "3", "--device", "cpu", "--json"]);
    let v = json_of(&out);
    let text = v["text"].as_str().expect("text");
    assert!(text.starts_with("It was"), "{text}");
    assert_eq!(v["tokens"].as_array().expect("tokens").len(), 128);
}

#[test]
fn executors_agree_and_the_shader_executor_needs_a_gpu() {
    let model = golden("prime_l2_tiny");
    let model = model.to_str().unwrap();
    let args = |flag: &'static str, executor: &'static str| {
        ["generate", "--model", model, "--steps", "16", "--seed", "3", "--json", "--device", "cpu", flag, executor]
    };
    let host = json_of(&prime(&args("--executor", "host")));
    let twin = json_of(&prime(&args("--executor", "twin")));
    assert_eq!(host["executor"], "host", "{host}");
    assert_eq!(twin["executor"], "twin", "{twin}");
    assert_eq!(host["tokens"], twin["tokens"], "same seed, same tokens");
    assert_eq!(host["nfe"], twin["nfe"]);
    // `--sampler` is the old name of `--executor`, kept as an alias.
    let old_name = json_of(&prime(&args("--sampler", "twin")));
    assert_eq!(old_name["executor"], "twin", "{old_name}");
    let out = prime(&args("--executor", "shader"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.starts_with("error:") && l.contains("needs a wgpu device")), "{err}");
}

#[test]
fn generate_writes_a_trajectory_that_reads_back() {
    let model = golden("prime_l4_small");
    let path = std::env::temp_dir().join(format!("prime-cli-trajectory-{}.jsonl", std::process::id()));
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "12",
        "--seed",
        "2",
        "--json",
        "--device",
        "cpu",
        "--prompt-ids",
        "5,6",
        "--trajectory",
        path.to_str().unwrap(),
    ];
    let v = json_of(&prime(&args));
    let text = std::fs::read_to_string(&path).expect("the trajectory was written");
    std::fs::remove_file(&path).ok();
    let t = prime_core::trajectory::Trajectory::parse(&text).expect("the trajectory parses");
    assert_eq!((t.header.format.as_str(), t.header.version), ("prime-trajectory", 1));
    assert_eq!((t.header.model.subtokens, t.header.model.length), (4, 32));
    assert_eq!(t.header.executor, "host");
    assert_eq!(&t.header.fixed[..3], &[true, true, false]);
    assert_eq!(t.steps.len(), 13, "T loop steps and the final one");
    assert!(t.steps.last().is_some_and(|s| s.event.is_final));
    assert_eq!(serde_json::to_value(&t.ending.outcome.tokens).unwrap(), v["tokens"]);
    assert_eq!(t.ending.outcome.nfe as u64, v["nfe"].as_u64().unwrap());
    // Every step carries its state and guesses; every mentioned id was labelled by then.
    let mut labelled = std::collections::HashSet::new();
    for s in &t.steps {
        assert_eq!(s.event.state.len(), 4 * 32);
        assert_eq!(s.event.guesses.len(), 32);
        labelled.extend(s.labels.iter().map(|(id, _)| *id));
        assert!(s.event.guesses.iter().flatten().all(|g| labelled.contains(g)));
    }
    assert!(t.steps.iter().any(|s| !s.event.candidates.is_empty()), "no partly revealed token recorded");
    // The same run without a trajectory samples the same tokens.
    let plain = json_of(&prime(&args[..args.len() - 2]));
    assert_eq!(plain["tokens"], v["tokens"]);
}

/// The official Lightning checkpoint fixture converts into a model folder that reproduces the
/// official network's EMA logits, with GPT-2's tokenizer recovered from the pickle.
#[test]
fn convert_official_checkpoint() {
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/checkpoints/owt_prime_l2_co");
    let dir = std::env::temp_dir().join(format!("prime-cli-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (checkpoint, cases) = (case.join("checkpoint.ckpt"), case.join("cases.safetensors"));
    for dtype in ["f32", "f16"] {
        let out = dir.join(dtype);
        let args = ["convert", checkpoint.to_str().unwrap(), "--out", out.to_str().unwrap()];
        let result = prime(&[&args[..], &["--dtype", dtype]].concat());
        assert!(result.status.success(), "{}", stderr(&result));
        let logits = dir.join(format!("{dtype}.safetensors"));
        let args = [
            "forward",
            "--model",
            out.to_str().unwrap(),
            "--input",
            cases.to_str().unwrap(),
            "--output",
            logits.to_str().unwrap(),
            "--device",
            "cpu",
        ];
        let result = prime(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        let (got, want) = (read_logits(&logits), read_logits(&cases));
        assert_eq!(got.len(), 3 * 32 * 50257);
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // f16 weights round each weight to 11 significant bits: measured 3.3e-3 on logits up to 2.6.
        let bound = if dtype == "f32" { 5e-5 } else { 1e-2 };
        assert!(d <= bound, "{dtype}: max |Δ| {d}");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("expected_config.json")).unwrap()).unwrap();
        for key in [
            "vocab_size",
            "subtokens",
            "base",
            "hidden_size",
            "n_blocks",
            "n_heads",
            "cond_dim",
            "length",
            "carry_over",
        ] {
            assert_eq!(config[key], expected[key], "{key}");
        }
        let tokenizer = std::fs::read(out.join("tokenizer.json")).unwrap();
        let text = prime_core::text::TextCodec::from_bytes(&tokenizer, 50257).unwrap();
        assert_eq!(text.encode("Hello world").unwrap(), vec![15496, 995]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Files that are not official checkpoints get one clear line each.
#[test]
fn convert_refuses_other_files() {
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/checkpoints/owt_prime_l2_co");
    let dir = std::env::temp_dir().join(format!("prime-cli-convert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(case.join("checkpoint.ckpt")).unwrap();
    let truncated = dir.join("truncated.ckpt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let weights = golden("prime_l2_tiny").join("model.safetensors");
    for (file, needle) in [
        (weights.to_str().unwrap(), "not a PyTorch checkpoint"),
        (truncated.to_str().unwrap(), "not a PyTorch checkpoint"),
        ("/nonexistent.ckpt", "cannot read /nonexistent.ckpt"),
    ] {
        let out = prime(&["convert", file, "--out", dir.join("out").to_str().unwrap()]);
        let err = stderr(&out);
        assert!(!out.status.success() && !err.contains("panicked"), "{file}: {err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(line.contains(needle) && line.contains(file), "{file}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An RGB PNG's width, height and pixels.
fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    data.truncate(info.buffer_size());
    (info.width, info.height, data)
}

/// `prime init --image` makes an image model; `generate` draws its samples as a PNG grid (each
/// pixel the sampled grey level) and the trajectory as a GIF (masked pixels blue at the start,
/// partly revealed ones marked orange on the way, every pixel grey at the end).
#[test]
fn an_image_model_draws_its_samples_as_png_and_gif() {
    let dir = std::env::temp_dir().join(format!("prime-cli-image-{}", std::process::id()));
    let model = dir.join("model");
    let (png_path, gif_path) = (dir.join("grid.png"), dir.join("steps.gif"));
    let m = model.to_str().unwrap();
    let init = ["init", "--preset", "owt-l2", "--image", "6x4", "--hidden", "32", "--blocks", "1", "--heads", "2"];
    let out = prime(&[&init[..], &["--out", m]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["vocab_size"].as_u64(), config["length"].as_u64()), (Some(256), Some(24)));
    assert_eq!(config["image"], serde_json::json!({"width": 6, "height": 4}));
    let generate = ["generate", "--model", m, "--device", "cpu", "--samples", "3", "--steps", "8", "--seed", "5"];
    let files = ["--png", png_path.to_str().unwrap(), "--gif", gif_path.to_str().unwrap(), "--scale", "3", "--json"];
    let out = prime(&[&generate[..], &files].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let reports: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 3);

    // Two columns, two rows of 6 × 4 images at 3 screen pixels per pixel, 2-pixel gaps.
    let (width, height, rgb) = read_png(&png_path);
    assert_eq!((width, height), (2 * (6 * 3 + 2) + 2, 2 * (4 * 3 + 2) + 2));
    for (i, report) in reports.iter().enumerate() {
        let (left, top) = (2 + (i % 2) * 20, 2 + (i / 2) * 14);
        for (p, token) in report["tokens"].as_array().unwrap().iter().enumerate() {
            let (x, y) = (left + (p % 6) * 3 + 1, top + (p / 6) * 3 + 1);
            let at = (y * width as usize + x) * 3;
            assert_eq!(rgb[at..at + 3], [token.as_u64().unwrap() as u8; 3], "sample {i} pixel {p}");
        }
    }

    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(std::fs::File::open(&gif_path).unwrap()).unwrap();
    // Frames after the first store only the rectangle that changed: composite them.
    let (w, h) = (width as usize, height as usize);
    let (mut canvas, mut frames, mut partial_frames) = (vec![0u8; w * h * 4], Vec::new(), 0);
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        let (left, top, fw, fh) =
            (usize::from(frame.left), usize::from(frame.top), usize::from(frame.width), usize::from(frame.height));
        assert!(left + fw <= w && top + fh <= h, "frame {} outside the sheet", frames.len());
        assert!(!frames.is_empty() || (fw, fh) == (w, h), "the first frame is the whole sheet");
        partial_frames += usize::from(fw * fh < w * h);
        // Transparent pixels keep what the frames before showed.
        for (k, pixel) in frame.buffer.chunks_exact(4).enumerate().filter(|(_, p)| p[3] != 0) {
            let at = ((top + k / fw) * w + left + k % fw) * 4;
            canvas[at..at + 4].copy_from_slice(pixel);
        }
        frames.push(canvas.clone());
    }
    assert!(partial_frames > 0, "every frame was written whole");
    // The last frame is the PNG, up to the GIF's 252 grey levels.
    let last_rgb = frames.last().unwrap().chunks_exact(4).flat_map(|p| p[..3].to_vec());
    let off = last_rgb.zip(&rgb).map(|(a, &b)| a.abs_diff(b)).max().unwrap();
    assert!(off <= 1, "the GIF's last frame differs from the PNG by {off} levels");
    let has = |frame: &[u8], rgb: [u8; 3]| frame.chunks_exact(4).any(|p| p[..3] == rgb);
    let (mask, marker) = ([0x3b, 0x5b, 0xdb], [0xff, 0x8c, 0x00]);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert!(has(&frames[0], mask), "the first frame shows masked pixels");
    assert!(frames.iter().any(|f| has(f, marker)), "no frame shows a partly revealed pixel");
    let last = frames.last().unwrap();
    assert!(!has(last, mask) && !has(last, marker), "the last frame is finished");
    // A trajectory of an image model says so in its header.
    let trajectory = dir.join("one.jsonl");
    let out = prime(
        &[
            &generate[..5],
            &["--steps", "4", "--trajectory", trajectory.to_str().unwrap(), "--png", png_path.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = prime_core::trajectory::Trajectory::parse(&std::fs::read_to_string(&trajectory).unwrap()).unwrap();
    assert_eq!(t.header.model.image, Some(prime_core::image::ImageShape { width: 6, height: 4 }));
    // Every record says what each pixel shows, read off its digit slots (ℓ = 2, b = 16).
    use prime_core::image::Pixel;
    let mask = t.header.model.mask_id;
    let mut partial = 0;
    for record in &t.steps {
        let pixels = record.pixels.as_ref().expect("an image record has pixels");
        assert_eq!(pixels.len(), 24);
        for (pixel, digits) in pixels.iter().zip(record.event.state.chunks(2)) {
            match (*pixel, digits[0] == mask, digits[1] == mask) {
                (Pixel::Masked, true, true) => {}
                (Pixel::Known(v), false, false) => assert_eq!(v, digits[0] * 16 + digits[1]),
                (Pixel::Partial { lowest, highest, count: 16, .. }, false, true) => {
                    partial += 1;
                    assert_eq!((lowest, highest), (digits[0] * 16, digits[0] * 16 + 15));
                }
                (Pixel::Partial { lowest, highest, count: 16, .. }, true, false) => {
                    partial += 1;
                    assert_eq!((lowest, highest), (digits[1], 240 + digits[1]));
                }
                other => panic!("pixel {other:?} for digits {digits:?}"),
            }
        }
    }
    assert!(partial > 0, "no record has a partly revealed pixel");
    std::fs::remove_dir_all(&dir).ok();

    // A text model has nothing to draw.
    let text = golden("prime_l2_tiny");
    let out = prime(&["generate", "--model", text.to_str().unwrap(), "--device", "cpu", "--png", "x.png"]);
    assert!(!out.status.success() && stderr(&out).contains("no `image`"), "{}", stderr(&out));
}

/// `--inpaint` pins every pixel outside the `--erase` rectangles: the samples keep them
/// exactly and fill the rest.
#[test]
fn inpainting_keeps_the_pixels_outside_the_erased_region() {
    let dir = std::env::temp_dir().join(format!("prime-cli-inpaint-{}", std::process::id()));
    let model = dir.join("model");
    let m = model.to_str().unwrap();
    let out = prime(&[
        "init", "--preset", "owt-l2", "--image", "6x4", "--hidden", "32", "--blocks", "1", "--heads", "2", "--out", m,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let source: Vec<u8> = (0..24).map(|i| (i * 11 % 256) as u8).collect();
    let write_png = |path: &std::path::Path, width: u32, height: u32, data: &[u8]| {
        let mut encoder = png::Encoder::new(std::fs::File::create(path).unwrap(), width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.write_header().unwrap().write_image_data(data).unwrap();
    };
    let (image, wrong) = (dir.join("source.png"), dir.join("wrong.png"));
    write_png(&image, 6, 4, &source);
    write_png(&wrong, 4, 6, &source);
    let png_out = dir.join("out.png");
    let base = ["generate", "--model", m, "--device", "cpu", "--steps", "6", "--png", png_out.to_str().unwrap()];
    let inpaint = ["--inpaint", image.to_str().unwrap(), "--erase", "1,2,5,4", "--samples", "2", "--json"];
    let out = prime(&[&base[..], &inpaint].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut filled = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let tokens: Vec<u64> = v["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
        for (p, (&token, &kept)) in tokens.iter().zip(&source).enumerate() {
            let (x, y) = (p % 6, p / 6);
            if (1..5).contains(&x) && (2..4).contains(&y) {
                filled += usize::from(token != u64::from(kept));
            } else {
                assert_eq!(token, u64::from(kept), "pinned pixel ({x}, {y})");
            }
        }
    }
    assert!(filled > 0, "the erased pixels were regenerated");
    for (extra, message) in [
        (vec!["--inpaint", wrong.to_str().unwrap(), "--erase", "0,0,2,2"], "is 4 × 6"),
        (vec!["--inpaint", image.to_str().unwrap(), "--erase", "0,0,7,2"], "outside the 6 × 4 image"),
        (vec!["--inpaint", image.to_str().unwrap(), "--erase", "2,0,2,2"], "is empty"),
        (vec!["--inpaint", image.to_str().unwrap()], "--erase"),
    ] {
        let out = prime(&[&base[..], &extra].concat());
        assert!(!out.status.success() && stderr(&out).contains(message), "{extra:?}: {}", stderr(&out));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A model folder is written whole or not at all: a non-empty `--out` is refused without
/// `--force`; with it the old folder is replaced as a whole (its stale files go, and a symlink
/// inside it is removed, never written through).
#[test]
fn convert_replaces_a_folder_only_when_forced_and_as_a_whole() {
    let checkpoint =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/checkpoints/owt_prime_l2_co/checkpoint.ckpt");
    let dir = std::env::temp_dir().join(format!("prime-cli-convert-force-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tokenizer.json"), b"stale").unwrap();
    let outside = dir.join("outside.json");
    std::fs::write(&outside, b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, out.join("config.json")).unwrap();
    let args = ["convert", checkpoint.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let refused = prime(&args);
    let err = stderr(&refused);
    assert!(!refused.status.success() && err.contains("not empty") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), b"stale", "a refused run changes nothing");
    let forced = prime(&[&args[..], &["--force"]].concat());
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep", "the symlink was not written through");
    assert!(!std::fs::symlink_metadata(out.join("config.json")).unwrap().is_symlink());
    let tokenizer = std::fs::read(out.join("tokenizer.json")).unwrap();
    assert!(tokenizer.len() > 1000, "the stale tokenizer.json was replaced");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["model", "outside.json"], "no temporary folder is left");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write that fails (a full device) is an error, on a picture, a trajectory and standard
/// output alike: never a success, never a panic.
#[test]
fn failed_writes_are_errors() {
    let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/fashion-prime");
    let png = std::env::temp_dir().join(format!("prime-cli-full-{}.png", std::process::id()));
    let base = ["generate", "--model", image.to_str().unwrap(), "--steps", "4", "--device", "cpu"];
    for extra in [
        vec!["--png", png.to_str().unwrap(), "--gif", "/dev/full"],
        vec!["--png", "/dev/full"],
        vec!["--png", png.to_str().unwrap(), "--trajectory", "/dev/full"],
    ] {
        let out = prime(&[&base[..], &extra[..]].concat());
        let err = stderr(&out);
        assert!(!out.status.success() && !err.contains("panicked"), "{extra:?}: {err}");
        assert!(err.lines().any(|l| l.starts_with("error:") && l.contains("/dev/full")), "{extra:?}: {err}");
    }
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let text = golden("prime_l2_tiny");
    let out = Command::new(env!("CARGO_BIN_EXE_prime"))
        .args(["generate", "--model", text.to_str().unwrap(), "--steps", "4", "--device", "cpu", "--json"])
        .stdout(full)
        .output()
        .expect("prime runs");
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("error: cannot write to standard output"), "{err}");
    let _ = std::fs::remove_file(&png);
}

/// Counts near the top of their type are refused or computed in a wider type, never wrapped
/// into a panic.
#[test]
fn huge_counts_are_refused_cleanly() {
    let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/fashion-prime");
    let text = golden("prime_l2_tiny");
    let (image, text) = (image.to_str().unwrap(), text.to_str().unwrap());
    let max = u64::MAX.to_string();
    for args in [
        vec!["generate", "--model", text, "--device", "cpu", "--steps", &max],
        vec!["generate", "--model", text, "--device", "cpu", "--steps", &max, "--samples", "4096"],
        vec!["generate", "--model", image, "--device", "cpu", "--steps", &max, "--gif", "/dev/null"],
        vec!["bench", "--model", text, "--device", "cpu", "--runs", &max],
    ] {
        let out = prime(&args);
        let err = stderr(&out);
        assert!(!out.status.success() && !err.contains("panicked"), "{args:?}: {err}");
        assert!(err.lines().any(|l| l.starts_with("error:")), "{args:?}: {err}");
    }
}

/// Where every adapter is a software rasteriser (lavapipe in CI), the default device is the
/// CPU and says why, and `--device gpu` still takes the adapter; elsewhere a hardware adapter is
/// chosen and nothing is passed over.
#[test]
fn the_default_device_passes_over_software_adapters() {
    let auto = json_of(&prime(&["info", "--json"]));
    let adapters = auto["adapters"].as_array().expect("adapters").clone();
    let software = |a: &serde_json::Value| a["device_type"] == "Cpu";
    if !adapters.is_empty() && adapters.iter().all(software) {
        assert_eq!(auto["backend"], "flex", "{auto}");
        assert!(software(&auto["passed_over"]), "{auto}");
        let gpu = json_of(&prime(&["info", "--json", "--device", "gpu"]));
        assert_eq!(gpu["backend"], "wgpu", "{gpu}");
        let model = golden("prime_l2_tiny");
        let out = prime(&["generate", "--model", model.to_str().unwrap(), "--steps", "4"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("on burn-flex (CPU; the only GPU adapter"), "{}", stderr(&out));
    } else {
        assert!(auto["passed_over"].is_null(), "{auto}");
        let hardware = adapters.iter().any(|a| !software(a));
        assert_eq!(auto["backend"], if hardware { "wgpu" } else { "flex" }, "{auto}");
    }
}

/// `prime-train bench` times training steps at the shape it is given and reports consistent
/// figures: tokens/s from the timed steps, phases that add up to no more than a step.
#[test]
fn train_bench_reports_its_figures() {
    let args = ["bench", "--hidden", "32", "--blocks", "1", "--heads", "2", "--cond", "16", "--length", "16"];
    let more = ["--vocab", "64", "--batch", "2", "--steps", "3", "--warmup", "1", "--device", "cpu", "--json"];
    let out = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(args.iter().chain(&more))
        .output()
        .expect("prime-train runs");
    let v = json_of(&out);
    assert!(stderr(&out).contains("ms/step"), "{}", stderr(&out));
    let f = |key: &str| v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
    assert_eq!((f("length"), f("batch"), f("vocab"), f("steps")), (16.0, 2.0, 64.0, 3.0), "{v}");
    let (min, median, max) = (f("ms_per_step_min"), f("ms_per_step_median"), f("ms_per_step_max"));
    assert!(0.0 < min && min <= median && median <= max, "{v}");
    // 3 steps of 2 × 16 tokens took at least 3 × the fastest step.
    let bound = 96.0 / (3.0 * min / 1e3);
    assert!(f("tokens_per_second") > 0.0 && f("tokens_per_second") <= bound * 1.001, "{v}");
    let phases: f64 = ["data", "forward", "backward", "optimizer", "ema"]
        .iter()
        .map(|p| v["phases"][p].as_f64().unwrap_or_else(|| panic!("phase {p} in {v}")))
        .sum();
    assert!(phases > 0.0 && phases * 1e3 <= max * 1.001, "{v}");
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(v["cores_used"].as_f64().is_some_and(|c| c > 0.0), "{v}");
    }
}

/// Ctrl-C stops a training run after its current step with a checkpoint, and the same command
/// resumes from that step.
#[test]
#[cfg(unix)]
fn ctrl_c_stops_training_with_a_checkpoint_that_resumes() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("prime-cli-ctrl-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let text = "It was a truth universally acknowledged, that a single man in possession of a good fortune, \
                must be in want of a wife.\n"
        .repeat(40);
    std::fs::write(corpus.join("train.txt"), &text).unwrap();
    std::fs::write(corpus.join("valid.txt"), &text).unwrap();
    let tokenizer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/prime/tokenizer.json");
    let run = dir.join("run");
    let (corpus, tokenizer, run) = (corpus.to_str().unwrap(), tokenizer.to_str().unwrap(), run.to_str().unwrap());
    let args = [
        "train",
        "--corpus",
        corpus,
        "--tokenizer",
        tokenizer,
        "--out",
        run,
        "--hidden",
        "32",
        "--blocks",
        "1",
        "--heads",
        "2",
        "--cond",
        "16",
        "--length",
        "16",
        "--batch",
        "2",
        "--steps",
        "1000000",
        "--device",
        "cpu",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prime-train runs");
    // The summary line comes after the handler is installed, just before the first step.
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while progress.read_line(&mut line).unwrap() > 0 && !line.contains("parameters") {
        line.clear();
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut progress, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success() && rest.contains("Ctrl-C: stopping"), "{status:?}: {rest}");
    let stopped: usize = rest
        .split("stopped at step ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stop line: {rest}"));
    assert!(stopped > 0, "{rest}");
    // Resumed, it takes up at that step (and stops at once: a budget of no time).
    let resumed = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(args.iter().chain(&["--minutes", "0.0000001"]))
        .output()
        .expect("prime-train runs");
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(err.contains(&format!("at step {stopped} of 1000000")), "{err}");
    // Another shape, another setting or another tokenizer on that run folder is an error that
    // names the difference, and the checkpoint is kept.
    let other_tokenizer = dir.join("other-tokenizer.json");
    let mut bytes = std::fs::read(tokenizer).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&other_tokenizer, bytes).unwrap();
    let other_tokenizer = other_tokenizer.to_str().unwrap();
    let edits: [(&[&str], &str); 3] = [
        (&["--hidden", "64"], "hidden_size = 32 (these flags: 64)"),
        (&["--lr", "0.5"], "schedule.peak"),
        (&["--tokenizer", other_tokenizer], "another tokenizer"),
    ];
    for (edit, want) in edits {
        let mut changed: Vec<&str> = args.to_vec();
        for pair in edit.chunks(2) {
            match changed.iter().position(|a| *a == pair[0]) {
                Some(i) => changed[i + 1] = pair[1],
                None => changed.extend_from_slice(pair),
            }
        }
        let refused = Command::new(env!("CARGO_BIN_EXE_prime-train")).args(&changed).output().unwrap();
        let err = stderr(&refused);
        assert!(!refused.status.success() && err.contains(want), "{edit:?}: {err}");
    }
    let again = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(args.iter().chain(&["--minutes", "0.0000001"]))
        .output()
        .unwrap();
    let kept = err.split("stopped at step ").nth(1).and_then(|s| s.split('/').next()).unwrap_or("?");
    assert!(stderr(&again).contains(&format!("at step {kept} of 1000000")), "{kept}: {}", stderr(&again));
    // A snapshot of the run is a model folder `prime` generates with; another tokenizer is refused.
    let snapshot = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(["snapshot", "--run", run, "--tokenizer", tokenizer])
        .output()
        .unwrap();
    assert!(snapshot.status.success(), "{}", stderr(&snapshot));
    let folder = dir.join("run").join("snapshot");
    let generated =
        prime(&["generate", "--steps", "16", "--device", "cpu", "--json", "--model", folder.to_str().unwrap()]);
    assert!(json_of(&generated)["text"].as_str().is_some_and(|t| !t.is_empty()));
    let refused = Command::new(env!("CARGO_BIN_EXE_prime-train"))
        .args(["snapshot", "--run", run, "--tokenizer", other_tokenizer])
        .output()
        .unwrap();
    assert!(!refused.status.success() && stderr(&refused).contains("not the tokenizer"), "{}", stderr(&refused));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The long flags `--help` lists for `command` of `program`.
fn help_flags(program: &str, command: &str) -> Vec<String> {
    let out = Command::new(program).args([command, "--help"]).output().expect("runs");
    assert!(out.status.success(), "{program} {command} --help: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-").and_then(|r| r.split_once(", ")).map_or(l, |(_, rest)| rest);
            l.strip_prefix("--").map(|r| format!("--{}", r.split([' ', '<']).next().unwrap_or_default()))
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The commands a program's `--help` lists (without `help`).
fn help_commands(program: &str) -> Vec<String> {
    let out = Command::new(program).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// docs/cli.md gives every command of both programs with each of its flags, in the command's
/// own synopsis (the `[SAMPLING]` and `[DEVICE]` groups written out once).
#[test]
fn the_cli_manual_names_every_flag_of_every_command() {
    let manual = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")).unwrap();
    let lines: Vec<&str> = manual.lines().collect();
    // A group's definition: its first line `[NAME] = …` and the indented lines after it.
    let group = |name: &str| -> String {
        let defines = |l: &&&str| l.starts_with(&format!("[{name}]")) && l.contains(" = ");
        let start = lines.iter().position(|l| defines(&l)).expect("group defined");
        let rest = lines[start + 1..].iter().take_while(|l| l.starts_with(' '));
        std::iter::once(lines[start]).chain(rest.copied()).collect::<Vec<_>>().join(" ")
    };
    let (sampling, device) = (group("SAMPLING"), group("DEVICE"));
    let programs = [("prime", env!("CARGO_BIN_EXE_prime")), ("prime-train", env!("CARGO_BIN_EXE_prime-train"))];
    let mut missing = Vec::new();
    for (name, program) in programs {
        let commands = help_commands(program);
        assert!(commands.len() >= 7, "{name} --help lists {commands:?}");
        for command in &commands {
            let head = format!("{name} {command} ");
            let start = lines.iter().position(|l| l.starts_with(&head)).unwrap_or_else(|| panic!("no `{head}` line"));
            let rest = lines[start + 1..].iter().take_while(|l| l.starts_with(' '));
            let synopsis = std::iter::once(lines[start]).chain(rest.copied()).collect::<Vec<_>>().join(" ");
            let synopsis = synopsis.replace("[SAMPLING]", &sampling).replace("[DEVICE]", &device);
            for flag in help_flags(program, command) {
                let named = synopsis.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).any(|w| w == flag);
                if !named {
                    missing.push(format!("{name} {command} {flag}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/cli.md does not name: {missing:?}");
}

/// The JSON lines of a file or of standard output.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// What identifies a sample (timing aside).
fn sample_key(v: &serde_json::Value) -> String {
    format!("{} {} {} {} {}", v["seed"], v["tokens"], v["nfe"], v["idle_steps"], v["text"])
}

/// K processes with `--shard I/K` draw exactly the unsharded run's samples (K = 1, and K = 3
/// with 7 samples, which 3 does not divide); `merge` joins them in seed order; a complete shard
/// is skipped; a shard without its manifest (a killed process) is refused by name until it is run
/// again; `--shard auto` reads Slurm's and Kubernetes' variables.
#[test]
fn shards_merge_into_the_unsharded_run() {
    let model = golden("prime_l2_tiny");
    let model = model.to_str().unwrap();
    let base = ["generate", "--model", model, "--steps", "8", "--seed", "11", "--samples", "7", "--batch", "2"];
    let base = [&base[..], &["--device", "cpu"]].concat();
    let whole = prime(&[&base[..], &["--json"]].concat());
    assert!(whole.status.success(), "{}", stderr(&whole));
    let expected: Vec<String> = json_lines(&String::from_utf8_lossy(&whole.stdout)).iter().map(sample_key).collect();
    assert_eq!(expected.len(), 7);
    for k in [1usize, 3] {
        let dir = std::env::temp_dir().join(format!("prime-shards-{}-{k}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dir_arg = dir.to_str().unwrap();
        for i in 0..k {
            let spec = format!("{i}/{k}");
            let out = prime(&[&base[..], &["--shard", spec.as_str(), "--out", dir_arg]].concat());
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let merged = dir.join("all.jsonl");
        let merged_arg = merged.to_str().unwrap();
        let out = prime(&["merge", dir_arg, "--out", merged_arg]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got: Vec<String> = json_lines(&std::fs::read_to_string(&merged).unwrap()).iter().map(sample_key).collect();
        assert_eq!(got, expected, "K = {k}: the merged shards differ from the unsharded run");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("all.jsonl.manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["timing"].as_array().map(Vec::len), Some(k), "{manifest}");
        assert_eq!(manifest["samples"], 7);
        if k == 3 {
            // A complete shard is not drawn again.
            let file = dir.join("shard-1-of-3.jsonl");
            let before = std::fs::metadata(&file).unwrap().modified().unwrap();
            let again = prime(&[&base[..], &["--shard", "1/3", "--out", dir_arg]].concat());
            assert!(again.status.success() && stderr(&again).contains("skipped"), "{}", stderr(&again));
            assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), before, "a complete shard was rewritten");
            // A shard without its manifest is refused by name, then drawn again.
            std::fs::remove_file(dir.join("shard-1-of-3.json")).unwrap();
            let refused = prime(&["merge", dir_arg, "--out", merged_arg]);
            assert!(!refused.status.success() && stderr(&refused).contains("1/3"), "{}", stderr(&refused));
            let slurm = Command::new(env!("CARGO_BIN_EXE_prime"))
                .args([&base[..], &["--shard", "auto", "--out", dir_arg]].concat())
                .env("SLURM_ARRAY_TASK_ID", "2")
                .env("SLURM_ARRAY_TASK_MIN", "1")
                .env("SLURM_ARRAY_TASK_COUNT", "3")
                .output()
                .unwrap();
            assert!(slurm.status.success() && stderr(&slurm).contains("shard 1/3"), "{}", stderr(&slurm));
            let out = prime(&["merge", dir_arg, "--out", merged_arg]);
            assert!(out.status.success(), "{}", stderr(&out));
            let got: Vec<String> =
                json_lines(&std::fs::read_to_string(&merged).unwrap()).iter().map(sample_key).collect();
            assert_eq!(got, expected, "after the re-run");
            // Kubernetes: the index, and the count from --shards.
            let k8s = Command::new(env!("CARGO_BIN_EXE_prime"))
                .args([&base[..], &["--shard", "auto", "--out", dir_arg]].concat())
                .env("JOB_COMPLETION_INDEX", "0")
                .env_remove("SLURM_ARRAY_TASK_ID")
                .output()
                .unwrap();
            assert!(!k8s.status.success() && stderr(&k8s).contains("--shards"), "{}", stderr(&k8s));
            let k8s = Command::new(env!("CARGO_BIN_EXE_prime"))
                .args([&base[..], &["--shard", "auto", "--shards", "3", "--out", dir_arg]].concat())
                .env("JOB_COMPLETION_INDEX", "0")
                .env_remove("SLURM_ARRAY_TASK_ID")
                .output()
                .unwrap();
            assert!(k8s.status.success() && stderr(&k8s).contains("skipped"), "{}", stderr(&k8s));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `prime bench` takes the shared sampling flags, but its executors and modes come from
/// `--paths`: `--executor` or `--mode` would be ignored, so each is refused.
#[test]
fn bench_refuses_an_executor_or_mode_outside_paths() {
    let model = golden("prime_l2_tiny");
    let model = model.to_str().unwrap();
    for flag in [["--executor", "host"], ["--mode", "event-driven"]] {
        let out = prime(
            &[&["bench", "--model", model, "--steps", "4", "--runs", "1", "--device", "cpu"][..], &flag].concat(),
        );
        assert!(!out.status.success(), "{flag:?} was accepted");
        let err = stderr(&out);
        assert!(err.lines().any(|l| l.starts_with("error:") && l.contains("--paths")), "{err}");
    }
    let out = prime(&[
        "bench", "--model", model, "--steps", "4", "--runs", "1", "--seed", "9", "--top-k", "5", "--json", "--device",
        "cpu",
    ]);
    let report = json_of(&out);
    assert_eq!(report["steps"], 4, "{report}");
}

/// A copy of the tiny golden model whose config.json carries `sampling` = `recommended`.
fn recommending_model(name: &str, recommended: serde_json::Value) -> PathBuf {
    let source = golden("prime_l2_tiny");
    let dir = std::env::temp_dir().join(format!("prime-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(source.join("config.json")).unwrap()).unwrap();
    config["sampling"] = recommended;
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    dir
}

#[test]
fn a_model_recommends_its_settings_and_flags_win() {
    let plain = golden("prime_l2_tiny");
    let dir = recommending_model("recommends", serde_json::json!({"steps": 24, "top_p": 0.5, "temperature": 0.8}));
    let run = |model: &std::path::Path, flags: &[&str]| {
        let mut args = vec!["generate", "--model", model.to_str().unwrap(), "--seed", "3", "--json", "--device", "cpu"];
        args.extend_from_slice(flags);
        json_of(&prime(&args))
    };
    let recommended = run(&dir, &[]);
    let explicit = run(&plain, &["--steps", "24", "--top-p", "0.5", "--temperature", "0.8"]);
    assert_eq!(recommended["steps"], 24, "the model's steps are the default");
    assert_eq!(recommended["tokens"], explicit["tokens"], "the model's settings = the same flags given");
    let overridden = run(&dir, &["--steps", "24", "--top-p", "1", "--temperature", "1"]);
    let official = run(&plain, &["--steps", "24"]);
    assert_eq!(overridden["tokens"], official["tokens"], "flags that are given win");
    assert_ne!(recommended["tokens"], official["tokens"], "the settings change the draws");

    let trajectory = dir.join("run.jsonl");
    let out = prime(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--device",
        "cpu",
        "--trajectory",
        trajectory.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&trajectory).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["model"]["sampling"]["top_p"], 0.5, "the header names the recommendation");
    assert_eq!(header["request"]["settings"]["top_p"], 0.5, "and records the setting it ran with");
    let _ = std::fs::remove_dir_all(&dir);

    for (bad, words) in [
        (serde_json::json!({"top_p": 1.5}), "top-p"),
        (serde_json::json!({"steps": 0}), "steps"),
        (serde_json::json!({"top_q": 0.9}), "top_q"),
    ] {
        let dir = recommending_model("bad-sampling", bad);
        let out = prime(&["generate", "--model", dir.to_str().unwrap(), "--device", "cpu"]);
        let message = stderr(&out);
        assert!(!out.status.success() && message.contains("sampling") && message.contains(words), "{message}");
        assert!(!message.contains("panicked"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Writes `train` training and `valid` held-out 14 × 14 images, labelled 0–9 in turn, to `dir`
/// in the IDX format `prime-train images` writes.
fn write_image_set(dir: &std::path::Path, train: u32, valid: u32) {
    let idx = |dims: &[u32], data: &[u8]| {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        [bytes, data.to_vec()].concat()
    };
    for (split, n) in [("train", train), ("valid", valid)] {
        let pixels: Vec<u8> = (0..n * 196).map(|i| ((i * 37 + i / 196 * 11) % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(dir.join(format!("{split}-images.idx")), idx(&[n, 14, 14], &pixels)).unwrap();
        std::fs::write(dir.join(format!("{split}-labels.idx")), idx(&[n], &labels)).unwrap();
    }
}

fn prime_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prime-train")).args(args).output().expect("prime-train runs")
}

/// `sweep`'s rows are what `words` / `judge` report for the same settings, one per setting.
#[test]
fn sweep_rows_are_the_words_and_judge_figures_of_each_setting() {
    let dir = std::env::temp_dir().join(format!("prime-cli-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = "She was not a woman of many words, but she knew her own mind, and the party was soon gone.\n";
    std::fs::write(dir.join("train.txt"), text.repeat(80)).unwrap();
    std::fs::write(dir.join("valid.txt"), text.repeat(80)).unwrap();
    let corpus = dir.to_str().unwrap();
    let out =
        prime_train(&["sweep", "--steps", "4,8", "--samples", "2", "--device", "cpu", "--json", "--corpus", corpus]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.iter().map(|r| r["steps"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 8]);
    let words = json_of(&prime_train(&[
        "words",
        "--steps",
        "8",
        "--samples",
        "2",
        "--device",
        "cpu",
        "--json",
        "--corpus",
        corpus,
    ]));
    assert_eq!(rows[1]["fraction"], words["fraction"], "{}", rows[1]);
    assert_eq!(rows[1]["pairs"]["ratio"], words["pairs"]["ratio"]);
    assert_eq!(rows[1]["mean_nfe"], words["mean_nfe"]);
    assert!(rows[0]["mean_nfe"].as_f64().unwrap() <= 5.0, "T = 4 takes at most 5 calls: {}", rows[0]);

    // An image model against a small image set in the IDX format `prime-train images` writes.
    write_image_set(&dir, 60, 40);
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/fashion-prime");
    let common = ["--model", model.to_str().unwrap(), "--images", corpus, "--samples", "4", "--epochs", "1"];
    let sweep = [&["sweep", "--steps", "2,3"][..], &common, &["--device", "cpu", "--json"]].concat();
    let out = prime_train(&sweep);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 2);
    let judge =
        json_of(&prime_train(&[&["judge", "--steps", "3"][..], &common, &["--device", "cpu", "--json"]].concat()));
    for key in ["samples", "features", "mean_nfe"] {
        assert_eq!(rows[1][key], judge[key], "{key}: {}", rows[1]);
    }
    // The model recommends guidance 1; `--guidance` sets another for every row, as judge's does.
    assert_eq!(rows[1]["guidance"], 1.0, "{}", rows[1]);
    let unguided = [&["--guidance", "0", "--steps", "3"][..], &common, &["--device", "cpu", "--json"]].concat();
    let out = prime_train(&[&["sweep"][..], &unguided].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let row = &json_lines(&String::from_utf8_lossy(&out.stdout))[0];
    assert_eq!(row["guidance"], 0.0, "{row}");
    let judge = json_of(&prime_train(&[&["judge"][..], &unguided].concat()));
    assert_eq!(row["features"], judge["features"], "{row}");
    assert_ne!(row["features"], rows[1]["features"], "guidance 0 draws other samples than guidance 1");
    let bad = prime_train(&[&["sweep", "--guidance", "101"][..], &common, &["--device", "cpu"]].concat());
    assert!(!bad.status.success() && stderr(&bad).contains("guidance"), "{}", stderr(&bad));
    let bad = prime_train(&["sweep", "--steps", "0", "--device", "cpu", "--corpus", corpus]);
    assert!(!bad.status.success() && stderr(&bad).contains("steps"), "{}", stderr(&bad));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A class-conditioned image model: `--classes` trains one (from a model without classes with
/// `--init`), `generate --class` draws the class asked for and names it, `judge` reports how
/// often the classifier agrees; a class the model lacks, or a class for a model without
/// classes, is refused with the classes named.
#[test]
fn a_model_taught_classes_draws_and_names_them() {
    let dir = std::env::temp_dir().join(format!("prime-cli-classes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_image_set(&dir, 30, 20);
    let images = dir.to_str().unwrap();
    let train = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let shape = ["--hidden", "32", "--blocks", "1", "--heads", "2", "--cond", "16", "--batch", "4"];
        let args = [
            &["train", "--images", images, "--out", out.to_str().unwrap(), "--steps", "2", "--valid-images", "4"][..],
            &shape,
            extra,
            &["--device", "cpu"],
        ]
        .concat();
        (prime_train(&args), out.join("model"))
    };
    let (out, plain) = train("plain", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, taught) = train("taught", &["--classes", "--init", plain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(taught.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["classes"][7], "Sneaker", "{config}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(taught.join("training.json")).unwrap()).unwrap();
    let from = &report["initialised_from"];
    assert!(from["path"].as_str().unwrap().ends_with("model") && from["training"]["steps"] == 2, "{report}");
    let (out, _) = train("mdlm", &["--classes", "--init", plain.to_str().unwrap(), "--subtokens", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("subtokens"), "{}", stderr(&out));

    let taught = taught.to_str().unwrap();
    let generate = |model: &str, class: &[&str]| {
        let args =
            [&["generate", "--model", model, "--steps", "4", "--samples", "2", "--json", "--device", "cpu"][..], class]
                .concat();
        prime(&args)
    };
    let out = generate(taught, &["--class", "sneaker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(samples.iter().all(|s| s["class"] == "Sneaker"), "{samples:?}");
    let each = json_lines(&String::from_utf8_lossy(&generate(taught, &["--seed", "3"]).stdout));
    let classes: Vec<_> = each.iter().map(|s| s["class"].clone()).collect();
    assert_eq!(classes, ["Dress", "Coat"], "by default the sample of seed s draws class s mod 10");
    let none = json_lines(&String::from_utf8_lossy(&generate(taught, &["--class", "none"]).stdout));
    assert!(none.len() == 2 && none.iter().all(|s| s.get("class").is_none()), "{none:?}");
    let out = generate(taught, &["--class", "Hat"]);
    assert!(!out.status.success() && stderr(&out).contains("Ankle boot"), "{}", stderr(&out));
    let out = generate(plain.to_str().unwrap(), &["--class", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("not conditioned"), "{}", stderr(&out));

    let judge = json_of(&prime_train(&[
        "judge",
        "--model",
        taught,
        "--images",
        images,
        "--samples",
        "4",
        "--epochs",
        "1",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!(judge["class"], "each");
    let agreement = judge["class_agreement"].as_f64().expect("an agreement share");
    assert!((0.0..=1.0).contains(&agreement), "{judge}");
    let _ = std::fs::remove_dir_all(&dir);
}
