//! `prime serve` over real HTTP on 127.0.0.1: the streamed records are the CLI's trajectory,
//! concurrent requests draw what their CLI runs draw, bad bodies get 400 and the server goes
//! on, a client that goes away frees its place, and only loopback is served by default.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/prime_l2_tiny").to_string_lossy().into_owned()
}

fn prime(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prime")).args(args).output().expect("prime runs")
}

/// `prime generate` on the tiny golden model with the prompt ids 7, 8, 9 (as [`request`] asks).
fn cli_generate(steps: usize, seed: u64, extra: &[&str]) -> Output {
    let (model, steps, seed) = (model(), steps.to_string(), seed.to_string());
    let mut args = vec!["generate", "--model", &model, "--device", "cpu", "--steps", &steps, "--seed", &seed];
    args.extend(["--prompt-ids", "7,8,9"]);
    args.extend(extra);
    prime(&args)
}

/// A running `prime serve` on the tiny golden model; killed when dropped.
struct Served {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(extra: &[&str]) -> Self {
        Self::on(&model(), extra)
    }

    /// Serves the model folder `model`.
    fn on(model: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prime"))
            .args(["serve", "--model", model, "--device", "cpu", "--port", "0", "--max-body", "1024"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("prime serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&line);
            log.lock().unwrap().push('\n');
            if let Some(at) = line.find("listening on http://") {
                url = Some(line[at + "listening on ".len()..].split_whitespace().next().unwrap().to_string());
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no address printed: {}", log.lock().unwrap()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Self { child, url, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that reads 4xx and 5xx answers instead of failing on them.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// POSTs `body` to /v1/generate; the status and the whole answer.
fn post(url: &str, accept: &str, body: &str) -> (u16, String) {
    let mut response = agent()
        .post(&format!("{url}/v1/generate"))
        .header("Accept", accept)
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// The (event, data) pairs of a server-sent event stream.
fn events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block.lines().filter_map(|l| l.strip_prefix(name)).map(str::trim_start).collect::<Vec<_>>().join("\n")
            };
            (field("event:"), field("data:"))
        })
        .filter(|(event, _)| !event.is_empty())
        .collect()
}

fn request(seed: u64, steps: usize) -> Value {
    json!({ "prompt": [7, 8, 9], "settings": { "steps": steps, "seed": seed } })
}

#[test]
fn the_stream_is_the_cli_trajectory_and_the_json_answer_its_ending() {
    let served = Served::start(&[]);
    let (status, text) = post(&served.url, "text/event-stream", &request(5, 24).to_string());
    assert_eq!(status, 200, "{text}");
    let events = events(&text);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"header"));
    assert_eq!(kinds.last(), Some(&"ending"));
    assert!(kinds[1..kinds.len() - 1].iter().all(|&k| k == "step"), "{kinds:?}");

    let path = std::env::temp_dir().join(format!("prime-serve-{}.jsonl", std::process::id()));
    let cli = cli_generate(24, 5, &["--trajectory", path.to_str().unwrap(), "--json"]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let file = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), events.len());
    // Every record is the line the CLI writes, the header included (same request, executor, device).
    for (n, (line, (_, data))) in lines.iter().zip(&events).enumerate() {
        assert_eq!(line, data, "record {n}");
    }
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let ending: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(ending["outcome"]["tokens"], cli["tokens"]);

    // Accept: application/json, or "stream": false, answers the ending alone.
    let (status, text) = post(&served.url, "application/json", &request(5, 24).to_string());
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer, ending);
    let mut body = request(5, 24);
    body["stream"] = json!(false);
    let (_, text) = post(&served.url, "*/*", &body.to_string());
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), ending);

    // GET /v1/models: the header's model summary.
    let header: Value = serde_json::from_str(&events[0].1).unwrap();
    let mut response = agent().get(&format!("{}/v1/models", served.url)).call().unwrap();
    let models: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(models["model"], header["model"]);
    assert!(served.log().contains("steps=24"), "one log line per request: {}", served.log());
}

#[test]
fn a_request_gets_the_settings_it_leaves_out_from_the_model() {
    let dir = std::env::temp_dir().join(format!("prime-serve-recommends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = PathBuf::from(model());
    std::fs::copy(source.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config: Value = serde_json::from_slice(&std::fs::read(source.join("config.json")).unwrap()).unwrap();
    config["sampling"] = json!({ "top_p": 0.5, "temperature": 0.8 });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let served = Served::on(dir.to_str().unwrap(), &[]);

    let mut response = agent().get(&format!("{}/v1/models", served.url)).call().unwrap();
    let models: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(models["model"]["sampling"], config["sampling"], "/v1/models names the recommendation");
    let answer = |body: Value| {
        let (status, text) = post(&served.url, "application/json", &body.to_string());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let recommended = cli_generate(20, 6, &["--top-p", "0.5", "--temperature", "0.8", "--json"]);
    let recommended: Value = serde_json::from_slice(&recommended.stdout).unwrap();
    assert_eq!(answer(request(6, 20))["outcome"]["tokens"], recommended["tokens"], "left out: the model's");
    let mut body = request(6, 20);
    body["settings"]["top_p"] = json!(1.0);
    body["settings"]["temperature"] = json!(1.0);
    let official: Value = serde_json::from_slice(&cli_generate(20, 6, &["--json"]).stdout).unwrap();
    assert_eq!(answer(body)["outcome"]["tokens"], official["tokens"], "given: the request's");
    assert_ne!(recommended["tokens"], official["tokens"], "the settings change the draws");
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sixteen_concurrent_requests_draw_what_their_cli_runs_draw() {
    let served = Served::start(&["--batch", "8"]);
    let cli = cli_generate(32, 100, &["--samples", "16", "--json"]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let want: Vec<Value> =
        String::from_utf8(cli.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(want.len(), 16);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let url = served.url.clone();
                s.spawn(move || post(&url, "application/json", &request(100 + i, 32).to_string()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (status, text)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "request {i}: {text}");
        let ending: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ending["outcome"]["tokens"], want[i]["tokens"], "request {i} (seed {})", 100 + i);
        assert_eq!(ending["outcome"]["nfe"], want[i]["nfe"], "request {i}");
    }
    // "samples": n answers a list: sample i with seed + i.
    let mut body = request(100, 32);
    body["samples"] = json!(3);
    let (status, text) = post(&served.url, "application/json", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 3);
    for (i, ending) in list.iter().enumerate() {
        assert_eq!(ending["outcome"]["tokens"], want[i]["tokens"], "sample {i}");
    }
}

#[test]
fn bad_bodies_get_400_with_the_field_and_the_server_goes_on() {
    let served = Served::start(&["--max-steps", "256", "--max-samples", "4"]);
    let cases = [
        ("{\"prompt\": [7,", "not JSON"),
        ("[1, 2]", "JSON object"),
        ("{\"promt\": [7]}", "unknown field `promt`"),
        ("{\"settings\": {\"steps\": \"many\"}}", "settings.steps"),
        ("{\"settings\": {\"steps\": 257}}", "--max-steps"),
        ("{\"settings\": {\"steps\": 0}}", "steps"),
        ("{\"settings\": {\"temperature\": -1}}", "temperature"),
        ("{\"samples\": 5, \"stream\": false}", "--max-samples"),
        ("{\"samples\": 2, \"stream\": true, \"settings\": {\"steps\": 8}}", "one sample"),
        ("{\"stream\": \"yes\"}", "stream"),
        ("{\"prompt\": [300]}", "vocabulary"),
        ("{\"prompt\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", "prompt"),
        ("{\"pins\": [[16, 1]]}", "position"),
    ];
    for (body, says) in cases {
        let (status, text) = post(&served.url, "text/event-stream", body);
        assert_eq!(status, 400, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body}: a JSON error, got {text}"));
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message:?} should name {says:?}");
    }
    let big = format!("{{\"prompt\": \"{}\"}}", "x".repeat(2000));
    let (status, text) = post(&served.url, "application/json", &big);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("--max-body"), "{text}");
    let (status, text) = post(&served.url, "application/json", &request(1, 8).to_string());
    assert_eq!(status, 200, "still serving: {text}");
    let mut response = agent().get(&format!("{}/v1/nothing", served.url)).call().unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.body_mut().read_to_string().unwrap().contains("/v1/generate"));
}

#[test]
fn a_client_that_goes_away_frees_its_place() {
    // One place: while a run holds it, another request is refused with 503.
    // A million steps: tens of seconds of records, far more than the wait below.
    let long = request(3, 1_000_000).to_string();
    let served_long = Served::start(&["--queue", "1", "--max-steps", "1048576"]);
    let mut response = agent()
        .post(&format!("{}/v1/generate", served_long.url))
        .header("Accept", "text/event-stream")
        .send(long.as_str())
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = response.body_mut().as_reader();
    let mut first = [0u8; 4096];
    let n = reader.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("event: header"));
    let (status, text) = post(&served_long.url, "application/json", &request(4, 8).to_string());
    assert_eq!(status, 503, "the one place is taken: {text}");
    assert!(text.contains("--queue"), "{text}");
    drop(reader);
    drop(response);
    // The engine notices within a round or two, drops the run and frees the place.
    let started = Instant::now();
    loop {
        let (status, text) = post(&served_long.url, "application/json", &request(4, 8).to_string());
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the place was not freed: {status} {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served_long.log().contains("client went away"), "{}", served_long.log());
}

#[test]
fn a_request_past_the_deadline_ends_with_an_error() {
    let served = Served::start(&["--deadline", "1", "--max-steps", "1048576"]);
    let started = Instant::now();
    let (status, text) = post(&served.url, "application/json", &request(3, 1_000_000).to_string());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("--deadline"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline was not kept: {:?}", started.elapsed());
    // A stream that runs past it ends with an error event.
    let (status, text) = post(&served.url, "text/event-stream", &request(3, 1_000_000).to_string());
    assert_eq!(status, 200);
    let (kind, data) = events(&text).pop().unwrap();
    assert_eq!(kind, "error");
    assert!(data.contains("--deadline"), "{data}");
    let (status, text) = post(&served.url, "application/json", &request(1, 8).to_string());
    assert_eq!(status, 200, "still serving: {text}");
}

#[test]
fn only_loopback_by_default_and_a_token_elsewhere() {
    let model = model();
    let open = prime(&["serve", "--model", &model, "--device", "cpu", "--host", "0.0.0.0", "--port", "0"]);
    assert!(!open.status.success());
    assert!(String::from_utf8_lossy(&open.stderr).contains("--token"), "{}", String::from_utf8_lossy(&open.stderr));

    let served = Served::start(&[]);
    assert!(served.url.starts_with("http://127.0.0.1:"), "{}", served.url);
    // CORS: a page on this machine may call the server, another site may not.
    let cors = |origin: &str| {
        let response = agent().get(&format!("{}/v1/models", served.url)).header("Origin", origin).call().unwrap();
        response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(cors("http://localhost:8000").as_deref(), Some("http://localhost:8000"));
    assert_eq!(cors("http://127.0.0.1:9").as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(cors("https://example.com"), None);
    assert_eq!(cors("http://localhost.example.com"), None);

    let guarded = Served::start(&["--token", "sesame-0123"]);
    let (status, text) = post(&guarded.url, "application/json", &request(1, 8).to_string());
    assert_eq!(status, 401, "{text}");
    let mut response = agent()
        .post(&format!("{}/v1/generate", guarded.url))
        .header("Accept", "application/json")
        .header("Authorization", "Bearer sesame-0123")
        .send(request(1, 8).to_string().as_str())
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{}", response.body_mut().read_to_string().unwrap());
}

#[test]
fn ctrl_c_stops_the_server_cleanly() {
    let mut served = Served::start(&[]);
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {}", served.log());
    std::thread::sleep(Duration::from_millis(100));
    assert!(served.log().contains("stopped"), "{}", served.log());
}
